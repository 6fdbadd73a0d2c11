"""Auto-checks for the notebooks' exercises: ``minikit.check.<name>(answer)`` says pass or gives a hint.

Every check recomputes the right answer from the real model or data; nothing is typed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return ("✅ Correct. " if self.passed else "❌ Not yet. ") + self.message

    _repr_pretty_ = lambda self, p, cycle: p.text(repr(self))  # noqa: E731  (IPython display)


def _missing(answer) -> CheckResult | None:
    if answer is None or answer is ...:
        return CheckResult(False, "Replace the `None` with your answer and run the cell again.")
    return None


# --- 01 model selection -------------------------------------------------------------------------


def encoder_layer_params(answer: int | None) -> CheckResult:
    """Parameters in one MiniLM-L6 encoder layer, from hidden=384 and FFN=1536."""
    if (missing := _missing(answer)) is not None:
        return missing
    from minikit.metrics import count_parameters
    from minikit.models import build_model

    model = build_model("minilm-l6")
    layer = next(m for m in model.modules() if type(m).__name__.endswith("Layer"))
    truth = count_parameters(layer)
    if int(answer) == truth:
        return CheckResult(True, f"One layer holds {truth:,} parameters: 4·H² + 2·H·F weights plus biases and LayerNorms.")
    hint = "Count the four H×H attention projections (Q, K, V, output), the two FFN matrices H×F and F×H, "
    hint += "every bias, and two LayerNorms (a weight and a bias of size H each)."
    off = int(answer) - truth
    return CheckResult(False, f"You are off by {off:+,}. {hint}")


def faster_at_batch_1(answer: str | None, profiles: pd.DataFrame, a: str = "mobilebert", b: str = "minilm-l6") -> CheckResult:
    """Which of two models has the lower measured batch-1 latency (they have similar parameter counts)."""
    if (missing := _missing(answer)) is not None:
        return missing
    rows = profiles.set_index("name")
    if a not in rows.index or b not in rows.index:
        return CheckResult(False, f"Measure both {a!r} and {b!r} first (they must be rows of the table you pass).")
    truth = a if rows.loc[a, "latency_p50_ms"] < rows.loc[b, "latency_p50_ms"] else b
    why = (f"{a}: {rows.loc[a, 'params_m']:.1f} M params, {rows.loc[a, 'latency_p50_ms']:.1f} ms; "
           f"{b}: {rows.loc[b, 'params_m']:.1f} M params, {rows.loc[b, 'latency_p50_ms']:.1f} ms.")
    if str(answer).strip().lower() == truth:
        return CheckResult(True, why + " At batch 1, depth (layers run one after another) costs time that "
                           "the parameter count does not show.")
    return CheckResult(False, why + " Look at the number of layers, not only the parameters.")


# --- 02 preprocessing ---------------------------------------------------------------------------


def share_over(answer: float | None, lengths: np.ndarray, max_length: int = 256) -> CheckResult:
    """Fraction of articles longer than ``max_length`` tokens."""
    if (missing := _missing(answer)) is not None:
        return missing
    truth = float(np.mean(np.asarray(lengths) > max_length))
    if abs(float(answer) - truth) < 1e-3:
        return CheckResult(True, f"{truth:.1%} of articles are longer than {max_length} tokens.")
    if abs(float(answer) - truth * 100) < 0.1:
        return CheckResult(False, "Give a fraction between 0 and 1, not a percentage.")
    return CheckResult(False, f"Compare each length with {max_length} (strictly greater) and take the mean.")


def raw_split_leaks(answer: int | None, seed: int = 42) -> CheckResult:
    """Test articles that also appear in train when the corpus is split *before* removing duplicates."""
    if (missing := _missing(answer)) is not None:
        return missing
    import warnings

    from minikit.data import DataWarning, check_leakage, load_dataset, split_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        splits = split_dataset(load_dataset(), seed=seed)
    leaks = check_leakage(splits).leaks  # pairs are (train id, test id): splits are scanned in order
    truth = len({b for a, b in leaks.get(("train", "test"), [])})
    if int(answer) == truth:
        return CheckResult(True, f"{truth} test articles have a copy in train: the test score would partly "
                           "measure memory, not generalisation. Deduplicate before splitting.")
    return CheckResult(False, "Split the raw corpus with split_dataset(load_dataset(), seed=42), run "
                       "check_leakage, and count the distinct test articles in the ('train', 'test') pairs.")


# --- 03 fine-tuning -----------------------------------------------------------------------------


def probe_parameters(answer: int | None, num_labels: int = 5) -> CheckResult:
    """Trainable parameters of a linear probe on MiniLM-L6 (the classification head only)."""
    if (missing := _missing(answer)) is not None:
        return missing
    from minikit.models import build_model
    from minikit.training import head_parameters

    truth = sum(p.numel() for p in head_parameters(build_model("minilm-l6", num_labels=num_labels)))
    if int(answer) == truth:
        return CheckResult(True, f"{truth:,} parameters: a {num_labels}×384 weight matrix and {num_labels} biases, "
                           "against 22.7 M in the frozen encoder.")
    if int(answer) == truth - num_labels:
        return CheckResult(False, "Close: do not forget the biases, one per label.")
    return CheckResult(False, "The head maps the 384-wide sentence vector to one score per label.")


def schedule_steps(answer: tuple[int, int] | None, n_train: int, config) -> CheckResult:
    """(optimizer steps in the run, warm-up steps) for ``config`` on ``n_train`` examples."""
    if (missing := _missing(answer)) is not None:
        return missing
    import math

    steps = math.ceil(n_train / config.batch_size) * config.epochs
    truth = (steps, int(config.warmup_ratio * steps))
    if tuple(int(a) for a in answer) == truth:
        return CheckResult(True, f"{truth[0]} steps (the last batch is smaller), warm-up ends at step {truth[1]}.")
    if int(answer[0]) != steps:
        return CheckResult(False, "Steps per epoch: divide the examples by the batch size and round *up*.")
    return CheckResult(False, "Warm-up steps: warmup_ratio × total steps, rounded down.")


# --- 04 metrics ---------------------------------------------------------------------------------


def macro_f1_from_confusion(answer: float | None, cm: np.ndarray) -> CheckResult:
    """Macro-F1 computed from a confusion matrix (rows: true class, columns: predicted)."""
    if (missing := _missing(answer)) is not None:
        return missing
    from minikit.metrics import per_class_scores

    truth = float(per_class_scores(np.asarray(cm))["f1"].mean())
    if abs(float(answer) - truth) < 1e-6:
        return CheckResult(True, f"macro-F1 = {truth:.4f}: every class counts the same, whatever its size.")
    accuracy = float(np.trace(cm) / np.sum(cm))
    if abs(float(answer) - accuracy) < 1e-6:
        return CheckResult(False, "That is the accuracy. Compute F1 per class, then average the classes.")
    return CheckResult(False, "Precision: diagonal / column sums; recall: diagonal / row sums; "
                       "F1 = 2PR/(P+R) per class; then the mean.")


def threshold_for_precision(answer: float | None, probs: np.ndarray, y_true: np.ndarray, cls: int,
                            target: float = 0.99) -> CheckResult:
    """The lowest threshold (step 0.01) where one class's precision reaches ``target``."""
    if (missing := _missing(answer)) is not None:
        return missing
    from minikit.metrics import precision_recall_at_threshold

    grid = np.round(np.arange(0, 1.01, 0.01), 2)
    hits = [t for t in grid if precision_recall_at_threshold(probs, y_true, cls, t).precision >= target]
    if not hits:
        return CheckResult(False, f"No threshold reaches precision {target} for this class.")
    truth = float(hits[0])
    scores = precision_recall_at_threshold(probs, y_true, cls, truth)
    if abs(float(answer) - truth) < 1e-9:
        return CheckResult(True, f"t = {truth:.2f}: precision {scores.precision:.3f}, recall {scores.recall:.3f}.")
    if float(answer) > truth:
        return CheckResult(False, "Precision is already high enough at a lower threshold: scan from 0 upwards.")
    return CheckResult(False, "At that threshold precision is still below the target.")
