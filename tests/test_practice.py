"""The implement-it harness (minikit.practice): every way a learner's function can go wrong gets its own message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minikit import check
from minikit.practice import NOT_WRITTEN, Case, close, implemented


def _double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


CASES = [Case("a vector of 3", (torch.tensor([1.0, 2.0, 3.0]),)), Case("a 2×2 matrix", (torch.ones(2, 2),))]


def run(function):
    return implemented(function, CASES, _double, close(), call="double(x)", success="Well done.")


def test_the_reference_passes_every_case():
    result = run(_double)
    assert result and "All 2 hidden cases pass" in result.message


def test_the_stub_is_not_answered_yet_rather_than_an_error():
    def double(x):
        # YOUR CODE HERE
        raise NotImplementedError

    result = run(double)
    assert not result and result.message == NOT_WRITTEN
    assert repr(result).startswith("⏳ Not answered yet")
    assert not check.precision_recall_f1(None) and "Not answered yet" in check.precision_recall_f1(None).message


def test_an_error_names_the_case_and_the_learners_line_never_minikits_frames():
    def double(x):
        y = x * 2
        return y[5]

    result = run(double)
    assert not result
    assert result.message.startswith("Case 1 of 2, a vector of 3: your function raised IndexError")
    assert "line 3 of your function: `return y[5]`" in result.message
    assert "minikit" not in result.message and "Traceback" not in result.message


def test_wrong_shape_type_value_and_missing_return():
    assert "expected shape (3,), got shape (1, 3)" in run(lambda x: (x * 2)[None]).message
    assert "expected a torch tensor, got a list of 3 items" in run(lambda x: (x * 2).tolist()).message
    value = run(lambda x: x * 2 + (x > 2.5)).message
    assert "1 of 3 values differ; the first at index (2,): got 7, expected 6" in value

    def no_return(x):
        x * 2

    assert "returned None. Did you forget the `return`?" in run(no_return).message


def test_changing_the_input_in_place_is_caught():
    def double(x):
        x.mul_(2)
        return x

    result = run(double)
    assert not result and "changed its argument number 1 in place" in result.message


def test_not_a_function_and_a_wrong_signature():
    assert "Pass the function itself" in run(torch.tensor([2.0])).message
    assert "takes (x, factor), but the check calls it as `double(x)`" in run(lambda x, factor: x * factor).message


# --- 04: precision, recall and F1 ---------------------------------------------------------------


def test_precision_recall_f1_passes_the_reference_and_fails_swapped_axes_and_no_zero_rule():
    def solution(cm):
        cm = np.asarray(cm, dtype=float)
        tp = np.diag(cm)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.nan_to_num(tp / cm.sum(axis=0))
            recall = np.nan_to_num(tp / cm.sum(axis=1))
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
        return precision, recall, f1

    def swapped_axes(cm):
        p, r, f = solution(cm)
        return r, p, f

    def nan_for_never_predicted(cm):
        cm = np.asarray(cm, dtype=float)
        tp = np.diag(cm)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision, recall = tp / cm.sum(axis=0), tp / cm.sum(axis=1)
            return precision, recall, 2 * precision * recall / (precision + recall)

    assert check.precision_recall_f1(solution)
    swapped = check.precision_recall_f1(swapped_axes)
    assert not swapped and swapped.message.startswith("Case 1 of 3") and "item 0 of the tuple" in swapped.message
    zero = check.precision_recall_f1(nan_for_never_predicted)
    assert not zero and "Case 3 of 3" in zero.message


@pytest.mark.parametrize("name", ["precision_recall_f1"])
def test_every_implement_it_check_is_exported_by_minikit_check(name):
    assert callable(getattr(check, name))


def test_use_runs_the_learners_function_once_it_passes_else_the_solution(capsys):
    def stub(cm):
        raise NotImplementedError

    def solution(cm):
        scores = __import__("minikit.metrics", fromlist=["per_class_scores"]).per_class_scores(cm)
        return tuple(scores[c].to_numpy(dtype=float) for c in ("precision", "recall", "f1"))

    assert check.use(stub, solution, check.precision_recall_f1) is solution
    assert "run the solution" in capsys.readouterr().out
    mine = lambda cm: solution(cm)  # noqa: E731
    assert check.use(mine, solution, check.precision_recall_f1) is mine
    assert "run your function" in capsys.readouterr().out
