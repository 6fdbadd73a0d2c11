"""Chapter 2 — data: duplicates, normalization, splits, leakage and tokenization of a loaded dataset
(``minikit.loading``), and ``prepare_dataset``, the whole chapter in one call for later chapters.

Nothing is dropped unless you ask for it, and then a warning (``DataWarning``) says how many rows went.
"""

from __future__ import annotations

import copy
import json
import math
import unicodedata
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from minikit import cache as _cache
from minikit import loading
from minikit.errors import DataError, DataWarning, option
from minikit.loading import BBC_HEADLINES, BBC_NEWS, BUILT_IN_DATASETS
from minikit.settings import DEFAULT_SEED

if TYPE_CHECKING:
    import datasets

# --------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------


def normalize_text(text: str, lowercase: bool = False) -> str:
    """Unicode NFKC, every run of whitespace to one space, stripped; optionally lowercased.

    Idempotent: normalizing twice gives the same string as normalizing once.
    """
    for _ in range(4):  # lowercasing or NFKC can each expose work for the other; a few passes settle it
        # NFKC first: lower() reads context (a final Σ becomes ς), so equivalent spellings must meet before it.
        new = unicodedata.normalize("NFKC", text)
        new = " ".join((new.lower() if lowercase else new).split())
        if new == text:
            break
        text = new
    return text


def normalize(ds: datasets.Dataset, lowercase: bool = False) -> datasets.Dataset:
    """Apply ``normalize_text`` to the ``text`` column."""
    return ds.map(lambda b: {"text": [normalize_text(t, lowercase) for t in b["text"]]}, batched=True)


# --------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateReport:
    """What ``find_duplicates`` found. Indices refer to the input dataset's rows."""

    n_input: int
    exact_groups: list[list[int]]  # rows with byte-identical text, first row first
    near_pairs: list[tuple[int, int, float]]  # (i, j, Jaccard similarity of word 5-grams), i < j
    removed: list[int]  # rows that remove_duplicates drops (every row but the first of its cluster)
    label_conflicts: list[list[int]] = field(default_factory=list)  # clusters with more than one label

    @property
    def n_exact(self) -> int:
        """Rows that are an exact copy of an earlier row."""
        return sum(len(g) - 1 for g in self.exact_groups)

    @property
    def n_removed(self) -> int:
        return len(self.removed)

    @property
    def n_kept(self) -> int:
        return self.n_input - self.n_removed

    def summary(self) -> str:
        return (f"{self.n_input} rows: {self.n_exact} exact duplicates, {self.n_removed - self.n_exact} more "
                f"near-duplicates, {self.n_removed} removed, {self.n_kept} kept; "
                f"{len(self.label_conflicts)} duplicate cluster(s) with conflicting labels")


def _shingles(text: str, n: int = 5) -> list[str]:
    words = normalize_text(text, lowercase=True).split()
    if len(words) < n:
        return [" ".join(words)]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def near_duplicate_pairs(texts: Sequence[str], threshold: float = 0.9) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity), i < j, whose word-5-gram sets have Jaccard similarity ≥ threshold.

    The shingles are taken after lowercasing and whitespace normalization, so texts that differ
    only in case or spacing have similarity 1.0.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold={threshold}: expected a Jaccard similarity in (0, 1].")
    if len(texts) < 2:
        return []
    from sklearn.feature_extraction.text import CountVectorizer  # imported here: ~70 MB, needed only now

    vectorizer = CountVectorizer(analyzer=_shingles, binary=True)
    x = vectorizer.fit_transform(texts).astype(np.int32)  # (N, n_shingles), 0/1
    sizes = np.asarray(x.sum(axis=1)).ravel()
    shared = (x @ x.T).tocoo()  # (N, N) counts of shared shingles, sparse
    upper = shared.row < shared.col
    i, j, inter = shared.row[upper], shared.col[upper], shared.data[upper]
    jaccard = inter / (sizes[i] + sizes[j] - inter)
    hits = jaccard >= threshold
    pairs = sorted(zip(i[hits].tolist(), j[hits].tolist(), jaccard[hits].round(4).tolist()))
    return [(a, b, float(s)) for a, b, s in pairs]


def find_duplicates(ds: datasets.Dataset, near_threshold: float | None = 0.9) -> DuplicateReport:
    """Find exact duplicates (identical text) and, unless ``near_threshold`` is None, near-duplicates."""
    texts = ds["text"]
    labels = ds["label"] if "label" in ds.column_names else [0] * len(texts)
    groups: dict[str, list[int]] = {}
    for idx, text in enumerate(texts):
        groups.setdefault(text, []).append(idx)
    exact = [g for g in groups.values() if len(g) > 1]
    near = near_duplicate_pairs(texts, near_threshold) if near_threshold is not None else []

    parent = list(range(len(texts)))  # union-find: every cluster keeps its earliest row

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in [(g[0], other) for g in exact for other in g[1:]] + [(a, b) for a, b, _ in near]:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    clusters: dict[int, list[int]] = {}
    for idx in range(len(texts)):
        clusters.setdefault(root(idx), []).append(idx)
    removed = sorted(idx for members in clusters.values() for idx in members[1:])
    conflicts = [m for m in clusters.values() if len({labels[i] for i in m}) > 1]
    return DuplicateReport(len(texts), exact, near, removed, conflicts)


def remove_duplicates(ds: datasets.Dataset, near_threshold: float | None = 0.9) -> tuple[datasets.Dataset, DuplicateReport]:
    """Drop every duplicate but the first of its cluster; return (kept rows in input order, report)."""
    report = find_duplicates(ds, near_threshold)
    drop = set(report.removed)
    return ds.select([i for i in range(len(ds)) if i not in drop]), report


# --------------------------------------------------------------------------------------------
# Splits and leakage
# --------------------------------------------------------------------------------------------


def split_dataset(ds: datasets.Dataset, test_size: float = 0.15, validation_size: float = 0.15,
                  seed: int = DEFAULT_SEED) -> datasets.DatasetDict:
    """Stratified train / validation / test split with a fixed seed."""
    import datasets
    for name, value in (("test_size", test_size), ("validation_size", validation_size)):
        if not 0 < value < 1:
            raise ValueError(f"{name}={value}: expected a fraction in (0, 1).")
    if test_size + validation_size >= 1:
        raise ValueError(f"test_size + validation_size = {test_size + validation_size}: leaves no training data.")
    counts = Counter(ds["label"])
    if min(counts.values()) < 3:
        names = ds.features["label"].names
        small = {names[k]: n for k, n in counts.items() if n < 3}
        raise DataError(f"Classes {small} have fewer than 3 rows: a stratified 3-way split needs at least 3 "
                        "per class. Fix: add rows or merge those classes.")
    n_classes = len(counts)
    # The sizes train_test_split cuts below: the test split first, then validation from the rest.
    n_test = math.ceil(test_size * len(ds))
    n_validation = math.ceil(validation_size / (1 - test_size) * (len(ds) - n_test))
    n_train = len(ds) - n_test - n_validation
    if min(n_test, n_validation, n_train) < n_classes:
        # Too few rows for every class to reach each split by proportion: split each class on its own.
        return _per_class_split(ds, test_size, validation_size, seed)
    first = ds.train_test_split(test_size=test_size, stratify_by_column="label", seed=seed)
    left = Counter(first["train"]["label"])
    if any(left[k] < 2 for k in counts):  # the second cut needs two rows of each class
        return _per_class_split(ds, test_size, validation_size, seed)
    rest = first["train"].train_test_split(test_size=validation_size / (1 - test_size),
                                           stratify_by_column="label", seed=seed)
    return datasets.DatasetDict(train=rest["train"], validation=rest["test"], test=first["test"])


def _per_class_split(ds: datasets.Dataset, test_size: float, validation_size: float,
                     seed: int) -> datasets.DatasetDict:
    """Each class split on its own: its share of test and validation rows, but at least one of each.

    The closest honest split when the shares alone would leave a class out of a split (few rows, many
    classes): every class is tested, and a DataWarning says how far the shares moved.
    """
    import datasets
    rng = np.random.default_rng(seed)
    labels = np.asarray(ds["label"])
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, min(round(test_size * len(rows)), len(rows) - 2))  # every class has ≥ 3 rows
        n_validation = max(1, min(round(validation_size * len(rows)), len(rows) - n_test - 1))  # ≥ 1 left to train
        parts["test"] += rows[:n_test].tolist()
        parts["validation"] += rows[n_test:n_test + n_validation].tolist()
        parts["train"] += rows[n_test + n_validation:].tolist()
    splits = datasets.DatasetDict({name: ds.select(sorted(rows)) for name, rows in parts.items()})
    shares = ", ".join(f"{name} {len(split)} ({len(split) / len(ds):.0%})" for name, split in splits.items())
    shares_asked = f"{1 - test_size - validation_size:.0%}/{validation_size:.0%}/{test_size:.0%}"
    warnings.warn(f"{len(ds)} rows in {len(np.unique(labels))} classes are too few for a {shares_asked} split that "
                  "holds every class in every split, so each class was split on its own, with at least one row in "
                  f"validation and in test: {shares}. With so few test rows, read the accuracy's interval, not its "
                  "value.", DataWarning, stacklevel=3)
    return splits


def stratified_subset(ds: datasets.Dataset, fraction: float, seed: int, label_column: str = "label") -> datasets.Dataset:
    """A share of each class's rows (at least one per class), drawn with a fixed seed, in their original order.

    ``fraction`` ≥ 1 returns ``ds`` itself. Fine-tuning's ``train_fraction`` and ``Task.with_fraction``
    both thin a train split with it, so one seed picks the same rows for either.
    """
    if fraction >= 1:
        return ds
    rng = np.random.default_rng(seed)
    labels = np.asarray(ds[label_column])
    keep = [rng.choice(rows, max(1, round(fraction * len(rows))), replace=False)
            for rows in (np.flatnonzero(labels == c) for c in np.unique(labels))]
    return ds.select(np.sort(np.concatenate(keep)))


@dataclass(frozen=True)
class LeakageReport:
    """Texts found in more than one split: {(split_a, split_b): [(id_a, id_b), ...]}."""

    leaks: dict[tuple[str, str], list[tuple[str, str]]]

    @property
    def ok(self) -> bool:
        return not any(self.leaks.values())

    @property
    def n_leaks(self) -> int:
        return sum(len(v) for v in self.leaks.values())

    def summary(self) -> str:
        if self.ok:
            return "No leakage: no text appears in two splits."
        return "; ".join(f"{a}↔{b}: {len(v)} shared text(s), e.g. {v[0]}" for (a, b), v in self.leaks.items() if v)


def check_leakage(splits: datasets.DatasetDict, near_threshold: float | None = None) -> LeakageReport:
    """Find texts shared between splits (after normalization; near-duplicates too if a threshold is given)."""
    names = list(splits)
    rows = [(s, i, t) for s in names for i, t in zip(splits[s]["id"], splits[s]["text"])]
    keys = [normalize_text(t, lowercase=True) for _, _, t in rows]
    pairs: set[tuple[int, int]] = set()
    first_seen: dict[str, list[int]] = {}
    for idx, key in enumerate(keys):
        for other in first_seen.get(key, []):
            pairs.add((other, idx))
        first_seen.setdefault(key, []).append(idx)
    if near_threshold is not None:
        pairs.update((a, b) for a, b, _ in near_duplicate_pairs([t for _, _, t in rows], near_threshold))
    leaks: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for a, b in sorted(pairs):
        (sa, ia, _), (sb, ib, _) = rows[a], rows[b]
        if sa != sb:
            leaks.setdefault((sa, sb), []).append((ia, ib))
    return LeakageReport(leaks)


# --------------------------------------------------------------------------------------------
# Tokenization
# --------------------------------------------------------------------------------------------


def token_lengths(texts: Sequence[str], tokenizer) -> np.ndarray:
    """Length in tokens of each text, special tokens included, without truncation."""
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return np.array([len(ids) for ids in encoded])


def truncated_share(lengths: np.ndarray, max_length: int) -> float:
    """Fraction of texts longer than ``max_length`` tokens (they lose their end, or middle)."""
    return float(np.mean(np.asarray(lengths) > max_length))


def kept_token_share(lengths: np.ndarray, max_length: int) -> float:
    """Fraction of all tokens that survive truncation at ``max_length`` (each text keeps at most that many)."""
    lengths = np.asarray(lengths)
    return float(np.minimum(lengths, max_length).sum() / lengths.sum())


def tokenize(data: datasets.Dataset | datasets.DatasetDict, tokenizer, max_length: int = 128,
             truncation: str = "head", head_fraction: float = 0.25):
    """Add ``input_ids`` and ``attention_mask`` columns (no padding: pad per batch when training).

    truncation="head" keeps the first tokens; "head+tail" keeps the first ``head_fraction`` of the
    budget and the last tokens (Sun et al. 2019 found head+tail best for long documents).
    """
    if truncation not in {"head", "head+tail"}:
        raise ValueError(f"truncation={truncation!r}: expected 'head' or 'head+tail'.")
    if not 0 <= head_fraction <= 1:
        raise ValueError(f"head_fraction={head_fraction}: expected a share of the budget in [0, 1].")
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    if max_length <= n_special:
        raise ValueError(f"max_length={max_length} leaves no room for text after {n_special} special tokens.")
    budget = max_length - n_special

    # How many special tokens the tokenizer puts before and after a text ([CLS] … [SEP] for BERT).
    probe, core = tokenizer("hello")["input_ids"], tokenizer("hello", add_special_tokens=False)["input_ids"]
    prefix = probe.index(core[0])
    suffix = len(probe) - prefix - len(core)

    def encode(batch):
        if truncation == "head":
            return tokenizer(batch["text"], truncation=True, max_length=max_length)
        ids = tokenizer(batch["text"], truncation=False, verbose=False)["input_ids"]
        head = int(budget * head_fraction)
        tail = budget - head
        cut = [t if len(t) <= max_length else t[:prefix + head] + t[len(t) - suffix - tail:] for t in ids]
        out = {"input_ids": cut, "attention_mask": [[1] * len(t) for t in cut]}
        if "token_type_ids" in tokenizer.model_input_names:
            out["token_type_ids"] = [[0] * len(t) for t in cut]  # one segment, as "head" gives
        return out

    return data.map(encode, batched=True)


def fixed_subset(tokenizer, dataset: datasets.Dataset, n: int, max_length: int = 64, batch_size: int = 32,
                 seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """``n`` rows drawn with ``seed`` (the same rows every time), tokenized once: (batches, labels).

    Rows are sorted by length so similar lengths share a batch (little padding); ``labels`` follow
    that order. Each batch holds ``input_ids`` and ``attention_mask``, which BERT, DistilBERT and
    MobileBERT all take.
    """
    rows = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    subset = dataset.select(rows)
    texts, labels = list(subset["text"]), np.asarray(subset["label"])
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        enc = tokenizer([texts[i] for i in order[start:start + batch_size]], truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt")
        batches.append({k: enc[k] for k in ("input_ids", "attention_mask")})
    return batches, labels[order]


# --------------------------------------------------------------------------------------------
# The whole chapter in one call, for later chapters
# --------------------------------------------------------------------------------------------


def prepare_dataset(name: str = BBC_NEWS, *, seed: int = DEFAULT_SEED, lowercase: bool = False,
                    near_threshold: float | None = 0.9, test_size: float = 0.15,
                    validation_size: float = 0.15, cache: bool = True, text_column: str = "text",
                    label_column: str = "label", labels: Sequence[str] | None = None, encoding: str = "utf-8",
                    drop_empty: bool = False) -> tuple[datasets.DatasetDict, DuplicateReport]:
    """Load → remove duplicates → normalize → stratified split; returns (splits, duplicate report).

    Duplicates are removed before splitting, so no article can sit in two splits; for a dataset other
    than the embedded one a DataWarning says how many went. ``text_column``, ``label_column``,
    ``labels``, ``encoding`` and ``drop_empty`` are ``load_dataset``'s, for files.

    ``"bbc-headlines"`` keeps every article in its ``"bbc-news"`` split (same seed and sizes), reads its
    headline only, and drops each later article whose headline repeats an earlier one (13 of them), so
    no article and no headline sits in two splits; the report counts both removals.

    The embedded BBC corpus is prepared once and cached (kind ``prepared``, and in memory for the
    rest of the session): every later chapter starts from it, and the near-duplicate search alone
    takes ~3 s. The key holds the arguments, a hash of the corpus files and a hash of this module's
    code, so a change to any of them prepares the data again. ``cache=False`` always prepares
    anew. Other datasets (files, folders, the hub) are prepared on every call.
    """
    import datasets
    columns = {"text_column": text_column, "label_column": label_column, "labels": labels, "encoding": encoding,
               "drop_empty": drop_empty}
    if not cache or name not in BUILT_IN_DATASETS:
        return _prepare(name, seed, lowercase, near_threshold, test_size, validation_size, columns, cache)

    parts = {"dataset": name, "seed": seed, "lowercase": lowercase, "near_threshold": near_threshold,
             "test_size": test_size, "validation_size": validation_size,
             "corpus": _cache.folder_sha256(loading.bbc_news_dir()),
             "code": [_cache.file_sha256(Path(__file__)), _cache.file_sha256(Path(loading.__file__))]}
    key = _cache.cache_key(**parts)
    if key not in _PREPARED:
        def build(folder: Path) -> None:
            splits, report = _prepare(name, seed, lowercase, near_threshold, test_size, validation_size, {})
            splits.save_to_disk(str(folder / "splits"))
            (folder / "duplicates.json").write_text(json.dumps(asdict(report)))

        folder = _cache.load_or_build("prepared", parts, build)
        splits = datasets.load_from_disk(str(folder / "splits"), keep_in_memory=True)  # no map() cache files in the entry
        fields = json.loads((folder / "duplicates.json").read_text())
        fields["near_pairs"] = [tuple(pair) for pair in fields["near_pairs"]]
        _PREPARED[key] = (splits, DuplicateReport(**fields))
    splits, report = _PREPARED[key]
    # A new dict and report each call: a caller that replaces a split or edits a list changes only its copy.
    return datasets.DatasetDict(dict(splits)), copy.deepcopy(report)


_PREPARED: dict[str, tuple[datasets.DatasetDict, DuplicateReport]] = {}  # this session's prepared BBC splits


def _prepare(name, seed, lowercase, near_threshold, test_size, validation_size, columns: dict, cache: bool = True):
    if name == BBC_HEADLINES:
        return _headline_splits(seed, lowercase, near_threshold, test_size, validation_size, cache)
    with warnings.catch_warnings():
        if name == BBC_NEWS:  # its one cp1252 file is known and shown in chapter 2
            warnings.simplefilter("ignore", DataWarning)
            ds = loading.load_dataset(name)
        else:
            ds = loading.load_dataset(name, **columns)
    present = sorted(set(ds["label"]))
    if len(present) < 2:
        only = ds.features["label"].names[present[0]] if present else None
        raise DataError(f"{name}: the label column holds one class only ({only!r}, {len(ds)} rows); a classifier "
                        f"needs at least two. Fix: pass {option('label_column', '<column>')} naming the column with "
                        "the labels, or add rows of other classes.")
    ids = ds["id"]
    ds, report = remove_duplicates(ds, near_threshold)
    if report.n_removed and name != BBC_NEWS:  # BBC's duplicates are chapter 2's lesson
        conflicts = (f"; {len(report.label_conflicts)} of them with conflicting labels (the first row's label was "
                     "kept)") if report.label_conflicts else ""
        warnings.warn(f"{name}: removed {report.n_removed} duplicate row(s) before splitting, so that no text sits in "
                      f"two splits ({report.n_exact} exact copies, {report.n_removed - report.n_exact} near-copies"
                      f"{conflicts}): {loading.first_items([ids[i] for i in report.removed])}. Fix, if that is not "
                      "what you want: edit those rows in the file.", DataWarning, stacklevel=3)
    ds = normalize(ds, lowercase)
    return split_dataset(ds, test_size, validation_size, seed), report


def _headline_splits(seed, lowercase, near_threshold, test_size, validation_size, cache: bool = True):
    """bbc-headlines: bbc-news' article split, each text its headline; later repeats of a headline dropped."""
    import datasets
    articles, report = prepare_dataset(BBC_NEWS, seed=seed, lowercase=lowercase, near_threshold=near_threshold,
                                       test_size=test_size, validation_size=validation_size, cache=cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the corpus' one cp1252 file, known and shown in chapter 2
        raw = loading.load_dataset(BBC_HEADLINES)  # prepare_dataset joins the headline to the body: read them raw
    row_of = {article_id: row for row, article_id in enumerate(raw["id"])}
    kept = sorted(row_of[i] for split in articles.values() for i in split["id"])
    first: dict[str, int] = {}
    for row in kept:  # in corpus order, as find_duplicates keeps the first of a cluster
        first.setdefault(normalize_text(raw[row]["text"], lowercase=True), row)
    groups: dict[int, list[int]] = {}
    for row in kept:
        groups.setdefault(first[normalize_text(raw[row]["text"], lowercase=True)], []).append(row)
    repeats = [g for g in groups.values() if len(g) > 1]
    dropped = {row for g in repeats for row in g[1:]}
    out = {}
    for split, ds in articles.items():
        rows = [row_of[i] for i in ds["id"] if row_of[i] not in dropped]
        out[split] = normalize(raw.select(rows), lowercase)
    both = DuplicateReport(report.n_input, report.exact_groups + repeats, report.near_pairs,
                           sorted(set(report.removed) | dropped), report.label_conflicts
                           + [g for g in repeats if len({raw[r]["label"] for r in g}) > 1])
    return datasets.DatasetDict(out), both


def show_difference(a: str, b: str, context: int = 4, max_changes: int = 3) -> list[str]:
    """The first few places where two texts differ, word by word, as '…context [-old-] {+new+} context…'."""
    import difflib

    wa, wb = a.split(), b.split()
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        before = " ".join(wa[max(0, i1 - context):i1])
        after = " ".join(wa[i2:i2 + context])
        old = f"[-{' '.join(wa[i1:i2])}-]" if i2 > i1 else ""
        new = f"{{+{' '.join(wb[j1:j2])}+}}" if j2 > j1 else ""
        out.append(f"…{before} {old}{new} {after}…")
        if len(out) == max_changes:
            break
    return out
