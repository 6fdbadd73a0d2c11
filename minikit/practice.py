"""Implement-it exercises: the learner writes the core of a technique, and a check runs it on hidden cases.

Each check in ``minikit.check`` that takes a *function* (``minikit.check.magnitude_mask(magnitude_mask)``)
calls it on a few small cases the learner never sees, compares each result with minikit's own
implementation, and names the first case that fails: what was passed, what came back, what was
expected. The learner's function may raise, return the wrong type or shape, change its input in place,
or still be the stub (``raise NotImplementedError``): each gets its own message, and no traceback from
inside minikit is ever shown, only the line of the learner's own cell where their code raised.

The checks themselves, chapter by chapter, are in ``minikit.implement_it``; each is marked with
:func:`exercise`, and ``minikit.check`` re-exports exactly those. This module also holds :class:`CheckResult`, which every check returns, and :func:`answered`, which
turns an unanswered ``None`` into "not answered yet".
"""

from __future__ import annotations

import copy
import functools
import inspect
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        if self.passed:
            return "✅ Correct. " + self.message
        return ("⏳ " if self.message.startswith("Not answered yet") else "❌ Not yet. ") + self.message

    _repr_pretty_ = lambda self, p, cycle: p.text(repr(self))  # noqa: E731  (IPython display)


NOT_ANSWERED = "Not answered yet: replace the `None` with your answer and run the cell again."
NOT_WRITTEN = ("Not answered yet: your function still raises NotImplementedError. Replace the `raise` line "
               "with your code and run the cell again.")


def answered(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """A check's first argument is the learner's answer: left as None (or ...), every check says the same thing."""
    @functools.wraps(check)
    def checked(answer, *args, **kwargs) -> CheckResult:
        if answer is None or answer is ...:
            return CheckResult(False, NOT_ANSWERED)
        return check(answer, *args, **kwargs)

    return checked


# --- running a learner's function on hidden cases ----------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hidden call: ``name`` says what it tests, in the learner's words ("a 4×6 weight at 50 % sparsity")."""
    name: str
    args: tuple
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    may_change: tuple[int, ...] = ()  # positions of arguments the function is meant to change (a model, an optimizer)


# A comparison returns None when the result is right, else one sentence saying what differs.
Compare = Callable[[Any, Any], "str | None"]


def describe(value: Any) -> str:
    """A short, learner-facing description of a value: its type, and its shape for arrays."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"{type(value).__name__} {value!r}" if isinstance(value, (int, float, str, bool)) else type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=4, suppress_small=True, max_line_width=100, threshold=40)
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def close(atol: float = 1e-5, rtol: float = 1e-4, dtype: str | None = None) -> Compare:
    """Numbers, tensors and arrays equal within tolerance; tuples compared item by item.

    ``dtype="float"`` or ``"int"`` also requires that kind of number (a mask of 0/1 floats, integer codes).
    """
    def compare(got: Any, want: Any) -> str | None:
        if isinstance(want, tuple):
            if not isinstance(got, (tuple, list)) or len(got) != len(want):
                return f"expected a tuple of {len(want)} items, got {describe(got)}"
            for i, (g, w) in enumerate(zip(got, want)):
                problem = compare(g, w)
                if problem:
                    return f"item {i} of the tuple: {problem}"
            return None
        if isinstance(want, torch.Tensor):
            if not isinstance(got, torch.Tensor):
                return f"expected a torch tensor, got {describe(got)}"
            if tuple(got.shape) != tuple(want.shape):
                return f"expected shape {tuple(want.shape)}, got shape {tuple(got.shape)}"
            if dtype == "int" and got.is_floating_point():
                return f"expected whole numbers (an integer dtype), got dtype {got.dtype}"
            g, w = got.detach().double().cpu(), want.detach().double().cpu()
            wrong = ~torch.isclose(g, w, atol=atol, rtol=rtol)
            if bool(wrong.any()):
                where = tuple(int(i) for i in wrong.nonzero()[0])
                return (f"{int(wrong.sum())} of {w.numel()} values differ; the first at index {where}: "
                        f"got {g[where].item():.6g}, expected {w[where].item():.6g}")
            return None
        if isinstance(want, np.ndarray):
            return compare(torch.tensor(np.array(got)) if isinstance(got, (np.ndarray, list)) else got,
                           torch.tensor(np.array(want)))
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, np.generic):
                got = got.item()
            if not isinstance(got, (int, float)) or isinstance(got, bool):
                return f"expected a number, got {describe(got)}"
            if not np.isclose(got, want, atol=atol, rtol=rtol):
                return f"got {_show(float(got))}, expected {_show(float(want))}"
            return None
        return None if got == want else f"got {_show(got)}, expected {_show(want)}"

    return compare


def _snapshot(value: Any) -> Any:
    if isinstance(value, torch.nn.Module):
        return {k: v.detach().clone() for k, v in value.state_dict().items()}
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that cannot be copied (an optimizer's closure, say) is not watched
        return None


def _unchanged(before: Any, after: Any) -> bool:
    if before is None:
        return True
    if isinstance(after, torch.nn.Module):
        now = after.state_dict()
        return all(torch.equal(v, now[k]) for k, v in before.items())
    if isinstance(before, torch.Tensor):
        return isinstance(after, torch.Tensor) and before.shape == after.shape and torch.equal(before, after)
    if isinstance(before, np.ndarray):
        return np.array_equal(before, after)
    if isinstance(before, (list, tuple)):
        return len(before) == len(after) and all(_unchanged(b, a) for b, a in zip(before, after))
    try:
        return bool(before == after)
    except Exception:
        return True


def _learner_line(error: BaseException, function: Callable) -> str:
    """Where in the learner's own code the error happened ("line 4 of your function"), never minikit's frames."""
    code = getattr(function, "__code__", None)
    if code is None:
        return ""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == code.co_filename]
    if not frames:
        return ""
    last = frames[-1]
    where = f"line {last.lineno - code.co_firstlineno + 1} of your function"
    return f" ({where}: `{last.line.strip()}`)" if last.line else f" ({where})"


def _argument_names(function: Callable) -> str:
    try:
        return str(inspect.signature(function))
    except (TypeError, ValueError):
        return "(…)"


def implemented(function: Any, cases: Sequence[Case], reference: Callable, compare: Compare, *,
                call: str, success: str, outcome: Callable[[tuple, Any], Any] | None = None) -> CheckResult:
    """Run ``function`` on every case; pass when each result matches ``reference`` on the same inputs.

    ``call`` is how the check calls the function, in the notebook's names ("magnitude_mask(weight, sparsity)"),
    for the message when the learner's signature does not fit. ``success`` is said when every case passes.
    ``outcome(args, returned)`` picks what is compared when the function's effect is on its arguments (a
    training step updates the model it is given): it is applied to the learner's call and the reference's alike.
    """
    if function is None or function is ...:
        return CheckResult(False, "Not answered yet: pass your function itself, as in "
                           f"`minikit.check.{call.split('(')[0]}({call.split('(')[0]})`.")
    if not callable(function):
        return CheckResult(False, f"Pass the function itself (its name, with no parentheses), not "
                           f"{describe(function)}. The check calls it as `{call}`.")
    for number, case in enumerate(cases, 1):
        label = f"Case {number} of {len(cases)}, {case.name}"
        try:
            inspect.signature(function).bind(*case.args, **case.kwargs)
        except TypeError:
            return CheckResult(False, f"{label}: your function takes {_argument_names(function)}, but the check "
                               f"calls it as `{call}`. Keep the arguments of the stub.")
        except ValueError:  # a builtin without a signature: just call it
            pass
        reference_args = copy.deepcopy(case.args)
        want = reference(*reference_args, **copy.deepcopy(dict(case.kwargs)))
        args, kwargs = copy.deepcopy(case.args), copy.deepcopy(dict(case.kwargs))
        watched = {i: _snapshot(a) for i, a in enumerate(args) if i not in case.may_change}
        try:
            got = function(*args, **kwargs)
        except NotImplementedError:
            return CheckResult(False, NOT_WRITTEN)
        except Exception as error:  # the learner's code raised: say what and where, without minikit's frames
            return CheckResult(False, f"{label}: your function raised {type(error).__name__}: {error}"
                               f"{_learner_line(error, function)}.")
        if got is None and want is not None:
            return CheckResult(False, f"{label}: your function returned None. Did you forget the `return`?")
        for i, before in watched.items():
            if not _unchanged(before, args[i]):
                return CheckResult(False, f"{label}: your function changed its argument number {i + 1} in place. "
                                   "Work on a copy (`.clone()`, or an operation that returns a new tensor).")
        if outcome is not None:
            got, want = outcome(args, got), outcome(reference_args, want)
        problem = compare(got, want)
        if problem:
            return CheckResult(False, f"{label}: {problem}.")
    return CheckResult(True, f"All {len(cases)} hidden cases pass. {success}")


def exercise(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """Marks an implement-it check, so that ``minikit.check`` re-exports it."""
    check.implement_it = True  # type: ignore[attr-defined]
    return check


def use(yours: Callable, solution: Callable, check: Callable[[Callable], CheckResult]) -> Callable:
    """The function the next cells run: yours once it passes ``check``, else the solution. Says which.

    So the cells after an implement-it exercise run the learner's own code as soon as it is right, and
    the notebook still runs top to bottom before it is.
    """
    result = check(yours)
    if result:
        print("The cells below run your function: it passes every hidden case.")
        return yours
    which = "minikit's own implementation" if getattr(solution, "minikit_reference", False) else "the solution"
    print(f"The cells below run {which} until your function passes the check above.")
    return solution
