"""Chapter 3b — multi-task fine-tuning: one shared encoder, one classification head per task.

Transfer learning (chapter 3) trains one head on one task. Multi-task learning trains one
encoder for several tasks at once: each task has its own small head over the same mean-pooled
encoder output, each step draws one task (``TaskSampler``: proportional, round-robin or
temperature-scaled) and takes a step on ``weight × loss`` of one of its batches. The loop is
``train_classifier``'s (Accelerate, warm-up, clipping, early stop, progress bar, live-chart
callback, the best evaluation's weights kept); ``get_multitask`` caches the trained model as
safetensors, so a fresh kernel reloads it instead of training again.

Tasks that work offline: BBC topic classification (``topic_task``), headline–body match built
from the same articles (``headline_task``, see ``headline_pairs``), and any labelled CSV/JSONL
(``file_task``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import time
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import datasets
import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoTokenizer,
    DataCollatorWithPadding,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from minikit import metrics
from minikit.cache import _pickle_files, load_or_build, save_model_dir
from minikit.data import (
    BBC_NEWS,
    DataWarning,
    load_dataset,
    normalize,
    normalize_text,
    prepare_dataset,
    remove_duplicates,
    split_dataset,
    tokenize,
)
from minikit.models import DEFAULT_MODEL, load_tokenizer, resolve_model_source
from minikit.settings import DEFAULT_SEED, get_settings, quiet_transformers, seed_everything
from minikit.system import release_freed_memory
from minikit.training import (
    _EVAL_BATCH,
    FineTuned,
    TrainConfig,
    TrainResult,
    _apply_stage,
    _BestWeights,
    _is_finite,
    _is_int,
    _model_fingerprint,
    _optimizer,
    _optimizer_step,
    _read_result,
    _stages,
    _write_result,
)

STRATEGIES = ("proportional", "round-robin", "temperature")
DEFAULT_TEMPERATURE = 2.0  # p ∝ n^(1/2): between proportional (T=1) and uniform (T→∞); T5 compares T = 2, 4, 8
MATCH_LABELS = ["mismatch", "match"]  # headline_pairs' label names: 0 = another article's body, 1 = its own
_FORMAT = 1  # multitask.json layout


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
        if not (_is_finite(self.weight) and self.weight > 0):
            raise ValueError(f"Task {name!r} has weight={self.weight!r}: expected a number > 0 (its loss is multiplied "
                             "by it; 1 counts it as much as the others). Fix: pass weight=1.0, or leave the task out "
                             "rather than giving it weight 0.")
        if self.max_length is not None and not (_is_int(self.max_length) and self.max_length >= 8):
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
        if not (_is_int(num_labels) and num_labels >= 2):
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
        digest = hashlib.sha256()
        for split in sorted(self.splits):
            ds = self.splits[split]
            digest.update(json.dumps([split, self.label_names, list(ds[self.label_column]),
                                      *[list(ds[c]) for c in self.text_columns]]).encode())
        return digest.hexdigest()[:16]

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

    def with_fraction(self, fraction: float, seed: int = DEFAULT_SEED) -> Task:
        """The same task with a stratified ``fraction`` of its train rows (≥ 1 per class): the low-data regime."""
        if not (_is_finite(fraction) and 0 < fraction <= 1):
            raise ValueError(f"Task {self.name!r}: fraction={fraction!r}: expected a share of the train split "
                             "in (0, 1].")
        splits = datasets.DatasetDict(self.splits)
        splits["train"] = _stratified(splits["train"], self.label_column, fraction, seed)
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


def _stratified(ds: datasets.Dataset, label_column: str, fraction: float, seed: int) -> datasets.Dataset:
    """A share of each class's rows (at least one per class), drawn with a fixed seed (as training's)."""
    if fraction >= 1:
        return ds
    rng = np.random.default_rng(seed)
    labels = np.asarray(ds[label_column])
    keep = [rng.choice(rows, max(1, round(fraction * len(rows))), replace=False)
            for rows in (np.flatnonzero(labels == c) for c in np.unique(labels))]
    return ds.select(np.sort(np.concatenate(keep)))


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
                            "minikit.multitask.Task objects.")
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
    if not (_is_finite(hard_fraction) and 0 <= hard_fraction <= 1):
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
        if not (_is_finite(value) and 0 < value < 1):
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
# The model: a shared encoder and one head per task
# --------------------------------------------------------------------------------------------


def _load_encoder(name: str | Path) -> PreTrainedModel:
    """The bare encoder (``AutoModel``: no task head) of a catalog name, local folder or hub id."""
    kind, location = resolve_model_source(str(name))
    with quiet_transformers():
        return AutoModel.from_pretrained(location, local_files_only=kind != "hub", trust_remote_code=False)


def _dropout_of(config: PretrainedConfig) -> float:
    for name in ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob", "dropout"):
        value = getattr(config, name, None)
        if value is not None:
            return float(value)
    return 0.1


class MultiTaskModel(nn.Module):
    """A shared encoder (any ``AutoModel``: BERT, DistilBERT, MobileBERT, ...) and one linear head per task.

    ``encoder`` is a model name or folder (loaded with ``AutoModel``), a config (random weights),
    or a model (a ``...ForSequenceClassification`` gives its ``base_model``). ``heads`` is a list
    of Tasks or a ``{name: num_labels}`` mapping. Each head reads the mean of the encoder's last
    hidden states over the real tokens: every architecture has those, while a pooler (BERT's
    [CLS] projection) is missing from DistilBERT and, in sentence-transformers models such as
    all-MiniLM-L6-v2, was never trained.
    """

    def __init__(self, encoder: str | Path | PretrainedConfig | PreTrainedModel,
                 heads: Sequence[Task] | Mapping[str, int], dropout: float | None = None,
                 label_names: Mapping[str, Sequence[str]] | None = None):
        super().__init__()
        if isinstance(encoder, (str, Path)):
            encoder = _load_encoder(encoder)
        elif isinstance(encoder, PretrainedConfig):
            with quiet_transformers():
                encoder = AutoModel.from_config(encoder)
        elif isinstance(encoder, PreTrainedModel):
            encoder = encoder.base_model
        else:
            raise TypeError(f"encoder is a {type(encoder).__name__}; expected a model name or folder, a transformers "
                            "config, or a transformers model.")
        if isinstance(heads, Mapping):
            sizes = {str(k): v for k, v in heads.items()}
            names = {k: list(label_names[k]) if label_names and k in label_names else [str(i) for i in range(v)]
                     for k, v in sizes.items()}
        else:
            tasks = check_tasks(heads)
            sizes = {t.name: t.num_labels for t in tasks}
            names = {t.name: t.label_names for t in tasks}
        if not sizes:
            raise ValueError("heads is empty: a multi-task model needs at least one head. Fix: pass the tasks.")
        for name, n in sizes.items():
            if not name or "." in name or not (_is_int(n) and n >= 2):
                raise ValueError(f"Head {name!r} with {n!r} labels: expected a name without dots and a whole number "
                                 "of labels ≥ 2.")
        self.encoder = encoder
        self.dropout_p = _dropout_of(encoder.config) if dropout is None else float(dropout)
        self.dropout = nn.Dropout(self.dropout_p)
        width = encoder.config.hidden_size  # DistilBERT's dim, MobileBERT's residual stream: what the encoder outputs
        std = getattr(encoder.config, "initializer_range", 0.02)
        self.heads = nn.ModuleDict({name: nn.Linear(width, n) for name, n in sizes.items()})
        for head in self.heads.values():  # as transformers initialises its classification heads
            nn.init.normal_(head.weight, std=std)
            nn.init.zeros_(head.bias)
        self.label_names = names
        self._token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters

    # train_classifier's helpers (_stages, head_parameters, encoder_layers) read these.
    config = property(lambda self: self.encoder.config)
    base_model = property(lambda self: self.encoder)

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def num_labels(self, task: str) -> int:
        return self.heads[task].out_features

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's last hidden states averaged over the real (unmasked) tokens: (B, hidden)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs = {"token_type_ids": token_type_ids} if self._token_types and token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, task: str, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None
                ) -> SequenceClassifierOutput:
        """Logits of ``task``'s head (B, num_labels); with ``labels``, also their mean cross-entropy as ``loss``."""
        if task not in self.heads:
            raise ValueError(f"task={task!r}: this model has heads {self.task_names}. Fix: pass one of those names.")
        logits = self.heads[task](self.dropout(self.pooled(input_ids, attention_mask, token_type_ids)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def weighted_loss(losses: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """Σ_t w_t · L_t over the tasks in ``losses``: not divided by Σ w_t.

    Not normalized on purpose: ``train_multitask`` steps on one task at a time, and dividing
    w_t·L_t by w_t would cancel the weight. A weight is then a per-task learning-rate multiplier;
    with several tasks in one step, scaling all weights by c scales the step by c too.
    """
    if not losses:
        raise ValueError("weighted_loss got no losses; expected {task name: loss tensor}, at least one.")
    missing = [t for t in losses if t not in weights]
    if missing:
        raise ValueError(f"weighted_loss has no weight for task(s) {missing} (weights: {dict(weights)}). "
                         "Fix: give every task in losses a weight.")
    for task in losses:
        if not (_is_finite(weights[task]) and weights[task] > 0):
            raise ValueError(f"Task {task!r} has weight={weights[task]!r}: expected a number > 0. "
                             "Fix: pass weight=1.0, or leave the task out.")
    return torch.stack([weights[t] * torch.as_tensor(loss) for t, loss in losses.items()]).sum()


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
        if not (_is_finite(temperature) and temperature > 0):
            raise ValueError(f"temperature={temperature!r}: expected a number > 0 (p ∝ n^(1/T): 1 = proportional, "
                             f"larger = closer to uniform). Fix: pass temperature={DEFAULT_TEMPERATURE}, or "
                             "strategy='round-robin' for an even share.")
        if not (_is_int(seed) and seed >= 0):
            raise ValueError(f"seed={seed!r}: expected a whole number ≥ 0.")
        sizes = dict(sizes)
        bad = {t: n for t, n in sizes.items() if not (_is_int(n) and n >= 1)}
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


# --------------------------------------------------------------------------------------------
# Data for the model
# --------------------------------------------------------------------------------------------


def _encode(task: Task, split: str, tokenizer: PreTrainedTokenizerBase, max_length: int,
            truncation: str = "head") -> datasets.Dataset:
    """input_ids, attention_mask (token_type_ids if the tokenizer makes them) and labels of one split.

    ``task.max_length``, when set, wins over ``max_length``. A pair is truncated "longest_first":
    the body loses its end, never the short headline. One
    text is cut as ``minikit.tokenize`` cuts it; for "head" the tokenizer is called directly,
    because ``Dataset.map`` hashes the tokenizer on every call (~0.1 s, many times per run).
    """
    ds = task.splits[split]
    max_length = task.tokens(max_length)
    texts = [list(ds[c]) for c in task.text_columns]
    if task.is_pair:
        encoded = tokenizer(texts[0], texts[1], truncation="longest_first", max_length=max_length)
    elif truncation == "head":
        encoded = tokenizer(texts[0], truncation=True, max_length=max_length)
    else:
        encoded = tokenize(datasets.Dataset.from_dict({"text": texts[0]}), tokenizer, max_length, truncation)
    columns = {k: list(encoded[k]) for k in ("input_ids", "attention_mask", "token_type_ids")
               if k in (encoded.column_names if isinstance(encoded, datasets.Dataset) else encoded)}
    columns["labels"] = [int(x) for x in ds[task.label_column]]
    return datasets.Dataset.from_dict(columns)


def _cycle(loader) -> Iterator[dict]:
    """Batches forever; each pass over the loader reshuffles it."""
    while True:
        yield from loader


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _as_sampler(sampler: str | TaskSampler, temperature: float, sizes: dict[str, int], seed: int) -> TaskSampler:
    if isinstance(sampler, TaskSampler):
        if set(sampler.sizes) != set(sizes):
            raise ValueError(f"The sampler draws tasks {list(sampler.sizes)}, the tasks are {list(sizes)}. "
                             "Fix: pass the strategy's name instead (e.g. sampler='temperature').")
        return sampler
    return TaskSampler(sizes, sampler, temperature, seed)


def train_multitask(
    model: MultiTaskModel | str | Path | PretrainedConfig | PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    tasks: Sequence[Task],
    config: TrainConfig = TrainConfig(),
    sampler: str | TaskSampler = "proportional",
    temperature: float = DEFAULT_TEMPERATURE,
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
) -> tuple[MultiTaskModel, TrainResult]:
    """Train a multi-task model on ``tasks``; returns (model, TrainResult). Not cached: ``get_multitask`` is.

    ``model`` is trained in place if it is a MultiTaskModel; anything else is its encoder (a name
    loads with its tokenizer when ``tokenizer`` is None) and gets fresh heads, seeded by
    ``config.seed``. Each step draws a task from the sampler and steps on weight × its loss. An
    epoch is as many steps as all tasks' train batches together; ``config.train_fraction`` thins
    every task (``Task.with_fraction`` thins one). Validation accuracy is each task's, and their
    weight-weighted mean, which picks the checkpoint the model ends with. History columns are
    ``train_classifier``'s (so the same live chart works) plus ``train_loss/<task>``,
    ``val_accuracy/<task>`` and ``steps/<task>`` (steps spent on it since the previous row).
    ``callback`` gets the history after every logged row (every ``config.log_every`` steps), so a
    live chart follows the loss even when validation runs only at the end.
    """
    tasks = check_tasks(tasks)
    if not isinstance(model, MultiTaskModel):
        if tokenizer is None and isinstance(model, (str, Path)):
            tokenizer = load_tokenizer(str(model))
        seed_everything(config.seed)  # the heads' initial weights are part of the run
        model = MultiTaskModel(model, tasks)
    if tokenizer is None:
        raise ValueError("tokenizer=None: pass the encoder's tokenizer (only a model name can load its own).")
    for task in tasks:
        if task.name not in model.heads:
            raise ValueError(f"The model has no head {task.name!r} (heads: {model.task_names}). "
                             "Fix: build it with MultiTaskModel(encoder, tasks) from these tasks.")
        if model.num_labels(task.name) != task.num_labels:
            raise ValueError(f"Head {task.name!r} has {model.num_labels(task.name)} outputs, the task "
                             f"{task.num_labels} classes. Fix: build the model from these tasks.")
    sizes = {t.name: len(_stratified(t.splits["train"], t.label_column, config.train_fraction, config.seed))
             for t in tasks}
    sampler = _as_sampler(sampler, temperature, sizes, config.seed)
    seed_everything(config.seed)
    was_trainable = [p.requires_grad for p in model.parameters()]
    encoder = model.encoder
    checkpointing = (config.activation_checkpointing and config.method != "linear-probe"
                     and getattr(encoder, "supports_gradient_checkpointing", False)
                     and not getattr(encoder, "is_activation_checkpointing", True))
    if checkpointing:  # as in train_classifier: ~300 MB less at ~35 % slower steps
        encoder.activation_checkpointing_enable()
        encoder.disable_input_require_grads()
    try:
        result = _train(model, tokenizer, tasks, config, sampler, callback, progress)
    finally:
        if checkpointing:
            encoder.activation_checkpointing_disable()
        for p, flag in zip(model.parameters(), was_trainable):
            p.requires_grad_(flag)
        model.eval()
    return model, result


def _train(model: MultiTaskModel, tokenizer, tasks: list[Task], config: TrainConfig, sampler: TaskSampler,
           callback, progress: bool) -> TrainResult:
    stages = _stages(model, config.method)
    params = [p for group in stages for p in group]
    model.requires_grad_(False)
    _apply_stage(stages, len(stages) - 1)
    collate = DataCollatorWithPadding(tokenizer)
    names = [t.name for t in tasks]
    weights = {t.name: float(t.weight) for t in tasks}
    train_loaders, val_loaders = [], []
    for i, task in enumerate(tasks):
        train = _stratified(task.splits["train"], task.label_column, config.train_fraction, config.seed)
        train = _encode(replace(task, splits=datasets.DatasetDict(task.splits, train=train)), "train", tokenizer,
                        config.max_length, config.truncation)
        val = _encode(task, "validation", tokenizer, config.max_length, config.truncation)
        val = val.select(np.argsort([len(x) for x in val["input_ids"]], kind="stable"))  # less padding
        generator = torch.Generator().manual_seed(config.seed + i)
        train_loaders.append(DataLoader(train, batch_size=config.batch_size, shuffle=True, collate_fn=collate,
                                        generator=generator))
        val_loaders.append(DataLoader(val, batch_size=_EVAL_BATCH, collate_fn=collate))
    total = config.epochs * sum(len(loader) for loader in train_loaders)
    optimizer = _optimizer(params, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    # Each step uses one head only: DDP must be told that the others' parameters get no gradient.
    accelerator = Accelerator(cpu=get_settings().device == "cpu",
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    model, optimizer, scheduler, *loaders = accelerator.prepare(model, optimizer, scheduler, *train_loaders,
                                                                *val_loaders)
    train_loaders, val_loaders = dict(zip(names, loaders[:len(tasks)])), dict(zip(names, loaders[len(tasks):]))
    steps_per_epoch = sum(len(loader) for loader in train_loaders.values())  # per process
    total = steps_per_epoch * config.epochs
    unfreeze_every = config.unfreeze_every or max(1, math.ceil(total / len(stages)))
    batches = {name: _cycle(loader) for name, loader in train_loaders.items()}
    draws = iter(sampler)

    history, losses, task_losses, best = [], [], {n: [] for n in names}, _BestWeights(config.patience)
    step, stage, trainable, stopped = 0, -1, 0, False
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f"multi-task fine-tuning ({sampler.strategy})",
               disable=not (progress and accelerator.is_local_main_process))
    model.train()
    while step < total and not stopped:
        if min(step // unfreeze_every, len(stages) - 1) != stage:
            stage = min(step // unfreeze_every, len(stages) - 1)
            trainable = _apply_stage(stages, stage)
        task = next(draws)
        out = model(task, **next(batches[task]))
        loss = weighted_loss({task: out.loss}, weights)
        lr = _optimizer_step(accelerator, model, loss, optimizer, scheduler, config.max_grad_norm)
        step += 1
        losses.append(loss.item())
        task_losses[task].append(out.loss.item())
        bar.update()
        evaluate = step % config.eval_every == 0 or step == total
        if not (evaluate or step % config.log_every == 0):
            continue
        row = {"step": step, "epoch": step / steps_per_epoch, "train_loss": float(np.mean(losses)),
               "val_accuracy": float("nan"), "lr": lr, "trainable": trainable}
        for name in names:
            row[f"train_loss/{name}"] = float(np.mean(task_losses[name])) if task_losses[name] else float("nan")
            row[f"steps/{name}"] = len(task_losses[name])
            row[f"val_accuracy/{name}"] = float("nan")
        losses, task_losses = [], {n: [] for n in names}
        if evaluate:
            per_task = {name: _accuracy(model, name, val_loaders[name], accelerator) for name in names}
            for name, accuracy in per_task.items():
                row[f"val_accuracy/{name}"] = accuracy
            row["val_accuracy"] = accuracy = sum(weights[n] * a for n, a in per_task.items()) / sum(weights.values())
            stopped = best.update(accuracy, step, accelerator.unwrap_model(model))
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{accuracy:.3f}")
        history.append(row)
        if callback is not None:  # every logged row, so a live chart follows the loss between evaluations
            callback(pd.DataFrame(history))
    bar.close()
    accelerator.unwrap_model(model).load_state_dict(best.state)
    accelerator.free_memory()
    return TrainResult(pd.DataFrame(history), best.accuracy, best.step, time.perf_counter() - start, stopped, step)


def _accuracy(model, task: str, loader, accelerator: Accelerator) -> float:
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for batch in loader:
            predictions = model(task, **batch).logits.argmax(-1)
            predictions, labels = accelerator.gather_for_metrics((predictions, batch["labels"]))
            correct += int((predictions == labels).sum())
            total += labels.numel()
    model.train()
    return correct / total


# --------------------------------------------------------------------------------------------
# Prediction and evaluation
# --------------------------------------------------------------------------------------------


def predict_task(model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase, task: Task, split: str = "test",
                 max_length: int = 128, truncation: str = "head", batch_size: int = 64) -> np.ndarray:
    """``task``'s head's logits for each row of ``task.splits[split]``, in row order: (N, num_labels).

    Rows are batched shortest first, so batches carry little padding; the order is restored.
    """
    if split not in task.splits:
        raise ValueError(f"Task {task.name!r} has no {split!r} split (splits: {list(task.splits)}).")
    encoded = _encode(task, split, tokenizer, max_length, truncation).remove_columns("labels")
    columns = encoded.column_names
    rows = [dict(zip(columns, values)) for values in zip(*(encoded[c] for c in columns))]
    order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")
    device = next(model.parameters()).device
    out = np.zeros((len(rows), model.num_labels(task.name)), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = tokenizer.pad([rows[i] for i in chunk], return_tensors="pt")
            out[chunk] = model(task.name, **{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
    model.train(was_training)
    return out


def evaluate_multitask(model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase, task: Task, split: str = "test",
                       max_length: int = 128, truncation: str = "head") -> dict[str, float]:
    """{"accuracy", "macro_f1"} of ``task``'s head on ``task.splits[split]`` (``minikit.metrics``' definitions)."""
    predicted = predict_task(model, tokenizer, task, split, max_length, truncation).argmax(axis=1)
    truth = np.asarray(task.splits[split][task.label_column])
    return {"accuracy": metrics.accuracy(truth, predicted),
            "macro_f1": metrics.macro_f1(truth, predicted, num_labels=task.num_labels)}


def evaluate_tasks(model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase, tasks: Sequence[Task],
                   splits: Sequence[str] = ("test",), max_length: int = 128, truncation: str = "head") -> pd.DataFrame:
    """One row per task and split: task, split, n, accuracy, macro_f1."""
    rows = [{"task": t.name, "split": s, "n": len(t.splits[s]), **evaluate_multitask(model, tokenizer, t, s,
                                                                                    max_length, truncation)}
            for t in check_tasks(tasks) for s in splits if s in t.splits]
    return pd.DataFrame(rows, columns=["task", "split", "n", "accuracy", "macro_f1"])


# --------------------------------------------------------------------------------------------
# Saving and loading (safetensors only)
# --------------------------------------------------------------------------------------------


def save_multitask(model: MultiTaskModel, folder: str | Path,
                   tokenizer: PreTrainedTokenizerBase | None = None) -> Path:
    """Write ``encoder/`` (``save_model_dir``: config, model.safetensors, the tokenizer if given),
    ``heads.safetensors`` and ``multitask.json`` (head names, label names, dropout); returns the folder."""
    folder = Path(folder)
    save_model_dir(model.encoder, tokenizer, folder / "encoder")
    state = {k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()}
    save_file(state, str(folder / "heads.safetensors"))
    spec = {"format": _FORMAT, "pooling": "mean", "dropout": model.dropout_p,
            "heads": {name: model.num_labels(name) for name in model.task_names}, "labels": model.label_names}
    (folder / "multitask.json").write_text(json.dumps(spec, indent=1))
    return folder


def load_multitask(folder: str | Path) -> tuple[MultiTaskModel, PreTrainedTokenizerBase | None]:
    """(model in eval mode, tokenizer or None) saved by ``save_multitask``: local safetensors, no remote code."""
    folder = Path(folder)
    encoder_dir = folder / "encoder"
    if not (folder / "multitask.json").is_file() or not (encoder_dir / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no multitask.json or encoder/config.json. "
                                "Fix: pass a folder written by save_multitask.")
    pickles = _pickle_files(encoder_dir)
    if pickles:
        raise ValueError(f"{encoder_dir} holds pickle weights {pickles}; minikit loads safetensors only, because "
                         "unpickling can run arbitrary code. Fix: re-save the model with save_multitask.")
    spec = json.loads((folder / "multitask.json").read_text())
    with quiet_transformers():
        encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True, trust_remote_code=False,
                                            use_safetensors=True)
        has_tokenizer = (encoder_dir / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True,
                                                  trust_remote_code=False) if has_tokenizer else None
    model = MultiTaskModel(encoder, spec["heads"], dropout=spec["dropout"], label_names=spec["labels"])
    model.heads.load_state_dict(load_file(str(folder / "heads.safetensors")))
    return model.eval(), tokenizer


# --------------------------------------------------------------------------------------------
# Cached multi-task training: what the notebook calls
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MultiTaskRun:
    """A trained multi-task model, its tasks, how it trained, its scores, and where it is cached."""

    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    tasks: list[Task]
    result: TrainResult
    metrics: pd.DataFrame  # evaluate_tasks on each task's test split (validation if it has no test split)
    sampler: TaskSampler
    cache_dir: Path | None  # None when cache=False
    from_cache: bool
    config: TrainConfig = TrainConfig()  # what it trained with

    def score(self, task: str, split: str = "test", metric: str = "accuracy") -> float:
        """One number from ``metrics``, e.g. run.score("topic") for the topic test accuracy."""
        rows = self.metrics[(self.metrics["task"] == task) & (self.metrics["split"] == split)]
        if rows.empty:
            raise ValueError(f"No {split!r} score for task {task!r} (tasks: {sorted(set(self.metrics['task']))}).")
        return float(rows[metric].iloc[0])


def get_multitask(
    model: str | Path = DEFAULT_MODEL,
    tasks: Sequence[Task] | None = None,
    config: TrainConfig = TrainConfig(),
    sampler: str = "proportional",
    temperature: float = DEFAULT_TEMPERATURE,
    callback: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
    cache: bool = True,
) -> MultiTaskRun:
    """Train (or reload) a multi-task model of ``model``'s encoder on ``tasks`` (default: ``default_tasks``).

    The cache key is the starting weights (file hash for local folders, hub id otherwise), each
    task's name, data fingerprint, columns and weight, the sampler and the config (its seed
    included): a second call with the same inputs loads the entry in seconds (``from_cache=True``;
    the callback then gets the stored history once). Under ``accelerate launch`` with several
    processes, call ``train_multitask`` instead: this function's lock would make them wait on
    each other.
    """
    tasks = check_tasks(default_tasks(config.seed) if tasks is None else tasks)
    sizes = {t.name: len(_stratified(t.splits["train"], t.label_column, config.train_fraction, config.seed))
             for t in tasks}
    task_sampler = TaskSampler(sizes, sampler, temperature, config.seed)  # bad arguments fail before any work
    # Activation checkpointing changes no number (tested), so it is not part of the key, as for fine_tune:
    # `minikit build` trains with it on (less memory) and the notebook, with it off, loads that entry.
    parts = {"model": _model_fingerprint(model), "tasks": [t.key() for t in tasks], "sampler": task_sampler.spec(),
             "config": replace(config, learning_rate=config.lr, activation_checkpointing=False), "task": "multi-task"}

    def train() -> tuple[MultiTaskModel, PreTrainedTokenizerBase, TrainResult, pd.DataFrame]:
        release_freed_memory()  # start from a trimmed heap: what the notebook freed before is not held twice
        tokenizer = load_tokenizer(str(model))
        net, result = train_multitask(str(model), tokenizer, tasks, config, task_sampler, callback=callback,
                                      progress=progress)
        release_freed_memory()
        # The test split only (validation where a task has none): the loop already scored validation, and
        # each pass over both tasks' splits costs ~10 s of a notebook's cold run.
        scores = pd.concat([evaluate_tasks(net, tokenizer, [t], ("test" if "test" in t.splits else "validation",),
                                           config.max_length, config.truncation) for t in tasks], ignore_index=True)
        return net, tokenizer, result, scores

    if not cache:
        net, tokenizer, result, scores = train()
        return MultiTaskRun(net, tokenizer, tasks, result, scores, task_sampler, None, False, config)
    trained = []

    def build(folder: Path) -> None:
        trained.extend(train())
        net, tokenizer, result, scores = trained
        save_multitask(net, folder, tokenizer)
        (folder / "tasks.json").write_text(json.dumps({"train_rows": sizes, "steps": _task_steps(result, tasks)}))
        test = scores[scores["split"] == "test"]["accuracy"]
        _write_result(folder, result, float(test.mean()) if len(test) else float("nan"), config)
        # json, not DataFrame.to_json: that rounds to 10 digits, and a reload must give the same numbers
        (folder / "metrics.json").write_text(json.dumps(scores.to_dict(orient="records")))

    entry = load_or_build("multitask", parts, build)
    if trained:
        net, tokenizer, result, scores = trained
        return MultiTaskRun(net, tokenizer, tasks, result, scores, task_sampler, entry, False, config)
    net, tokenizer = load_multitask(entry)
    result, _mean_test = _read_result(entry)
    for column in result.history.columns:
        if column.startswith(("val_accuracy", "train_loss/")):
            result.history[column] = result.history[column].astype(float)  # JSON null → NaN
    scores = pd.DataFrame(json.loads((entry / "metrics.json").read_text()),
                          columns=["task", "split", "n", "accuracy", "macro_f1"])
    if callback is not None:
        callback(result.history)
    return MultiTaskRun(net.to(get_settings().device), tokenizer, tasks, result, scores, task_sampler, entry, True,
                        config)


# --------------------------------------------------------------------------------------------
# Comparing runs: what chapter 3b's table, chart and explorer read
# --------------------------------------------------------------------------------------------

RUN_COLUMNS = ["run", "kind", "share", "sampler", "weights", "epochs", "steps", "main_steps", "tokens", "accuracy",
               "macro_f1", "aux_accuracy", "train_s"]


def _task_steps(result: TrainResult, tasks: Sequence[Task]) -> dict[str, int]:
    """Optimizer steps each task got, from the history's ``steps/<task>`` columns."""
    history = result.history
    return {t.name: int(history[f"steps/{t.name}"].sum()) if f"steps/{t.name}" in history else 0 for t in tasks}


def _share_label(share: float) -> str:
    return f"{share:.0%}" if share >= 0.095 else f"{share:.1%}"


def _config_of(folder: Path | None) -> TrainConfig | None:
    """The TrainConfig kept in a training run's cache entry (result.json), or None without one."""
    if folder is None or not (folder / "result.json").is_file():
        return None
    config = json.loads((folder / "result.json").read_text())["config"]
    return TrainConfig(**{k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__})


def single_task_row(run: FineTuned, task: Task, full_rows: int | None = None, name: str | None = None,
                    split: str = "test", config: TrainConfig | None = None) -> dict:
    """One row of the comparison table for a single-task classifier (``fine_tune``/``get_baseline``).

    Scored on ``task``'s ``split`` with the same metrics as ``evaluate_multitask``, so the rows
    compare. ``full_rows`` is the task's full train size; the row's ``share`` is the rows the run
    trained on over it. ``config`` is the run's TrainConfig, read from its cache entry if not given.
    """
    from minikit.training import predict_logits

    if split not in task.splits:
        raise ValueError(f"Task {task.name!r} has no {split!r} split (splits: {list(task.splits)}).")
    config = config or _config_of(run.cache_dir) or TrainConfig()
    data = task.splits[split]

    def predict() -> np.ndarray:
        logits = predict_logits(run.model, run.tokenizer, data, config.max_length, truncation=config.truncation)
        return logits.argmax(axis=1)

    if run.cache_dir is None:
        predicted = predict()
    else:  # a cached model's predictions are cached beside it: a warm notebook does not predict again (~7 s each)
        texts = json.dumps([list(data[c]) for c in task.text_columns])
        parts = {"model": run.cache_dir.name, "texts": hashlib.sha256(texts.encode()).hexdigest(),
                 "max_length": config.max_length, "truncation": config.truncation}

        def build(folder: Path) -> None:
            np.save(folder / "predicted.npy", predict(), allow_pickle=False)

        predicted = np.load(load_or_build("predictions", parts, build) / "predicted.npy", allow_pickle=False)
    truth = np.asarray(data[task.label_column])
    rows = len(_stratified(run.splits["train"], "label", config.train_fraction, config.seed))
    share = rows / full_rows if full_rows else config.train_fraction
    steps = int(run.result.steps)
    return {"run": name or (f"single-task · {_share_label(share)} {task.name} labels · {config.epochs} "
                            f"epoch{'s' if config.epochs != 1 else ''} · {steps} steps"),
            "kind": "single-task", "share": share, "sampler": "", "weights": "", "epochs": int(config.epochs),
            "steps": steps, "main_steps": steps, "tokens": rows * config.max_length * config.epochs,
            "accuracy": metrics.accuracy(truth, predicted),
            "macro_f1": metrics.macro_f1(truth, predicted, num_labels=task.num_labels),
            "aux_accuracy": float("nan"), "train_s": float(run.result.seconds)}


def multitask_row(run: MultiTaskRun, main: str = "topic", full_rows: int | None = None, split: str = "test") -> dict:
    """One row of the comparison table for a multi-task run: the ``main`` task's scores, the others' mean accuracy."""
    names = [t.name for t in run.tasks]
    if main not in names:
        raise ValueError(f"main={main!r} is not one of the run's tasks {names}.")
    config = run.config
    rows = {t.name: len(_stratified(t.splits["train"], t.label_column, config.train_fraction, config.seed))
            for t in run.tasks}
    lengths = {t.name: t.tokens(config.max_length) for t in run.tasks}
    return _row(rows, lengths, _task_steps(run.result, run.tasks), {t.name: t for t in run.tasks},
                run.sampler.spec(), config.epochs, int(run.result.steps), run.metrics, main, full_rows, split,
                run.result.seconds)


def _row(rows: Mapping[str, int], lengths: Mapping[str, int], steps: Mapping[str, int], tasks: Mapping,
         sampler: Mapping, epochs: int,
         total_steps: int, scores: pd.DataFrame, main: str, full_rows: int | None, split: str, seconds: float) -> dict:
    def weight(name):
        task = tasks[name]
        return float(task.weight if isinstance(task, Task) else task["weight"])

    share = rows[main] / full_rows if full_rows else 1.0
    others = [n for n in rows if n != main]
    at = scores[scores["split"] == split].set_index("task")
    strategy = sampler["strategy"] + (f" T={sampler['temperature']:g}" if sampler["strategy"] == "temperature" else "")
    weights = ", ".join(f"{n} {weight(n):g}" for n in rows)
    aux = float(np.mean([at.loc[n, "accuracy"] for n in others])) if others else float("nan")
    label = (f"multi-task · {_share_label(share)} {main} labels · {strategy} · weights {weights} · "
             f"{epochs} epoch{'s' if epochs != 1 else ''} · {total_steps} steps")
    return {"run": label, "kind": "multi-task", "share": share, "sampler": strategy, "weights": weights,
            "epochs": int(epochs), "steps": int(total_steps), "main_steps": int(steps.get(main, 0)),
            "tokens": int(sum(rows[n] * lengths[n] for n in rows) * epochs), "accuracy": float(at.loc[main, "accuracy"]), "macro_f1": float(at.loc[main, "macro_f1"]),
            "aux_accuracy": aux, "train_s": float(seconds)}


def multitask_runs(main: str = "topic", full_rows: int | None = None, split: str = "test") -> pd.DataFrame:
    """Every multi-task run in the cache with a ``main`` task, from this session or an earlier one.

    One row each, ``RUN_COLUMNS``: its label, the main task's share of labels (train rows over
    ``full_rows``), sampler, task weights, epochs, optimizer steps (all, and the main task's),
    tokens read in training (train rows × max_length × epochs, summed over tasks: nearly every BBC
    article and pair fills its max_length, so this is the compute, up to padding), the main task's accuracy and macro-F1 on ``split``, the other tasks' mean accuracy and the training
    seconds. Reading is cheap (JSON files only), so a widget can redraw from it. Entries written
    before minikit recorded each task's train rows are left out.
    """
    from minikit import cache

    out = []
    for _, entry in cache.entries("multitask").iterrows():
        folder, parts = Path(entry["path"]), entry["parts"]
        names = [t["name"] for t in parts.get("tasks", [])]
        files = [folder / f for f in ("tasks.json", "metrics.json", "result.json")]
        if main not in names or not all(f.is_file() for f in files):
            continue
        counts = json.loads(files[0].read_text())
        scores = pd.DataFrame(json.loads(files[1].read_text()))
        summary = json.loads(files[2].read_text())
        if split not in set(scores["split"]):
            continue
        lengths = {t["name"]: int(t.get("max_length") or summary["config"]["max_length"]) for t in parts["tasks"]}
        out.append(_row(counts["train_rows"], lengths, counts["steps"], {t["name"]: t for t in parts["tasks"]},
                        parts["sampler"], summary["config"]["epochs"], summary["steps"], scores, main, full_rows,
                        split, summary["seconds"]))
    table = pd.DataFrame(out, columns=RUN_COLUMNS)
    return table.sort_values(["share", "steps", "run"], ascending=[False, True, True], ignore_index=True)


def nearest_single_task(table: pd.DataFrame, row: pd.Series, column: str) -> pd.Series | None:
    """The single-task run of ``table`` at ``row``'s share of labels whose ``column`` (e.g. tokens) is nearest ``row``'s.

    None when the table has no single-task run at that share.
    """
    singles = table[(table["kind"] == "single-task") & np.isclose(table["share"], row["share"])]
    if singles.empty:
        return None
    return singles.loc[(singles[column] - row[column]).abs().idxmin()]
