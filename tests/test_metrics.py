"""Quality metrics (minikit.metrics), checked against scikit-learn's: scores, thresholds, mistakes, probabilities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from minikit.metrics import (
    accuracy,
    class_probabilities,
    classification_report,
    confusion_matrix,
    macro_f1,
    misclassified,
    precision_recall_at_threshold,
    precision_recall_curve_table,
    soft_probabilities,
    subset_accuracy,
)

LABELS = ["business", "entertainment", "politics", "sport", "tech"]


# --- quality metrics ------------------------------------------------------------------------------


def test_confusion_matrix_and_scores_match_sklearn(labels):
    y_true, y_pred = labels
    cm = confusion_matrix(y_true, y_pred, 5)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(5)))
    assert cm[:, 4].sum() == 0 and cm.sum() == 300
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ours: 0/0 is 0, silently
        ours = macro_f1(y_true, y_pred)
    assert ours == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))


def test_classification_report_matches_sklearn(labels):
    y_true, y_pred = labels
    report = classification_report(y_true, y_pred, LABELS)
    ref = skm.classification_report(y_true, y_pred, labels=range(5), target_names=LABELS, output_dict=True,
                                    zero_division=0)
    assert list(report.index) == LABELS + ["accuracy", "macro avg", "weighted avg"]
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    for row in LABELS + ["macro avg", "weighted avg"]:
        expected = [ref[row]["precision"], ref[row]["recall"], ref[row]["f1-score"]]
        assert report.loc[row, ["precision", "recall", "f1"]].tolist() == pytest.approx(expected), row
        assert report.loc[row, "support"] == ref[row]["support"]
    assert report.loc["accuracy", "f1"] == pytest.approx(ref["accuracy"])
    assert report.loc["tech", ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]  # never predicted


def test_hand_computed_example():
    y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    report = classification_report(y_true, y_pred, ["a", "b", "c"])
    # a: 1 of 2 predicted a is right, 1 of 2 true a found; b: 2 of 3 right, all found; c: never predicted.
    assert report["precision"].iloc[:3].tolist() == pytest.approx([1 / 2, 2 / 3, 0])
    assert report["recall"].iloc[:3].tolist() == pytest.approx([1 / 2, 1, 0])
    assert report["f1"].iloc[:3].tolist() == pytest.approx([1 / 2, 0.8, 0])
    assert report.loc["accuracy", "f1"] == pytest.approx(3 / 5) == accuracy(y_true, y_pred)
    assert macro_f1(y_true, y_pred) == pytest.approx(1.3 / 3)
    assert report.loc["weighted avg", "f1"] == pytest.approx((2 * 0.5 + 2 * 0.8 + 0) / 5)


def test_macro_f1_counts_a_class_absent_from_both_only_when_asked():
    y_true, y_pred = [0, 0, 1, 1], [0, 1, 1, 1]
    assert macro_f1(y_true, y_pred) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert macro_f1(y_true, y_pred, num_labels=3) == pytest.approx(
        skm.f1_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0))


def test_metric_errors_say_what_was_given():
    with pytest.raises(ValueError, match=r"argmax"):
        accuracy([0, 1], np.eye(2))
    with pytest.raises(ValueError, match=r"num_labels=2"):
        confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match=r"3 labels but y_pred has 2"):
        macro_f1([0, 1, 1], [0, 1])


# --- thresholds and mistakes ----------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_threshold_precision_recall_match_sklearn(probs, threshold):
    p, y = probs
    scores = precision_recall_at_threshold(p, y, 2, threshold)
    flagged = p[:, 2] >= threshold
    assert scores.precision == pytest.approx(skm.precision_score(y == 2, flagged, zero_division=0))
    assert scores.recall == pytest.approx(skm.recall_score(y == 2, flagged, zero_division=0))
    assert scores.f1 == pytest.approx(skm.f1_score(y == 2, flagged, zero_division=0))
    assert (scores.predicted, scores.positives) == (flagged.sum(), (y == 2).sum())


def test_precision_recall_table(probs):
    p, y = probs
    table = precision_recall_curve_table(p, y, 1)
    assert len(table) == 101 and {"threshold", "precision", "recall", "f1"} <= set(table.columns)
    assert table["recall"].is_monotonic_decreasing  # a higher bar flags fewer examples
    assert table["recall"].iloc[0] == 1.0 and table["predicted"].iloc[-1] == 0
    with pytest.raises(ValueError, match="softmax"):
        precision_recall_at_threshold(np.log(p), y, 1, 0.5)


def test_misclassified_lists_confident_mistakes_first(probs):
    p, y = probs
    pred = p.argmax(1)
    texts = [f"article number {i} " + "word " * 100 for i in range(len(y))]
    ids = [f"doc/{i}" for i in range(len(y))]
    table = misclassified(texts, ids, y, pred, p, ["a", "b", "c", "d"], k=10, snippet_chars=40)
    assert list(table.columns) == ["id", "true", "predicted", "confidence", "p_true", "text"]
    assert len(table) == 10 and table["confidence"].is_monotonic_decreasing
    assert (table["true"] != table["predicted"]).all()
    assert table["text"].str.len().max() <= 40 and table["text"].iloc[0].endswith("…")
    first = int(table["id"].iloc[0].split("/")[1])
    assert table["confidence"].iloc[0] == pytest.approx(p[first].max())
    assert table["p_true"].iloc[0] == pytest.approx(p[first, y[first]])
    assert len(misclassified(texts, ids, y, pred, p, ["a", "b", "c", "d"], k=None)) == (pred != y).sum()


def test_subset_accuracy_scores_argmax_in_eval_mode_and_restores_the_mode():
    modes = []

    class Echo(torch.nn.Module):  # its logits are the batch's "x"
        def forward(self, x):
            modes.append(self.training)
            return type("Out", (), {"logits": x})()

    model = Echo().train()
    batches = [{"x": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}, {"x": torch.tensor([[0.2, 0.9]])}]
    assert subset_accuracy(model, batches, [0, 0, 1]) == pytest.approx(2 / 3)  # predicted 0, 1, 1
    assert subset_accuracy(model, batches, np.array([0, 1, 1])) == 1.0
    assert modes == [False] * 4 and model.training  # dropout off while scoring, training mode back after


def test_class_probabilities_checks_the_shape_against_the_names():
    p, y = class_probabilities([[0.2, 0.8], [0.6, 0.4]], [1, 0], 2)
    assert isinstance(p, np.ndarray) and p.shape == (2, 2) and y.tolist() == [1, 0]
    for probs, n in (([[0.2, 0.8]], 3), ([0.2, 0.8], 2)):
        with pytest.raises(ValueError, match=f"but there are {n} label names"):
            class_probabilities(probs, [1], n)


@pytest.mark.usefixtures("cache_root")
def test_soft_probabilities_by_hand_and_against_torch():
    logits = np.array([0.0, np.log(3.0)])  # e^0 : e^ln3 = 1 : 3
    np.testing.assert_allclose(soft_probabilities(logits, 1.0), [0.25, 0.75])
    root3 = np.sqrt(3.0)  # at T = 2 the ratio is 1 : 3^(1/2)
    np.testing.assert_allclose(soft_probabilities(logits, 2.0), [1 / (1 + root3), root3 / (1 + root3)])
    many = np.random.default_rng(0).normal(size=(4, 5)) * 10
    for t in (0.5, 1.0, 3.0):
        expected = torch.softmax(torch.from_numpy(many) / t, dim=-1).numpy()
        np.testing.assert_allclose(soft_probabilities(many, t), expected, rtol=1e-12)
    assert soft_probabilities(np.array([1000.0, 0.0]), 1.0).tolist() == [1.0, 0.0]  # no overflow
