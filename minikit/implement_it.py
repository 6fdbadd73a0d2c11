"""The implement-it exercises' checks, one section per chapter: the learner writes the core of a technique.

Each check takes the learner's function, builds a few hidden cases from a fixed seed (so a rerun fails
on the same case), and runs them with :func:`minikit.practice.implemented` against minikit's own
implementation: the code the course runs is the reference. ``minikit.check.<name>(your_function)``
calls them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

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

__all__ = [name for name, value in list(globals().items()) if getattr(value, "implement_it", False)]
