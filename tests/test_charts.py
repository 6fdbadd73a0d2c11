"""Charts: the data each chart draws, its parameters, and offline rendering (minikit.charts)."""

from __future__ import annotations

import altair as alt
import datasets
import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc
from transformers import BertConfig

import minikit
from minikit import charts, claims
from minikit.attribution import token_attributions
from minikit.benchmark import Benchmark
from minikit.metrics import (
    confusion_matrix,
    precision_recall_curve_table,
)

LABELS = ["business", "entertainment", "politics", "sport", "tech"]


@pytest.fixture(scope="module")
def labels() -> tuple[np.ndarray, np.ndarray]:
    """300 random labels and predictions that are right 60 % of the time; "tech" (4) is never predicted."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.minimum(np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300)), 3)
    return y_true, y_pred


@pytest.fixture(scope="module")
def probs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y]  # informative, far from perfect
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), y


# --- Benchmark ------------------------------------------------------------------------------------

TEXTS = ["the market rose sharply as shares gained", "profits fell and the bank cut jobs",
         "the film won three awards at the festival", "the band released a new album",
         "the minister called an early election", "parliament voted against the new bill",
         "the striker scored twice in the final", "the team lost the cup match"]


@pytest.fixture(scope="module")
def tiny_dataset() -> datasets.Dataset:
    names = ["business", "entertainment", "politics", "sport"]
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    texts = TEXTS + [t.replace("the ", "a ") for t in TEXTS]
    return datasets.Dataset.from_dict({"id": [f"t{i}" for i in range(16)], "text": texts,
                                       "label": [i // 2 for i in range(8)] * 2}, features=features)


@pytest.fixture(scope="module")
def tok():
    return minikit.load_tokenizer()


def _tiny_bert(tok, hidden: int, seed: int, **overrides):
    config = BertConfig(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
                        vocab_size=tok.vocab_size, max_position_embeddings=64, **overrides)
    return minikit.build_model(config, num_labels=4, seed=seed)


@pytest.fixture(scope="module")
def bench_models(tok):
    """Two tiny BERTs; large initial weights make them predict different classes for different texts."""
    return _tiny_bert(tok, 32, seed=0, initializer_range=0.5), _tiny_bert(tok, 64, seed=1, initializer_range=0.5)


@pytest.fixture(scope="module")
def bench(tiny_dataset, tok, bench_models, tmp_path_factory):
    small, wide = bench_models
    bench = Benchmark(tiny_dataset, tok, max_length=32, baseline="small", repeats=6, batch_size=8,
                      rapl_root=tmp_path_factory.mktemp("no-rapl"))
    bench.add("small", small).add("wide", wide)
    bench.run()
    return bench


# --- attributions ---------------------------------------------------------------------------------

TEXT = "Unbelievable results: the economy grew faster than expected."


# --- charts and the widget ------------------------------------------------------------------------


def test_charts_build(labels, probs, bench, tok, bench_models):
    y_true, y_pred = labels
    spec = charts.confusion_matrix_chart(confusion_matrix(y_true, y_pred, 5), LABELS).to_dict()
    assert len(spec["datasets"][next(iter(spec["datasets"]))]) == 25
    p, y = probs
    pr = charts.precision_recall_chart(precision_recall_curve_table(p, y, 0), threshold=0.3).to_dict()
    assert {"name": "threshold", "value": 0.3} in pr["params"]  # a slider can link to it
    assert isinstance(charts.benchmark_chart(bench.results, bench.baseline), alt.HConcatChart)
    attributions = token_attributions(bench_models[0], tok, TEXT)
    assert isinstance(charts.attribution_chart(attributions, top_k=5), alt.Chart)
    with pytest.raises(ValueError, match="label names"):
        charts.confusion_matrix_chart(np.zeros((3, 3)), LABELS)


def _profiles(rows) -> pd.DataFrame:
    base = dict(size_mb=40.0, seq_len=64, latency_p95_ms=0.0, batch_size=8, throughput=100.0, peak_memory_mb=80.0)
    out = []
    for name, params_m, p50 in rows:
        out.append(base | dict(name=name, params_m=params_m, latency_p50_ms=p50, latency_p95_ms=p50 * 1.2,
                               throughput=1000.0 / p50))
    return pd.DataFrame(out)


PROFILES = _profiles([("small", 14.4, 8.0), ("medium", 66.9, 35.0), ("big", 109.5, 60.0)])


def _datasets(spec: dict) -> list[list[dict]]:
    return list(spec.get("datasets", {}).values())


def _dataset_with(spec: dict, key: str) -> list[dict]:
    matches = [rows for rows in _datasets(spec) if rows and key in rows[0]]
    assert len(matches) == 1, f"expected one dataset with column {key!r}"
    return matches[0]


def test_latency_chart_data_and_layers():
    chart = charts.latency_chart(PROFILES, claims=claims.SIZE_CLASSES)
    assert isinstance(chart, alt.LayerChart)
    spec = chart.to_dict()
    points = _dataset_with(spec, "latency_p50_ms")
    assert [r["name"] for r in points] == ["small", "medium", "big"]
    assert [r["params_m"] for r in points] == [14.4, 66.9, 109.5]
    assert [r["latency_p50_ms"] for r in points] == [8.0, 35.0, 60.0]
    claimed = _dataset_with(spec, "claimed_ms")
    assert [r["claimed_ms"] for r in claimed] == [10.0, 40.0, 100.0]
    assert len(spec["layer"]) == 4
    assert "64 tokens" in spec["title"]
    assert spec["layer"][2]["encoding"]["x"]["scale"]["type"] == "log"


def test_latency_chart_without_claims():
    spec = charts.latency_chart(PROFILES, claims=None).to_dict()
    assert len(spec["layer"]) == 2
    assert all("claimed_ms" not in rows[0] for rows in _datasets(spec))


def test_throughput_chart():
    spec = charts.throughput_chart(PROFILES).to_dict()
    rows = _dataset_with(spec, "throughput")
    assert [r["name"] for r in rows] == ["small", "medium", "big"]
    assert spec["encoding"]["x"]["title"] == "examples / s at batch 8"
    assert spec["height"] == 24 * 3


def test_token_length_histogram_data_and_param():
    lengths = np.array([10, 40, 100, 130, 300, 600, 35])
    spec = charts.token_length_histogram(lengths, max_length=256, bin_width=32).to_dict()
    assert spec["params"] == [{"name": "max_length", "value": 256}]
    bins = _dataset_with(spec, "count")
    assert sum(r["count"] for r in bins) == len(lengths)
    assert all(r["count"] > 0 for r in bins)  # empty bins are left out
    assert all(r["end"] - r["start"] == 32 for r in bins)
    by_start = {r["start"]: r["count"] for r in bins}
    assert by_start == {0: 1, 32: 2, 96: 1, 128: 1, 288: 1, 576: 1}
    bars = spec["layer"][0]
    assert bars["encoding"]["color"]["condition"]["test"] == "datum.end > max_length"
    rule = spec["layer"][1]
    assert rule["mark"]["type"] == "rule"
    assert rule["encoding"]["x"]["field"] == "max_length"


def test_token_length_histogram_default_max_length():
    spec = charts.token_length_histogram(np.array([5, 6, 7])).to_dict()
    assert spec["params"][0]["value"] == 128


def test_class_balance_chart(prepared):
    splits, _ = prepared
    spec = charts.class_balance_chart(splits).to_dict()
    rows = _dataset_with(spec, "share")
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    assert {r["label"] for r in rows} == set(minikit.BBC_LABELS)
    for name, split in splits.items():
        mine = [r for r in rows if r["split"] == name]
        assert sum(r["count"] for r in mine) == len(split)
        assert sum(r["share"] for r in mine) == pytest.approx(1.0)
    assert spec["encoding"]["y"]["sort"] == ["train", "validation", "test"]


def test_charts_render_offline():
    # vl-convert bundles Vega: a spec that does not compile (e.g. an undefined parameter) fails here.
    for chart in (charts.token_length_histogram(np.array([10, 200, 400]), 128), charts.latency_chart(PROFILES, claims=claims.SIZE_CLASSES)):
        svg = vlc.vegalite_to_svg(chart.to_dict())
        assert svg.lstrip().startswith("<svg")
