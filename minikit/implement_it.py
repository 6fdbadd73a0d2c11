"""The implement-it exercises' checks, one section per chapter: the learner writes the core of a technique.

Each check takes the learner's function, builds a few hidden cases from a fixed seed (so a rerun fails
on the same case), and runs them with :func:`minikit.practice.implemented` against minikit's own
implementation: the code the course runs is the reference. ``minikit.check.<name>(your_function)``
calls them.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification
from transformers.pytorch_utils import prune_linear_layer

from minikit.distillation import attention_loss, distillation_loss
from minikit.early_exit import ExitRule, exit_layers
from minikit.errors import UnknownNameError
from minikit.metrics import per_class_scores
from minikit.models import build_model
from minikit.practice import Case, CheckResult, close, describe, exercise, implemented
from minikit.pruning import magnitude_threshold
from minikit.qat import ste_quantize
from minikit.quantization import quantization_params

# --- 03 fine-tuning ------------------------------------------------------------------------------


def _step_reference(model, batch, optimizer) -> float:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


class _TwoSteps:  # a step run on two batches in a row; __code__ keeps error messages on the learner's lines
    def __init__(self, step: Callable):
        self.step, self.__code__ = step, getattr(step, "__code__", None)

    def __call__(self, model, batches, optimizer):
        return tuple(self.step(model, batch, optimizer) for batch in batches)


@exercise
def train_step(function: Callable) -> CheckResult:
    """``train_step(model, batch, optimizer) -> float``: forward with labels, backward, step, zero_grad; the loss."""
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=16, num_labels=3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # no dropout: a step gives the same result twice
    with torch.random.fork_rng(devices=[]):  # seeded cases; the learner's random state is left as it was
        model = build_model(config, seed=3)
        ids = torch.randint(5, 40, (7, 6))
    mask = torch.ones_like(ids)
    mask[2, 3:] = 0  # a padded sequence
    first = {"input_ids": ids[:3], "attention_mask": mask[:3], "labels": torch.tensor([2, 0, 1])}
    second = {"input_ids": ids[3:], "attention_mask": mask[3:], "labels": torch.tensor([1, 1, 0, 2])}
    sgd = torch.optim.SGD(model.parameters(), lr=0.5)
    order = "Check the order: forward, `loss.backward()`, `optimizer.step()`, `optimizer.zero_grad()`"
    leftover = ("The first step's gradients were still there, and the second's were added to them: call "
                "`optimizer.zero_grad()` after `optimizer.step()`")
    trains = {"may_change": (0, 2)}  # a step changes the model and the optimizer it is given
    cases = [(Case("a 2-layer BERT, 3 classes, a padded batch of 3 sequences, SGD", (model, first, sgd), **trains),
              order),
             (Case("the same model and batch with AdamW", (model, first, torch.optim.AdamW(model.parameters())),
                   **trains), order),
             (Case("two steps in a row (SGD): the second must use the second batch's gradients only",
                   (model, (first, second), sgd), **trains), leftover)]

    def flat(net) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    def compare(got, want) -> str | None:  # (the loss or losses returned, the parameters after)
        if problem := close(atol=1e-6, rtol=1e-5)(got[0], want[0]):
            return f"the loss you returned: {problem}. Return `loss.item()` of the forward pass, before the update"
        if torch.equal(got[1], flat(model)):
            return ("your step left the parameters as they were: `loss.backward()` computes the gradients, then "
                    "`optimizer.step()` applies them")
        problem = close(atol=1e-6, rtol=1e-5)(got[1], want[1])
        return f"the parameters after your step differ from a correct step's: {problem}. {hint}" if problem else None

    for number, (case, hint) in enumerate(cases, 1):
        two = isinstance(case.args[1], tuple)
        result = implemented(_TwoSteps(function) if two else function, [case], _TwoSteps(_step_reference) if two
                             else _step_reference, compare, call="train_step(model, batch, optimizer)", success="",
                             outcome=lambda args, returned: (returned, flat(args[0])))
        if not result:
            return CheckResult(False, result.message.replace("Case 1 of 1,", f"Case {number} of {len(cases)},"))
    return CheckResult(True, f"All {len(cases)} hidden cases pass. The forward pass with the labels gives the loss, "
                       "backward computes every gradient, step applies them, and zero_grad clears them so the next "
                       "batch starts from zero: that is the step a training loop repeats.")


# --- 04 metrics ----------------------------------------------------------------------------------


def _prf_reference(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = per_class_scores(cm)
    return tuple(scores[c].to_numpy(dtype=float) for c in ("precision", "recall", "f1"))  # type: ignore[return-value]


@exercise
def precision_recall_f1(function: Callable) -> CheckResult:
    """``precision_recall_f1(cm) -> (precision, recall, f1)``: per-class arrays from a confusion matrix (rows = truth)."""
    rng = np.random.default_rng(4)
    never_predicted = rng.integers(1, 9, size=(3, 3))
    never_predicted[:, 2] = 0  # class 2 is never predicted: its precision is 0/0, taken as 0
    cases = [
        Case("a 2×2 matrix [[5, 1], [2, 4]]", (np.array([[5, 1], [2, 4]]),)),
        Case("a 4×4 matrix whose rows (the truth) and columns (the predictions) differ in total",
             (rng.integers(0, 20, size=(4, 4)),)),
        Case("a 3×3 matrix where class 2 is never predicted (0/0 counts as 0)", (never_predicted,)),
    ]
    return implemented(function, cases, _prf_reference, close(atol=1e-6), call="precision_recall_f1(cm)",
                       success="Precision divides by the column (predicted), recall by the row (true), "
                       "and F1 is their harmonic mean.")


# --- 05 pruning ----------------------------------------------------------------------------------


def _mask_reference(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    if sparsity >= 1:  # magnitude_threshold takes fractions below 1; at 1 every |w| ≤ the largest goes
        return torch.zeros_like(weight, dtype=torch.bool)
    return weight.abs() > magnitude_threshold([weight], sparsity)  # ties at the cut go too, as in magnitude_prune


@exercise
def magnitude_mask(function: Callable) -> CheckResult:
    """``magnitude_mask(weight, sparsity) -> mask``: True (or 1) where ``magnitude_prune`` keeps a weight, else 0."""
    g = torch.Generator().manual_seed(5)
    ties = torch.tensor([[0.5, -0.5, 0.5, 0.1], [0.2, -0.2, 0.9, 0.5]])
    cases = [
        Case("a 4×6 weight at 50 % sparsity, negative weights included", (torch.randn(4, 6, generator=g), 0.5)),
        Case("sparsity 0: nothing is pruned", (torch.randn(3, 4, generator=g), 0.0)),
        Case("a 3×4 weight at 40 % sparsity: k = round(0.4 × 12) = 5 weights go", (torch.randn(3, 4, generator=g), 0.4)),
        Case("ties: at 50 % the 4th smallest |w| is 0.5, shared by four weights, and every |w| ≤ 0.5 goes",
             (ties, 0.5)),
        Case("sparsity 1: everything is pruned", (torch.randn(2, 5, generator=g), 1.0)),
        Case("a 64×48 weight at 90 % sparsity", (torch.randn(64, 48, generator=g), 0.9)),
    ]
    return implemented(function, cases, _mask_reference, close(atol=0, rtol=0), call="magnitude_mask(weight, sparsity)",
                       success="Your mask keeps exactly the weights pruning.magnitude_prune keeps: |w| above the "
                       "k-th smallest |w|, k = round(sparsity × n), ties at the cut pruned.")


def _slice_ffn_reference(up: nn.Linear, down: nn.Linear, keep: torch.Tensor) -> tuple[nn.Linear, nn.Linear]:
    # What pruning.prune_ffn_neurons does to each feed-forward pair once it has chosen ``keep``.
    return prune_linear_layer(up, keep, dim=0), prune_linear_layer(down, keep, dim=1)


def _same_linear_pair(got, want: tuple[nn.Linear, nn.Linear]) -> str | None:
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(m, nn.Linear) for m in got)):
        return f"expected a pair (new_up, new_down) of nn.Linear layers, got {describe(got)}"
    for which, mine, right in zip(("new_up", "new_down"), got, want):
        if (mine.out_features, mine.in_features) != tuple(mine.weight.shape):
            return (f"{which} says out_features={mine.out_features}, in_features={mine.in_features} but its weight "
                    f"has shape {tuple(mine.weight.shape)}: build it as nn.Linear(in, out) of the new sizes")
        for part in ("weight", "bias"):
            g, w = getattr(mine, part), getattr(right, part)
            if (g is None) != (w is None):
                return f"{which}.{part} is {'missing' if g is None else 'there'}, expected {describe(w)}"
            problem = None if w is None else close(atol=0, rtol=0)(g, w)
            if problem:
                return f"{which}.{part}: {problem}"
    return None


@exercise
def slice_ffn(function: Callable) -> CheckResult:
    """``slice_ffn(up, down, keep) -> (new_up, new_down)``: keep rows of ``up`` and columns of ``down``."""
    pair = lambda d, ffn: (nn.Linear(d, ffn), nn.Linear(ffn, d))  # noqa: E731
    with torch.random.fork_rng():  # the layers' weights come from a fixed seed; the learner's RNG is left alone
        torch.manual_seed(5)
        cases = [
            Case("hidden 4, FFN width 10, keep neurons [1, 4, 5, 8]", (*pair(4, 10), torch.tensor([1, 4, 5, 8]))),
            Case("hidden 6, FFN width 8, keep one neuron [3]", (*pair(6, 8), torch.tensor([3]))),
            Case("hidden 3, FFN width 5, keep every neuron", (*pair(3, 5), torch.arange(5))),
        ]
    return implemented(function, cases, _slice_ffn_reference, _same_linear_pair, call="slice_ffn(up, down, keep)",
                       success="A neuron is a row of up (weight and bias) and a column of down; down's bias "
                       "belongs to its outputs and stays whole.")


# --- 06 quantization -----------------------------------------------------------------------------


def _linear_quantize_reference(w: torch.Tensor, bits: int, symmetric: bool):
    scale, zero_point, qmin, qmax = quantization_params(w, bits, "per-channel", symmetric)
    scale, zero_point = scale[:, None], zero_point[:, None]  # (rows, 1): one per output channel
    return torch.clamp(torch.round(w / scale) + zero_point, qmin, qmax), scale, zero_point  # as quantize_tensor


def _per_row(returned):
    """(q, scale, zero_point) with scale and zero point as (rows, 1): shape (rows,) passes too."""
    if not (isinstance(returned, (tuple, list)) and len(returned) == 3 and isinstance(returned[0], torch.Tensor)):
        return returned
    q, *params = returned
    return (q, *(p.reshape(-1, 1) if isinstance(p, torch.Tensor) and p.numel() == len(q) else p for p in params))


def _same_quantization(got, want) -> str | None:
    problem = close(atol=1e-6, rtol=1e-5)(got, want)
    for i, name in enumerate(("q", "scale", "zero_point")):
        problem = problem and problem.replace(f"item {i} of the tuple", name)
    return problem


@exercise
def linear_quantize(function: Callable) -> CheckResult:
    """``linear_quantize(w, bits, symmetric) -> (q, scale, zero_point)``, one scale per output row (per channel)."""
    g = torch.Generator().manual_seed(6)
    spread = torch.randn(4, 6, generator=g) * torch.tensor([[0.01], [0.1], [1.0], [5.0]])  # rows of very different range
    positive = torch.rand(3, 5, generator=g) + 0.1  # a row without negatives: the range still includes 0
    ties = torch.tensor([[-0.375, 0.0, 1.0, 3.375], [-1.0, -0.5, 0.25, 2.0]])  # row 0: -1.5 and 13.5 steps
    cases = [
        Case("a 4×6 weight whose rows have very different ranges, 8 bits, symmetric", (spread, 8, True)),
        Case("the same weight at 4 bits, symmetric: integers −7…7", (spread, 4, True)),
        Case("the same weight at 4 bits, asymmetric: integers 0…15", (spread, 4, False)),
        Case("a 3×5 weight with only positive values, 3 bits, asymmetric", (positive, 3, False)),
        Case("4 bits, asymmetric, a row whose ends fall half-way between two steps: torch.round rounds "
             "halves to even, which pushes its largest weight one past 15, so clamp", (ties, 4, False)),
        Case("2 bits, symmetric: integers −1…1", (torch.randn(5, 3, generator=g), 2, True)),
    ]
    return implemented(function, cases, _linear_quantize_reference, _same_quantization,
                       call="linear_quantize(w, bits, symmetric)", outcome=lambda _args, returned: _per_row(returned),
                       success="One scale (and zero point) per output row, rounded and clamped to the b-bit "
                       "range: the integers minikit.quantization.quantize_tensor would store.")


def _forward_and_gradient(args: tuple, returned) -> tuple:
    """What a straight-through rounding is judged on: its value, and d Σ c·out / dw for distinct weights c."""
    w = args[0]
    if not isinstance(returned, torch.Tensor) or returned.shape != w.shape:
        return returned, None
    if not returned.requires_grad:
        return returned.detach(), torch.zeros_like(w)
    c = torch.arange(1, w.numel() + 1, dtype=w.dtype).reshape(w.shape)
    (gradient,) = torch.autograd.grad((c * returned).sum(), w, allow_unused=True)
    return returned.detach(), torch.zeros_like(w) if gradient is None else gradient


def _same_ste(got, want) -> str | None:
    (value, gradient), (expected, expected_gradient) = got, want
    if gradient is None:
        return f"expected a tensor of w's shape {tuple(expected.shape)}, got {describe(value)}"
    if not torch.allclose(value, expected, atol=1e-6):
        return ("going forward your tensor is not the rounded weight: it should equal quantize_tensor(w, bits) "
                "(per channel, symmetric), the weight a b-bit model would use")
    if not torch.allclose(gradient, expected_gradient):
        if gradient.abs().sum() == 0:
            return ("the gradient with respect to w is zero everywhere: rounding passes no gradient, so nothing "
                    "would train. Add the rounding as a detached difference, w + (q − w).detach(), whose gradient "
                    "is 1")
        return "the gradient with respect to w should be 1 for every weight (the identity), and it is not"
    return None


@exercise
def straight_through(function: Callable) -> CheckResult:
    """``straight_through(w, bits)``: ``quantize_tensor(w, bits)`` going forward, gradient 1 going back (the STE)."""
    g = torch.Generator().manual_seed(23)
    cases = [Case(f"a {rows}×{cols} weight that requires grad, {bits} bits", (
        (torch.randn(rows, cols, generator=g) * scale).requires_grad_(), bits))
        for rows, cols, bits, scale in ((4, 6, 4, 1.0), (3, 5, 2, 0.1), (2, 8, 8, 3.0))]
    return implemented(function, cases, ste_quantize, _same_ste, call="straight_through(w, bits)",
                       outcome=_forward_and_gradient,
                       success="Forward, the b-bit weight; backward, the gradient of the identity: the straight-"
                       "through estimator that minikit.qat.ste_quantize applies to every Linear weight.")


# --- 07 distillation -----------------------------------------------------------------------------


def _logits(rng: np.random.Generator, rows: int, classes: int, scale: float = 2.0) -> torch.Tensor:
    return torch.tensor(rng.normal(0.0, scale, size=(rows, classes)), dtype=torch.float32)


def _value_and_gradient(args: tuple, loss: Any) -> Any:
    """What a loss check compares: the value, and the gradient it sends to its first argument when that needs one."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        return loss
    if not args[0].requires_grad:
        return loss.item()
    return loss.item(), torch.autograd.grad(loss, args[0])[0] if loss.requires_grad else None


def _same_value_and_gradient(what: str) -> Callable[[Any, Any], str | None]:
    """Compare two ``_value_and_gradient`` outcomes; ``what`` names the first argument in the message."""
    def compare(got: Any, want: Any) -> str | None:
        value = close(atol=1e-5, rtol=1e-4)(*(x[0] if isinstance(x, tuple) else x for x in (got, want)))
        if value or not isinstance(want, tuple):
            return value
        if not isinstance(got, tuple) or got[1] is None:
            return (f"the value is right, but it carries no gradient back to the {what}: compute it with "
                    "torch operations on the tensors you are given (no .item(), .numpy() or .detach())")
        problem = close(atol=1e-5, rtol=1e-4)(got[1], want[1])
        return problem and f"the value is right, but its gradient with respect to the {what} is not: {problem}"

    return compare


@exercise
def kd_loss(function: Callable) -> CheckResult:
    """``kd_loss(student_logits, teacher_logits, labels, alpha, temperature)``: minikit's ``distillation_loss``."""
    rng = np.random.default_rng(7)
    live = _logits(rng, 4, 5).requires_grad_(True)  # the loss must carry gradients back to the student
    cases = [
        Case("one example over 3 classes, α = 0.5, T = 2", (_logits(rng, 1, 3), _logits(rng, 1, 3, 4.0),
                                                            torch.tensor([0]), 0.5, 2.0)),
        Case("a batch of 4 over 5 classes, α = 0.3, T = 2", (_logits(rng, 4, 5), _logits(rng, 4, 5, 4.0),
                                                             torch.tensor([0, 3, 1, 4]), 0.3, 2.0)),
        Case("the teacher only (α = 0), T = 4, a batch of 3", (_logits(rng, 3, 5), _logits(rng, 3, 5, 4.0),
                                                               torch.tensor([2, 2, 0]), 0.0, 4.0)),
        Case("the labels only (α = 1), a batch of 2", (_logits(rng, 2, 4), _logits(rng, 2, 4), torch.tensor([1, 3]),
                                                       1.0, 2.0)),
        Case("student logits that require grad (α = 0.5, T = 3)", (live, _logits(rng, 4, 5, 4.0),
                                                                   torch.tensor([4, 0, 0, 2]), 0.5, 3.0)),
    ]

    return implemented(function, cases, distillation_loss, _same_value_and_gradient("student's logits"),
                       outcome=_value_and_gradient,
                       call="kd_loss(student_logits, teacher_logits, labels, alpha, temperature)",
                       success="α weights the cross-entropy on the labels; the soft term is KL(teacher ‖ student) "
                       "between the softened distributions, averaged over the batch and scaled by T².")


def _attention_maps(g: torch.Generator, batch: int, heads: int, tokens: int, mask: torch.Tensor) -> torch.Tensor:
    """Random attention distributions (B, H, T, T), zero on the padding keys, as a model's softmax leaves them."""
    keys = torch.where(mask[:, None, None, :].bool(), 0.0, float("-inf"))
    return torch.softmax(2.0 * torch.randn(batch, heads, tokens, tokens, generator=g) + keys, dim=-1)


def _attention_kl_reference(student_maps: torch.Tensor, teacher_maps: torch.Tensor,
                            attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_loss([student_maps], [teacher_maps], attention_mask)


@exercise
def attention_kl(function: Callable) -> CheckResult:
    """``attention_kl(student_maps, teacher_maps, attention_mask)``: one layer of ``distillation.attention_loss``."""
    g = torch.Generator().manual_seed(29)
    padded = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    cases = []
    for name, mask, heads, live in (("one example, one head, 4 tokens, no padding", torch.ones(1, 4, dtype=torch.long),
                                     1, False),
                                    ("a batch of 2 with 3 heads, the second padded after 3 tokens", padded, 3, False),
                                    ("student maps that require grad (2 heads, padded)", padded, 2, True)):
        student = _attention_maps(g, len(mask), heads, mask.shape[1], mask).requires_grad_(live)
        cases.append(Case(name, (student, _attention_maps(g, len(mask), heads, mask.shape[1], mask), mask)))
    return implemented(function, cases, _attention_kl_reference, _same_value_and_gradient("student's attention maps"),
                       outcome=_value_and_gradient, call="attention_kl(student_maps, teacher_maps, attention_mask)",
                       success="KL(teacher ‖ student) per head and real query token, summed over the keys and "
                       "averaged over the real rows and the heads: distillation.attention_loss for one layer pair.")


def _tiny_student(seed: int) -> torch.nn.Module:
    """A one-layer BERT classifier (3 labels, vocabulary 30), dropout off so a step is deterministic.

    Its weights are drawn wider than BERT's (initializer_range 0.5), so a step that forgets the attention
    mask changes the logits by more than the tolerance.
    """
    config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.5)
    with torch.random.fork_rng():  # the learner's own random state is left as it was
        torch.manual_seed(seed)
        return BertForSequenceClassification(config)


def _distill_step_reference(student, teacher_logits, batch, optimizer, alpha: float, temperature: float) -> float:
    logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = distillation_loss(logits, teacher_logits, batch["labels"], alpha, temperature)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


@exercise
def distill_step(function: Callable) -> CheckResult:
    """``distill_step(student, teacher_logits, batch, optimizer, alpha, temperature) -> float``: one training step."""
    rng = np.random.default_rng(8)
    cases = []
    for name, seed, rows, opt, alpha, temperature in (
            ("SGD, α = 0.5, T = 2, a batch of 4", 0, 4, dict(lr=0.5), 0.5, 2.0),
            ("SGD with momentum, the teacher only (α = 0), T = 4, a batch of 3 with padding", 1, 3,
             dict(lr=0.3, momentum=0.9), 0.0, 4.0),
            ("SGD, the labels only (α = 1), a batch of 2", 2, 2, dict(lr=1.0), 1.0, 2.0)):
        student = _tiny_student(seed)
        mask = torch.ones(rows, 6, dtype=torch.long)
        if "padding" in name:
            mask[0, 4:] = 0  # the first text is two tokens shorter
        batch = {"input_ids": torch.tensor(rng.integers(1, 30, size=(rows, 6))), "attention_mask": mask,
                 "labels": torch.tensor(rng.integers(0, 3, size=rows))}
        optimizer = torch.optim.SGD(student.parameters(), **opt)
        cases.append(Case(name, (student, _logits(rng, rows, 3, 3.0), batch, optimizer, alpha, temperature),
                          may_change=(0, 3)))

    def outcome(args: tuple, loss: Any) -> tuple:  # what the step returned, where it left the student, and its grads
        params = [p for p in args[0].parameters()]
        left = sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)
        return loss, torch.cat([p.detach().flatten() for p in params]), left

    def compare(got: tuple, want: tuple) -> str | None:
        if (problem := close(atol=1e-5, rtol=1e-4)(got[0], want[0])):
            return f"the loss you returned: {problem}"
        if got[2] > 0:
            return ("the parameters still hold gradients after your step: end with optimizer.zero_grad(), or the "
                    "next step adds its gradients to these")
        if (problem := close(atol=1e-5, rtol=1e-4)(got[1], want[1])):
            return f"the student's parameters after your step: {problem} (did the optimizer step, once?)"
        return None

    return implemented(function, cases, _distill_step_reference, compare, outcome=outcome,
                       call="distill_step(student, teacher_logits, batch, optimizer, alpha, temperature)",
                       success="Forward, the KD loss against the teacher's logits, backward, step, zero_grad: "
                       "that is all a distillation step adds to fine-tuning.")


# --- 08 deployment -------------------------------------------------------------------------------


def _take_batch_reference(arrivals_ms: Sequence[float], free_ms: float, max_batch: int,
                          max_wait_ms: float) -> tuple[int, float]:
    """The rule of ``minikit.server.Batcher._next_batch``, as a pure function of arrival times and a clock.

    The server's rule runs on asyncio's queue and clock, so it cannot be called with made-up times;
    this follows it step by step. The batch opens when the model is free and a request waits
    (``await queue.get()``), and its deadline is that moment plus max_wait_ms. Requests already
    queued join at once; later ones join while the deadline has not passed: one arriving exactly at
    the deadline joins too, since the server looks at the queue before it looks at the clock. It
    leaves when it holds max_batch requests, else at the deadline.
    """
    opens = max(free_ms, arrivals_ms[0])
    deadline = opens + max_wait_ms
    n = min(max_batch, sum(1 for t in arrivals_ms if t <= deadline))
    return n, (max(opens, arrivals_ms[n - 1]) if n == max_batch else deadline)


@exercise
def take_batch(function: Callable) -> CheckResult:
    """``take_batch(arrivals_ms, free_ms, max_batch, max_wait_ms) -> (n, leaves_ms)``: the server's next batch."""
    cases = [
        Case("one request and nothing after it (it waits max_wait_ms, then goes alone)", ([10.0], 0.0, 4, 5.0)),
        Case("requests at 0, 2, 4 and 30 ms, the model free at 0, max 8, wait 5", ([0.0, 2.0, 4.0, 30.0], 0.0, 8, 5.0)),
        Case("a request arriving exactly at the deadline (0 + 5 ms)", ([0.0, 5.0, 9.0], 0.0, 8, 5.0)),
        Case("six already waiting, max 4: full at once", ([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 10.0, 4, 5.0)),
        Case("the batch fills before the deadline (max 3, wait 50)", ([0.0, 4.0, 8.0, 12.0], 0.0, 3, 50.0)),
        Case("the model busy until 20 ms: the wait starts then, not at the first arrival",
             ([0.0, 3.0, 21.0, 24.0, 40.0], 20.0, 16, 5.0)),
        Case("max_wait_ms = 0: only what already waits", ([0.0, 1.0, 6.0], 2.0, 16, 0.0)),
    ]

    def compare(got: Any, want: tuple) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return f"expected a pair (n, leaves_ms), got {describe(got)}"
        if (problem := close(atol=1e-9)(got[0], want[0])):
            return f"how many requests the batch takes: {problem}"
        if (problem := close(atol=1e-6)(got[1], want[1])):
            return f"when the batch leaves (ms): {problem}"
        return None

    return implemented(function, cases, _take_batch_reference, compare,
                       call="take_batch(arrivals_ms, free_ms, max_batch, max_wait_ms)",
                       success="Take up to max_batch, or wait at most max_wait_ms from the moment the model is free: "
                       "the rule of minikit.server's Batcher.")


# --- 10 adaptive inference -----------------------------------------------------------------------


def _exit_layer_reference(layer_logits: np.ndarray, threshold: float) -> int:
    return int(exit_layers(np.asarray(layer_logits)[None], ExitRule("max-prob", threshold))[0])


@exercise
def exit_layer(function: Callable) -> CheckResult:
    """``exit_layer(layer_logits, threshold) -> int``: the 1-based layer where one text stops under max-prob.

    ``layer_logits`` is one text's (layers, classes) array. The rule is minikit's ``ExitRule("max-prob", t)``:
    the first layer whose top softmax probability is strictly above ``t``, else the last layer.
    """
    rng = np.random.default_rng(10)
    unsure = rng.normal(0.0, 0.3, size=(6, 5)) + 2.0  # every logit near 2: raw logits > 0.9, probabilities ~0.2-0.3
    third = unsure.copy()
    third[2:, 1] += 6.0  # layers 3 to 6 are sure of class 1: the first of them is the answer
    tie = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0], [3.0, 0.0]])  # layers 1-2: exactly 0.5, the threshold
    certain = np.tile([50.0, 0.0], (4, 1))  # a probability of exactly 1.0 (in float64 and float32) at every layer
    cases = [
        Case("6 layers, 5 classes: layers 1-2 unsure (every logit near 2), layers 3-6 sure; threshold 0.9",
             (third, 0.9)),
        Case("6 layers, no layer above the threshold 0.9: the last layer answers", (unsure, 0.9)),
        Case("3 layers, already sure after layer 1; threshold 0.9", (third[2:5], 0.9)),
        Case("4 layers, 2 classes: layers 1-2 give exactly 0.5 with threshold 0.5 (equal is not above)", (tie, 0.5)),
        Case("4 layers whose top probability is exactly 1.0, threshold 1 (nothing is above 1)", (certain, 1.0)),
        Case("threshold 0: any answer is above it", (unsure, 0.0)),
    ]
    return implemented(function, cases, _exit_layer_reference, close(atol=0), call="exit_layer(layer_logits, threshold)",
                       success="Softmax per layer, the top probability strictly above the threshold, the first such "
                       "layer counted from 1, and the last layer when none passes: minikit's ExitRule('max-prob').")


__all__ = [name for name, value in list(globals().items()) if getattr(value, "implement_it", False)]

# Each implement-it check's reference: minikit's own implementation, which the check compares the learner's with.
_REFERENCES: dict[Callable, Callable] = {
    train_step: _step_reference, precision_recall_f1: _prf_reference, magnitude_mask: _mask_reference,
    slice_ffn: _slice_ffn_reference, linear_quantize: _linear_quantize_reference,
    straight_through: ste_quantize, kd_loss: distillation_loss, attention_kl: _attention_kl_reference,
    distill_step: _distill_step_reference, take_batch: _take_batch_reference, exit_layer: _exit_layer_reference,
}


def reference(check: Callable) -> Callable:
    """minikit's own implementation of an implement-it exercise: the function ``check`` compares the learner's with.

    The student edition's solution cells bind it (``kd_loss_solution = minikit.check.reference(minikit.check.kd_loss)``),
    so the cells after an exercise run before the learner's function passes; :func:`minikit.practice.use` then
    says that minikit's implementation, not a solution, is running.
    """
    function = _REFERENCES.get(check)
    if function is None:
        known = ", ".join(f"minikit.check.{c.__name__}" for c in _REFERENCES)
        raise UnknownNameError(f"{getattr(check, '__name__', check)!r} is not an implement-it check, so it has no "
                               f"reference implementation. Pass one of: {known}.")

    @functools.wraps(function)
    def minikits(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    minikits.minikit_reference = True  # type: ignore[attr-defined]
    return minikits
