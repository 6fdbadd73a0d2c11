"""Chapter 5's PruningExplorer, its charts and its exercise checks, on tiny random models (seconds)."""

from __future__ import annotations

import datasets
import pandas as pd
import pytest
import torch
import vl_convert as vlc

import minikit
from minikit import check, compression_charts, compression_widgets, pruning
from minikit.compression_widgets import PRUNING_METHODS, PruningExplorer

TEXTS = ["stocks fell as the bank raised rates", "the team won the cup final", "parliament passed the bill",
         "the film opened to good reviews", "a new phone chip was unveiled", "shares rose after profits",
         "the striker scored twice", "ministers met to discuss the budget"]


@pytest.fixture
def data() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": TEXTS, "label": [i % 3 for i in range(len(TEXTS))]})


def tiny(config, **overrides):
    return minikit.build_model(config(vocab_size=30522, **overrides), num_labels=3, seed=0)  # the real tokenizer's ids


@pytest.fixture
def model(tiny_bert_config):
    return tiny(tiny_bert_config, num_hidden_layers=4, num_attention_heads=4)


@pytest.fixture
def explorer(model, tokenizer, data) -> PruningExplorer:
    return PruningExplorer(model, tokenizer, data, n_examples=6, max_length=16, latency_length=16)


def chart_data(chart) -> list[list[dict]]:
    return list(chart.to_dict()["datasets"].values())


def test_initial_point_and_widgets(explorer):
    point = explorer.current
    assert (point.method, point.amount) == ("global magnitude", 0.5)
    assert point.removed == pytest.approx(0.5, abs=1e-3)
    assert 0 <= point.accuracy <= 1 and point.latency_ms > 0
    assert explorer.n_examples == 6 and explorer.slider.value == 0.5 and explorer.method.value == "global magnitude"
    assert not explorer.slider.disabled and explorer.status.value == ""  # the busy label is cleared
    assert "<b>global magnitude</b>, 50%" in explorer.label.value
    assert set(explorer.method.options) == set(PRUNING_METHODS)


def test_magnitude_path_matches_magnitude_prune(explorer, model):
    before = [w.clone() for w in explorer.originals]
    for method, scope in [("global magnitude", "global"), ("per-layer magnitude", "layer")]:
        explorer.update(method, 0.7)
        reference = pruning.magnitude_prune(model, 0.7, scope)
        for w, (_, _, m) in zip(explorer.targets, pruning.encoder_linears(reference)):
            assert torch.equal(w, m.weight)
    assert all(torch.equal(a, b) for a, b in zip(before, explorer.originals))  # the model itself is untouched
    assert pruning.pruning_report(model).encoder_sparsity == 0


def test_unstructured_changes_nonzeros_not_params(explorer, model):
    point = explorer.update("global magnitude", 0.9)
    assert point.params_m == pytest.approx(minikit.count_parameters(model) / 1e6)
    assert point.nonzero_m < point.params_m
    assert point.removed == pytest.approx(0.9, abs=1e-3)
    assert point.dense_mb == pytest.approx(explorer.measure("heads", 0.0).dense_mb)
    assert point.sparse_mb < point.dense_mb  # at 90 % zeros CSR wins
    measured = pruning.sparse_size_mb(pruning.magnitude_prune(model, 0.9))
    assert point.sparse_mb == pytest.approx(measured, rel=0.05)  # torch.save adds only its headers
    heat = point.heatmap
    assert set(heat.columns) >= {"layer", "role", "removed"}
    total = (heat["params"] * heat["removed"]).sum() / heat["params"].sum()
    assert total == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("method", ["heads", "FFN neurons", "layers"])
def test_structured_methods_shrink_the_model(explorer, method):
    base = explorer.measure(method, 0.0)
    point = explorer.update(method, 0.5)
    assert point.params_m < base.params_m and point.dense_mb < base.dense_mb
    assert point.nonzero_m == pytest.approx(point.params_m, rel=0.01)  # nothing zeroed, things removed
    assert 0 < point.removed < 1
    assert point.sparse_mb == pytest.approx(point.dense_mb)  # no zeros, so CSR never pays
    if method == "layers":  # 2 of 4 layers, the middle ones, are gone entirely
        gone = point.heatmap.groupby("layer")["removed"].mean()
        assert sorted(gone[gone == 1].index) == [1, 2]
        assert point.removed == pytest.approx(0.5)
    if method == "heads":
        assert point.heatmap.set_index("role").loc[["ffn-up", "ffn-down"], "removed"].eq(0).all()


def test_cache_and_shared_keys(explorer, monkeypatch):
    zero = explorer.measure("global magnitude", 0.0)
    first = explorer.update("layers", 0.5)  # 2 of 4 layers
    monkeypatch.setattr(explorer, "_pruned", lambda *a: pytest.fail("a cached setting was measured again"))
    assert explorer.update("layers", 0.5) is first
    same = explorer.update("layers", 0.55)  # round(0.55 · 4) = 2 layers as well: the same model
    assert (same.amount, same.accuracy, same.latency_ms) == (0.55, first.accuracy, first.latency_ms)
    for method in PRUNING_METHODS:  # every method at 0 is the unpruned model, measured once
        point = explorer.measure(method, 0.0)
        assert (point.method, point.accuracy, point.dense_mb) == (method, zero.accuracy, zero.dense_mb)


def test_table_starts_every_line_at_zero(explorer):
    explorer.measure("global magnitude", 0.0)
    explorer.update("FFN neurons", 0.25)
    table = explorer.table()
    assert list(table.columns) == compression_widgets.POINT_COLUMNS
    for method in ("global magnitude", "FFN neurons"):
        rows = table[table["method"] == method].sort_values("removed")
        assert rows["amount"].iloc[0] == 0 and rows["removed"].iloc[0] == 0


def test_slider_and_dropdown_redraw(explorer):
    before_chart, before_heat = chart_data(explorer.chart.chart), chart_data(explorer.heatmap.chart)
    explorer.slider.value = 0.55  # what one keyboard step does in the browser
    assert (explorer.current.method, explorer.current.amount) == ("global magnitude", 0.55)
    assert chart_data(explorer.chart.chart) != before_chart
    assert chart_data(explorer.heatmap.chart) != before_heat
    explorer.method.value = "FFN neurons"
    assert explorer.current.method == "FFN neurons" and explorer.current.amount == 0.55
    assert "FFN neurons" in explorer.heatmap.chart.to_dict()["title"]


@pytest.mark.parametrize("amount", [1.0, -0.1, 1.5, True])
def test_bad_amounts_raise(explorer, amount):
    with pytest.raises(ValueError, match="expected a fraction in"):
        explorer.update("global magnitude", amount)
    assert explorer.status.value == "" and not explorer.slider.disabled  # never left looking busy


def test_bad_method_raises(explorer):
    with pytest.raises(ValueError, match="method='magic'"):
        explorer.measure("magic", 0.5)


@pytest.mark.parametrize("method", list(PRUNING_METHODS))
def test_pruned_model_is_what_was_measured(explorer, model, method):
    point = explorer.measure(method, 0.5)
    pruned = explorer.pruned_model(method, 0.5)
    assert pruned is not explorer.work and pruned is not model
    assert minikit.count_parameters(pruned, nonzero=True) / 1e6 == pytest.approx(point.nonzero_m)
    assert explorer.accuracy(pruned) == point.accuracy
    assert explorer.pruned_model(method, 0.0) is not model


def test_sweep_rows(explorer):
    table = explorer.sweep([0.0, 0.5], methods=["heads", "layers"])
    assert table[["method", "amount"]].values.tolist() == [["heads", 0.0], ["heads", 0.5], ["layers", 0.0],
                                                           ["layers", 0.5]]


@pytest.mark.parametrize("arch", ["distilbert", "mobilebert"])
def test_other_architectures(arch, request, tokenizer, data):
    model = tiny(request.getfixturevalue(f"tiny_{arch}_config"))
    explorer = PruningExplorer(model, tokenizer, data, n_examples=4, max_length=16, latency_length=16)
    for method in PRUNING_METHODS:
        point = explorer.update(method, 0.5)
        assert 0 < point.removed < 1, method
        assert point.nonzero_m < explorer.measure(method, 0.0).nonzero_m, method


def test_charts_render_offline(explorer):
    explorer.update("heads", 0.5)
    for chart in (compression_charts.pruning_tradeoff_chart(explorer.table(), explorer.current),
                  compression_charts.pruning_heatmap(explorer.current.heatmap)):
        assert vlc.vegalite_to_svg(chart.to_json()).startswith("<svg")
    rows = chart_data(compression_charts.pruning_tradeoff_chart(explorer.table(), explorer.current))[0]
    assert sum(r["current"] for r in rows) == 5  # four panels, size drawn twice (dense, CSR)


def test_heatmap_from_sparsity_table(model):
    table = pruning.sparsity_table(pruning.magnitude_prune(model, 0.6))
    rows = chart_data(compression_charts.pruning_heatmap(table))[0]
    shares = pd.DataFrame(rows)
    weighted = (table["params"] * table["sparsity"]).sum() / table["params"].sum()
    assert weighted == pytest.approx(0.6, abs=1e-3)
    assert len(shares) == table.groupby(["layer", "role"]).ngroups


# --- exercise checks ---------------------------------------------------------------------------------

W = torch.tensor([[0.5, -0.1, 0.3, -0.9], [0.05, 0.2, -0.4, 0.7], [-0.6, 0.15, 0.8, -0.25]])


def test_pruning_threshold_check():
    assert check.pruning_threshold(0.3, W, 0.5)  # |w| sorted: .05 .1 .15 .2 .25 .3 | .4 …
    assert "Off by one" in repr(check.pruning_threshold(0.4, W, 0.5))
    assert not check.pruning_threshold(0.25, W, 0.5)
    assert not check.pruning_threshold(None, W, 0.5)


def test_csr_bytes_check():
    pruned = W * (W.abs() > 0.3)  # 6 non-zeros in 3 rows
    assert check.csr_bytes(6 * 4 + 6 * 4 + 4 * 4, pruned)
    assert "row pointers" in repr(check.csr_bytes(48, pruned))
    assert "rows + 1" in repr(check.csr_bytes(48 + 12, pruned))
    assert "int32" in repr(check.csr_bytes(6 * 4 + 6 * 8 + 4 * 8, pruned))
    assert not check.csr_bytes(1, W.flatten())


def test_most_pruned_layer_check(model):
    with torch.no_grad():  # make layer 2 the one with the smallest weights
        for layer, _, m in pruning.encoder_linears(model):
            m.weight.mul_(0.1 if layer == 2 else 1.0)
    assert check.most_pruned_layer(2, model, 0.5)
    assert not check.most_pruned_layer(0, model, 0.5)
    table = pruning.sparsity_table(pruning.magnitude_prune(model, 0.5))
    per_layer = table.assign(zeros=table["params"] - table["nonzero"]).groupby("layer")[["zeros", "params"]].sum()
    assert int((per_layer["zeros"] / per_layer["params"]).idxmax()) == 2  # the route the hint describes
