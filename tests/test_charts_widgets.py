"""Charts, widgets and exercise checks: what the notebooks show and grade."""

from __future__ import annotations

import warnings

import altair as alt
import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc

import minikit
from minikit import charts, check, claims, widgets
from minikit.data import normalize_text


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


# --- charts ------------------------------------------------------------------------------------------


def test_size_class_of():
    assert claims.size_class_of(14.4) == "5–20 M"
    assert claims.size_class_of(5.0) == "5–20 M"
    assert claims.size_class_of(20.0) is None  # between classes
    assert claims.size_class_of(66.9) == "50–100 M"
    assert claims.size_class_of(700) == "500 M+"
    assert claims.size_class_of(1.0) is None


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


# --- widgets -----------------------------------------------------------------------------------------


LENGTHS = np.array([50, 100, 150, 200, 250, 300, 600, 700])


def test_truncation_explorer_update():
    explorer = widgets.TruncationExplorer(LENGTHS, max_length=128)
    assert explorer.slider.value == 128
    assert "<b>75.0%</b> of articles are truncated at 128 tokens" in explorer.label.value
    share = explorer.update(256)
    assert share == pytest.approx(np.mean(LENGTHS > 256))
    assert share == 0.375  # 300, 600 and 700 of 8 lengths
    assert "<b>37.5%</b>" in explorer.label.value
    assert "256 tokens" in explorer.label.value
    kept = np.minimum(LENGTHS, 256).sum() / LENGTHS.sum()
    assert f"<b>{kept:.1%}</b> of all tokens" in explorer.label.value


def test_truncation_explorer_slider_drives_label_and_chart():
    explorer = widgets.TruncationExplorer(LENGTHS, max_length=128)
    explorer.slider.value = 512
    assert "<b>25.0%</b> of articles are truncated at 512 tokens" in explorer.label.value
    assert explorer.chart.params.max_length == 512
    assert isinstance(explorer.chart, alt.JupyterChart)


def test_model_explorer_with_given_profiles_does_not_measure(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("compare_models must not run when profiles are given")

    monkeypatch.setattr(widgets, "compare_models", refuse)
    explorer = widgets.ModelExplorer(names=("tinybert-4",), seq_len=64, batch_size=8, profiles=PROFILES)
    assert explorer.profiles is PROFILES
    assert explorer.models.value == ("tinybert-4",)
    assert (explorer.seq_len.value, explorer.batch_size.value) == (64, 8)
    rows = _dataset_with(explorer.chart.chart.to_dict(), "latency_p50_ms")
    assert [r["name"] for r in rows] == ["small", "medium", "big"]
    assert set(explorer.models.options) == set(minikit.CATALOG)


def test_model_explorer_update_with_nothing_selected():
    explorer = widgets.ModelExplorer(profiles=PROFILES)
    explorer.models.value = ()
    assert explorer.update() is PROFILES
    assert "Select at least one model" in explorer.status.value


def test_model_explorer_update_measures_and_redraws():
    explorer = widgets.ModelExplorer(names=("tinybert-4",), seq_len=32, batch_size=1, profiles=PROFILES)
    before = _dataset_with(explorer.chart.chart.to_dict(), "latency_p50_ms")
    explorer.models.value = ("tinybert-4",)
    explorer.seq_len.value = 32
    explorer.batch_size.value = 1
    new = explorer.update()
    assert new["name"].tolist() == ["tinybert-4"]
    assert new["seq_len"].tolist() == [32] and new["batch_size"].tolist() == [1]
    assert new.loc[0, "params_m"] == pytest.approx(14.35, rel=0.01)
    assert explorer.status.value == f"measured at {new.loc[0, 'measured_at']}"
    assert not explorer.button.disabled
    again = explorer.update()  # a second press measures again rather than showing the cached table
    assert again.loc[0, "measured_at"] >= new.loc[0, "measured_at"]
    assert again.loc[0, "latency_p50_ms"] != new.loc[0, "latency_p50_ms"]
    after = _dataset_with(explorer.chart.chart.to_dict(), "latency_p50_ms")
    assert after != before
    assert [r["name"] for r in after] == ["tinybert-4"]
    bars = _dataset_with(explorer.bars.chart.to_dict(), "throughput")
    assert [r["name"] for r in bars] == ["tinybert-4"]


# --- exercise checks ---------------------------------------------------------------------------------


def test_check_result_behaves_like_a_bool():
    good, bad = check.CheckResult(True, "fine"), check.CheckResult(False, "hint")
    assert bool(good) and not bool(bad)
    assert repr(good).startswith("✅ Correct. ") and repr(bad).startswith("❌ Not yet. ")


def test_encoder_layer_params():
    h, f = 384, 1536  # MiniLM-L6: hidden and feed-forward sizes
    attention = 4 * (h * h + h)  # Q, K, V, output projections with biases
    ffn = (h * f + f) + (f * h + h)
    layer_norms = 2 * (2 * h)
    truth = attention + ffn + layer_norms
    assert truth == 1_774_464
    result = check.encoder_layer_params(truth)
    assert result.passed
    assert "1,774,464" in result.message
    wrong = check.encoder_layer_params(truth - 2 * h)  # forgot a LayerNorm
    assert not wrong.passed
    assert "off by -768" in wrong.message
    assert "LayerNorm" in wrong.message


@pytest.mark.parametrize("fn, args", [
    (check.encoder_layer_params, ()),
    (check.faster_at_batch_1, (PROFILES,)),
    (check.share_over, (LENGTHS,)),
    (check.raw_split_leaks, ()),
])
def test_checks_reject_none(fn, args):
    result = fn(None, *args)
    assert not result.passed
    assert "Replace the `None`" in result.message
    assert not fn(..., *args).passed


def test_faster_at_batch_1():
    profiles = _profiles([("mobilebert", 24.6, 30.0), ("minilm-l6", 22.7, 10.0)])
    result = check.faster_at_batch_1("minilm-l6", profiles)
    assert result.passed
    assert "mobilebert: 24.6 M params, 30.0 ms" in result.message
    assert check.faster_at_batch_1("  MiniLM-L6 ", profiles).passed
    wrong = check.faster_at_batch_1("mobilebert", profiles)
    assert not wrong.passed
    assert "number of layers" in wrong.message
    flipped = _profiles([("mobilebert", 24.6, 9.0), ("minilm-l6", 22.7, 10.0)])
    assert check.faster_at_batch_1("mobilebert", flipped).passed


def test_faster_at_batch_1_missing_rows():
    result = check.faster_at_batch_1("minilm-l6", _profiles([("minilm-l6", 22.7, 10.0)]))
    assert not result.passed
    assert "Measure both 'mobilebert' and 'minilm-l6'" in result.message


def test_share_over():
    truth = float(np.mean(LENGTHS > 256))
    assert truth == 3 / 8
    assert check.share_over(truth, LENGTHS, max_length=256).passed
    assert check.share_over(0.3754, LENGTHS, max_length=256).passed  # within rounding
    percent = check.share_over(37.5, LENGTHS, max_length=256)
    assert not percent.passed and "not a percentage" in percent.message
    wrong = check.share_over(5 / 8, LENGTHS, max_length=256)  # the share kept, not the share cut
    assert not wrong.passed and "strictly greater" in wrong.message
    assert check.share_over(np.mean(LENGTHS > 128), LENGTHS, max_length=128).passed


def test_raw_split_leaks(bbc):
    # Independent count: test articles whose normalized text also occurs in train.
    splits = minikit.split_dataset(bbc, seed=42)
    train = {normalize_text(t, lowercase=True) for t in splits["train"]["text"]}
    truth = sum(normalize_text(t, lowercase=True) in train for t in splits["test"]["text"])
    assert truth > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minikit.DataWarning)
        result = check.raw_split_leaks(truth)
        assert result.passed, result.message
        assert f"{truth} test articles" in result.message
        wrong = check.raw_split_leaks(truth + 1)
    assert not wrong.passed
    assert "check_leakage" in wrong.message
