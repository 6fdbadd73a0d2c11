"""Chapters 5–7's charts (minikit.compression_charts): the data each draws."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest
from helpers import chart_datasets

from minikit import compression_charts, pruning
from minikit.quantization import (
    quantization_error_table,
)


def test_heatmap_from_sparsity_table(random_bert4):
    table = pruning.sparsity_table(pruning.magnitude_prune(random_bert4, 0.6))
    rows = chart_datasets(compression_charts.pruning_heatmap(table))[0]
    shares = pd.DataFrame(rows)
    weighted = (table["params"] * table["sparsity"]).sum() / table["params"].sum()
    assert weighted == pytest.approx(0.6, abs=1e-3)
    assert len(shares) == table.groupby(["layer", "role"]).ngroups


# --- charts ---------------------------------------------------------------------------------------------


def test_grid_chart_leaves_out_levels_outside_the_weights():
    w = np.linspace(-0.1, 0.1, 200)
    grid = np.linspace(-1.0, 1.0, 15)  # a per-tensor grid stretched by an outlier elsewhere
    chart = compression_charts.quantization_grid_chart(w, grid)
    levels = next(rows for rows in chart_datasets(chart) if rows and "level" in rows[0])
    assert [round(r["level"], 6) for r in levels] == [0.0]  # only one of the 15 levels falls among these weights
    assert "1 of 15 grid levels" in chart.title


def test_error_chart_puts_matrices_in_layer_columns(family_model):
    table = quantization_error_table(family_model, 4, "per-tensor")
    rows = next(r for r in chart_datasets(compression_charts.quantization_error_chart(table)) if r and "sqnr_db" in r[0])
    assert len(rows) == len(table)
    assert {r["column"] for r in rows} == {"layer 0", "layer 1", "outside"}
    inside = [r for r in rows if r["column"] != "outside"]
    assert all(".layer." not in r["role"] and not r["role"][0].isdigit() for r in inside)


def test_sweep_chart_rings_the_current_setting():
    table = pd.DataFrame({"bits": [4, 8, 4, 8], "scheme": ["a", "a", "b", "b"], "accuracy": [0.5, 0.9, 0.7, 0.9],
                          "size_mb": [10.0, 20.0, 10.1, 20.1]})
    chart = compression_charts.quantization_sweep_chart(table, current=(4, "b"), reference_accuracy=0.95, reference_size_mb=80.0)
    assert isinstance(chart, alt.HConcatChart)
    spec = chart.to_dict()
    assert {p["name"]: p["value"] for p in spec["params"]} == {"bits": 4, "scheme": "b"}
    filters = [t["filter"] for panel in spec["hconcat"] for layer in panel["layer"] for t in layer.get("transform", [])]
    assert filters == ["datum.bits == bits && datum.scheme == scheme"] * 2  # one ring per panel
    rows = next(r for r in chart_datasets(chart) if r and {"accuracy_pct", "bits"} <= set(r[0]))
    assert [r["accuracy_pct"] for r in rows if (r["bits"], r["scheme"]) == (4, "b")] == [70.0]
