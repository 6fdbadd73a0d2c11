"""Small data and models shared by the package's tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
from transformers import BertConfig

import minikit
from minikit.training import TrainConfig

# Training settings that teach a tiny model the three TOPICS in about a second (a file that needs fewer
# epochs says so with {**FAST, "epochs": ...}).
FAST = dict(epochs=3, batch_size=4, eval_every=3, learning_rate=3e-3, activation_checkpointing=False)
# One short epoch at a short length: the lab's and the report's runs on tiny_model_and_csv's folder.
FAST_CONFIG = TrainConfig(epochs=1, batch_size=8, max_length=32, eval_every=5, learning_rate=3e-3)

# Three topics of three short sentences each: enough for a tiny model to learn something in seconds.
TOPICS = {
    "sport": ["the team won the match", "a late goal in the final", "the striker scored twice"],
    "business": ["shares fell on the market", "the bank raised its profit", "investors sold the stock"],
    "politics": ["the minister called a vote", "the party won the election", "parliament passed the bill"],
}
# Topic words for longer, generated rows (a CSV a learner might bring).
WORDS = {
    "sport": "match goal team player coach league season win cup striker",
    "business": "market shares profit bank economy firm sales growth prices investors",
    "politics": "election minister party vote parliament government labour tory policy campaign",
}


def make_splits(n_train: int = 36, n_eval: int = 12) -> datasets.DatasetDict:
    """Train/validation/test splits of TOPICS sentences, classes in turn, every text distinct."""
    names = list(TOPICS)
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})

    def rows(n: int, offset: int) -> datasets.Dataset:
        data = [{"id": f"r{offset + i}", "text": f"{TOPICS[names[i % 3]][(i // 3) % 3]} (story {offset + i})",
                 "label": i % 3} for i in range(n)]
        return datasets.Dataset.from_list(data, features=features)

    return datasets.DatasetDict(train=rows(n_train, 0), validation=rows(n_eval, 1000), test=rows(n_eval, 2000))


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


def tiny_model_and_csv(folder: Path, layers: int = 2, rows: int = 90) -> tuple[Path, Path]:
    """A random 32-wide BERT of ``layers`` layers with the embedded tokenizer, saved as a model folder,
    and a ``rows``-row, 3-topic CSV of WORDS (no duplicates): (model folder, csv path)."""
    from transformers import BertConfig

    tokenizer = minikit.load_tokenizer()
    config = BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                        vocab_size=tokenizer.vocab_size, max_position_embeddings=130)
    model_dir = minikit.cache.save_model_dir(minikit.build_model(config, num_labels=3, seed=0), tokenizer,
                                             folder / f"tiny-bert-{layers}")
    rng = random.Random(0)
    with open(folder / "topics.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = list(WORDS)[i % 3]
            words = WORDS[label].split()
            writer.writerow([f"item {i}: " + " ".join(rng.choice(words) for _ in range(12)), label])
    return model_dir, folder / "topics.csv"


def model_inputs(tokenizer, texts) -> dict:
    """``input_ids`` and ``attention_mask`` for ``texts``, padded to the longest, as PyTorch tensors."""
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def profiles_table(rows) -> pd.DataFrame:
    """A compare_models-like table from (name, params_m, latency_p50_ms) rows; the other columns are fixed."""
    base = dict(size_mb=40.0, seq_len=64, latency_p95_ms=0.0, batch_size=8, throughput=100.0, peak_memory_mb=80.0)
    out = []
    for name, params_m, p50 in rows:
        out.append(base | dict(name=name, params_m=params_m, latency_p50_ms=p50, latency_p95_ms=p50 * 1.2,
                               throughput=1000.0 / p50))
    return pd.DataFrame(out)


PROFILES = profiles_table([("small", 14.4, 8.0), ("medium", 66.9, 35.0), ("big", 109.5, 60.0)])

# Token lengths of eight texts: three above 256.
LENGTHS = np.array([50, 100, 150, 200, 250, 300, 600, 700])


def spec_datasets(spec: dict) -> list[list[dict]]:
    """The rows of each dataset in a Vega-Lite spec (a chart's ``to_dict()``)."""
    return list(spec.get("datasets", {}).values())


def dataset_with(spec: dict, key: str) -> list[dict]:
    """The one dataset of ``spec`` whose rows have the column ``key``."""
    matches = [rows for rows in spec_datasets(spec) if rows and key in rows[0]]
    assert len(matches) == 1, f"expected one dataset with column {key!r}"
    return matches[0]

# The three families every technique must handle.
ARCHS = ["bert", "distilbert", "mobilebert"]


def random_classifier(config, **overrides):
    """A random 3-label classifier from a conftest ``tiny_*_config`` factory, with the embedded tokenizer's
    vocabulary."""
    return minikit.build_model(config(vocab_size=30522, **overrides), num_labels=3, seed=0)  # the real tokenizer's ids


def chart_datasets(chart) -> list[list[dict]]:
    """The rows of each dataset an altair chart carries."""
    return list(chart.to_dict().get("datasets", {}).values())


def fake_rapl_zone(root, name: str, energy_uj, max_uj: int = 1_000_000, label: str = "package-0"):
    """A RAPL zone folder as Linux shows it under /sys/class/powercap, reading ``energy_uj``."""
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "name").write_text(label + "\n")
    return zone


def echo(texts: list[str]) -> list[dict]:
    """A stand-in model: each text's label is the text itself, so a misrouted answer shows."""
    time.sleep(0.01)  # like a model: the same time for a batch of 1 or 16
    return [{"label": t, "score": 1.0} for t in texts]


def topic_splits(n_train: int = 24, n_eval: int = 9) -> datasets.DatasetDict:
    """make_splits, smaller: the multi-task tests train several heads at once."""
    return make_splits(n_train, n_eval)


def tiny_bert(tokenizer, hidden: int, seed: int, **overrides):
    """A random 2-layer BERT of width ``hidden`` with 4 labels and ``tokenizer``'s vocabulary."""
    config = BertConfig(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
                        vocab_size=tokenizer.vocab_size, max_position_embeddings=64, **overrides)
    return minikit.build_model(config, num_labels=4, seed=seed)
