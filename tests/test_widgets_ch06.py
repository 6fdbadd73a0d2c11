"""Chapter 6's widget, charts and exercise checks, on tiny random models (BERT, DistilBERT, MobileBERT)."""

from __future__ import annotations

import math

import altair as alt
import datasets
import numpy as np
import pandas as pd
import pytest
import torch

import minikit
from minikit import check, compression_charts, compression_widgets
from minikit.quantization import (
    fake_quantize,
    quantization_error_table,
    quantization_grid,
    quantization_params,
    quantized_size_mb,
)

ARCHS = ["bert", "distilbert", "mobilebert"]
WORDS = "market vote match film phone shares minister goal album software profit election".split()


@pytest.fixture(scope="module")
def texts() -> datasets.Dataset:
    rng = np.random.default_rng(0)
    rows = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 30)))) for _ in range(40)]
    return datasets.Dataset.from_dict({"text": rows, "label": [i % 3 for i in range(40)]})


@pytest.fixture(params=ARCHS)
def tiny(request, tokenizer):
    """A tiny random classifier whose vocabulary matches the real tokenizer's ids."""
    config = request.getfixturevalue(f"tiny_{request.param}_config")(vocab_size=tokenizer.vocab_size)
    return minikit.build_model(config, num_labels=3, seed=0)


@pytest.fixture
def explorer(tiny, tokenizer, texts):
    return compression_widgets.QuantizationExplorer(tiny, tokenizer, texts, n_examples=24, max_length=32, batch_size=8)


def _datasets(chart) -> list[list[dict]]:
    return list(chart.to_dict().get("datasets", {}).values())


# --- the widget ---------------------------------------------------------------------------------------


def test_update_matches_fake_quantize_and_the_error_table(explorer, tiny):
    point = explorer.update(3, "per-tensor", False)
    assert (point.bits, point.granularity, point.symmetric) == (3, "per-tensor", False)
    # The in-place working copy scores exactly what a fake_quantize copy scores, on the same subset.
    assert point.accuracy == explorer.accuracy(fake_quantize(tiny, 3, "per-tensor", False))
    assert point.size_mb == pytest.approx(quantized_size_mb(tiny, 3, "per-tensor", False))
    reference = quantization_error_table(tiny, 3, "per-tensor", False, include_embeddings=False)
    pd.testing.assert_frame_equal(point.errors[reference.columns.tolist()], reference, check_exact=False, rtol=1e-5)
    # The knobs moved with the call, and the label says what was measured.
    assert (explorer.slider.value, explorer.granularity.value, explorer.symmetry.value) == (3, "per-tensor", False)
    assert "3-bit per-tensor, asymmetric" in explorer.label.value and f"{point.accuracy:.1%}" in explorer.label.value
    assert explorer.status.value == ""  # the busy note is gone


def test_the_original_model_is_never_written(explorer, tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    explorer.update(2, "per-tensor", True)
    after = tiny.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert explorer.accuracy(tiny) == explorer.reference_accuracy
    # Only the Linear weights are copies; embeddings and LayerNorms are shared with the original.
    work, orig = dict(explorer.work.named_parameters()), dict(tiny.named_parameters())
    linear_weights = {f"{n}.weight" for n, m in tiny.named_modules() if isinstance(m, torch.nn.Linear)}
    for name, p in work.items():
        assert (p is orig[name]) == (name not in linear_weights), name


def test_results_are_cached_per_setting_and_redrawn(explorer, monkeypatch):
    explorer.update(4, "per-channel", True)
    sweep_before = _datasets(explorer.sweep_chart.chart)
    grid_before = _datasets(explorer.grid_chart.chart)
    error_before = _datasets(explorer.error_chart.chart)
    explorer.update(5, "per-channel", True)
    assert _datasets(explorer.sweep_chart.chart) != sweep_before
    assert _datasets(explorer.grid_chart.chart) != grid_before
    assert _datasets(explorer.error_chart.chart) != error_before
    assert {(4, "per-channel", True), (5, "per-channel", True)} <= set(explorer.cache)

    def refuse(*args, **kwargs):
        raise AssertionError("a cached setting must not be measured again")

    monkeypatch.setattr(explorer, "_measure", refuse)
    sweep = explorer.sweep_chart.chart
    again = explorer.update(4, "per-channel", True)
    assert again is explorer.cache[(4, "per-channel", True)]
    # Nothing new to plot: the sweep chart keeps its data and its ring moves through the parameters.
    assert explorer.sweep_chart.chart is sweep
    assert (explorer.sweep_chart.params.bits, explorer.sweep_chart.params.scheme) == (4, "per-channel, symmetric")
    assert _datasets(explorer.grid_chart.chart) == grid_before and _datasets(explorer.error_chart.chart) == error_before


def test_moving_a_knob_runs_update(explorer):
    explorer.slider.value = 2
    assert (2, "per-channel", True) in explorer.cache
    explorer.granularity.value = "per-tensor"
    assert (2, "per-tensor", True) in explorer.cache
    explorer.symmetry.value = False
    assert (2, "per-tensor", False) in explorer.cache
    assert "2-bit per-tensor, asymmetric" in explorer.label.value


def test_sweep_fills_the_table(explorer):
    table = explorer.sweep(bits=(2, 4, 8), granularities=("per-tensor",), symmetric=(True, False))
    assert len(table) == len(explorer.cache) >= 6
    rows = table.query("granularity == 'per-tensor'").set_index(["bits", "symmetric"])
    assert rows.loc[(2, True), "size_mb"] < rows.loc[(4, True), "size_mb"] < rows.loc[(8, True), "size_mb"]
    assert rows.loc[(8, True), "size_mb"] < explorer.reference_size_mb
    assert table["accuracy"].between(0, 1).all()
    assert set(table["scheme"]) >= {"per-tensor, symmetric", "per-tensor, asymmetric"}


def test_the_grid_chart_shows_the_chosen_row_and_grid(explorer):
    point = explorer.update(3, "per-channel", False)
    w = explorer.originals[explorer.layer].detach()
    grid = quantization_grid(w, 3, "per-channel", False, channel=explorer.channel)
    data = _datasets(explorer.grid_chart.chart)
    levels = next(rows for rows in data if rows and "level" in rows[0])
    assert np.allclose(sorted(r["level"] for r in levels), grid)  # per-channel asymmetric: all 8 levels span the row
    bars = next(rows for rows in data if rows and "count" in rows[0])
    assert sum(r["count"] for r in bars) == w.shape[1]
    assert f"{point.bits}-bit" in explorer.grid_chart.chart.title


@pytest.mark.parametrize("bits, granularity", [(1, "per-channel"), (9, "per-channel"), (4, "per-row")])
def test_bad_settings_are_refused_and_change_nothing(explorer, bits, granularity):
    explorer.update(6, "per-channel", True)
    with pytest.raises(ValueError, match="bits=|granularity="):
        explorer.update(bits, granularity, True)
    assert explorer.slider.value == 6 and explorer.status.value == ""


def test_bad_layer_and_empty_subset_are_refused(tiny, tokenizer, texts):
    with pytest.raises(ValueError, match="not a Linear layer"):
        compression_widgets.QuantizationExplorer(tiny, tokenizer, texts, n_examples=8, layer="no.such.layer")
    with pytest.raises(ValueError, match="n_examples=0"):
        compression_widgets.QuantizationExplorer(tiny, tokenizer, texts, n_examples=0)


# --- charts ---------------------------------------------------------------------------------------------


def test_grid_chart_leaves_out_levels_outside_the_weights():
    w = np.linspace(-0.1, 0.1, 200)
    grid = np.linspace(-1.0, 1.0, 15)  # a per-tensor grid stretched by an outlier elsewhere
    chart = compression_charts.quantization_grid_chart(w, grid)
    levels = next(rows for rows in _datasets(chart) if rows and "level" in rows[0])
    assert [round(r["level"], 6) for r in levels] == [0.0]  # only one of the 15 levels falls among these weights
    assert "1 of 15 grid levels" in chart.title


def test_error_chart_puts_matrices_in_layer_columns(tiny):
    table = quantization_error_table(tiny, 4, "per-tensor")
    rows = next(r for r in _datasets(compression_charts.quantization_error_chart(table)) if r and "sqnr_db" in r[0])
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
    rows = next(r for r in _datasets(chart) if r and {"accuracy_pct", "bits"} <= set(r[0]))
    assert [r["accuracy_pct"] for r in rows if (r["bits"], r["scheme"]) == (4, "b")] == [70.0]


# --- exercise checks ------------------------------------------------------------------------------------


def test_scale_and_zero_point():
    x = [-0.3, 0.0, 0.45, 1.2]
    scale, zero_point, _, _ = quantization_params(torch.tensor(x), 4, "per-tensor", symmetric=False)
    assert check.scale_and_zero_point((float(scale), float(zero_point)), x)
    assert check.scale_and_zero_point((0.1, 3), x)
    assert "steps" in check.scale_and_zero_point((1.5 / 16, 3), x).message  # 16 levels, but 15 steps
    assert "sign" in check.scale_and_zero_point((0.1, -3), x).message
    assert not check.scale_and_zero_point(None, x)


def test_packed_layer_bytes():
    layer = torch.nn.Linear(384, 1536)
    weights, scales, bias = math.ceil(1536 * 384 * 3 / 8), 1536 * 4, 1536 * 4
    assert check.packed_layer_bytes(weights + scales + bias, layer, bits=3)
    for short in (weights + bias, weights + scales):
        assert "one part is missing" in check.packed_layer_bytes(short, layer, bits=3).message
    assert "bytes" in check.packed_layer_bytes(1536 * 384 * 3, layer, bits=3).message
    assert not check.packed_layer_bytes(123, layer, bits=3)


def test_first_bits_losing():
    acc = {8: 0.95, 7: 0.95, 6: 0.94, 5: 0.90, 4: 0.70, 3: 0.40, 2: 0.20}
    table = pd.DataFrame({"bits": list(acc), "granularity": "per-tensor", "symmetric": True, "accuracy": list(acc.values())})
    assert check.first_bits_losing(5, table, reference_accuracy=0.95)  # 6 bits: −1 point; 5 bits: −5
    assert "already" in check.first_bits_losing(4, table, 0.95).message
    assert "still within" in check.first_bits_losing(6, table, 0.95).message
    assert "sweep" in check.first_bits_losing(5, table.iloc[:3], 0.95).message
