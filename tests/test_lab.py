"""Chapter 9's compression lab on a tiny 6-layer random BERT and a 90-row CSV: recipes, cache, chart, checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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
    ({"depth": 3}, "depth=3"), ({"ffn_pruned": 0.3}, "ffn_pruned=0.3"), ({"bits": 4}, "bits=4"),
    ({"vocabulary": "yes"}, "vocabulary='yes'"), ({"depth": True}, "depth=True"),
])
def test_a_recipe_off_the_knobs_is_refused_with_the_choices(kwargs, needle):
    with pytest.raises(ValueError, match="Recipe") as error:
        Recipe(**kwargs)
    assert needle in str(error.value)


def test_recipe_names_and_what_each_trains():
    assert Recipe().name == L.BASELINE and Recipe().is_baseline and Recipe().trains is None
    assert Recipe(bits=8).name == "6 layers · int8 ONNX" and Recipe(bits=8).trains is None
    assert Recipe(ffn_pruned=0.25).trains == "recovery"
    student = Recipe(depth=2, ffn_pruned=0.5, vocabulary=True, bits=8)
    assert student.trains == "distillation" and student.name == "2 layers · FFN −50% · vocab pruned · int8 ONNX"
    assert L.layers_for(6) is None and L.layers_for(2) == [0, 4] and L.layers_for(4) == [0, 1, 3, 4]


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
    results = pd.DataFrame({"name": ["a", "b", "c"], "size_pct": [100.0, 20.0, 30.0], "points": [0.0, -0.5, -0.5],
                            "latency_pct": [100.0, 50.0, 40.0]})
    assert check.lab_pareto(["a", "b"], results)
    assert check.lab_pareto(["a", "c"], results, axis="latency")
    missed = check.lab_pareto(["a", "b", "c"], results)
    assert not missed and "'c'" in missed.message
    with pytest.raises(ValueError, match="axis"):
        check.lab_pareto(["a"], results, axis="memory")
    assert np.isfinite(truth)
