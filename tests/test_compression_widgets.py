"""Chapters 5–7's explorers (minikit.compression_widgets) on tiny random models (seconds)."""

from __future__ import annotations

import copy

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import vl_convert as vlc
from helpers import FAST, TOPICS, chart_datasets, random_classifier  # noqa: E402  (shared test data)

import minikit
from minikit import cache, compression_charts, compression_widgets, pruning, pruning_sweep
from minikit.compression_widgets import PRUNING_METHODS, PruningExplorer
from minikit.distillation import (
    teacher_logits,
)
from minikit.quantization import (
    fake_quantize,
    quantization_error_table,
    quantization_grid,
    quantized_size_mb,
)
from minikit.training import TrainConfig

TEXTS = ["stocks fell as the bank raised rates", "the team won the cup final", "parliament passed the bill",
         "the film opened to good reviews", "a new phone chip was unveiled", "shares rose after profits",
         "the striker scored twice", "ministers met to discuss the budget"]


@pytest.fixture
def data() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": TEXTS, "label": [i % 3 for i in range(len(TEXTS))]})


@pytest.fixture
def explorer(random_bert4, tokenizer, data) -> PruningExplorer:
    return PruningExplorer(random_bert4, tokenizer, data, n_examples=6, max_length=16, latency_length=16)


def test_initial_point_and_widgets(explorer):
    point = explorer.current
    assert (point.method, point.amount) == ("global magnitude", 0.5)
    assert point.removed == pytest.approx(0.5, abs=1e-3)
    assert 0 <= point.accuracy <= 1 and point.latency_ms > 0
    assert explorer.n_examples == 6 and explorer.slider.value == 0.5 and explorer.method.value == "global magnitude"
    assert not explorer.slider.disabled and explorer.status.value == ""  # the busy label is cleared
    assert "<b>global magnitude</b>, 50%" in explorer.label.value
    assert set(explorer.method.options) == set(PRUNING_METHODS)


def test_magnitude_path_matches_magnitude_prune(explorer, random_bert4):
    before = [w.clone() for w in explorer.originals]
    for method, scope in [("global magnitude", "global"), ("per-layer magnitude", "layer")]:
        explorer.update(method, 0.7)
        reference = pruning.magnitude_prune(random_bert4, 0.7, scope)
        for w, (_, _, m) in zip(explorer.targets, pruning.encoder_linears(reference)):
            assert torch.equal(w, m.weight)
    assert all(torch.equal(a, b) for a, b in zip(before, explorer.originals))  # the model itself is untouched
    assert pruning.pruning_report(random_bert4).encoder_sparsity == 0


def test_unstructured_changes_nonzeros_not_params(explorer, random_bert4):
    point = explorer.update("global magnitude", 0.9)
    assert point.params_m == pytest.approx(minikit.count_parameters(random_bert4) / 1e6)
    assert point.nonzero_m < point.params_m
    assert point.removed == pytest.approx(0.9, abs=1e-3)
    assert point.dense_mb == pytest.approx(explorer.measure("heads", 0.0).dense_mb)
    assert point.sparse_mb < point.dense_mb  # at 90 % zeros CSR wins
    measured = pruning.sparse_size_mb(pruning.magnitude_prune(random_bert4, 0.9))
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
    before_chart, before_heat = chart_datasets(explorer.chart.chart), chart_datasets(explorer.heatmap.chart)
    explorer.slider.value = 0.55  # what one keyboard step does in the browser
    assert (explorer.current.method, explorer.current.amount) == ("global magnitude", 0.55)
    assert chart_datasets(explorer.chart.chart) != before_chart
    assert chart_datasets(explorer.heatmap.chart) != before_heat
    explorer.method.value = "FFN neurons"
    assert explorer.current.method == "FFN neurons" and explorer.current.amount == 0.55
    assert "FFN neurons" in explorer.heatmap.chart.to_dict()["title"]
    drawn = explorer.chart.chart, explorer.heatmap.chart
    explorer.method.value = "global magnitude"
    explorer.method.value = "FFN neurons"  # back, nothing measured meanwhile: the charts drawn then are shown again
    assert (explorer.chart.chart, explorer.heatmap.chart) == drawn and explorer.chart.chart is drawn[0]


@pytest.mark.parametrize("amount", [1.0, -0.1, 1.5, True])
def test_bad_amounts_raise(explorer, amount):
    with pytest.raises(ValueError, match="expected a fraction in"):
        explorer.update("global magnitude", amount)
    assert explorer.status.value == "" and not explorer.slider.disabled  # never left looking busy


def test_bad_method_raises(explorer):
    with pytest.raises(ValueError, match="method='magic'"):
        explorer.measure("magic", 0.5)


@pytest.mark.parametrize("method", list(PRUNING_METHODS))
def test_pruned_model_is_what_was_measured(explorer, random_bert4, method):
    point = explorer.measure(method, 0.5)
    pruned = explorer.pruned_model(method, 0.5)
    assert pruned is not explorer.work and pruned is not random_bert4
    assert minikit.count_parameters(pruned, nonzero=True) / 1e6 == pytest.approx(point.nonzero_m)
    assert explorer.accuracy(pruned) == point.accuracy
    assert explorer.pruned_model(method, 0.0) is not random_bert4


def test_sweep_rows(explorer):
    table = explorer.sweep([0.0, 0.5], methods=["heads", "layers"])
    assert table[["method", "amount"]].values.tolist() == [["heads", 0.0], ["heads", 0.5], ["layers", 0.0],
                                                           ["layers", 0.5]]


def test_built_accuracies_are_the_live_ones_and_spare_the_pass(cache_root, random_bert4, tokenizer, data, monkeypatch):
    def make(**kwargs):
        return PruningExplorer(random_bert4, tokenizer, data, n_examples=6, max_length=16, latency_length=16, **kwargs)

    amounts = [0.0, 0.25, 0.5, 0.75]
    builder = make()
    assert builder.built == {}  # nothing built yet: measured live
    folder = builder.build_accuracies(amounts[:2])
    assert (folder / pruning_sweep.ACCURACY_FILE).exists() and len(builder.built) == 1 + 5  # 0 %, 25 % × 5 methods
    scored = []
    builder.accuracy = lambda model=None: scored.append(model) or 0.25  # a stand-in that counts the passes
    builder.build_accuracies(amounts)  # the entry lacks 50 and 75 %: only those are scored, and added
    added = len(builder.built) - 6
    assert added >= 8 and len(scored) == added and list(builder.built.values()).count(0.25) == added
    del builder.accuracy  # the real pass again
    assert builder.build_accuracies(amounts) == folder and len(scored) == added  # complete now: nothing scored
    cache.clear(pruning_sweep.ACCURACY_KIND)  # the stand-in 0.25s are not the real accuracies
    builder.build_accuracies(amounts)
    live = make(use_built=False).sweep(amounts)
    reader = make()
    assert len(reader.built) == len({reader._key(m, a) for m in PRUNING_METHODS for a in amounts})
    passes = []
    monkeypatch.setattr(reader, "accuracy", lambda model=None: passes.append(model) or 0.5)
    read = reader.sweep(amounts)
    assert passes == []  # every setting's accuracy came from the build
    pd.testing.assert_frame_equal(read.drop(columns="latency_ms"), live.drop(columns="latency_ms"))
    assert reader.measure("global magnitude", 0.9).accuracy == 0.5 and len(passes) == 1  # not built: measured live


def test_a_setting_key_with_a_foreign_number_is_refused():
    assert pruning_sweep.key_text(("heads", ((np.int64(0), (np.int64(1),)),))) == '["heads", [[0, [1]]]]'
    with pytest.raises(TypeError, match="float32.*in a pruning setting's key"):
        pruning_sweep.key_text(("global magnitude", np.float32(0.5)))


def test_built_accuracies_belong_to_one_model_and_subset(cache_root, random_bert4, tokenizer, data):
    PruningExplorer(random_bert4, tokenizer, data, n_examples=6, max_length=16, latency_length=16).build_accuracies(
        [0.5])
    other_subset = PruningExplorer(random_bert4, tokenizer, data, n_examples=5, max_length=16, latency_length=16)
    changed = copy.deepcopy(random_bert4)
    with torch.no_grad():
        pruning.encoder_linears(changed)[0][2].weight[0, 0] += 1.0
    other_model = PruningExplorer(changed, tokenizer, data, n_examples=6, max_length=16, latency_length=16)
    assert other_subset.built == {} and other_model.built == {}


def test_importance_batches_are_chapter_5s_sample(tokenizer, data):
    batches = pruning.importance_batches(tokenizer, data, n=6, batch_size=4, max_length=16)
    assert [len(b["labels"]) for b in batches] == [4, 2]
    sample = data.shuffle(seed=0).select(range(6))
    assert torch.cat([b["labels"] for b in batches]).tolist() == sample["label"]
    assert all(b["input_ids"].shape[1] <= 16 and b["attention_mask"].shape == b["input_ids"].shape for b in batches)
    for n, batch_size in [(0, 4), (9, 4), (4, 0)]:
        with pytest.raises(ValueError, match="need 1 ≤ n ≤ the rows"):
            pruning.importance_batches(tokenizer, data, n=n, batch_size=batch_size)


@pytest.mark.parametrize("arch", ["distilbert", "mobilebert"])
def test_other_architectures(arch, request, tokenizer, data):
    model = random_classifier(request.getfixturevalue(f"tiny_{arch}_config"))
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
    rows = chart_datasets(compression_charts.pruning_tradeoff_chart(explorer.table(), explorer.current))[0]
    assert sum(r["current"] for r in rows) == 5  # four panels, size drawn twice (dense, CSR)


WORDS = "market vote match film phone shares minister goal album software profit election".split()


@pytest.fixture(scope="module")
def texts() -> datasets.Dataset:
    rng = np.random.default_rng(0)
    rows = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 30)))) for _ in range(40)]
    return datasets.Dataset.from_dict({"text": rows, "label": [i % 3 for i in range(40)]})


@pytest.fixture
def quant_explorer(family_model, tokenizer, texts):
    return compression_widgets.QuantizationExplorer(family_model, tokenizer, texts, n_examples=24, max_length=32,
                                                    batch_size=8)


# --- chapter 6: the QuantizationExplorer ---------------------------------------------------------------


def test_update_matches_fake_quantize_and_the_error_table(quant_explorer, family_model):
    point = quant_explorer.update(3, "per-tensor", False)
    assert (point.bits, point.granularity, point.symmetric) == (3, "per-tensor", False)
    # The in-place working copy scores exactly what a fake_quantize copy scores, on the same subset.
    assert point.accuracy == quant_explorer.accuracy(fake_quantize(family_model, 3, "per-tensor", False))
    assert point.size_mb == pytest.approx(quantized_size_mb(family_model, 3, "per-tensor", False))
    reference = quantization_error_table(family_model, 3, "per-tensor", False, include_embeddings=False)
    pd.testing.assert_frame_equal(point.errors[reference.columns.tolist()], reference, check_exact=False, rtol=1e-5)
    # The knobs moved with the call, and the label says what was measured.
    knobs = quant_explorer.slider.value, quant_explorer.granularity.value, quant_explorer.symmetry.value
    assert knobs == (3, "per-tensor", False)
    label = quant_explorer.label.value
    assert "3-bit per-tensor, asymmetric" in label and f"{point.accuracy:.1%}" in label
    assert quant_explorer.status.value == ""  # the busy note is gone


def test_the_original_model_is_never_written(quant_explorer, family_model):
    before = {k: v.clone() for k, v in family_model.state_dict().items()}
    quant_explorer.update(2, "per-tensor", True)
    after = family_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert quant_explorer.accuracy(family_model) == quant_explorer.reference_accuracy
    # Only the Linear weights are copies; embeddings and LayerNorms are shared with the original.
    work, orig = dict(quant_explorer.work.named_parameters()), dict(family_model.named_parameters())
    linear_weights = {f"{n}.weight" for n, m in family_model.named_modules() if isinstance(m, torch.nn.Linear)}
    for name, p in work.items():
        assert (p is orig[name]) == (name not in linear_weights), name


def test_results_are_cached_per_setting_and_redrawn(quant_explorer, monkeypatch):
    quant_explorer.update(4, "per-channel", True)
    sweep_before = chart_datasets(quant_explorer.sweep_chart.chart)
    grid_before = chart_datasets(quant_explorer.grid_chart.chart)
    error_before = chart_datasets(quant_explorer.error_chart.chart)
    quant_explorer.update(5, "per-channel", True)
    assert chart_datasets(quant_explorer.sweep_chart.chart) != sweep_before
    assert chart_datasets(quant_explorer.grid_chart.chart) != grid_before
    assert chart_datasets(quant_explorer.error_chart.chart) != error_before
    assert {(4, "per-channel", True), (5, "per-channel", True)} <= set(quant_explorer.cache)

    def refuse(*args, **kwargs):
        raise AssertionError("a cached setting must not be measured again")

    monkeypatch.setattr(quant_explorer, "_measure", refuse)
    sweep = quant_explorer.sweep_chart.chart
    again = quant_explorer.update(4, "per-channel", True)
    assert again is quant_explorer.cache[(4, "per-channel", True)]
    # Nothing new to plot: the sweep chart keeps its data and its ring moves through the parameters.
    assert quant_explorer.sweep_chart.chart is sweep
    params = quant_explorer.sweep_chart.params
    assert (params.bits, params.scheme) == (4, "per-channel, symmetric")
    assert chart_datasets(quant_explorer.grid_chart.chart) == grid_before
    assert chart_datasets(quant_explorer.error_chart.chart) == error_before


def test_moving_a_knob_runs_update(quant_explorer):
    quant_explorer.slider.value = 2
    assert (2, "per-channel", True) in quant_explorer.cache
    quant_explorer.granularity.value = "per-tensor"
    assert (2, "per-tensor", True) in quant_explorer.cache
    quant_explorer.symmetry.value = False
    assert (2, "per-tensor", False) in quant_explorer.cache
    assert "2-bit per-tensor, asymmetric" in quant_explorer.label.value


def test_sweep_fills_the_table(quant_explorer):
    table = quant_explorer.sweep(bits=(2, 4, 8), granularities=("per-tensor",), symmetric=(True, False))
    assert len(table) == len(quant_explorer.cache) >= 6
    rows = table.query("granularity == 'per-tensor'").set_index(["bits", "symmetric"])
    assert rows.loc[(2, True), "size_mb"] < rows.loc[(4, True), "size_mb"] < rows.loc[(8, True), "size_mb"]
    assert rows.loc[(8, True), "size_mb"] < quant_explorer.reference_size_mb
    assert table["accuracy"].between(0, 1).all()
    assert set(table["scheme"]) >= {"per-tensor, symmetric", "per-tensor, asymmetric"}


def test_the_grid_chart_shows_the_chosen_row_and_grid(quant_explorer):
    point = quant_explorer.update(3, "per-channel", False)
    w = quant_explorer.originals[quant_explorer.layer].detach()
    grid = quantization_grid(w, 3, "per-channel", False, channel=quant_explorer.channel)
    data = chart_datasets(quant_explorer.grid_chart.chart)
    levels = next(rows for rows in data if rows and "level" in rows[0])
    assert np.allclose(sorted(r["level"] for r in levels), grid)  # per-channel asymmetric: all 8 levels span the row
    bars = next(rows for rows in data if rows and "count" in rows[0])
    assert sum(r["count"] for r in bars) == w.shape[1]
    assert f"{point.bits}-bit" in quant_explorer.grid_chart.chart.title


@pytest.mark.parametrize("bits, granularity", [(1, "per-channel"), (9, "per-channel"), (4, "per-row")])
def test_bad_settings_are_refused_and_change_nothing(quant_explorer, bits, granularity):
    quant_explorer.update(6, "per-channel", True)
    with pytest.raises(ValueError, match="bits=|granularity="):
        quant_explorer.update(bits, granularity, True)
    assert quant_explorer.slider.value == 6 and quant_explorer.status.value == ""


def test_bad_layer_and_empty_subset_are_refused(family_model, tokenizer, texts):
    with pytest.raises(ValueError, match="not a Linear layer"):
        compression_widgets.QuantizationExplorer(family_model, tokenizer, texts, n_examples=8, layer="no.such.layer")
    with pytest.raises(ValueError, match="n_examples=0"):
        compression_widgets.QuantizationExplorer(family_model, tokenizer, texts, n_examples=0)


# --- chapter 7: the temperature and distillation explorers ---------------------------------------------


@pytest.mark.usefixtures("cache_root")
def test_temperature_explorer_softens_and_redraws(teacher):
    texts = teacher.splits["validation"]["text"]
    logits = teacher_logits(teacher, texts)
    explorer = minikit.compression_widgets.TemperatureExplorer(logits, texts, teacher.splits["validation"]["label"],
                                                   list(TOPICS), temperature=1.0)
    assert len(explorer.examples) == 6
    sure, unsure = explorer.examples[0], explorer.examples[-1]
    top = lambda i: explorer.distribution(i, 1.0)["probability"].max()  # noqa: E731
    assert top(sure) >= top(unsure)  # ordered from the surest to the least sure
    cold, hot = explorer.distribution(sure, 1e-4), explorer.distribution(sure, 1e4)  # tiny logits: go far
    assert cold["probability"].max() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(hot["probability"], 1 / 3, atol=1e-3)
    np.testing.assert_allclose(cold["probability_t1"], hot["probability_t1"])
    before = explorer.chart.chart.to_dict()
    table = explorer.update(unsure, 4.0)
    assert table["probability"].sum() == pytest.approx(1.0) and table["is_true"].sum() == 1
    assert explorer.chart.chart.to_dict() != before and "T = 4.00" in str(explorer.chart.chart.to_dict())
    with pytest.raises(ValueError, match="temperature"):
        explorer.distribution(sure, 0.0)
    with pytest.raises(ValueError, match="outside"):
        minikit.compression_widgets.TemperatureExplorer(logits, texts, teacher.splits["validation"]["label"], list(TOPICS),
                                            examples=[len(texts)])


@pytest.mark.usefixtures("cache_root")
def test_distillation_explorer_trains_each_setting_once_and_caches_it(teacher):
    config = TrainConfig(**{**FAST, "epochs": 1, "eval_every": 1000})
    explorer = minikit.compression_widgets.DistillationExplorer(teacher, alpha=0.5, layers=2, config=config)
    assert explorer.num_layers == 4 and 0 <= explorer.teacher_accuracy <= 1
    first = explorer.current
    assert (first.alpha, first.layers, first.from_cache) == (0.5, 2, False)
    before = explorer.chart.chart.to_dict()
    point = explorer.update(1.0, 1)
    assert point.params_m < first.params_m and explorer.chart.chart.to_dict() != before
    assert explorer.update(0.5, 2) is first  # recalled from memory
    again = minikit.compression_widgets.DistillationExplorer(teacher, alpha=0.5, layers=2, config=config)
    assert again.current.from_cache and again.current.val_accuracy == first.val_accuracy  # from the disk cache
    assert list(explorer.table()["layers"]) == [2, 1]
    with pytest.raises(ValueError, match="layers=7"):
        explorer.measure(0.5, 7)
    with pytest.raises(ValueError, match="alpha"):
        explorer.measure(1.5, 2)


# --- chapter 6: PTQ against QAT over cached runs -------------------------------------------------------


def _qat_runs() -> pd.DataFrame:
    """A chapter_runs-shaped table by hand: 10 examples, float32 right on 9; at 4 bits per tensor PTQ on 4,
    the control on 5, QAT on 8 (every example PTQ or the control gets right, QAT gets right too)."""
    def row(bits, method, right, granularity):
        correct = [1] * right + [0] * (10 - right)
        return {"bits": bits, "method": method, "accuracy": right / 10, "n": 10, "steps": 0, "seconds": 0.0,
                "correct": correct, "granularity": granularity, "low": 0.0, "high": 1.0}

    rows = []
    for granularity in ("per-tensor", "per-channel"):
        rows += [row(32, "float32", 9, granularity), row(32, minikit.qat.CONTROL, 9, granularity)]
        for bits in (8, 4):
            low = granularity == "per-tensor" and bits == 4
            rows += [row(bits, "PTQ", 4 if low else 9, granularity),
                     row(bits, minikit.qat.CONTROL, 5 if low else 9, granularity),
                     row(bits, "QAT", 8 if low else 9, granularity)]
    return pd.DataFrame(rows)


def test_qat_explorer_reads_the_runs_and_gives_paired_verdicts():
    explorer = compression_widgets.QatExplorer(_qat_runs(), bits=4, granularity="per-tensor")
    assert list(explorer.bits.options) == [8, 4]
    lines = explorer.lines(4, "per-tensor")
    assert lines[0] == "4 bits, per-tensor (test, n = 10): PTQ 40.0%, train, then PTQ 50.0%, QAT 80.0%"
    assert "QAT against PTQ: +40.00 points" in lines[1] and "QAT against train, then PTQ: +30.00 points" in lines[2]
    assert "QAT against PTQ: +0.00 points" in explorer.lines(8, "per-channel")[1]
    explorer.granularity.value = "per-channel"  # a knob move redraws from the table: the label follows
    assert explorer.label.value.startswith("4 bits, per-channel (test, n = 10): PTQ 90.0%")
    with pytest.raises(ValueError, match="Fix: pick bits from"):
        explorer.lines(3, "per-tensor")


def test_qat_chart_draws_one_granularity_with_the_float_reference():
    chart = compression_charts.qat_chart(_qat_runs(), "per-tensor", bits=4)
    data = [rows for rows in chart_datasets(chart) if rows]
    lines = next(rows for rows in data if any(r.get("method") == "QAT" for r in rows))
    assert {r["granularity"] for r in lines} == {"per-tensor"} and {r["bits"] for r in lines} == {8, 4}
    assert sorted(r["accuracy"] for r in lines if r["method"] == "QAT") == [80.0, 90.0]
    assert any(rows == [{"bits": 4}] for rows in data)  # the marker at the current setting
    vlc.vegalite_to_svg(chart.to_json())  # it renders


def test_sweep_accuracies_with_intervals_and_the_task_chart(explorer):
    table = explorer.accuracies(["heads", "layers"], [0.0, 0.5])
    assert list(table.columns) == ["method", "amount", "accuracy", "low", "high", "n"]
    for row in table.itertuples():
        assert row.accuracy == pytest.approx(explorer.measure(row.method, row.amount).accuracy)
        assert row.low <= row.accuracy <= row.high and row.n == explorer.n_examples
    both = pd.concat([table.assign(task="a"), table.assign(task="b")])
    chart = compression_charts.task_curves_chart(both, "amount", "share removed", "t", facet="method")
    (rows,) = [d for d in chart_datasets(chart) if d]
    assert {r["task"] for r in rows} == {f"a (n = {explorer.n_examples})", f"b (n = {explorer.n_examples})"}
    assert vlc.vegalite_to_svg(chart.to_json()).startswith("<svg")
