"""minikit.tasks: tasks, the chapter's headline–body pairs and the task sampler (hand-made data, seconds)."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import datasets
import numpy as np
import pandas as pd
import pytest
from helpers import TOPICS, articles, make_splits, topic_splits  # noqa: E402  (shared test data)

import minikit
from minikit.data import stratified_subset
from minikit.tasks import Task, TaskSampler, file_task, headline_pairs

# --- encoding a task for the model --------------------------------------------------------------


def test_text_pairs_are_encoded_as_sentence_pairs(tokenizer, pair_splits):
    task = Task("match", pair_splits, text_column=("headline", "body"))
    encoded = task.encode("train", tokenizer, max_length=24)
    row = pair_splits["train"][0]
    expected = tokenizer(row["headline"], row["body"], truncation="longest_first", max_length=24)
    assert encoded[0]["input_ids"] == expected["input_ids"]
    assert encoded[0]["input_ids"].count(tokenizer.sep_token_id) == 2  # [CLS] headline [SEP] body [SEP]
    assert set(encoded[0]["token_type_ids"]) == {0, 1} and encoded[0]["labels"] == row["label"]
    topic = Task("topic", topic_splits())
    head_tail = topic.encode("train", tokenizer, max_length=8, truncation="head+tail")
    assert max(len(ids) for ids in head_tail["input_ids"]) == 8  # one text: cut as minikit.tokenize cuts it
    assert list(head_tail["labels"]) == list(topic.splits["train"]["label"])


def test_a_task_reads_at_its_own_max_length(pair_splits, tokenizer):
    task = Task("match", pair_splits, text_column=("headline", "body"))
    short = task.with_max_length(12)
    assert "max_length" not in task.key() and short.key()["max_length"] == 12  # old cache keys stay valid
    assert short.tokens(128) == 12 and task.tokens(128) == 128
    long_ids = task.encode("train", tokenizer, 128)["input_ids"]
    short_ids = short.encode("train", tokenizer, 128)["input_ids"]
    assert max(map(len, short_ids)) == 12 < max(map(len, long_ids))
    assert all(s[:11] == l[:11] for s, l in zip(short_ids, long_ids))  # the same pair, cut shorter
    with pytest.raises(ValueError, match=r"max_length=4: expected a whole number of tokens ≥ 8"):
        task.with_max_length(4)


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


def test_sampling_probabilities_check():
    sizes = {"topic": 145, "headline": 288}
    truth = TaskSampler(sizes, "temperature", 2.0).probabilities
    assert minikit.check.sampling_probabilities({k: round(p, 3) for k, p in truth.items()}, sizes)
    proportional = {k: n / 433 for k, n in sizes.items()}
    result = minikit.check.sampling_probabilities(proportional, sizes)
    assert not result and "n_i^(1/T)" in result.message
    assert not minikit.check.sampling_probabilities([0.5, 0.5], sizes)
    assert minikit.check.sampling_probabilities({"topic": 0.5, "headline": 0.5}, sizes, "round-robin")


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


# --- tasks from files and datasets, fewer labels ------------------------------------------------


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


def test_with_fraction_picks_the_rows_fine_tuning_picks():
    """One stratified_subset for both: a task's label column, renamed, changes no row chosen."""
    splits = make_splits(60, 9)
    task = Task("topic", splits)
    renamed = Task("topic", datasets.DatasetDict({k: v.rename_column("label", "tag") for k, v in splits.items()}),
                   label_column="tag")
    for fraction, seed in [(0.1, 0), (0.25, 42), (0.5, 7), (1.0, 3)]:
        ids = list(stratified_subset(splits["train"], fraction, seed)["id"])
        assert list(task.with_fraction(fraction, seed).splits["train"]["id"]) == ids
        assert list(renamed.with_fraction(fraction, seed).splits["train"]["id"]) == ids
        assert len(ids) == 3 * max(1, round(fraction * 20))  # every class, its share of 20 rows


# --- bad input ----------------------------------------------------------------------------------


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
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match=rf"temperature={temperature!r}: expected a number > 0.*Fix"):
        TaskSampler(SIZES, "temperature", temperature)


def test_bad_sampler():
    with pytest.raises(ValueError, match=r"strategy='uniform'.*'proportional', 'round-robin', 'temperature'"):
        TaskSampler(SIZES, "uniform")
    with pytest.raises(ValueError, match=r"'empty': 0"):
        TaskSampler({"a": 3, "empty": 0})
