"""Chapter 3b — the tasks of multi-task learning: what a task is, the chapter's tasks, and the task sampler.

A ``Task`` is one classification dataset with its columns, number of classes and loss weight;
``TaskSampler`` draws the task of each training step (proportional, round-robin or
temperature-scaled). Tasks that work offline: BBC topic classification (``topic_task``),
headline–body match built from the same articles (``headline_task``, see ``headline_pairs``),
and any labelled CSV/JSONL (``file_task``). ``minikit.multitask`` trains a model on them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from minikit.cache import splits_sha256
from minikit.data import (
    normalize,
    normalize_text,
    prepare_dataset,
    remove_duplicates,
    split_dataset,
    stratified_subset,
    tokenize,
)
from minikit.errors import DataWarning, is_finite, is_int
from minikit.loading import BBC_NEWS, load_dataset
from minikit.loop import TrainConfig
from minikit.settings import DEFAULT_SEED

STRATEGIES = ("proportional", "round-robin", "temperature")
DEFAULT_TEMPERATURE = 2.0  # p ∝ n^(1/2): between proportional (T=1) and uniform (T→∞); T5 compares T = 2, 4, 8
MATCH_LABELS = ["mismatch", "match"]  # headline_pairs' label names: 0 = another article's body, 1 = its own


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Task:
    """One classification task: its splits, the columns to read, its number of classes and loss weight.

    ``splits`` may be a ``datasets.Dataset``: it is then split 70/15/15, stratified, with ``seed``.
    Two text columns (a tuple) are encoded as a sentence pair, ``[CLS] a [SEP] b [SEP]``, so the
    encoder reads both together (BERT also marks which is which with token type ids).
    """

    name: str  # the head's name, e.g. "topic"
    splits: datasets.DatasetDict  # needs "train" and "validation"; "test" for evaluate_multitask(split="test")
    text_column: str | tuple[str, str] = "text"
    label_column: str = "label"  # integer class ids; a ClassLabel also gives their names
    num_labels: int | None = None  # None: the ClassLabel's number of names, else the largest id + 1
    weight: float = 1.0  # multiplies this task's loss, and its say in choosing the best checkpoint
    seed: int = DEFAULT_SEED  # only used to split a Dataset
    # Tokens per example for this task; None: the TrainConfig's (or the max_length passed to evaluate).
    # A headline and the body's lede fit in 64 tokens, half the cost of chapter 3's 128 per step.
    max_length: int | None = None

    def __post_init__(self):
        name = self.name
        if not isinstance(name, str) or not name.strip() or "." in name:
            raise ValueError(f"Task(name={name!r}): expected a non-empty name without dots, e.g. 'topic'. "
                             "Fix: pass a short name; it names the task's head and its history columns.")
        if not (is_finite(self.weight) and self.weight > 0):
            raise ValueError(f"Task {name!r} has weight={self.weight!r}: expected a number > 0 (its loss is multiplied "
                             "by it; 1 counts it as much as the others). Fix: pass weight=1.0, or leave the task out "
                             "rather than giving it weight 0.")
        if self.max_length is not None and not (is_int(self.max_length) and self.max_length >= 8):
            raise ValueError(f"Task {name!r} has max_length={self.max_length!r}: expected a whole number of tokens "
                             "≥ 8, or None to use the TrainConfig's max_length.")
        columns = (self.text_column,) if isinstance(self.text_column, str) else tuple(self.text_column)
        if not (1 <= len(columns) <= 2 and all(isinstance(c, str) for c in columns)):
            raise ValueError(f"Task {name!r} has text_column={self.text_column!r}: expected a column name, or two "
                             "for a text pair, e.g. ('headline', 'body').")
        object.__setattr__(self, "text_column", columns[0] if len(columns) == 1 else columns)
        needed = [*columns, self.label_column]
        splits = self.splits
        if isinstance(splits, datasets.Dataset):
            _check_columns(name, "dataset", splits, needed)
            splits = _split(splits, self.label_column, self.seed)
        elif not isinstance(splits, datasets.DatasetDict):
            raise TypeError(f"Task {name!r}: splits is a {type(splits).__name__}; expected a datasets.DatasetDict "
                            "(train, validation, test) or a datasets.Dataset to split.")
        missing = [s for s in ("train", "validation") if s not in splits]
        if missing:
            raise ValueError(f"Task {name!r}: the splits {list(splits)} have no {missing} split. "
                             "Fix: pass a Dataset (it is split for you) or use minikit.split_dataset.")
        for split, ds in splits.items():
            _check_columns(name, f"{split} split", ds, needed)
        object.__setattr__(self, "splits", splits)
        object.__setattr__(self, "num_labels", self._check_labels())

    def _check_labels(self) -> int:
        feature = self.splits["train"].features[self.label_column]
        if not (isinstance(feature, datasets.ClassLabel)
                or (isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")))):
            raise ValueError(f"Task {self.name!r}: label column {self.label_column!r} holds {feature}, not class ids. "
                             f"Fix: encode it, e.g. dataset.class_encode_column({self.label_column!r}), or load the "
                             "file with minikit.load_dataset, which does.")
        ids = np.concatenate([np.asarray(ds[self.label_column], dtype=np.int64) for ds in self.splits.values()])
        names = getattr(feature, "names", None)
        num_labels = self.num_labels if self.num_labels is not None else (
            len(names) if names else int(ids.max(initial=0)) + 1)
        if not (is_int(num_labels) and num_labels >= 2):
            raise ValueError(f"Task {self.name!r} has num_labels={num_labels!r}: a classifier needs 2 or more classes.")
        outside = sorted({int(i) for i in ids if not 0 <= i < num_labels})
        if outside:
            raise ValueError(f"Task {self.name!r} has label id(s) {outside[:5]} outside 0..{num_labels - 1} "
                             f"(num_labels={num_labels}). Fix: re-encode the labels or raise num_labels.")
        return int(num_labels)

    @property
    def text_columns(self) -> tuple[str, ...]:
        return (self.text_column,) if isinstance(self.text_column, str) else tuple(self.text_column)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def label_names(self) -> list[str]:
        names = getattr(self.splits["train"].features[self.label_column], "names", None)
        return list(names) if names and len(names) == self.num_labels else [str(i) for i in range(self.num_labels)]

    @cached_property
    def data_fingerprint(self) -> str:
        """A hash of the texts and labels of every split: what identifies the data in a cache key."""
        return splits_sha256(self.splits, self.text_columns, self.label_column)

    def key(self) -> dict:
        """The task's part of a cache key (its data by fingerprint, not by name)."""
        key = {"name": self.name, "data": self.data_fingerprint, "text_column": list(self.text_columns),
               "label_column": self.label_column, "num_labels": self.num_labels, "weight": float(self.weight)}
        if self.max_length is not None:  # only when set, so keys written before the field existed still match
            key["max_length"] = int(self.max_length)
        return key

    def tokens(self, default: int) -> int:
        """This task's max_length, or ``default`` (the TrainConfig's) when it has none."""
        return default if self.max_length is None else int(self.max_length)

    def encode(self, split: str, tokenizer: PreTrainedTokenizerBase, max_length: int,
               truncation: str = "head") -> datasets.Dataset:
        """input_ids, attention_mask (token_type_ids if the tokenizer makes them) and labels of one split.

        ``self.max_length``, when set, wins over ``max_length``. A pair is truncated "longest_first":
        the body loses its end, never the short headline. One
        text is cut as ``minikit.tokenize`` cuts it; for "head" the tokenizer is called directly,
        because ``Dataset.map`` hashes the tokenizer on every call (~0.1 s, many times per run).
        """
        ds = self.splits[split]
        max_length = self.tokens(max_length)
        texts = [list(ds[c]) for c in self.text_columns]
        if self.is_pair:
            encoded = tokenizer(texts[0], texts[1], truncation="longest_first", max_length=max_length)
        elif truncation == "head":
            encoded = tokenizer(texts[0], truncation=True, max_length=max_length)
        else:
            encoded = tokenize(datasets.Dataset.from_dict({"text": texts[0]}), tokenizer, max_length, truncation)
        columns = {k: list(encoded[k]) for k in ("input_ids", "attention_mask", "token_type_ids")
                   if k in (encoded.column_names if isinstance(encoded, datasets.Dataset) else encoded)}
        columns["labels"] = [int(x) for x in ds[self.label_column]]
        return datasets.Dataset.from_dict(columns)

    def with_fraction(self, fraction: float, seed: int = DEFAULT_SEED) -> Task:
        """The same task with a stratified ``fraction`` of its train rows (≥ 1 per class): the low-data regime."""
        if not (is_finite(fraction) and 0 < fraction <= 1):
            raise ValueError(f"Task {self.name!r}: fraction={fraction!r}: expected a share of the train split "
                             "in (0, 1].")
        splits = datasets.DatasetDict(self.splits)
        splits["train"] = stratified_subset(splits["train"], fraction, seed, self.label_column)
        return replace(self, splits=splits)

    def with_weight(self, weight: float) -> Task:
        """The same task and data with another loss weight."""
        return replace(self, weight=weight)

    def with_max_length(self, max_length: int | None) -> Task:
        """The same task and data, read at ``max_length`` tokens (None: the TrainConfig's)."""
        return replace(self, max_length=max_length)


def _check_columns(task: str, where: str, ds: datasets.Dataset, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise ValueError(f"Task {task!r}: the {where} has no column(s) {missing} (columns: {ds.column_names}). "
                         "Fix: pass text_column=... and label_column=... naming the right ones.")


def _split(ds: datasets.Dataset, label_column: str, seed: int) -> datasets.DatasetDict:
    """split_dataset (stratified 70/15/15) for any label column, string labels encoded first."""
    if not isinstance(ds.features[label_column], datasets.ClassLabel):
        ds = ds.class_encode_column(label_column)
    if label_column == "label":
        return split_dataset(ds, seed=seed)
    if "label" in ds.column_names:
        ds = ds.remove_columns("label")
    splits = split_dataset(ds.rename_column(label_column, "label"), seed=seed)
    return datasets.DatasetDict({k: v.rename_column("label", label_column) for k, v in splits.items()})


def check_tasks(tasks: Sequence[Task]) -> list[Task]:
    """The tasks as a list, or ValueError: none given, something that is not a Task, or two with one name."""
    if isinstance(tasks, Task):
        tasks = [tasks]
    tasks = list(tasks)
    if not tasks:
        raise ValueError("tasks=[]: a multi-task model needs at least one Task. Fix: pass e.g. "
                         "[topic_task(), headline_task()].")
    for task in tasks:
        if not isinstance(task, Task):
            raise TypeError(f"tasks holds a {type(task).__name__} ({task!r:.60}); expected "
                            "minikit.tasks.Task objects.")
    names = [t.name for t in tasks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"Two or more tasks are named {repeated[0]!r} (task names: {names}): each task needs its own "
                         "head, found by name. Fix: give each task a different name, e.g. "
                         f"Task({repeated[0] + '-2'!r}, ...) or task.__class__(name=..., ...).")
    return tasks


# --------------------------------------------------------------------------------------------
# The tasks of the chapter: BBC topic, BBC headline–body match, a learner's own file
# --------------------------------------------------------------------------------------------


def topic_task(seed: int = DEFAULT_SEED, weight: float = 1.0, name: str = "topic") -> Task:
    """BBC News topic classification (5 classes), split exactly as chapter 3's ``prepare_dataset(seed=seed)``."""
    splits, _report = prepare_dataset(BBC_NEWS, seed=seed)
    return Task(name, splits, weight=weight)


def headline_task(seed: int = DEFAULT_SEED, weight: float = 1.0, name: str = "headline",
                  article_splits: datasets.DatasetDict | None = None, max_length: int | None = None) -> Task:
    """BBC headline–body match (``headline_pairs``), each article in the same split as in ``topic_task(seed)``.

    ``article_splits`` is that split if it is at hand (a topic task's ``splits``, with their ``id``
    column), which saves preparing the corpus a second time.

    Sharing the topic task's article split matters: otherwise a topic-test article could sit in the
    headline task's train split, and the multi-task encoder would have trained on a text that the
    single-task model never saw. The texts are read raw (``prepare_dataset`` joins the headline to
    the body when it normalizes whitespace); chapter 2's duplicate removal has already dropped
    repeated articles, and ``headline_pairs`` drops the 13 later articles that repeat a headline.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the corpus' one cp1252 file, and the known repeated headlines
        raw = load_dataset(BBC_NEWS)
        splits = article_splits if article_splits is not None else prepare_dataset(BBC_NEWS, seed=seed)[0]
        split_of = {i: split for split, ds in splits.items() for i in ds["id"]}
        keep = [k for k, i in enumerate(raw["id"]) if i in split_of]
        raw = raw.select(keep)
        names = raw.features["label"].names
        pairs = headline_pairs(raw["text"], [names[i] for i in raw["label"]], raw["id"], seed=seed,
                               assignment=[split_of[i] for i in raw["id"]])
    return Task(name, pairs, text_column=("headline", "body"), weight=weight, max_length=max_length)


def file_task(name: str, path: str | Path, text_column: str = "text", label_column: str = "label",
              weight: float = 1.0, seed: int = DEFAULT_SEED, near_threshold: float | None = 0.9) -> Task:
    """A learner's labelled CSV/TSV/JSONL/parquet file as a task, prepared as chapter 2 prepares BBC News.

    Loaded with ``minikit.load_dataset`` (which reports bad rows and missing columns), duplicates
    removed, whitespace normalized, then split 70/15/15 with stratification.
    """
    ds = load_dataset(str(path), text_column=text_column, label_column=label_column)
    ds, _report = remove_duplicates(ds, near_threshold)
    return Task(name, split_dataset(normalize(ds), seed=seed), weight=weight)


# Chapter 3b's recipe, what fits a notebook of a few minutes on 2 cores (bench/multi_task.py runs chapter 3's
# full recipe: every pair at 128 tokens, ~10 minutes). A headline and the first ~20 tokens of a body are
# enough to tell whether they belong together, and a quarter of the pairs (720) teaches it.
CHAPTER_PAIR_TOKENS = 32
CHAPTER_PAIR_SHARE = 0.25
# One validation pass, after the last step (each pass over both tasks' validation sets costs ~10 s, and the
# model kept is the last one). No activation checkpointing (TrainConfig's default): the notebook peaks at
# ~1.45 GB, within Binder's 1.5 GB budget, with steps ~1.4× faster than with it.
CHAPTER_CONFIG = TrainConfig(eval_every=10_000)


def chapter_tasks(seed: int = DEFAULT_SEED) -> list[Task]:
    """Chapter 3b's two tasks: ``default_tasks``, the headline pairs read at 32 tokens, a quarter of them."""
    topic, headline = default_tasks(seed)
    return [topic, headline.with_max_length(CHAPTER_PAIR_TOKENS).with_fraction(CHAPTER_PAIR_SHARE, seed)]


def default_tasks(seed: int = DEFAULT_SEED) -> list[Task]:
    """The chapter's two tasks: BBC topic and BBC headline–body match, on one article split."""
    topic = topic_task(seed)
    return [topic, headline_task(seed, article_splits=topic.splits)]


# --------------------------------------------------------------------------------------------
# The headline–body match task
# --------------------------------------------------------------------------------------------


def headline_pairs(
    texts: Sequence[str],
    labels: Sequence,
    ids: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
    *,
    assignment: Sequence[str] | None = None,
    hard_fraction: float = 0.5,
    validation_size: float = 0.15,
    test_size: float = 0.15,
) -> datasets.DatasetDict:
    """Headline–body pairs from articles whose first line is the headline: does this body go with it?

    Every article gives one positive (its headline, its own body) and one negative (its headline,
    another article's body), so the labels are exactly balanced. ``hard_fraction`` of the negatives
    take the body from an article of the same topic (``labels``), so topic words alone cannot
    solve the task; the rest from another topic. The split is by article, made first: a body or
    headline is only ever paired within its article's split, so no article appears in two splits.
    ``assignment`` gives each article's split name (to reuse another task's split); otherwise
    the articles are split by topic-stratified shares. Articles repeating an earlier article's
    headline or body are dropped (a DataWarning says how many): pairing one with its twin would be
    a "negative" that is really the same story.

    Columns: id, headline, body, label (0 mismatch, 1 match), kind ("positive", "hard negative",
    "easy negative"), headline_id, body_id, topic, body_topic.
    """
    if isinstance(texts, str):
        raise TypeError("headline_pairs got one string as texts; pass a list of articles.")
    texts, labels = list(texts), [str(x) for x in labels]
    ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(texts))]
    if not (len(texts) == len(labels) == len(ids)):
        raise ValueError(f"headline_pairs got {len(texts)} texts, {len(labels)} labels and {len(ids)} ids; "
                         "expected one of each per article.")
    if len(set(ids)) != len(ids):
        raise ValueError("headline_pairs got repeated ids; expected one id per article (they name the pairs' sources).")
    if not (is_finite(hard_fraction) and 0 <= hard_fraction <= 1):
        raise ValueError(f"hard_fraction={hard_fraction!r}: expected a share of the negatives in [0, 1].")
    heads, bodies, unusable = [], [], []
    for i, text in zip(ids, texts):
        head, _, body = (text or "").strip().partition("\n")
        heads.append(normalize_text(head))
        bodies.append(normalize_text(body))
        if not heads[-1] or not bodies[-1]:
            unusable.append(i)
    if unusable:
        raise ValueError(f"{len(unusable)} text(s) have no headline line followed by a body (ids "
                         f"{unusable[:5]}). Fix: pass raw articles, first line the headline, the body after it "
                         "(minikit.load_dataset('bbc-news'), not prepare_dataset, which joins the lines).")
    keep, seen = [], set()
    for k in range(len(texts)):
        h, b = heads[k].lower(), bodies[k].lower()
        if ("h", h) not in seen and ("b", b) not in seen:
            keep.append(k)
        seen.update({("h", h), ("b", b)})
    if len(keep) < len(texts):
        kept = set(keep)
        dropped = [ids[k] for k in range(len(texts)) if k not in kept]
        warnings.warn(f"headline_pairs dropped {len(dropped)} article(s) repeating an earlier headline or body: "
                      f"{dropped[:5]}", DataWarning, stacklevel=2)
    if assignment is None:
        split_of = _article_split([labels[k] for k in keep], validation_size, test_size, seed)
    else:
        assignment = [str(s) for s in assignment]
        if len(assignment) != len(texts):
            raise ValueError(f"assignment has {len(assignment)} split names for {len(texts)} articles; "
                             "expected one each.")
        split_of = [assignment[k] for k in keep]
    rng = np.random.default_rng(seed)
    order = [s for s in ("train", "validation", "test") if s in split_of] + sorted(set(split_of) - {
        "train", "validation", "test"})
    out = {}
    for split in order:
        members = np.array([k for k, s in zip(keep, split_of) if s == split])
        out[split] = _pairs_in_split(members, heads, bodies, labels, ids, hard_fraction, rng, split)
    return datasets.DatasetDict(out)


def _article_split(topics: list[str], validation_size: float, test_size: float, seed: int) -> list[str]:
    """Each article's split, the same shares within every topic (so every split has every topic)."""
    for name, value in (("validation_size", validation_size), ("test_size", test_size)):
        if not (is_finite(value) and 0 < value < 1):
            raise ValueError(f"{name}={value!r}: expected a fraction in (0, 1).")
    if validation_size + test_size >= 1:
        raise ValueError(f"validation_size + test_size = {validation_size + test_size}: leaves no training data.")
    rng = np.random.default_rng(seed)
    split_of = ["train"] * len(topics)
    for topic in sorted(set(topics)):
        rows = rng.permutation([k for k, t in enumerate(topics) if t == topic])
        n_test, n_val = round(test_size * len(rows)), round(validation_size * len(rows))
        for k in rows[:n_test]:
            split_of[k] = "test"
        for k in rows[n_test:n_test + n_val]:
            split_of[k] = "validation"
    return split_of


def _other(candidates: np.ndarray, position: int | None, rng: np.random.Generator) -> int:
    """A uniform draw from ``candidates`` except the one at ``position`` (None: any)."""
    if position is None:
        return int(candidates[rng.integers(len(candidates))])
    j = int(rng.integers(len(candidates) - 1))
    return int(candidates[j + (j >= position)])


def _pairs_in_split(members: np.ndarray, heads, bodies, topics, ids, hard_fraction: float,
                    rng: np.random.Generator, split: str) -> datasets.Dataset:
    if len(members) < 2:
        raise ValueError(f"The {split!r} split has {len(members)} article(s): a negative pair needs another article's "
                         "body from the same split. Fix: give it at least 2 articles (more data, or larger shares).")
    by_topic = {t: members[[topics[k] == t for k in members]] for t in {topics[k] for k in members}}
    others = {t: members[[topics[k] != t for k in members]] for t in by_topic}
    shuffled = rng.permutation(members)
    n_hard = round(hard_fraction * len(members))
    rows = []
    for rank, a in enumerate(shuffled):
        same = by_topic[topics[a]]
        hard = rank < n_hard and len(same) > 1  # a topic alone in its split falls back to an easy negative
        if hard:
            b = _other(same, int(np.flatnonzero(same == a)[0]), rng)
        elif len(others[topics[a]]):
            b = _other(others[topics[a]], None, rng)
        else:  # a single-topic split: any other article
            b = _other(members, int(np.flatnonzero(members == a)[0]), rng)
        for body, label, kind in ((a, 1, "positive"), (b, 0, "hard negative" if hard else "easy negative")):
            rows.append({"id": f"{ids[a]}|{ids[body]}", "headline": heads[a], "body": bodies[body], "label": label,
                         "kind": kind, "headline_id": ids[a], "body_id": ids[body], "topic": topics[a],
                         "body_topic": topics[body]})
    features = datasets.Features({
        "id": datasets.Value("string"), "headline": datasets.Value("string"), "body": datasets.Value("string"),
        "label": datasets.ClassLabel(names=MATCH_LABELS), "kind": datasets.Value("string"),
        "headline_id": datasets.Value("string"), "body_id": datasets.Value("string"),
        "topic": datasets.Value("string"), "body_topic": datasets.Value("string")})
    return datasets.Dataset.from_list(rows, features=features)


# --------------------------------------------------------------------------------------------
# Which task each step trains on
# --------------------------------------------------------------------------------------------


class TaskSampler:
    """The task of each training step: an endless, seeded sequence of task names.

    ``"proportional"``: p_t ∝ n_t (every example equally likely; a large task dominates).
    ``"round-robin"``: the tasks in turn (a small task is seen as often as a large one, so it is
    repeated more). ``"temperature"``: p_t ∝ n_t^(1/T), between the two (T=1 is proportional,
    large T nearly uniform). Iterating again starts the same sequence again.
    """

    def __init__(self, sizes: Mapping[str, int], strategy: str = "proportional",
                 temperature: float = DEFAULT_TEMPERATURE, seed: int = DEFAULT_SEED):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r}: expected one of {', '.join(map(repr, STRATEGIES))}.")
        if not (is_finite(temperature) and temperature > 0):
            raise ValueError(f"temperature={temperature!r}: expected a number > 0 (p ∝ n^(1/T): 1 = proportional, "
                             f"larger = closer to uniform). Fix: pass temperature={DEFAULT_TEMPERATURE}, or "
                             "strategy='round-robin' for an even share.")
        if not (is_int(seed) and seed >= 0):
            raise ValueError(f"seed={seed!r}: expected a whole number ≥ 0.")
        sizes = dict(sizes)
        bad = {t: n for t, n in sizes.items() if not (is_int(n) and n >= 1)}
        if not sizes or bad:
            raise ValueError(f"sizes={sizes}: expected {{task name: number of training examples ≥ 1}}, at least one "
                             f"task{f'; not {bad}' if bad else ''}.")
        self.sizes, self.strategy, self.temperature, self.seed = sizes, strategy, float(temperature), seed

    @property
    def probabilities(self) -> dict[str, float]:
        """Each task's share of the steps (round-robin: exactly 1/K in the long run)."""
        n = np.array(list(self.sizes.values()), dtype=np.float64)
        if self.strategy == "round-robin":
            p = np.ones_like(n)
        else:
            p = n ** (1.0 / self.temperature) if self.strategy == "temperature" else n
        return dict(zip(self.sizes, (p / p.sum()).tolist()))

    def __iter__(self) -> Iterator[str]:
        names = list(self.sizes)
        if self.strategy == "round-robin":
            while True:
                yield from names
        rng = np.random.default_rng(self.seed)
        p = np.array(list(self.probabilities.values()))
        while True:
            for i in rng.choice(len(names), size=1024, p=p):
                yield names[i]

    def sample(self, n: int) -> list[str]:
        """The first ``n`` task names of the sequence."""
        it = iter(self)
        return [next(it) for _ in range(n)]

    def spec(self) -> dict:
        """What decides the sequence, for a cache key (sizes come from the tasks' data)."""
        return {"strategy": self.strategy, "temperature": self.temperature if self.strategy == "temperature" else None,
                "seed": self.seed}

    def __repr__(self) -> str:
        shares = ", ".join(f"{t}: {p:.0%}" for t, p in self.probabilities.items())
        return f"TaskSampler({self.strategy}, {shares})"
