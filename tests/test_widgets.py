"""Widgets (minikit.widgets): each wires ipywidgets to a function and a chart; tested without a browser."""

from __future__ import annotations

import time

import altair as alt
import numpy as np
import pytest
from helpers import LENGTHS, PROFILES, dataset_with, echo

import minikit
from minikit import widgets
from minikit.metrics import (
    precision_recall_at_threshold,
    precision_recall_curve_table,
)


def test_threshold_explorer(probs):
    p, y = probs
    explorer = widgets.ThresholdExplorer(p, y, ["a", "b", "c", "d"])
    scores = explorer.update(2, 0.4)
    assert scores == precision_recall_at_threshold(p, y, 2, 0.4)
    assert (explorer.dropdown.value, explorer.slider.value) == (2, 0.4) and "precision" in explorer.label.value
    assert explorer.table.equals(precision_recall_curve_table(p, y, 2))
    explorer.slider.value = 0.7  # the chart's parameter follows the slider (re-linked after the class change)
    assert explorer.chart.params.threshold == 0.7 and "0.70" in explorer.label.value


# --- chapters 2 and 4: truncation and model explorers ------------------------------------------------


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
    rows = dataset_with(explorer.chart.chart.to_dict(), "latency_p50_ms")
    assert [r["name"] for r in rows] == ["small", "medium", "big"]
    assert set(explorer.models.options) == set(minikit.CATALOG)


def test_model_explorer_update_with_nothing_selected():
    explorer = widgets.ModelExplorer(profiles=PROFILES)
    explorer.models.value = ()
    assert explorer.update() is PROFILES
    assert "Select at least one model" in explorer.status.value


def test_model_explorer_update_measures_and_redraws():
    explorer = widgets.ModelExplorer(names=("tinybert-4",), seq_len=32, batch_size=1, profiles=PROFILES)
    before = dataset_with(explorer.chart.chart.to_dict(), "latency_p50_ms")
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
    after = dataset_with(explorer.chart.chart.to_dict(), "latency_p50_ms")
    assert after != before
    assert [r["name"] for r in after] == ["tinybert-4"]
    bars = dataset_with(explorer.bars.chart.to_dict(), "throughput")
    assert [r["name"] for r in bars] == ["tinybert-4"]


# --- chapter 10's widgets ---------------------------------------------------------------------------


def test_early_exit_explorer_redraws_for_each_grid_threshold(curve, monkeypatch):
    explorer = minikit.widgets.EarlyExitExplorer(curve, threshold=0.99)
    assert "2.60</b> of 6 layers" in explorer.label.value and "2.00×" in explorer.label.value
    explorer.slider.value = 0.0
    assert "95.0%" in explorer.label.value and "5.30×" in explorer.label.value
    ringed = [d for d in explorer.chart.chart.to_dict()["datasets"].values() if any(r.get("is_current") for r in d)]
    assert ringed and [r["threshold"] for r in ringed[0] if r["is_current"]] == [0.0]
    explorer.update(0.9)
    assert explorer.slider.value == 0.9 and "3.20×" in explorer.label.value
    assert len(explorer.seconds) == 2
    zero = explorer._charts[0.0]
    monkeypatch.setattr(minikit.charts, "early_exit_chart", lambda *a: pytest.fail("a setting seen before was rebuilt"))
    explorer.slider.value = 0.0  # back to a threshold seen before: its chart is reused, the label redrawn
    assert explorer.chart.chart is zero and "5.30×" in explorer.label.value
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
    picker.latency.value = 20.0
    first, label = picker.chart.chart, picker.label.value
    picker.latency.value = 1.0
    picker.latency.value = 20.0  # budgets seen before: the chart built then is shown again
    assert picker.chart.chart is first and picker.label.value == label
    with pytest.raises(ValueError, match="budget"):
        minikit.widgets.BudgetPicker(results, latency_budget_ms=0)


# --- chapter 8's widget --------------------------------------------------------


def _slow_echo(texts):
    time.sleep(0.03)  # the same time for a batch of 1 or 8: batching pays
    return echo(texts)


def test_batching_explorer_load_tests_each_setting_once_and_charts_them():
    explorer = minikit.widgets.BatchingExplorer(_slow_echo, [f"t{i}" for i in range(8)], clients=8, requests=32,
                                                max_batch_size=8, max_wait_ms=2.0)
    first = explorer.chart.chart.to_dict()
    off = explorer.update(1, 5.0)  # batching off: the wait does not matter, so it is stored as 0
    assert off["setting"] == "batching off" and off["max_wait_ms"] == 0.0
    assert off["ok"] == off["sent"] == 32 and off["errors"] == 0
    assert explorer.chart.chart.to_dict() != first
    assert explorer.update(1, 20.0) is off  # the same setting: recalled, not measured again
    table = explorer.table()
    assert list(table["setting"]) == ["batching off", "batch ≤ 8, wait ≤ 2 ms"]
    assert table.set_index("setting").loc["batch ≤ 8, wait ≤ 2 ms", "mean_batch_size"] > 1  # requests were grouped
    assert "requests/s" in explorer.label.value and (explorer.batch.value, explorer.wait.value) == (1, 20.0)
    with pytest.raises(ValueError, match="non-empty list"):
        minikit.widgets.BatchingExplorer(_slow_echo, "one string")
