"""Chapter 7's objectives at equal steps (minikit.distill_variants) and the knob over their cached runs."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import FAST

from minikit import compression_charts, compression_widgets, stats
from minikit import distill_variants as V
from minikit.loop import TrainConfig


@pytest.fixture(scope="module")
def kd_cache(tmp_path_factory):
    """An empty MINIKIT_CACHE shared by this module's tests (cache_root's, for a module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINIKIT_CACHE", str(tmp_path_factory.mktemp("kd-variants-cache")))
        patch.delenv("MINIKIT_NO_TRAIN", raising=False)
        yield


@pytest.fixture(scope="module")
def runs(teacher, kd_cache):
    return V.kd_variants(teacher, layers=2, hidden_weights=(1.0,), attention_weights=(1.0,), config=TrainConfig(**FAST))


def test_each_objective_trains_the_same_student_for_the_same_steps(runs, teacher):
    assert list(runs["variant"]) == [V.LABELS_ONLY, V.LOGITS, "logits + hidden states × 1",
                                     "logits + attention maps × 1"]
    assert list(runs["alpha"]) == [1.0, 0.5, 0.5, 0.5] and list(runs["hidden_weight"]) == [0.0, 0.0, 1.0, 0.0]
    assert list(runs["attention_weight"]) == [0.0, 0.0, 0.0, 1.0]
    assert runs["steps"].nunique() == 1 and runs["steps"].iloc[0] > 0
    assert (runs["n"] == len(teacher.splits["test"])).all()
    for row in runs.itertuples():
        assert row.accuracy == sum(row.correct) / row.n and row.low <= row.accuracy <= row.high


def test_each_run_trains_its_own_objective(teacher, kd_cache, monkeypatch):
    calls = []

    def spy(student, teacher, **kwargs):
        calls.append({k: kwargs[k] for k in ("alpha", "hidden_weight", "attention_weight")})
        return real(student, teacher, **kwargs)

    real = V.distill
    monkeypatch.setattr(V, "distill", spy)
    V.kd_variants(teacher, layers=1, hidden_weights=(2.0,), attention_weights=(3.0,), config=TrainConfig(**FAST))
    assert calls == [{"alpha": 1.0, "hidden_weight": 0.0, "attention_weight": 0.0},
                     {"alpha": 0.5, "hidden_weight": 0.0, "attention_weight": 0.0},
                     {"alpha": 0.5, "hidden_weight": 2.0, "attention_weight": 0.0},
                     {"alpha": 0.5, "hidden_weight": 0.0, "attention_weight": 3.0}]


def test_the_runs_are_cached_as_results(runs, teacher, kd_cache, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(V, "distill", no_training)
    again = V.kd_variants(teacher, layers=2, hidden_weights=(1.0,), attention_weights=(1.0,),
                          config=TrainConfig(**FAST))
    assert again.drop(columns="seconds").equals(runs.drop(columns="seconds"))


def test_bad_settings_are_refused_with_the_fix(teacher):
    with pytest.raises(ValueError, match="hidden_weight=-1"):
        V.kd_variants(teacher, hidden_weights=(-1.0,))
    with pytest.raises(ValueError, match="layers=9: expected a whole number from 1 to 4.*Fix: pass layers"):
        V.kd_variants(teacher, layers=9)
    with pytest.raises(ValueError, match="Fix: pass 0 ≤ alpha < 1"):
        V.kd_variants(teacher, alpha=1.0)
    with pytest.raises(ValueError, match=r"attention_weights=\[-2.0\]: attention_weight=-2.0.*Fix: pass attention_weights"):
        V.kd_variants(teacher, attention_weights=(-2.0,))
    with pytest.raises(ValueError, match=r"attention_weights=1.0: expected a list of weights. Fix: pass e.g."):
        V.kd_variants(teacher, attention_weights=1.0)


def test_variant_names():
    assert V.variant_name(1.0, 0.0) == V.LABELS_ONLY and V.variant_name(0.5, 0.0) == V.LOGITS
    assert V.variant_name(0.5, 0.1) == "logits + hidden states × 0.1"
    assert V.variant_name(0.5, 0.0, 10.0) == "logits + attention maps × 10"
    assert V.variant_name(0.5, 1.0, 1.0) == "logits + hidden states × 1 + attention maps × 1"
    assert V.variant_name(1.0, 0.0, 1.0) == "labels + attention maps × 1"  # no weight on the logits


def test_the_knob_reads_the_runs_and_gives_paired_verdicts(runs):
    hidden_name, maps_name = "logits + hidden states × 1", "logits + attention maps × 1"
    knob = compression_widgets.KdVariantsExplorer(runs, objective=hidden_name)
    assert list(knob.objective.options) == [V.LOGITS, hidden_name, maps_name] and knob.objective.value == hidden_name
    lines = knob.lines(hidden_name)
    hidden, logits, labels = runs.iloc[2], runs.iloc[1], runs.iloc[0]
    assert lines[0].startswith(f"{hidden_name}: {hidden.accuracy:.1%} (test, n = {hidden.n}")
    assert str(stats.paired_comparison(hidden.correct, logits.correct)) in lines[1]
    assert str(stats.paired_comparison(hidden.correct, labels.correct)) in lines[2]
    assert len(knob.lines(V.LOGITS)) == 2  # logits only: compared with labels only
    knob.objective.value = maps_name
    assert knob.label.value.startswith(f"{maps_name}: {runs.iloc[3].accuracy:.1%}")
    knob.update(V.LOGITS)  # from code: moves the knob too
    assert knob.objective.value == V.LOGITS and knob.label.value.startswith("logits (KD)")
    with pytest.raises(ValueError, match=r"No run for the objective 'logits \+ hidden states × 5'. Fix: pick one of"):
        knob.lines("logits + hidden states × 5")
    with pytest.raises(ValueError, match=r"No run for the objective 'labels only \(no teacher\)'. Fix: pick one of"):
        compression_widgets.KdVariantsExplorer(runs, objective=V.LABELS_ONLY)  # not one the knob offers


def test_the_chart_has_a_bar_per_objective():
    table = pd.DataFrame({"variant": ["a", "b"], "accuracy": [0.8, 0.9], "low": [0.7, 0.8], "high": [0.9, 0.95],
                          "n": [10, 10]})
    chart = compression_charts.kd_variants_chart(table, current="b")
    rows = chart.to_dict()["datasets"]
    (data,) = rows.values()
    assert [r["current"] for r in data] == [False, True] and [r["accuracy"] for r in data] == [80.0, 90.0]


def test_depth_runs_compare_labels_and_logits_at_each_depth(runs, teacher, kd_cache):
    table = V.depth_runs(teacher, depths=(1, 2), config=TrainConfig(**FAST))
    assert list(table["layers"]) == [1, 1, 2, 2] and list(table["variant"]) == [V.LABELS_ONLY, V.LOGITS] * 2
    two = table[table["layers"] == 2].drop(columns="layers").reset_index(drop=True)
    assert two.drop(columns="seconds").equals(runs.iloc[:2].drop(columns="seconds"))  # the same seed, the same runs
    assert (table["n"] == len(teacher.splits["test"])).all()
    with pytest.raises(ValueError, match=r"depths=2: expected a list of student depths. Fix"):
        V.depth_runs(teacher, depths=2)
    with pytest.raises(TypeError, match="Fix: pass minikit.get_baseline"):
        V.depth_runs(teacher.model)


def test_the_depth_chart_draws_a_line_per_objective_and_the_teacher():
    table = pd.DataFrame({"layers": [1, 1, 2, 2], "variant": ["a", "b", "a", "b"], "accuracy": [0.5, 0.6, 0.7, 0.8],
                          "low": [0.4, 0.5, 0.6, 0.7], "high": [0.6, 0.7, 0.8, 0.9], "n": [10] * 4})
    spec = compression_charts.kd_depth_chart(table, teacher_accuracy=0.9).to_dict()
    datasets = list(spec["datasets"].values())
    assert [r["accuracy"] for r in datasets[0]] == [50.0, 60.0, 70.0, 80.0]
    assert [r["accuracy"] for r in datasets[1]] == [90.0]  # the teacher's rule
    assert len(spec["layer"]) == 3
