"""minikit.multitask on tiny random encoders and hand-made tasks (seconds, not minutes)."""

from __future__ import annotations

import math
from dataclasses import replace

import helpers
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TOPICS, topic_splits  # noqa: E402  (shared test data)

import minikit
from minikit import multitask
from minikit.multitask import (
    MultiTaskModel,
    evaluate_multitask,
    get_multitask,
    load_multitask,
    predict_task,
    save_multitask,
    train_multitask,
    weighted_loss,
)
from minikit.tasks import Task, check_tasks
from minikit.training import TrainConfig

# Each test gets a MINIKIT_CACHE of its own (conftest.cache_root).
pytestmark = pytest.mark.usefixtures("cache_root")

FAST = {**helpers.FAST, "epochs": 2}


@pytest.fixture
def tasks(pair_splits) -> list[Task]:
    return [Task("topic", topic_splits()), Task("match", pair_splits, text_column=("headline", "body"))]


@pytest.fixture
def tiny_encoder(tiny_bert_config, tokenizer):
    """A tiny random BERT config with the embedded tokenizer's vocabulary."""
    return lambda **kw: tiny_bert_config(vocab_size=tokenizer.vocab_size, **kw)


def batch(tokenizer, texts, pairs=None) -> dict[str, torch.Tensor]:
    return dict(tokenizer(texts, pairs, return_tensors="pt", padding=True))


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "distilbert", "mobilebert"])
def test_forward_backward_on_each_architecture(family, tiny_bert_config, tiny_distilbert_config,
                                               tiny_mobilebert_config, random_ids):
    config = {"bert": tiny_bert_config, "distilbert": tiny_distilbert_config,
              "mobilebert": tiny_mobilebert_config}[family]()
    torch.manual_seed(0)
    model = MultiTaskModel(config, {"topic": 5, "match": 2}).train()
    ids, mask = random_ids(4, 12), torch.ones(4, 12, dtype=torch.long)
    mask[0, 8:] = 0
    out = model("topic", ids, mask, token_type_ids=torch.zeros_like(ids), labels=torch.tensor([0, 1, 4, 2]))
    assert out.logits.shape == (4, 5) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.encoder.get_input_embeddings().weight.grad.abs().sum() > 0
    assert model.heads["topic"].weight.grad.abs().sum() > 0
    assert model.heads["match"].weight.grad is None  # a step on one task leaves the other head alone
    assert model("match", ids, mask).logits.shape == (4, 2) and model("match", ids, mask).loss is None


def test_mean_pooling_ignores_padding(tiny_encoder, tokenizer):
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_encoder(), {"topic": 3}).eval()
    alone = batch(tokenizer, ["the team won"])
    padded = batch(tokenizer, ["the team won", "a much longer text about the market and the bank"])
    with torch.no_grad():
        torch.testing.assert_close(model("topic", **padded).logits[0], model("topic", **alone).logits[0],
                                   atol=1e-5, rtol=1e-5)


def test_encoder_from_a_classifier_and_its_name_check(tiny_encoder):
    classifier = minikit.build_model(tiny_encoder(), num_labels=3, seed=0)
    model = MultiTaskModel(classifier, {"a": 2})
    assert model.encoder is classifier.base_model
    with pytest.raises(ValueError, match=r"task='b'.*\['a'\]"):
        model("b", torch.zeros(1, 3, dtype=torch.long))


# --- the loss -----------------------------------------------------------------------------------


def test_weighted_loss_matches_a_hand_computation():
    logits = {"topic": torch.tensor([[2.0, 0.0, 0.0]]), "match": torch.tensor([[0.0, 0.0]])}
    labels = {"topic": torch.tensor([0]), "match": torch.tensor([1])}
    losses = {t: torch.nn.functional.cross_entropy(logits[t], labels[t]) for t in logits}
    by_hand_topic = -math.log(math.exp(2) / (math.exp(2) + 2))  # 0.2395
    by_hand_match = math.log(2)  # 0.6931
    total = weighted_loss(losses, {"topic": 2.0, "match": 0.5})
    assert total.item() == pytest.approx(2.0 * by_hand_topic + 0.5 * by_hand_match, abs=1e-6)  # not divided by 2.5
    assert weighted_loss({"topic": losses["topic"]}, {"topic": 3.0, "match": 1.0}).item() == pytest.approx(
        3 * by_hand_topic, abs=1e-6)
    parts = {"a": torch.tensor(1.5, requires_grad=True), "b": torch.tensor(0.2, requires_grad=True)}
    weighted_loss(parts, {"a": 0.25, "b": 4.0}).backward()
    assert parts["a"].grad.item() == 0.25 and parts["b"].grad.item() == 4.0  # ∂/∂L_t = w_t


# --- training, evaluation, saving, the cache ----------------------------------------------------


def test_train_multitask_steps_history_and_callback(tasks, tiny_encoder, tokenizer):
    seen = []
    config = TrainConfig(**FAST)
    model, result = train_multitask(tiny_encoder(), tokenizer, tasks, config, sampler="round-robin",
                                    callback=seen.append, progress=False)
    batches = math.ceil(24 / 4) + math.ceil(36 / 4)  # topic + match train rows, batch 4
    assert result.steps == 2 * batches == result.history["step"].iloc[-1]
    history = result.history
    assert {"train_loss", "val_accuracy", "val_accuracy/topic", "val_accuracy/match", "train_loss/match",
            "steps/topic"} <= set(history.columns)
    assert history["steps/topic"].sum() + history["steps/match"].sum() == result.steps
    assert history["steps/topic"].sum() == result.steps // 2  # round-robin: every other step
    evaluated = history.dropna(subset=["val_accuracy"])
    assert len(seen) == len(history) and seen[-1].equals(history)  # the live chart's callback, per logged row
    assert [len(h) for h in seen] == list(range(1, len(history) + 1))
    mean = (evaluated["val_accuracy/topic"] + evaluated["val_accuracy/match"]) / 2
    np.testing.assert_allclose(evaluated["val_accuracy"], mean)
    assert result.best_val_accuracy == evaluated["val_accuracy"].max()
    assert not model.training


def test_train_multitask_is_seeded_and_the_freezing_methods_work(tasks, tiny_encoder, tokenizer):
    config = TrainConfig(**{**FAST, "epochs": 1})
    _, a = train_multitask(tiny_encoder(), tokenizer, tasks, config, progress=False)
    # the same seed, the same run; activation checkpointing recomputes activations, it changes no number
    _, b = train_multitask(tiny_encoder(), tokenizer, tasks, replace(config, activation_checkpointing=True),
                           progress=False)
    pd.testing.assert_frame_equal(a.history, b.history)
    _, gradual = train_multitask(tiny_encoder(), tokenizer, tasks, replace(config, method="gradual-unfreeze"),
                                 progress=False)
    trainable = gradual.history["trainable"]
    assert trainable.is_monotonic_increasing and trainable.nunique() > 2  # heads, then layers from the top
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_encoder(), tasks)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    train_multitask(model, tokenizer, tasks, TrainConfig(**{**FAST, "epochs": 1, "method": "linear-probe"}),
                    progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())


def test_evaluate_multitask_uses_accuracy_and_macro_f1(tasks, tiny_encoder, tokenizer):
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_encoder(), tasks)
    for task in tasks:
        logits = predict_task(model, tokenizer, task, "test")
        truth = np.asarray(task.splits["test"]["label"])
        scores = evaluate_multitask(model, tokenizer, task, "test")
        assert logits.shape == (len(truth), task.num_labels)
        assert scores == {"accuracy": minikit.metrics.accuracy(truth, logits.argmax(1)),
                          "macro_f1": minikit.metrics.macro_f1(truth, logits.argmax(1), num_labels=task.num_labels)}


def test_save_load_round_trip_gives_identical_outputs(tasks, tiny_encoder, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_encoder(), tasks).eval()
    folder = save_multitask(model, tmp_path / "mt", tokenizer)
    assert sorted(p.name for p in folder.rglob("*.safetensors")) == ["heads.safetensors", "model.safetensors"]
    assert not [p for p in folder.rglob("*") if p.suffix in {".bin", ".pt", ".pkl"}]
    loaded, loaded_tokenizer = load_multitask(folder)
    assert loaded.label_names == {"topic": list(TOPICS), "match": ["mismatch", "match"]}
    inputs = batch(loaded_tokenizer, ["the bank raised its profit", "a late goal"], ["shares fell", "the final"])
    with torch.no_grad():
        for task in ("topic", "match"):
            assert torch.equal(model(task, **inputs).logits, loaded(task, **inputs).logits)


@pytest.fixture
def tiny_dir(tmp_path, tiny_encoder, tokenizer):
    folder = tmp_path / "tiny-bert"
    minikit.cache.save_model_dir(minikit.build_model(tiny_encoder(), num_labels=2, seed=0), tokenizer, folder)
    return folder


def test_get_multitask_trains_once_then_loads(tasks, tiny_dir, monkeypatch, cache_root):
    calls = []
    real = multitask.train_multitask
    monkeypatch.setattr(multitask, "train_multitask", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = TrainConfig(**{**FAST, "epochs": 1})
    first = get_multitask(str(tiny_dir), tasks, config, progress=False)
    assert not first.from_cache and calls == [1] and first.cache_dir.parent == cache_root / "multitask"
    seen = []
    second = get_multitask(str(tiny_dir), tasks, config, callback=seen.append, progress=False)
    assert second.from_cache and calls == [1] and second.cache_dir == first.cache_dir  # loaded, not trained
    pd.testing.assert_frame_equal(second.metrics, first.metrics)
    pd.testing.assert_frame_equal(second.result.history, first.result.history, check_dtype=False)
    assert len(seen) == 1 and second.score("match") == first.score("match")
    inputs = batch(second.tokenizer, ["the party won the election"])
    with torch.no_grad():
        assert torch.equal(second.model("topic", **inputs).logits, first.model.cpu()("topic", **inputs).logits)
    checkpointed = get_multitask(str(tiny_dir), tasks, replace(config, activation_checkpointing=True), progress=False)
    assert checkpointed.from_cache and checkpointed.cache_dir == first.cache_dir  # it changes no number: same entry
    third = get_multitask(str(tiny_dir), tasks, config, sampler="round-robin", progress=False)
    assert not third.from_cache and calls == [1, 1] and third.cache_dir != first.cache_dir
    reweighted = [tasks[0], tasks[1].with_weight(0.5)]
    assert not get_multitask(str(tiny_dir), reweighted, config, progress=False).from_cache and len(calls) == 3


# --- bad input ----------------------------------------------------------------------------------


def test_two_tasks_with_one_name(tasks, tiny_encoder, tokenizer):
    twin = Task("topic", topic_splits(), weight=2.0)
    for call in (lambda: check_tasks([tasks[0], twin]), lambda: MultiTaskModel(tiny_encoder(), [tasks[0], twin]),
                 lambda: train_multitask(tiny_encoder(), tokenizer, [tasks[0], twin], progress=False)):
        with pytest.raises(ValueError, match=r"named 'topic'.*Fix: give each task a different name"):
            call()


@pytest.mark.parametrize("temperature", [0, -1.5, float("inf")])
def test_a_bad_temperature_fails_before_training(temperature, tasks, tiny_dir, monkeypatch):
    monkeypatch.setattr(multitask, "train_multitask", lambda *a, **k: pytest.fail("trained with a bad temperature"))
    with pytest.raises(ValueError, match=rf"temperature={temperature!r}"):
        get_multitask(str(tiny_dir), tasks, TrainConfig(**FAST), sampler="temperature", temperature=temperature)


def test_bad_loss_weights():
    with pytest.raises(ValueError, match=r"'b' has weight=0"):
        weighted_loss({"a": torch.tensor(1.0), "b": torch.tensor(1.0)}, {"a": 1.0, "b": 0})
    with pytest.raises(ValueError, match=r"no weight for task\(s\) \['b'\]"):
        weighted_loss({"b": torch.tensor(1.0)}, {"a": 1.0})


# --- the comparison table, the explorer, the checks ---------------------------------------------


def _single_run(tiny_encoder, tokenizer, splits, steps: int) -> minikit.training.FineTuned:
    model = minikit.build_model(tiny_encoder(), num_labels=len(TOPICS), seed=0)
    result = minikit.training.TrainResult(pd.DataFrame(), 0.5, steps, 1.0, False, steps)
    return minikit.training.FineTuned(model, tokenizer, splits, result, 0.0, None, False)


def test_comparison_table_from_the_cache_explorer_and_checks(tasks, tiny_dir, tiny_encoder, tokenizer):
    config = TrainConfig(**{**FAST, "epochs": 1})
    runs = [get_multitask(str(tiny_dir), tasks, config, sampler=s, progress=False)
            for s in ("proportional", "round-robin")]
    full_rows = len(tasks[0].splits["train"])
    table = multitask.multitask_runs("topic", full_rows=full_rows)
    assert list(table.columns) == multitask.RUN_COLUMNS and len(table) == 2
    for run in runs:
        row = table[table["sampler"] == run.sampler.strategy].iloc[0]
        assert row.to_dict() == multitask.multitask_row(run, "topic", full_rows)  # cache and run agree
        assert row["steps"] == run.result.steps == sum(math.ceil(len(t.splits["train"]) / 4) for t in tasks)
        assert row["main_steps"] == run.result.history["steps/topic"].sum() and 0 < row["main_steps"] < row["steps"]
        assert row["accuracy"] == run.score("topic") and row["aux_accuracy"] == run.score("match")
        assert row["share"] == 1.0 and row["kind"] == "multi-task" and "match 1" in row["weights"]
        assert row["tokens"] == sum(len(t.splits["train"]) for t in tasks) * 128
    steps = table["steps"].iloc[0]
    assert table.loc[table["sampler"] == "round-robin", "main_steps"].item() == math.ceil(steps / 2)  # in turns
    assert multitask.multitask_runs("sentiment").empty  # no run has that task

    single = multitask.single_task_row(_single_run(tiny_encoder, tokenizer, tasks[0].splits, steps=12), tasks[0],
                                       full_rows, config=config)
    logits = minikit.training.predict_logits(_single_run(tiny_encoder, tokenizer, tasks[0].splits, 12).model,
                                             tokenizer, tasks[0].splits["test"])
    assert single["accuracy"] == minikit.metrics.accuracy(tasks[0].splits["test"]["label"], logits.argmax(1))
    assert single["kind"] == "single-task" and single["steps"] == 12 and single["share"] == 1.0
    assert single["tokens"] == 24 * 128  # rows × max_length × epochs
    full = pd.concat([pd.DataFrame([single]), table], ignore_index=True)

    explorer = minikit.widgets.MultiTaskExplorer(full)
    assert list(explorer.dropdown.options) == list(table["run"])
    before = explorer.chart.chart.to_json()
    verdict = explorer.update(table["run"].iloc[1])
    assert explorer.chart.chart.to_json() != before and len(explorer.seconds) == 1
    points = 100 * (table["accuracy"].iloc[1] - single["accuracy"])
    assert f"{points:+.2f} points" in verdict and table["run"].iloc[1] in verdict
    with pytest.raises(ValueError, match="no multi-task run"):
        minikit.widgets.MultiTaskExplorer(pd.DataFrame([single]))
    with pytest.raises(ValueError, match="lacks the columns"):
        minikit.widgets.MultiTaskExplorer(table.drop(columns=["steps"]))

    run = table["run"].iloc[0]
    assert minikit.check.points_at_equal_compute(100 * (table["accuracy"].iloc[0] - single["accuracy"]), full, run)
    assert not minikit.check.points_at_equal_compute(points + 1.0, full, table["run"].iloc[1])
    assert not minikit.check.points_at_equal_compute(None, full, run)


def test_a_cached_models_predictions_are_cached_beside_it(tasks, tiny_encoder, tokenizer, tmp_path, monkeypatch):
    run = _single_run(tiny_encoder, tokenizer, tasks[0].splits, steps=12)
    run = minikit.training.FineTuned(run.model, tokenizer, run.splits, run.result, 0.0, tmp_path / "entry-abc", True)
    config = TrainConfig(**FAST)
    first = multitask.single_task_row(run, tasks[0], config=config)
    assert len(minikit.cache.entries("predictions")) == 1

    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted again instead of reading the cache")

    monkeypatch.setattr(multitask, "predict_logits", no_prediction)
    assert pd.Series(multitask.single_task_row(run, tasks[0], config=config)).equals(pd.Series(first))  # NaN == NaN
    with pytest.raises(AssertionError, match="predicted again"):  # another split is another entry
        multitask.single_task_row(run, tasks[0], split="validation", config=config)


def test_nearest_single_task_compares_at_the_same_share():
    table = pd.DataFrame({"run": ["s1", "s2", "s3", "half", "m"],
                          "kind": ["single-task"] * 4 + ["multi-task"],
                          "share": [1.0, 1.0, 1.0, 0.5, 1.0], "tokens": [100, 200, 400, 260, 250],
                          "main_steps": [10, 20, 40, 26, 12]})
    row = table.iloc[4]
    assert multitask.nearest_single_task(table, row, "tokens")["run"] == "s2"  # 200 is nearest 250; 260 is at 0.5
    assert multitask.nearest_single_task(table, row, "main_steps")["run"] == "s1"  # 10 is nearest 12
    elsewhere = row.copy()
    elsewhere["share"] = 0.25
    assert multitask.nearest_single_task(table, elsewhere, "tokens") is None  # no single-task run at 25 %
