"""Widgets (minikit.widgets): each wires ipywidgets to a function and a chart; tested without a browser."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest

import minikit
from minikit import widgets
from minikit.metrics import (
    precision_recall_at_threshold,
    precision_recall_curve_table,
)


@pytest.fixture(scope="module")
def probs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y]  # informative, far from perfect
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), y


def test_threshold_explorer(probs):
    p, y = probs
    explorer = widgets.ThresholdExplorer(p, y, ["a", "b", "c", "d"])
    scores = explorer.update(2, 0.4)
    assert scores == precision_recall_at_threshold(p, y, 2, 0.4)
    assert (explorer.dropdown.value, explorer.slider.value) == (2, 0.4) and "precision" in explorer.label.value
    assert explorer.table.equals(precision_recall_curve_table(p, y, 2))
    explorer.slider.value = 0.7  # the chart's parameter follows the slider (re-linked after the class change)
    assert explorer.chart.params.threshold == 0.7 and "0.70" in explorer.label.value


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


# --- the budget picker ------------------------------------------------------------------------------


@pytest.fixture
def results():
    return pd.DataFrame({"name": ["fp32", "int8", "student", "student int8"],
                         "accuracy": [0.978, 0.975, 0.981, 0.970],
                         "latency_p50_ms": [16.0, 11.0, 4.0, 3.0],
                         "peak_memory_mb": [300.0, 120.0, 60.0, 30.0]})


# --- chapter 10's widgets ---------------------------------------------------------------------------


@pytest.fixture
def curve():
    return pd.DataFrame({"threshold": [0.0, 0.9, 0.99, 1.0], "mean_ms": [3.0, 5.0, 8.0, 16.0], "full_ms": 16.0,
                         "speedup": [5.3, 3.2, 2.0, 1.0], "mean_layers_timed": [1.0, 1.7, 2.6, 6.0],
                         "accuracy": [0.95, 0.97, 0.978, 0.978], "mean_layers": [1.0, 1.7, 2.6, 6.0]})


def test_early_exit_explorer_redraws_for_each_grid_threshold(curve):
    explorer = minikit.widgets.EarlyExitExplorer(curve, threshold=0.99)
    assert "2.60</b> of 6 layers" in explorer.label.value and "2.00×" in explorer.label.value
    explorer.slider.value = 0.0
    assert "95.0%" in explorer.label.value and "5.30×" in explorer.label.value
    ringed = [d for d in explorer.chart.chart.to_dict()["datasets"].values() if any(r.get("is_current") for r in d)]
    assert ringed and [r["threshold"] for r in ringed[0] if r["is_current"]] == [0.0]
    explorer.update(0.9)
    assert explorer.slider.value == 0.9 and "3.20×" in explorer.label.value
    assert len(explorer.seconds) == 2
    with pytest.raises(ValueError, match="not on the measured grid"):
        minikit.widgets.EarlyExitExplorer(curve, threshold=0.95)


def test_budget_picker_moves_the_choice_and_explains_no_fit(results):
    picker = minikit.widgets.BudgetPicker(results, latency_budget_ms=20, memory_budget_mb=500)
    assert picker.pick.chosen == "student" and "student" in picker.label.value
    picker.memory.value = 50
    assert picker.pick.chosen == "student int8"
    picker.latency.value = 1.0
    assert picker.pick is None and "Closest" in picker.label.value and "student int8" in picker.label.value
    reasons = [r for d in picker.chart.chart.to_dict()["datasets"].values() for r in d if "reason" in r]
    assert reasons and {r["reason"] for r in reasons} == {"over budget"}
    assert picker.update(20, 500).count("student") == 1 and picker.pick.chosen == "student"
    with pytest.raises(ValueError, match="budget"):
        minikit.widgets.BudgetPicker(results, latency_budget_ms=0)
