"""minikit.multitask on tiny random encoders and hand-made tasks (seconds, not minutes)."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import replace

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

import minikit
from minikit import multitask
from minikit.multitask import (
    MultiTaskModel,
    Task,
    TaskSampler,
    check_tasks,
    evaluate_multitask,
    file_task,
    get_multitask,
    headline_pairs,
    load_multitask,
    predict_task,
    save_multitask,
    train_multitask,
    weighted_loss,
)
from minikit.training import TrainConfig

from helpers import TOPICS, make_splits  # noqa: E402  (shared test data)
FAST = dict(epochs=2, batch_size=4, eval_every=3, learning_rate=3e-3, activation_checkpointing=False)


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "minikit-cache"))
    return tmp_path / "minikit-cache"


def topic_splits(n_train: int = 24, n_eval: int = 9) -> datasets.DatasetDict:
    return make_splits(n_train, n_eval)


def articles(per_topic: int = 10) -> tuple[list[str], list[str], list[str]]:
    """Raw articles, first line the headline: (texts, topics, ids), every headline and body distinct."""
    texts, topics, ids = [], [], []
    for topic, sentences in TOPICS.items():
        for i in range(per_topic):
            texts.append(f"{topic.title()} headline number {i}\n\n{sentences[i % 3]}, said report {topic} {i}.\n"
                         f"More on {sentences[(i + 1) % 3]}.")
            topics.append(topic)
            ids.append(f"{topic}/{i:03d}.txt")
    return texts, topics, ids


@pytest.fixture(scope="module")
def pair_splits() -> datasets.DatasetDict:
    texts, topics, ids = articles()
    return headline_pairs(texts, topics, ids, seed=0, validation_size=0.2, test_size=0.2)


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


def test_text_pairs_are_encoded_as_sentence_pairs(tiny_encoder, tokenizer, pair_splits):
    task = Task("match", pair_splits, text_column=("headline", "body"))
    encoded = multitask._encode(task, "train", tokenizer, max_length=24)
    row = pair_splits["train"][0]
    expected = tokenizer(row["headline"], row["body"], truncation="longest_first", max_length=24)
    assert encoded[0]["input_ids"] == expected["input_ids"]
    assert encoded[0]["input_ids"].count(tokenizer.sep_token_id) == 2  # [CLS] headline [SEP] body [SEP]
    assert set(encoded[0]["token_type_ids"]) == {0, 1} and encoded[0]["labels"] == row["label"]
    topic = Task("topic", topic_splits())
    head_tail = multitask._encode(topic, "train", tokenizer, max_length=8, truncation="head+tail")
    assert max(len(ids) for ids in head_tail["input_ids"]) == 8  # one text: cut as minikit.tokenize cuts it
    assert list(head_tail["labels"]) == list(topic.splits["train"]["label"])


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


# --- the sampler --------------------------------------------------------------------------------


SIZES = {"big": 800, "mid": 150, "small": 50}


@pytest.mark.parametrize("strategy, temperature, expected", [
    ("proportional", 2.0, {"big": 0.80, "mid": 0.15, "small": 0.05}),
    ("temperature", 2.0, {t: math.sqrt(n) / sum(math.sqrt(m) for m in SIZES.values()) for t, n in SIZES.items()}),
    ("temperature", 1.0, {"big": 0.80, "mid": 0.15, "small": 0.05}),
    ("round-robin", 2.0, {"big": 1 / 3, "mid": 1 / 3, "small": 1 / 3}),
])
def test_sampler_proportions(strategy, temperature, expected):
    sampler = TaskSampler(SIZES, strategy, temperature, seed=3)
    assert sampler.probabilities == pytest.approx(expected)
    counts = Counter(sampler.sample(20_000))
    for task, p in expected.items():  # 4 standard deviations of a share of 20,000 draws: at most 0.0142
        assert counts[task] / 20_000 == pytest.approx(p, abs=0.015)


def test_round_robin_takes_turns_and_a_high_temperature_is_nearly_uniform():
    assert TaskSampler(SIZES, "round-robin").sample(7) == ["big", "mid", "small", "big", "mid", "small", "big"]
    assert max(TaskSampler(SIZES, "temperature", 1000.0).probabilities.values()) < 0.34


def test_sampler_is_seeded():
    a, b = TaskSampler(SIZES, seed=1), TaskSampler(SIZES, seed=1)
    assert a.sample(500) == b.sample(500) == a.sample(500)  # the same seed, the same sequence, every time
    assert TaskSampler(SIZES, seed=2).sample(500) != a.sample(500)


# --- the headline–body pairs --------------------------------------------------------------------


def _check_pairs(splits: datasets.DatasetDict, hard_fraction: float = 0.5) -> None:
    seen: dict[str, str] = {}
    for split, ds in splits.items():
        frame = ds.to_pandas()
        assert (frame["label"] == 1).sum() == (frame["label"] == 0).sum()  # balanced, in every split
        for article in set(frame["headline_id"]) | set(frame["body_id"]):
            assert seen.setdefault(article, split) == split, f"{article} is in {seen[article]} and {split}"
        positive, negative = frame[frame["label"] == 1], frame[frame["label"] == 0]
        assert (positive["headline_id"] == positive["body_id"]).all() and (positive["kind"] == "positive").all()
        assert (negative["headline_id"] != negative["body_id"]).all()
        hard = negative[negative["kind"] == "hard negative"]
        easy = negative[negative["kind"] == "easy negative"]
        assert (hard["topic"] == hard["body_topic"]).all() and (easy["topic"] != easy["body_topic"]).all()
        assert len(hard) == round(hard_fraction * len(negative))


def test_headline_pairs_are_balanced_hard_and_split_by_article(pair_splits):
    _check_pairs(pair_splits)
    assert {s: len(ds) for s, ds in pair_splits.items()} == {"train": 36, "validation": 12, "test": 12}
    row = pair_splits["train"].filter(lambda r: r["label"] == 1)[0]
    topic, number = row["headline_id"].split("/")
    assert row["headline"] == f"{topic.title()} headline number {int(number[:3])}"  # the first line
    assert row["body"].startswith(TOPICS[topic][int(number[:3]) % 3]) and "\n" not in row["body"]
    again = headline_pairs(*articles(), seed=0, validation_size=0.2, test_size=0.2)
    assert list(again["test"]["id"]) == list(pair_splits["test"]["id"])  # seeded


def test_headline_pairs_follow_a_given_split_and_drop_repeated_stories():
    texts, topics, ids = articles(6)
    assignment = ["train", "test"] * 9
    texts[7] = texts[1].split("\n")[0] + "\n\nThe same story, updated with new numbers."  # repeats a headline
    with pytest.warns(minikit.DataWarning, match=r"dropped 1 article.*'business/001.txt'"):
        splits = headline_pairs(texts, topics, ids, seed=1, assignment=assignment, hard_fraction=1.0)
    _check_pairs(splits, hard_fraction=1.0)
    where = {i: s for i, s in zip(ids, assignment)}
    assert all(where[h] == split for split, ds in splits.items() for h in ds["headline_id"])
    assert "business/001.txt" not in list(splits["test"]["headline_id"]) + list(splits["train"]["body_id"])
    assert "sport/001.txt" in list(splits["test"]["headline_id"])  # the first of the two is kept
    with pytest.raises(ValueError, match=r"no headline line.*'bad'"):
        headline_pairs(["a headline\nand its body", "only one line"], ["x", "x"], ["good", "bad"])


def test_headline_pairs_on_bbc_news(bbc):
    first = bbc.select(range(0, len(bbc), 10))  # every 10th article: all five topics, a fraction of the time
    names = bbc.features["label"].names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minikit.DataWarning)
        splits = headline_pairs(first["text"], [names[i] for i in first["label"]], first["id"], seed=42)
    _check_pairs(splits)
    by_id = {r["headline_id"]: r["headline"] for ds in splits.values() for r in ds if r["label"] == 1}
    assert by_id["business/001.txt"] == "Ad sales boost Time Warner profit"  # the file's first line
    assert np.median([len(h.split()) for h in by_id.values()]) < 10  # headlines, not paragraphs


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


# --- tasks from files and datasets --------------------------------------------------------------


def test_file_task_reads_configured_columns(tmp_path):
    rows = [{"review": f"{'great' if i % 2 else 'awful'} film number {i} with words {i * 7}",
             "sentiment": "pos" if i % 2 else "neg"} for i in range(24)]
    pd.DataFrame(rows).to_csv(tmp_path / "reviews.csv", index=False)
    task = file_task("reviews", tmp_path / "reviews.csv", text_column="review", label_column="sentiment",
                     near_threshold=None)
    assert set(task.splits) == {"train", "validation", "test"} and task.num_labels == 2
    assert task.label_names == ["neg", "pos"] and sum(len(ds) for ds in task.splits.values()) == 24
    with pytest.raises(ValueError, match=r"\['comment'\]"):
        file_task("reviews", tmp_path / "reviews.csv", text_column="comment", label_column="sentiment")


def test_a_dataset_is_split_for_you():
    ds = datasets.Dataset.from_dict({"sentence": [f"text {i}" for i in range(30)],
                                     "tag": ["a", "b", "c"] * 10})
    task = Task("tags", ds, text_column="sentence", label_column="tag", seed=1)
    assert {s: len(d) for s, d in task.splits.items()} == {"train": 20, "validation": 5, "test": 5}
    assert task.num_labels == 3 and task.label_names == ["a", "b", "c"]
    assert task.with_fraction(0.5).splits["train"].num_rows < task.splits["train"].num_rows


# --- bad input ----------------------------------------------------------------------------------


def test_two_tasks_with_one_name(tasks, tiny_encoder, tokenizer):
    twin = Task("topic", topic_splits(), weight=2.0)
    for call in (lambda: check_tasks([tasks[0], twin]), lambda: MultiTaskModel(tiny_encoder(), [tasks[0], twin]),
                 lambda: train_multitask(tiny_encoder(), tokenizer, [tasks[0], twin], progress=False)):
        with pytest.raises(ValueError, match=r"named 'topic'.*Fix: give each task a different name"):
            call()


@pytest.mark.parametrize("kwargs, says", [
    ({"text_column": "body"}, r"no column\(s\) \['body'\].*Fix: pass text_column"),
    ({"text_column": ("text", "summary")}, r"no column\(s\) \['summary'\]"),
    ({"label_column": "topic"}, r"no column\(s\) \['topic'\].*columns: \['id', 'text', 'label'\]"),
    ({"weight": 0}, r"weight=0: expected a number > 0.*Fix"),
    ({"weight": -1.5}, r"weight=-1.5"),
    ({"weight": float("nan")}, r"weight=nan"),
    ({"name": "a.b"}, r"name='a.b'"),
])
def test_bad_task(kwargs, says):
    with pytest.raises(ValueError, match=says):
        Task(**{"name": "topic", "splits": topic_splits(), **kwargs})


def test_bad_task_dataset_columns():
    ds = datasets.Dataset.from_dict({"sentence": ["x"] * 9, "tag": ["a", "b", "c"] * 3})
    with pytest.raises(ValueError, match=r"the dataset has no column\(s\) \['text'\]"):
        Task("tags", ds, label_column="tag")


@pytest.mark.parametrize("temperature", [0, -1.5, float("inf")])
def test_bad_temperature(temperature, tasks, tiny_dir, monkeypatch):
    with pytest.raises(ValueError, match=rf"temperature={temperature!r}: expected a number > 0.*Fix"):
        TaskSampler(SIZES, "temperature", temperature)
    monkeypatch.setattr(multitask, "train_multitask", lambda *a, **k: pytest.fail("trained with a bad temperature"))
    with pytest.raises(ValueError, match=rf"temperature={temperature!r}"):
        get_multitask(str(tiny_dir), tasks, TrainConfig(**FAST), sampler="temperature", temperature=temperature)


def test_bad_sampler_and_loss_weights():
    with pytest.raises(ValueError, match=r"strategy='uniform'.*'proportional', 'round-robin', 'temperature'"):
        TaskSampler(SIZES, "uniform")
    with pytest.raises(ValueError, match=r"'empty': 0"):
        TaskSampler({"a": 3, "empty": 0})
    with pytest.raises(ValueError, match=r"'b' has weight=0"):
        weighted_loss({"a": torch.tensor(1.0), "b": torch.tensor(1.0)}, {"a": 1.0, "b": 0})
    with pytest.raises(ValueError, match=r"no weight for task\(s\) \['b'\]"):
        weighted_loss({"b": torch.tensor(1.0)}, {"a": 1.0})


# --- a task's own max_length, the comparison table, the explorer, the checks ---------------------


def test_a_task_reads_at_its_own_max_length(pair_splits, tokenizer):
    task = Task("match", pair_splits, text_column=("headline", "body"))
    short = task.with_max_length(12)
    assert "max_length" not in task.key() and short.key()["max_length"] == 12  # old cache keys stay valid
    assert short.tokens(128) == 12 and task.tokens(128) == 128
    long_ids = multitask._encode(task, "train", tokenizer, 128)["input_ids"]
    short_ids = multitask._encode(short, "train", tokenizer, 128)["input_ids"]
    assert max(map(len, short_ids)) == 12 < max(map(len, long_ids))
    assert all(s[:11] == l[:11] for s, l in zip(short_ids, long_ids))  # the same pair, cut shorter
    with pytest.raises(ValueError, match=r"max_length=4: expected a whole number of tokens ≥ 8"):
        task.with_max_length(4)


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


def test_sampling_probabilities_check():
    sizes = {"topic": 145, "headline": 288}
    truth = TaskSampler(sizes, "temperature", 2.0).probabilities
    assert minikit.check.sampling_probabilities({k: round(p, 3) for k, p in truth.items()}, sizes)
    proportional = {k: n / 433 for k, n in sizes.items()}
    result = minikit.check.sampling_probabilities(proportional, sizes)
    assert not result and "n_i^(1/T)" in result.message
    assert not minikit.check.sampling_probabilities([0.5, 0.5], sizes)
    assert minikit.check.sampling_probabilities({"topic": 0.5, "headline": 0.5}, sizes, "round-robin")


def test_a_cached_models_predictions_are_cached_beside_it(tasks, tiny_encoder, tokenizer, tmp_path, monkeypatch):
    run = _single_run(tiny_encoder, tokenizer, tasks[0].splits, steps=12)
    run = minikit.training.FineTuned(run.model, tokenizer, run.splits, run.result, 0.0, tmp_path / "entry-abc", True)
    config = TrainConfig(**FAST)
    first = multitask.single_task_row(run, tasks[0], config=config)
    assert len(minikit.cache.entries("predictions")) == 1

    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted again instead of reading the cache")

    monkeypatch.setattr(minikit.training, "predict_logits", no_prediction)
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
