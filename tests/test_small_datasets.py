"""The example datasets of data/examples (issue 25) and the script that makes them, tools/make_small_datasets.py.

The script is run once into a temporary folder and must write the committed files byte for byte; the
committed files are then checked for what their data card (data/examples/README.md) promises: the
columns ``message,category``, the rows per class, no duplicates by the package's own test, composed
texts that share at most half their words, and long texts that keep their paragraph breaks.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import re
from collections import Counter
from pathlib import Path

import pytest

import minikit
from minikit.data import find_duplicates
from minikit.loading import load_dataset

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "data" / "examples"
INTENTS = ("set_alarm", "weather", "play_music", "set_timer", "add_reminder", "translate", "book_flight",
           "book_restaurant", "currency_exchange", "calculator", "definition", "traffic", "shopping_list",
           "smart_lights", "thermostat", "news", "call_contact", "send_text", "recipe", "tell_joke")
ROWS_PER_CLASS = {
    "tickets.csv": {"billing": 20, "login": 20, "shipping": 20},
    "imbalanced.csv": {"sport": 450, "politics": 50},
    "many_classes.csv": dict.fromkeys(INTENTS, 8),
    "non_english.csv": {"sport": 30, "wirtschaft": 30, "technik": 30},
    "long_texts.csv": {"business": 30, "sport": 30, "tech": 30},
}
COMPOSED = ("tickets.csv", "many_classes.csv", "non_english.csv")


def _load(name: str):
    return load_dataset(str(EXAMPLES / name), text_column="message", label_column="category")


@pytest.fixture(scope="module")
def generator():
    """tools/make_small_datasets.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_small_datasets", ROOT / "tools" / "make_small_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_rewrites_the_committed_files_byte_for_byte(generator, tmp_path, capsys):
    assert generator.main(["--out", str(tmp_path / "examples")]) == 0
    written = sorted(p.name for p in (tmp_path / "examples").iterdir())
    assert written == sorted(ROWS_PER_CLASS)
    assert sorted(p.name for p in EXAMPLES.glob("*.csv")) == written
    for name in written:
        assert (tmp_path / "examples" / name).read_bytes() == (EXAMPLES / name).read_bytes(), (
            f"{name} differs from a fresh run: regenerate with `python tools/make_small_datasets.py` and commit")
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "examples" / name) for name in generator.DATASETS]


@pytest.mark.parametrize("name", ROWS_PER_CLASS)
def test_loads_with_its_own_columns_and_counts(name):
    assert (EXAMPLES / name).read_text(encoding="utf-8").startswith("message,category\n")
    ds = _load(name)
    labels = ds.features["label"].names
    assert Counter(labels[i] for i in ds["label"]) == ROWS_PER_CLASS[name]
    with pytest.raises(minikit.DataError, match="no column"):  # the loader's default names are not there
        load_dataset(str(EXAMPLES / name))


@pytest.mark.parametrize("name", ROWS_PER_CLASS)
def test_no_exact_or_near_duplicates(name):
    report = find_duplicates(_load(name), near_threshold=0.9)
    assert report.exact_groups == []
    assert report.near_pairs == []


@pytest.mark.parametrize("name", ROWS_PER_CLASS)
def test_rows_are_shuffled(name):
    """Neighbouring rows change class about as often as in a random order (a file written class by class
    changes class only between blocks)."""
    with (EXAMPLES / name).open(encoding="utf-8", newline="") as handle:
        labels = [row[1] for row in itertools.islice(csv.reader(handle), 1, None)]
    changes = sum(a != b for a, b in itertools.pairwise(labels))
    shares = [n / len(labels) for n in Counter(labels).values()]
    expected = (len(labels) - 1) * (1 - sum(share**2 for share in shares))
    assert changes > expected / 2


@pytest.mark.parametrize("name", COMPOSED)
def test_composed_texts_share_at_most_half_their_words(name):
    words = [frozenset(re.findall(r"\w+", text.lower())) for text in _load(name)["text"]]
    worst = max(len(a & b) / min(len(a), len(b)) for a, b in itertools.combinations(words, 2))
    assert worst <= 0.5


def test_long_texts_are_whole_articles_with_their_paragraphs():
    texts = _load("long_texts.csv")["text"]
    assert all(300 <= len(text.split()) <= 800 for text in texts)
    assert all(text.count("\n\n") >= 2 for text in texts)  # paragraph breaks survive the CSV round trip
    assert "\r" not in (EXAMPLES / "long_texts.csv").read_text(encoding="utf-8")


def test_imbalanced_texts_are_headline_and_first_paragraph():
    texts = _load("imbalanced.csv")["text"]
    assert all("\n" not in text and len(text.split()) >= 12 for text in texts)


def test_german_texts_are_german():
    german = {"der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "und", "im", "in",
              "mit", "nach", "für", "von", "vor", "sind", "ist", "hat", "soll", "auf", "zu"}
    texts = _load("non_english.csv")["text"]
    assert all(len(german & set(re.findall(r"\w+", text.lower()))) >= 3 for text in texts)
    assert not any(re.search(r"\b(the|and|of)\b", text, re.IGNORECASE) for text in texts)
    assert sum(bool(re.search("[äöüß]", text)) for text in texts) > len(texts) / 2


def test_reads_the_windows_1252_article(generator):
    """sports/199.txt is the corpus's one file that is not UTF-8; its £ sign must come through."""
    headline, paragraphs = generator.read_article(generator.bbc_folder() / "sports" / "199.txt")
    assert headline == "Chelsea sack Mutu"
    assert any("£" in paragraph for paragraph in paragraphs)
