"""The implement-it exercises' checks, one section per chapter: the learner writes the core of a technique.

Each check takes the learner's function, builds a few hidden cases from a fixed seed (so a rerun fails
on the same case), and runs them with :func:`minikit.practice.implemented` against minikit's own
implementation: the code the course runs is the reference. ``minikit.check.<name>(your_function)``
calls them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from minikit.early_exit import ExitRule, exit_layers
from minikit.metrics import per_class_scores
from minikit.practice import Case, CheckResult, close, exercise, implemented

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


# --- 06 quantization -----------------------------------------------------------------------------


# --- 07 distillation -----------------------------------------------------------------------------


# --- 08 deployment -------------------------------------------------------------------------------


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
