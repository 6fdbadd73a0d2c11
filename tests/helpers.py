"""Small data and models shared by the package's tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import datasets

import minikit

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
