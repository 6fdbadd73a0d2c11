"""Chapter 4 — quality: a confusion matrix, and accuracy, precision, recall and F1 read off it.

Efficiency (size, latency, memory, energy) is ``minikit.profiling``; several variants measured side
by side is ``minikit.benchmark``; token attributions are ``minikit.attribution``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

# ================================================================================================
# Quality: a confusion matrix, and precision, recall and F1 read off it
# ================================================================================================


def _as_labels(y, name: str) -> np.ndarray:
    """Class ids as a 1-D int64 array; a 2-D input (probabilities, logits) is a common slip."""
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1:
        raise ValueError(f"{name} has shape {y.shape}; expected one class id per example, shape (N,). "
                         "Fix: for probabilities or logits pass .argmax(-1).")
    if y.size and not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y)):
        raise ValueError(f"{name} holds non-integer values such as {y[y != np.round(y)][0]!r}; "
                         "expected class ids 0, 1, 2, … Fix: pass predicted ids, not scores.")
    return y.astype(np.int64)


def _same_length(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}. "
                         "Fix: pass one prediction per example, in the same order.")
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty: there is nothing to score.")


def confusion_matrix(y_true, y_pred, num_labels: int) -> np.ndarray:
    """Counts of (true class, predicted class): ``cm[i, j]`` = examples of class i predicted as j."""
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= num_labels:
            raise ValueError(f"{name} holds class ids {y.min()}…{y.max()} but num_labels={num_labels}. "
                             f"Fix: ids must be 0…{num_labels - 1}, or pass the right num_labels.")
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)  # one count per (true, predicted) pair
    return cm


def _divide(a, b) -> np.ndarray:
    """a / b, and 0 where b is 0: scikit-learn's default zero_division, without its warning."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def per_class_scores(cm: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class, read off a confusion matrix.

    A class that is never predicted has precision 0 (0/0 is taken as 0, as scikit-learn does by
    default), so it pulls the macro average down instead of vanishing from it.
    """
    import pandas as pd
    cm = np.asarray(cm)
    tp = np.diag(cm)
    precision = _divide(tp, cm.sum(axis=0))  # of all examples predicted as c, the share that are c
    recall = _divide(tp, cm.sum(axis=1))  # of all examples that are c, the share found
    f1 = _divide(2 * precision * recall, precision + recall)  # harmonic mean: low if either is low
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)})


def accuracy(y_true, y_pred) -> float:
    """Share of examples whose predicted class is the true class."""
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def subset_accuracy(model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]], labels) -> float:
    """Accuracy of ``model``'s argmax over ``batches`` (model inputs, e.g. ``data.fixed_subset``'s) against ``labels``.

    The model runs in eval mode (no dropout); its training flag is restored after.
    """
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        predicted = np.concatenate([model(**batch).logits.argmax(-1).numpy() for batch in batches])
    model.train(was_training)
    return float(np.mean(predicted == np.asarray(labels)))


def macro_f1(y_true, y_pred, num_labels: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores: a rare class counts as much as a common one.

    Without ``num_labels`` the classes are those occurring in y_true or y_pred (as scikit-learn
    does); with it, a class occurring in neither counts too, with F1 0.
    """
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    present = np.union1d(y_true, y_pred)
    f1 = per_class_scores(confusion_matrix(y_true, y_pred, num_labels or int(present.max()) + 1))["f1"]
    return float(f1.mean() if num_labels else f1.iloc[present].mean())


def classification_report(y_true, y_pred, label_names: Sequence[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, then accuracy, macro and weighted averages.

    Laid out like scikit-learn's report: the accuracy row holds accuracy in the ``f1`` column
    (precision and recall are NaN there) and the total number of examples as support.
    ``label_names`` may be a list or a ``datasets.ClassLabel``.
    """
    import pandas as pd
    names = list(getattr(label_names, "names", label_names))
    table = per_class_scores(confusion_matrix(y_true, y_pred, len(names)))
    table.index = pd.Index(names, name="class")
    scores, support = table[["precision", "recall", "f1"]], table["support"]
    total = int(support.sum())
    macro = [*scores.mean(), total]
    weighted = [*scores.mul(support, axis=0).sum() / total, total]
    table.loc["accuracy"] = [np.nan, np.nan, accuracy(y_true, y_pred), total]
    table.loc["macro avg"] = macro
    table.loc["weighted avg"] = weighted
    return table.astype({"support": int})


@dataclass(frozen=True)
class ThresholdScores:
    """One-vs-rest scores of one class at one decision threshold."""

    cls: int
    threshold: float
    precision: float  # 0 when nothing passes the threshold (0/0 taken as 0)
    recall: float
    f1: float
    predicted: int  # examples with p(cls) ≥ threshold
    positives: int  # examples whose true class is cls


def _check_probs(probs, y_true, cls: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=float)
    y = _as_labels(y_true, "y_true")
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probs has shape {p.shape} for {len(y)} labels; expected (N, num_labels) = "
                         f"({len(y)}, C). Fix: pass one row of class probabilities per example.")
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6):  # float32 softmax may overshoot by an ulp
        raise ValueError(f"probs range from {p.min():.3g} to {p.max():.3g}; thresholds need probabilities "
                         "in [0, 1]. Fix: these look like logits, pass torch.softmax(logits, -1).")
    if not 0 <= cls < p.shape[1]:
        raise ValueError(f"cls={cls} but probs has {p.shape[1]} classes. Fix: pick a class id 0…{p.shape[1] - 1}.")
    return p, y


def class_probabilities(probs, y_true, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``probs`` and ``y_true`` as arrays, after checking that ``probs`` is (N, num_classes)."""
    p, y = np.asarray(probs), np.asarray(y_true)
    if p.ndim != 2 or p.shape[1] != num_classes:
        raise ValueError(f"probs has shape {p.shape} but there are {num_classes} label names. "
                         "Fix: pass probabilities of shape (N, number of classes) and those classes' names.")
    return p, y


def precision_recall_at_threshold(probs, y_true, cls: int, threshold: float) -> ThresholdScores:
    """Precision and recall of ``cls`` when "p(cls) ≥ threshold" means "predict cls" (one-vs-rest).

    Unlike argmax, one threshold per class can flag an example for several classes or none: a
    high threshold trades recall for precision.
    """
    p, y = _check_probs(probs, y_true, cls)
    predicted, actual = p[:, cls] >= threshold, y == cls
    tp = int(np.sum(predicted & actual))
    precision, recall = float(_divide(tp, predicted.sum())), float(_divide(tp, actual.sum()))
    f1 = float(_divide(2 * precision * recall, precision + recall))
    return ThresholdScores(int(cls), float(threshold), precision, recall, f1, int(predicted.sum()), int(actual.sum()))


def precision_recall_curve_table(probs, y_true, cls: int, thresholds: Sequence[float] | None = None) -> pd.DataFrame:
    """``precision_recall_at_threshold`` over many thresholds (default 0, 0.01, …, 1): one row each."""
    import pandas as pd
    if thresholds is None:
        thresholds = np.round(np.linspace(0.0, 1.0, 101), 2)
    return pd.DataFrame([asdict(precision_recall_at_threshold(probs, y_true, cls, t)) for t in thresholds])


def misclassified(texts: Sequence[str], ids: Sequence[str], y_true, y_pred, probs, label_names: Sequence[str],
                  k: int | None = 20, snippet_chars: int = 160) -> pd.DataFrame:
    """The ``k`` most confident mistakes (all with k=None): id, true, predicted, confidence, p_true, text.

    ``confidence`` is the probability of the predicted class, ``p_true`` that of the true class.
    Confident mistakes come first: they are where label errors and truly ambiguous texts hide.
    """
    import pandas as pd
    names = list(getattr(label_names, "names", label_names))
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _same_length(y_true, y_pred)
    p, _ = _check_probs(probs, y_true, 0)
    if not len(texts) == len(ids) == len(y_true):
        raise ValueError(f"{len(texts)} texts, {len(ids)} ids and {len(y_true)} labels: pass one of each per example.")
    rows = np.flatnonzero(y_true != y_pred)
    table = pd.DataFrame({
        "id": [ids[i] for i in rows],
        "true": [names[y_true[i]] for i in rows],
        "predicted": [names[y_pred[i]] for i in rows],
        "confidence": p[rows, y_pred[rows]],
        "p_true": p[rows, y_true[rows]],
        "text": [_snippet(texts[i], snippet_chars) for i in rows],
    })
    table = table.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)
    return table if k is None else table.head(k)


def _snippet(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def soft_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) over the last axis, in float64: the teacher's soft labels at temperature T."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))  # minus the max: no overflow, same result
    return z / z.sum(axis=-1, keepdims=True)
