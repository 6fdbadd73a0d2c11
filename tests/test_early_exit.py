"""Chapter 10: early exit (rules, real layer skipping, heads, cache) and the budget picker."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

import minikit
from minikit import early_exit as A
from minikit import timing
from minikit.training import FineTuned, TrainResult

TEXTS = ["The bank raised its interest rate again.", "The striker scored twice in the final minutes.",
         "A new phone went on sale with a larger screen.", "Parliament voted on the budget late at night.",
         "The film won three awards at the festival."]


def _model(config, num_labels: int = 3):
    return minikit.build_model(config, num_labels=num_labels, seed=0)


@pytest.fixture
def bert4(tiny_bert_config):
    return _model(tiny_bert_config(vocab_size=30522, num_hidden_layers=4))


@pytest.fixture
def distil3(tiny_distilbert_config):
    return _model(tiny_distilbert_config(vocab_size=30522, n_layers=3))


def _trained_early(model, tokenizer, seed: int = 0) -> A.EarlyExitModel:
    early = A.EarlyExitModel(model, tokenizer)
    features = early.pooled_features(TEXTS * 4)
    early.heads = A.train_heads(model, features, [0, 1, 2, 0, 1] * 4, steps=20, seed=seed)
    return early


class _LayerCounter:
    """Counts calls of each encoder layer with forward hooks."""

    def __init__(self, layers):
        self.calls = [0] * len(layers)
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)]

    def _hook(self, i):
        def hook(*_):
            self.calls[i] += 1
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("which", ["bert4", "distil3"])
def test_unreachable_threshold_gives_exactly_the_full_models_predictions(which, request, tokenizer):
    model = request.getfixturevalue(which)
    early = _trained_early(model, tokenizer)
    full = minikit.training.predict_logits(model, tokenizer, TEXTS).argmax(1)
    for rule in (A.ExitRule("max-prob", 1.0), A.ExitRule("entropy", 0.0), A.ExitRule("patience", patience=99)):
        got = [early.predict(t, rule) for t in TEXTS]
        assert [g[0] for g in got] == full.tolist(), rule
        assert {g[1] for g in got} == {early.num_layers}


@pytest.mark.parametrize("which", ["bert4", "distil3"])
def test_trivial_threshold_exits_after_layer_one_and_runs_no_later_layer(which, request, tokenizer):
    model = request.getfixturevalue(which)
    early = _trained_early(model, tokenizer)
    counter = _LayerCounter(early.layers)
    try:
        results = [early.predict(t, A.ExitRule("max-prob", 0.0)) for t in TEXTS]
    finally:
        counter.close()
    assert {layer for _, layer in results} == {1}
    assert counter.calls == [len(TEXTS)] + [0] * (early.num_layers - 1)
    # the answer is layer 1's head, as the cached logits say
    cached = early.layer_logits(TEXTS)
    assert [c for c, _ in results] == cached[:, 0].argmax(-1).tolist()


def test_live_predictions_match_the_rule_applied_to_cached_logits(bert4, tokenizer):
    early = _trained_early(bert4, tokenizer)
    logits = early.layer_logits(TEXTS)
    for rule in (A.ExitRule("max-prob", 0.34), A.ExitRule("entropy", 1.09), A.ExitRule("patience", patience=2)):
        preds, layers = A.exit_predictions(logits, rule)
        live = [early.predict(t, rule) for t in TEXTS]
        assert [p for p, _ in live] == preds.tolist(), rule
        assert [layer for _, layer in live] == layers.tolist(), rule


def test_patience_rule_on_hand_made_logits():
    # 3 texts × 4 layers × 2 classes: predictions per layer [0,0,1,1], [0,1,0,1], [1,1,1,1]
    preds = np.array([[0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1]])
    logits = np.stack([np.where(preds == 0, 1.0, -1.0), np.where(preds == 1, 1.0, -1.0)], axis=-1)
    assert A.exit_layers(logits, A.ExitRule("patience", patience=2)).tolist() == [2, 4, 2]
    assert A.exit_layers(logits, A.ExitRule("patience", patience=3)).tolist() == [4, 4, 3]
    assert A.exit_layers(logits, A.ExitRule("patience", patience=1)).tolist() == [1, 1, 1]
    p, layers = A.exit_predictions(logits, A.ExitRule("patience", patience=2))
    assert p.tolist() == [0, 1, 1] and layers.tolist() == [2, 4, 2]


def test_max_prob_and_entropy_rules_by_hand():
    # one text, 3 layers, 2 classes: top probabilities sigmoid(0)=0.5, sigmoid(2)=0.88, sigmoid(6)=0.998
    logits = np.array([[[0.0, 0.0], [2.0, 0.0], [6.0, 0.0]]])
    assert A.exit_layers(logits, A.ExitRule("max-prob", 0.5)).tolist() == [2]  # strictly above
    assert A.exit_layers(logits, A.ExitRule("max-prob", 0.9)).tolist() == [3]
    assert A.exit_layers(logits, A.ExitRule("max-prob", 0.49)).tolist() == [1]
    p = 1 / (1 + np.exp(-2.0))
    entropy_2 = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    assert A.exit_layers(logits, A.ExitRule("entropy", entropy_2 + 1e-6)).tolist() == [2]
    assert A.exit_layers(logits, A.ExitRule("entropy", entropy_2 - 1e-6)).tolist() == [3]


def test_choose_threshold_uses_fewest_layers_without_losing_accuracy():
    # 4 texts, 2 layers: layer 1 is confident and right on texts 0-1, unsure and wrong on 2-3
    logits = np.array([[[5, 0], [5, 0]], [[0, 5], [0, 5]], [[0.4, 0], [0, 3]], [[0, 0.4], [3, 0]]], dtype=float)
    y = np.array([0, 1, 1, 0])
    rule = A.choose_threshold(logits, y, thresholds=[0.0, 0.5, 0.9, 1.0])
    assert rule.threshold == 0.9  # 0.0 and 0.5 exit texts 2-3 at layer 1 (wrong); 0.9 keeps them
    table = A.threshold_table(logits, y, thresholds=[0.0, 0.9, 1.0])
    assert table["accuracy"].tolist() == [0.5, 1.0, 1.0]
    assert table["mean_layers"].tolist() == [1.0, 1.5, 2.0]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(kind="max-prob", threshold=1.5), "outside [0, 1]"),
    (dict(kind="max-prob", threshold=-0.1), "outside [0, 1]"),
    (dict(kind="entropy", threshold=-1.0), "nats ≥ 0"),
    (dict(kind="entropy", threshold=float("inf")), "nats ≥ 0"),
    (dict(kind="patience", patience=0), "integer ≥ 1"),
    (dict(kind="patience", patience=1.5), "integer ≥ 1"),
    (dict(kind="confidence"), "Unknown exit rule"),
])
def test_bad_rules_are_refused_with_the_fix(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        A.ExitRule(**kwargs)


def test_a_model_without_encoder_layers_is_refused(tokenizer):
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

    with pytest.raises(ValueError, match="no encoder layers"):
        A.EarlyExitModel(Flat(), tokenizer)


def test_heads_for_another_depth_are_refused(bert4, tokenizer):
    with pytest.raises(ValueError, match="3 heads for 4 layers|2 heads for 4 layers"):
        A.EarlyExitModel(bert4, tokenizer, heads=A.ExitHeads(3, 32, 3))


def test_train_heads_is_deterministic_and_learns(bert4, tokenizer):
    early = A.EarlyExitModel(bert4, tokenizer)
    features = early.pooled_features(TEXTS * 4)
    labels = [0, 1, 2, 0, 1] * 4
    a = A.train_heads(bert4, features, labels, steps=200, seed=0)
    b = A.train_heads(bert4, features, labels, steps=200, seed=0)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    early.heads = a
    logits = early.layer_logits(TEXTS * 4, features=features, final_logits=np.zeros((20, 3), np.float32))
    learned = (logits[:, :-1].argmax(-1) == np.array(labels)[:, None]).mean(0)
    assert learned.max() == 1.0 and learned.min() >= 0.8  # 5 distinct texts (majority class: 40 %)
    with pytest.raises(ValueError, match="must match"):
        A.train_heads(bert4, features, labels[:3])


def test_get_early_exit_is_cached_and_reloads_identically(bert4, tokenizer, tmp_path):
    labels = datasets.ClassLabel(names=["a", "b", "c"])
    split = datasets.Dataset.from_dict({"text": TEXTS * 2, "label": [0, 1, 2, 0, 1] * 2},
                                       features=datasets.Features({"text": datasets.Value("string"), "label": labels}))
    splits = datasets.DatasetDict(train=split, validation=split, test=split)
    entry = tmp_path / "finetuned-entry-for-test"
    entry.mkdir()
    result = TrainResult(history=pd.DataFrame(), best_val_accuracy=0.0, best_step=0, seconds=0.0,
                         stopped_early=False, steps=0)
    finetuned = FineTuned(bert4, tokenizer, splits, result, 0.0, entry, True)
    first = A.get_early_exit(finetuned, steps=10, progress=False)
    second = A.get_early_exit(finetuned, steps=10, progress=False)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.val_logits, second.val_logits)
    rule = A.ExitRule("max-prob", 0.4)
    assert [first.model.predict(t, rule) for t in TEXTS] == [second.model.predict(t, rule) for t in TEXTS]
    assert first.layer_accuracy()["layer"].tolist() == [1, 2, 3, 4]


def test_measure_exit_latency_reports_layers_really_used(bert4, tokenizer):
    early = _trained_early(bert4, tokenizer)
    table = A.measure_exit_latency(early, TEXTS, [A.ExitRule("max-prob", 0.0), A.ExitRule("max-prob", 1.0)],
                                   warmup=1)
    assert table["variant"].tolist() == ["full model", "max-prob > 0", "max-prob > 1"]
    assert table["mean_layers"].tolist() == [4.0, 1.0, 4.0]
    assert (table["mean_ms"] > 0).all() and table["speedup"].iloc[0] == 1.0


def test_choose_threshold_with_a_layer_budget_takes_the_most_cautious_threshold():
    # 2 texts, 4 layers, confident from layer 1 (text 0) and layer 2 (text 1); both right everywhere
    logits = np.array([[[4, 0], [5, 0], [6, 0], [7, 0]], [[0.5, 0], [3, 0], [6, 0], [7, 0]]], dtype=float)
    y = np.array([0, 0])
    grid = [0.0, 0.6, 0.9, 0.99, 0.999, 1.0]  # mean layers: 1, 1, 1.5, 2.5, 4, 4
    assert A.choose_threshold(logits, y, thresholds=grid).threshold == 0.6  # fewest layers; ties: higher
    assert A.choose_threshold(logits, y, thresholds=grid, max_layer_share=0.5).threshold == 0.9
    assert A.choose_threshold(logits, y, thresholds=grid, max_layer_share=0.7).threshold == 0.99
    with pytest.raises(ValueError, match="fewest is 1.00 layers"):
        A.choose_threshold(logits, y, thresholds=grid, max_layer_share=0.2)


# --- the curve and the exercise checks ---------------------------------------------------------------------------


def test_curve_row_finds_a_threshold_up_to_rounding(curve):
    assert A.curve_row(curve, 0.99)["mean_ms"] == 8.0
    assert A.curve_row(curve, 0.99 + 1e-9)["mean_ms"] == 8.0  # np.isclose: float noise is the same threshold
    assert A.curve_row(curve, 0.0)["speedup"] == 5.3
    with pytest.raises(ValueError, match="threshold=0.95 is not in the curve"):
        A.curve_row(curve, 0.95)


def test_exercise_checks_recompute_the_answers(results):
    logits = np.array([[[0.0, 0.0], [2.0, 0.0], [6.0, 0.0]], [[6.0, 0.0], [6.0, 0.0], [6.0, 0.0]]])
    assert minikit.check.mean_exit_layer(2.0, logits, 0.9)  # layers 3 and 1
    wrong = minikit.check.mean_exit_layer(1.0, logits, 0.9)
    assert not wrong and "Count layers from 1" in wrong.message
    assert not minikit.check.mean_exit_layer(None, logits, 0.9)
    assert minikit.check.budget_choice("student int8", results, 3.5, 100)
    assert "3.5 ms" in minikit.check.budget_choice("fp32", results, 3.5, 100).message
    assert "not a variant" in minikit.check.budget_choice("tiny", results, 3.5, 100).message


def test_latency_curve_keeps_only_quiet_timings(bert4, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    labels = datasets.ClassLabel(names=["a", "b", "c"])
    split = datasets.Dataset.from_dict({"text": TEXTS * 2, "label": [0, 1, 2, 0, 1] * 2},
                                       features=datasets.Features({"text": datasets.Value("string"), "label": labels}))
    entry = tmp_path / "finetuned-entry-for-curve"
    entry.mkdir()
    result = TrainResult(history=pd.DataFrame(), best_val_accuracy=0.0, best_step=0, seconds=0.0,
                         stopped_early=False, steps=0)
    early = A.get_early_exit(FineTuned(bert4, tokenizer, datasets.DatasetDict(train=split, validation=split, test=split),
                                       result, 0.0, entry, True), steps=10, progress=False)
    why = "other processes kept 1.9 of 2 cores busy"
    with monkeypatch.context() as loaded:
        loaded.setattr(timing, "judge", lambda *a, **k: timing.LoadCheck((why,), 1.0, 1.0, 1.0, 1.9, 2))
        loaded.setattr(timing, "RETRY_PAUSE_S", 0.0)
        with pytest.warns(timing.SuspectTimingWarning):
            curve = A.latency_curve(early, TEXTS, thresholds=[0.5, 0.9])
    assert curve["load_warning"].tolist() == [why, why] and minikit.cache.entries("latency_curve").empty
    quiet = A.latency_curve(early, TEXTS, thresholds=[0.5, 0.9])
    assert quiet["load_warning"].tolist() == ["", ""] and len(minikit.cache.entries("latency_curve")) == 1
    monkeypatch.setattr(A, "measure_exit_latency", lambda *a, **k: pytest.fail("a cached curve was timed again"))
    pd.testing.assert_frame_equal(A.latency_curve(early, TEXTS, thresholds=[0.5, 0.9]), quiet)
