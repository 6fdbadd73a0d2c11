"""Chapter 9's compression lab on a tiny 6-layer random BERT and a 90-row CSV: recipes, cache, chart, checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST_CONFIG

import minikit
from minikit import charts, check, timing
from minikit import lab as L
from minikit.claims import COMPRESSION_CLAIM
from minikit.lab import Lab, Recipe


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A fine-tuned 6-layer, 32-wide BERT with the embedded tokenizer, on a 90-row, 3-topic CSV."""
    from helpers import tiny_model_and_csv

    model_dir, data = tiny_model_and_csv(tmp_path_factory.mktemp("lab-inputs"), layers=6)
    return minikit.fine_tune(str(model_dir), str(data), FAST_CONFIG, progress=False)


@pytest.mark.parametrize("kwargs, needle", [
    ({"depth": 3}, "depth=3"), ({"depth": 0}, "depth=0"), ({"ffn_pruned": 0.3}, "ffn_pruned=0.3"),
    ({"ffn_pruned": 1.0}, "ffn_pruned=1.0"), ({"bits": 16}, "bits=16"), ({"bits": 2}, "bits=2"),
    ({"vocabulary": "yes"}, "vocabulary='yes'"), ({"depth": True}, "depth=True"),
])
def test_a_recipe_off_the_knobs_is_refused_with_the_choices(kwargs, needle):
    with pytest.raises(ValueError, match="Recipe") as error:
        Recipe(**kwargs)
    assert needle in str(error.value)
    knob = needle.split("=")[0]
    if knob != "vocabulary":
        assert str({"depth": L.DEPTHS, "ffn_pruned": L.FFN_FRACTIONS, "bits": L.BITS}[knob]) in str(error.value)


def test_the_aggressive_end_is_on_the_knobs():
    assert (1 in L.DEPTHS, 0.9 in L.FFN_FRACTIONS, 4 in L.BITS) == (True, True, True)
    aggressive = Recipe(depth=1, ffn_pruned=0.9, vocabulary=True, bits=4)
    assert aggressive.trains == "distillation"
    assert aggressive.name == "1 layer · FFN −90% · vocab pruned · 4-bit weights (simulated)"
    assert Recipe(bits=4).name == "6 layers · 4-bit weights (simulated)" and Recipe(bits=4).trains is None
    assert Recipe(ffn_pruned=0.9).trains == "recovery" and Recipe(depth=1, bits=8).name == "1 layer · int8 ONNX"
    assert "simulated" in L.RUNTIMES[4] and "float" in L.RUNTIMES[4]


def test_recipe_names_and_what_each_trains():
    assert Recipe().name == L.BASELINE and Recipe().is_baseline and Recipe().trains is None
    assert Recipe(bits=8).name == "6 layers · int8 ONNX" and Recipe(bits=8).trains is None
    assert Recipe(ffn_pruned=0.25).trains == "recovery"
    student = Recipe(depth=2, ffn_pruned=0.5, vocabulary=True, bits=8)
    assert student.trains == "distillation" and student.name == "2 layers · FFN −50% · vocab pruned · int8 ONNX"
    assert L.layers_for(6) is None and L.layers_for(2) == [0, 4] and L.layers_for(4) == [0, 1, 3, 4]
    assert L.layers_for(1) == [0]  # the bottom layer: it reads the embeddings it was trained on


def test_pareto_front_by_hand():
    cost = [100, 50, 50, 20, 10, 30]
    points = [0.0, 0.0, -1.0, -0.5, -3.0, -0.5]
    # (50, 0) beats (100, 0) and (50, -1); (30, -0.5) loses to (20, -0.5); (10, -3) is the cheapest
    assert L.pareto_front(cost, points).tolist() == [False, True, False, True, True, False]
    assert L.pareto_front([], []).tolist() == []


def test_a_model_that_is_not_six_layers_deep_is_refused(teacher):
    from minikit.pruning import drop_layers

    shallow = minikit.FineTuned(drop_layers(teacher.model, [5]), teacher.tokenizer, teacher.splits, teacher.result,
                                teacher.test_accuracy, teacher.cache_dir, True)
    with pytest.raises(ValueError, match="this model has 5"):
        Lab(shallow, progress=False)


def test_sizes_on_paper_follow_the_knobs(teacher):
    lab = Lab(teacher, progress=False)
    table = lab.parameter_table()
    assert table["params"].sum() == sum(p.numel() for p in teacher.model.parameters())
    base = lab.predicted_size_mb(Recipe())
    assert base == pytest.approx(table["params"].sum() * 4 / 1e6)
    assert lab.predicted_size_mb(Recipe(bits=8)) == pytest.approx(base / 4)
    assert lab.predicted_size_mb(Recipe(bits=4)) == pytest.approx(base / 8)
    each = table.set_index("part")["each"]
    saved = 6 * 0.5 * each["feed-forward neurons"] * 4 / 1e6
    assert lab.predicted_size_mb(Recipe(ffn_pruned=0.5)) == pytest.approx(base - saved)
    assert 0 < lab.vocabulary_size() < teacher.model.get_input_embeddings().num_embeddings
    assert lab.predicted_size_mb(Recipe(vocabulary=True)) < base


def test_lab_measures_builds_caches_and_reads_back(teacher, monkeypatch):
    lab = Lab(teacher, progress=False)
    recipes = [Recipe(), Recipe(bits=8), Recipe(ffn_pruned=0.5, vocabulary=True),
               Recipe(depth=2, ffn_pruned=0.5, vocabulary=True, bits=8)]
    assert not any(lab.is_measured(r) for r in recipes)
    rows = [lab.measure(r) for r in recipes]
    table = lab.results()
    assert sorted(table["name"]) == sorted(r.name for r in recipes)
    base = table.set_index("name").loc[L.BASELINE]
    assert base["size_pct"] == pytest.approx(100) and base["points"] == 0 and base["latency_pct"] == pytest.approx(100)
    for recipe, row in zip(recipes, rows):
        assert row["name"] == recipe.name and row["recipe"] == recipe
        if recipe.bits == 32:  # float sizes are arithmetic (+ the safetensors header); int8 adds scales
            assert row["size_mb"] == pytest.approx(lab.predicted_size_mb(recipe), rel=0.01, abs=0.02)
        else:
            assert lab.predicted_size_mb(recipe) < row["size_mb"] < 1.5 * lab.predicted_size_mb(recipe) + 0.15  # + graph
    assert table["pareto_size"].any() and table["pareto_latency"].any()
    # the student is distilled (cached under "distilled"), the 6-layer pruned model recovered ("lab-models")
    assert len(minikit.cache.entries("distilled")) >= 1 and len(minikit.cache.entries("lab-models")) >= 2

    # a fresh Lab (a new session) reads every measurement back and measures nothing
    def no_timing(*args, **kwargs):
        raise AssertionError("a cached recipe was measured again")

    monkeypatch.setattr(minikit.benchmark.Benchmark, "run", no_timing)
    again = Lab(teacher, progress=False)
    assert all(again.is_measured(r) for r in recipes)
    pd.testing.assert_frame_equal(again.results().drop(columns="recipe"), table.drop(columns="recipe"))
    assert again.measure(recipes[1])["measured_at"] == rows[1]["measured_at"]
    with pytest.raises(AssertionError, match="measured again"):
        again.measure(recipes[1], refresh=True)
    monkeypatch.undo()

    # another machine's (or thread count's) measurements are not mixed in
    monkeypatch.setattr(minikit.system, "machine_description", lambda: {"cpu": "another machine"})
    assert Lab(teacher, progress=False).results().empty


def test_a_row_timed_on_a_loaded_machine_is_shown_but_not_kept_and_rows_expire_with_the_boot(teacher, monkeypatch):
    recipe = Recipe(vocabulary=True)  # trains nothing: cheap to measure
    why = "other processes kept 1.9 of 2 cores busy"
    with monkeypatch.context() as loaded:
        loaded.setattr(timing, "judge", lambda *a, **k: timing.LoadCheck((why,), 1.0, 1.0, 1.0, 1.9, 2))
        loaded.setattr(timing, "RETRY_PAUSE_S", 0.0)
        lab = Lab(teacher, progress=False)
        row = lab.measure(recipe, refresh=True)
        assert row["load_warning"] == why and lab.is_measured(recipe)
    assert not Lab(teacher, progress=False).is_measured(recipe)  # a new session: the loaded row was not kept
    quiet = Lab(teacher, progress=False).measure(recipe)
    assert quiet["load_warning"] == "" and Lab(teacher, progress=False).is_measured(recipe)
    monkeypatch.setattr(timing, "session_stamp", lambda: {"boot_id": "after a reboot", "cpu_model": "same"})
    monkeypatch.setattr(timing, "_revalidated", lambda record: False)
    monkeypatch.setattr(timing, "_revalidations", {})
    later = Lab(teacher, progress=False)
    assert not later.is_measured(recipe) and recipe.name not in set(later.results()["name"])


def test_dashboard_moves_knobs_without_measuring_then_measures(teacher, monkeypatch):
    lab = Lab(teacher, progress=False)
    lab.measure(Recipe())
    measured = len(lab.results())  # the module's cache also holds the other tests' recipes
    board = minikit.widgets.LabDashboard(lab)
    assert "measured" in board.label.value and board.recipe == Recipe()
    before = board.chart.chart.to_dict()
    board.ffn.value = 0.25  # what the browser test does: one slider step
    assert "not measured yet" in board.label.value and "Predicted size" in board.label.value
    after = board.chart.chart.to_dict()
    assert after != before and len(board.seconds) == 1
    counted = []  # a recipe's predicted size is counted once per dashboard, not at every move
    monkeypatch.setattr(lab, "predicted_size_mb", lambda recipe: counted.append(recipe) or 1.0)
    board.ffn.value, board.ffn.value = 0.0, 0.25
    assert counted == [] and board.chart.chart.to_dict() == after
    status = board.update(Recipe(bits=8, vocabulary=True))
    assert board.recipe == Recipe(bits=8, vocabulary=True) and "not measured yet" in status
    row = board.measure()
    assert row["name"] == "6 layers · vocab pruned · int8 ONNX" and "measured" in board.label.value
    assert all(not c.disabled for c in (board.ffn, board.bits, board.depth, board.measure_button))
    assert len(lab.results()) == measured + 1
    # the aggressive end is offered and a move to it predicts, measures nothing
    assert [v for _, v in board.depth.options] == list(L.DEPTHS) and 0.9 in [v for _, v in board.ffn.options]
    assert dict((v, k) for k, v in board.bits.options)[4] == "4-bit (simulated)"
    board.depth.value, board.ffn.value, board.bits.value = 1, 0.9, 4
    assert board.recipe == Recipe(depth=1, ffn_pruned=0.9, vocabulary=True, bits=4)
    assert "not measured yet" in board.label.value and "1 layer · FFN −90%" in board.label.value
    assert len(lab.results()) == measured + 1


def test_a_one_layer_recipe_starts_from_the_bottom_layer_with_a_tenth_of_its_neurons(teacher):
    lab = Lab(teacher, progress=False)
    model, _ = lab._start(Recipe(depth=1, ffn_pruned=0.9))  # the surgery, before distillation trains it
    from minikit.models import encoder_layers

    (layer,) = encoder_layers(model)
    source = encoder_layers(teacher.model)[0]
    assert torch.equal(layer.attention.self.query.weight, source.attention.self.query.weight)
    assert layer.intermediate.dense.out_features == 64 - round(0.9 * 64) == model.config.intermediate_size


def test_a_four_bit_recipe_is_timed_in_float_and_sized_packed(teacher):
    from minikit.quantization import fake_quantize, quantize_tensor, quantized_size_mb

    rounded, packed_mb = L.simulate_4bit(teacher.model)
    # the packed size: 4 bits per Linear and embedding entry plus a float32 scale per channel, the rest float32
    assert packed_mb == pytest.approx(quantized_size_mb(teacher.model, 4, include_embeddings=True))
    # embeddings packed too (as int8 ONNX packs its Gather tables): each entry ½ byte instead of 4, + a scale per row
    tables = [m.weight for m in teacher.model.modules() if isinstance(m, torch.nn.Embedding)]
    saved = sum(w.numel() * 4 - math.ceil(w.numel() / 2) - 4 * len(w) for w in tables)
    assert packed_mb == pytest.approx(quantized_size_mb(teacher.model, 4) - saved / 1e6)
    word = teacher.model.get_input_embeddings().weight
    expected = fake_quantize(teacher.model, 4, include_embeddings=True)
    for (name, got), want in zip(rounded.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(got, want), name
    assert torch.equal(rounded.get_input_embeddings().weight, quantize_tensor(word, 4))
    assert rounded.get_input_embeddings().weight[5].unique().numel() <= 15  # 2^4 − 1 symmetric levels

    lab = Lab(teacher, progress=False)
    row = lab.measure(Recipe(bits=4))
    assert row["size_mb"] == pytest.approx(packed_mb) and row["runtime"] == L.RUNTIMES[4]
    assert row["name"] == "6 layers · 4-bit weights (simulated)" and "simulated" in row["runtime"]
    assert lab.predicted_size_mb(Recipe(bits=4)) < row["size_mb"] < 1.5 * lab.predicted_size_mb(Recipe(bits=4))
    base = lab.measure(Recipe())  # the baseline's own row (measured here, not left to another test's run)
    assert row["size_pct"] == pytest.approx(100 * packed_mb / base["size_mb"])
    # float32 speed and memory: no latency front, no claim beaten, no memory figure
    assert not row["pareto_latency"] and not row["beats_claim"] and np.isnan(row["peak_memory_mb"])
    assert "four_bit" in lab._parts(Recipe(bits=4)) and "four_bit" not in lab._parts(Recipe(bits=8))


def test_pareto_chart_draws_the_claim_with_or_without_results():
    empty = pd.DataFrame(columns=["recipe", "name", "points", "size_pct", "latency_pct", "size_mb", "latency_p50_ms",
                                  "speedup", "measured_at", "pareto_size", "pareto_latency"])
    spec = charts.lab_pareto_chart(empty, COMPRESSION_CLAIM, predicted_size_pct=40.0).to_dict()
    assert "source's claim" in str(spec) and "predicted size" in str(spec)
    table = pd.DataFrame({"name": ["a", "b"], "points": [0.0, -0.3], "size_pct": [100.0, 10.0],
                          "latency_pct": [100.0, 30.0], "size_mb": [90.0, 9.0], "latency_p50_ms": [16.0, 5.0],
                          "speedup": [1.0, 3.3], "measured_at": ["x", "y"], "pareto_size": [True, True],
                          "pareto_latency": [True, True]})
    spec = charts.lab_pareto_chart(table, COMPRESSION_CLAIM, current="b").to_dict()
    assert "ringed" in str(spec) and "b" in str(spec)


def test_lab_checks_recompute_the_answer(teacher):
    lab = Lab(teacher, progress=False)
    recipe = Recipe(depth=4, ffn_pruned=0.25, vocabulary=True, bits=8)
    truth = lab.predicted_size_mb(recipe)
    assert check.lab_predicted_size(truth * 1.005, lab, recipe)
    wrong = check.lab_predicted_size(truth * 4, lab, recipe)  # float32 bytes for an int8 recipe
    assert not wrong and "bytes per parameter" in wrong.message
    high = check.lab_predicted_size(truth * 1.3, lab, recipe)
    assert not high and "Too high" in high.message and f"{truth:.2f}" not in high.message and "%" not in high.message
    assert not check.lab_predicted_size(None, lab, recipe)
    four = Recipe(depth=1, ffn_pruned=0.9, bits=4)
    assert check.lab_predicted_size(lab.predicted_size_mb(four), lab, four)
    one_byte = check.lab_predicted_size(2 * lab.predicted_size_mb(four), lab, four)  # int8's byte for 4 bits
    assert not one_byte and "½ at 4 bits" in one_byte.message
    results = pd.DataFrame({"name": ["a", "b", "c"], "size_pct": [100.0, 20.0, 30.0], "points": [0.0, -0.5, -0.5],
                            "latency_pct": [100.0, 50.0, 40.0]})
    assert check.lab_pareto(["a", "b"], results)
    assert check.lab_pareto(["a", "c"], results, axis="latency")
    missed = check.lab_pareto(["a", "b", "c"], results)
    assert not missed and "'c'" in missed.message
    with pytest.raises(ValueError, match="axis"):
        check.lab_pareto(["a"], results, axis="memory")
    assert np.isfinite(truth)
