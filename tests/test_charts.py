"""Charts: the data each chart draws, its parameters, and offline rendering (minikit.charts)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pytest
import vl_convert as vlc
from helpers import PROFILES, dataset_with, spec_datasets

import minikit
from minikit import charts, claims
from minikit.attribution import token_attributions
from minikit.metrics import (
    confusion_matrix,
    precision_recall_curve_table,
)

LABELS = ["business", "entertainment", "politics", "sport", "tech"]


# A text for the attribution chart.
TEXT = "Unbelievable results: the economy grew faster than expected."


# --- charts --------------------------------------------------------------------------------------------


def test_charts_build(labels, probs, bench, tokenizer, bench_models):
    y_true, y_pred = labels
    spec = charts.confusion_matrix_chart(confusion_matrix(y_true, y_pred, 5), LABELS).to_dict()
    assert len(spec["datasets"][next(iter(spec["datasets"]))]) == 25
    p, y = probs
    pr = charts.precision_recall_chart(precision_recall_curve_table(p, y, 0), threshold=0.3).to_dict()
    assert {"name": "threshold", "value": 0.3} in pr["params"]  # a slider can link to it
    assert isinstance(charts.benchmark_chart(bench.results, bench.baseline), alt.HConcatChart)
    attributions = token_attributions(bench_models[0], tokenizer, TEXT)
    assert isinstance(charts.attribution_chart(attributions, top_k=5), alt.Chart)
    with pytest.raises(ValueError, match="label names"):
        charts.confusion_matrix_chart(np.zeros((3, 3)), LABELS)


def test_latency_chart_data_and_layers():
    chart = charts.latency_chart(PROFILES, claims=claims.SIZE_CLASSES)
    assert isinstance(chart, alt.LayerChart)
    spec = chart.to_dict()
    points = dataset_with(spec, "latency_p50_ms")
    assert [r["name"] for r in points] == ["small", "medium", "big"]
    assert [r["params_m"] for r in points] == [14.4, 66.9, 109.5]
    assert [r["latency_p50_ms"] for r in points] == [8.0, 35.0, 60.0]
    claimed = dataset_with(spec, "claimed_ms")
    assert [r["claimed_ms"] for r in claimed] == [10.0, 40.0, 100.0]
    assert len(spec["layer"]) == 4
    assert "64 tokens" in spec["title"]
    assert spec["layer"][2]["encoding"]["x"]["scale"]["type"] == "log"


def test_latency_chart_without_claims():
    spec = charts.latency_chart(PROFILES, claims=None).to_dict()
    assert len(spec["layer"]) == 2
    assert all("claimed_ms" not in rows[0] for rows in spec_datasets(spec))


def test_throughput_chart():
    spec = charts.throughput_chart(PROFILES).to_dict()
    rows = dataset_with(spec, "throughput")
    assert [r["name"] for r in rows] == ["small", "medium", "big"]
    assert spec["encoding"]["x"]["title"] == "examples / s at batch 8"
    assert spec["height"] == 24 * 3


def test_token_length_histogram_data_and_param():
    lengths = np.array([10, 40, 100, 130, 300, 600, 35])
    spec = charts.token_length_histogram(lengths, max_length=256, bin_width=32).to_dict()
    assert spec["params"] == [{"name": "max_length", "value": 256}]
    bins = dataset_with(spec, "count")
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
    rows = dataset_with(spec, "share")
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
