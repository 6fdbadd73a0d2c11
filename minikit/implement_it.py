"""The implement-it exercises' checks, one section per chapter: the learner writes the core of a technique.

Each check takes the learner's function, builds a few hidden cases from a fixed seed (so a rerun fails
on the same case), and runs them with :func:`minikit.practice.implemented` against minikit's own
implementation: the code the course runs is the reference. ``minikit.check.<name>(your_function)``
calls them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from transformers.pytorch_utils import prune_linear_layer

from minikit.metrics import per_class_scores
from minikit.practice import Case, CheckResult, close, describe, exercise, implemented
from minikit.pruning import magnitude_threshold
from minikit.quantization import quantization_params

# --- 03 fine-tuning ------------------------------------------------------------------------------


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


# --- 07 distillation -----------------------------------------------------------------------------


# --- 08 deployment -------------------------------------------------------------------------------


# --- 10 adaptive inference -----------------------------------------------------------------------

__all__ = [name for name, value in list(globals().items()) if getattr(value, "implement_it", False)]
