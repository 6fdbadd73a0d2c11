"""Chapter 4 — how sure a measured accuracy is: intervals, paired comparisons, verdicts that can say "cannot tell".

An accuracy measured on n test examples is a proportion, and it moves with the examples drawn:
on 311 BBC test articles one article is 0.32 points, and two models that differ by one point may
not differ at all. So every accuracy the course prints comes with

- its number of examples and a 95 % **Wilson score interval** (``wilson_interval``), which stays
  inside [0, 1] and behaves at 0/n and n/n, where the textbook p ± 1.96·√(p(1−p)/n) does not;
- against the baseline, a **paired comparison** on the same examples (``paired_comparison``): only
  the examples the two models disagree on carry information, so the p-value is McNemar's exact
  test on them, and the interval for the difference in points is Newcombe's (1998, method 10),
  which accounts for the pairing;
- a **verdict** that is *holds*, *fails* or *cannot tell (n = …)* (``loss_verdict``): a claim such as
  "< 2 points lost" holds only if the whole interval says so.

Nothing here knows about models: these functions take counts or arrays of right/wrong answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
HOLDS, FAILS, CANNOT_TELL = "holds", "fails", "cannot tell"


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / n``, as (low, high) in [0, 1].

    low, high = (p + z²/2n ∓ z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n), z the normal quantile.
    """
    if n < 1:
        raise ValueError(f"n={n}: an interval needs at least one example.")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} with n={n}: expected 0 ≤ successes ≤ n.")
    z = _z(confidence)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def scored(correct_lists) -> dict[str, list]:
    """For runs given as lists of 1 (right) and 0 (wrong) per example: their n, accuracy and 95 % Wilson bounds.

    Columns for a table of runs: ``table.assign(**scored(table["correct"]))``.
    """
    lists = [list(c) for c in correct_lists]
    bounds = [wilson_interval(int(sum(c)), len(c)) for c in lists]
    return {"accuracy": [sum(c) / len(c) for c in lists], "n": [len(c) for c in lists],
            "low": [b[0] for b in bounds], "high": [b[1] for b in bounds]}


def _z(confidence: float) -> float:
    from scipy import stats as _scipy
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: expected a share in (0, 1), e.g. 0.95.")
    return float(_scipy.norm.ppf(0.5 + confidence / 2))


def mcnemar_p(only_first: int, only_second: int) -> float:
    """McNemar's exact two-sided p-value: of the examples where exactly one model is right, is the split 50/50?

    ``only_first``: examples only the first model gets right; ``only_second``: only the second.
    With no disagreement at all there is no evidence of a difference: 1.0.
    """
    from scipy import stats as _scipy
    disagree = only_first + only_second
    if disagree == 0:
        return 1.0
    return float(_scipy.binomtest(only_first, disagree, 0.5).pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """A variant against a reference on the same n examples; differences in percentage points."""

    n: int
    points: float  # variant accuracy − reference accuracy, in points
    low: float  # its 95 % interval (Newcombe), in points
    high: float
    p_value: float  # McNemar's exact test
    only_variant: int  # examples only the variant gets right
    only_reference: int  # examples only the reference gets right

    @property
    def change(self) -> str:
        """"better" or "worse" when the interval excludes 0 *and* McNemar's p < 0.05, else "cannot tell (n = …)".

        Both, because at the edge they can disagree (an interval just clear of 0 beside p = 0.06): a
        verdict printed beside its own evidence must not contradict it.
        """
        if self.low > 0 and self.p_value < 1 - CONFIDENCE:
            return "better"
        if self.high < 0 and self.p_value < 1 - CONFIDENCE:
            return "worse"
        return f"{CANNOT_TELL} (n = {self.n})"

    def __str__(self) -> str:
        return (f"{self.points:+.2f} points [{self.low:+.2f}, {self.high:+.2f}], n = {self.n}, "
                f"McNemar p = {self.p_value:.3g}: {self.change}")


def _as_correct(correct, name: str) -> np.ndarray:
    array = np.asarray(correct)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array of right/wrong answers, got shape {array.shape}.")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name}: expected only True/False (or 1/0) per example.")
    return array.astype(bool)


def paired_comparison(variant_correct, reference_correct, confidence: float = CONFIDENCE) -> PairedComparison:
    """How ``variant`` differs from ``reference`` on the same examples (arrays of right/wrong, same order)."""
    a = _as_correct(variant_correct, "variant_correct")
    b = _as_correct(reference_correct, "reference_correct")
    if a.shape != b.shape:
        raise ValueError(f"variant_correct has {a.size} examples and reference_correct {b.size}: a paired "
                         "comparison needs the same examples, in the same order.")
    n = int(a.size)
    both, only_a, only_b = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    neither = n - both - only_a - only_b
    low, high = _newcombe(both, only_a, only_b, neither, confidence)
    return PairedComparison(n=n, points=100 * (only_a - only_b) / n, low=100 * low, high=100 * high,
                            p_value=mcnemar_p(only_a, only_b), only_variant=only_a, only_reference=only_b)


def _newcombe(both: int, only_a: int, only_b: int, neither: int, confidence: float) -> tuple[float, float]:
    """Newcombe's (1998) method 10 interval for p_a − p_b from paired counts, as shares."""
    n = both + only_a + only_b + neither
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    l_a, u_a = wilson_interval(both + only_a, n, confidence)
    l_b, u_b = wilson_interval(both + only_b, n, confidence)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    d = p_a - p_b
    low = d - math.sqrt(max(0.0, (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2))
    high = d + math.sqrt(max(0.0, (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2))
    return max(-1.0, low), min(1.0, high)


def loss_verdict(comparison: PairedComparison, bound_points: float, strict: bool = True) -> str:
    """Whether "at most ``bound_points`` points lost" (``strict``: fewer than) is shown by the interval.

    holds: the whole interval loses less than the bound; fails: the whole interval loses more;
    otherwise "cannot tell (n = …)" — more test examples would decide it.
    """
    worst_loss, best_loss = -comparison.low, -comparison.high
    if worst_loss < bound_points or (not strict and worst_loss == bound_points):
        return HOLDS
    if best_loss > bound_points or (strict and best_loss == bound_points):
        return FAILS
    return f"{CANNOT_TELL} (n = {comparison.n})"


def majority_correct(train_labels, test_labels) -> tuple[int, np.ndarray]:
    """The majority class of the training labels, and which test examples always answering it gets right."""
    train = np.asarray(train_labels)
    if train.size == 0:
        raise ValueError("train_labels is empty: the majority class needs training labels.")
    values, counts = np.unique(train, return_counts=True)
    majority = int(values[np.argmax(counts)])  # the smallest label among ties: deterministic
    return majority, np.asarray(test_labels) == majority


def format_accuracy(correct: int, n: int, confidence: float = CONFIDENCE) -> str:
    """'93.20% [90.0, 95.5], n = 311': an accuracy as the course prints it, with its 95 % interval in percent."""
    low, high = wilson_interval(correct, n, confidence)
    return f"{correct / n:.2%} [{100 * low:.1f}, {100 * high:.1f}], n = {n}"


__all__ = ["CANNOT_TELL", "CONFIDENCE", "FAILS", "HOLDS", "PairedComparison", "format_accuracy", "loss_verdict",
           "majority_correct", "mcnemar_p", "paired_comparison", "wilson_interval"]
