"""The Benchmark (accuracy, size, latency and energy of variants side by side) and the budget picker.

The Benchmark runs tiny random BERTs on a tiny hand-made dataset, so its accuracies are chance, and timings
are only checked for consistency (other processes may share the machine), never for which variant is faster.
"""

from __future__ import annotations

import copy
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertConfig
from helpers import fake_rapl_zone

import minikit
from minikit import timing
from minikit.benchmark import Benchmark, NoVariantFitsError, pick_variant
from minikit.metrics import (
    accuracy,
)
from minikit.profiling import (
    ENERGY_ESTIMATE,
    JOULES_PER_FLOP,
    forward_flops,
)
from minikit.students import prune_vocabulary


def test_benchmark_sessions_do_not_spin_against_the_variants_timed_beside_them():
    from minikit.benchmark import benchmark_session_options

    options = benchmark_session_options(threads=2)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2


def test_served_model_and_benchmark_share_one_spinning_rule(tmp_path):
    # server.py stands alone, so the rule is written twice; this keeps the two the same (issue 24)
    from minikit.benchmark import benchmark_session_options
    from minikit.deployment import export_for_serving, load_served_model

    tokenizer = minikit.load_tokenizer()
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        vocab_size=len(tokenizer), max_position_embeddings=64)
    folder = export_for_serving(minikit.build_model(config, num_labels=2, seed=0), tokenizer, tmp_path / "s",
                                max_length=32)
    served = load_served_model(folder, threads=2).session.get_session_options()
    entry = "session.intra_op.allow_spinning"
    assert served.get_session_config_entry(entry) == benchmark_session_options(2).get_session_config_entry(entry)


# --- Benchmark ------------------------------------------------------------------------------------


def test_benchmark_table_and_ratios(bench, bench_models, tiny_dataset):
    table = bench.results
    assert list(table["name"]) == ["small", "wide"] and len(table.columns) == 30
    assert table["load_warning"].tolist() == ["", ""]  # conftest counts the machine as quiet
    assert "correct" not in table.columns  # the per-example answers stay out of the table: bench.correct(name)
    for name in ("small", "wide"):
        right = bench.correct(name)
        assert right.dtype == bool and len(right) == table["n_eval"].iloc[0]
        row = table.set_index("name").loc[name]
        assert right.mean() == pytest.approx(row["accuracy"])
        low, high = minikit.wilson_interval(int(right.sum()), len(right))
        assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx((low, high))
    wide = table.set_index("name").loc["wide"]
    paired = minikit.paired_comparison(bench.correct("wide"), bench.correct("small"))
    assert (wide["delta_low"], wide["delta_high"], wide["p_value"]) == pytest.approx((paired.low, paired.high,
                                                                                      paired.p_value))
    assert wide["change"] == paired.change and table.set_index("name").loc["small", "change"] == "baseline"
    with pytest.raises(ValueError, match="No measured variant named 'nope'"):
        bench.correct("nope")
    for column in ["accuracy", "macro_f1", "params_m", "nonzero_params_m", "size_mb", "latency_p50_ms",
                   "latency_p95_ms", "throughput", "peak_memory_mb", "energy_mj_per_example", "energy_source",
                   "size_ratio", "speedup", "accuracy_delta"]:
        assert column in table.columns, column
    base, wide = table.iloc[0], table.iloc[1]
    assert (base["size_ratio"], base["speedup"], base["accuracy_delta"]) == (1.0, 1.0, 0.0)
    assert wide["speedup"] == pytest.approx(base["latency_p50_ms"] / wide["latency_p50_ms"])
    assert wide["size_ratio"] == pytest.approx(wide["size_mb"] / base["size_mb"])
    assert wide["accuracy_delta"] == pytest.approx(100 * (wide["accuracy"] - base["accuracy"]))
    assert base["size_mb"] == pytest.approx(minikit.size_on_disk_mb(bench_models[0]))
    assert base["params_m"] == pytest.approx(minikit.count_parameters(bench_models[0]) / 1e6)
    assert (table["n_eval"] == len(tiny_dataset)).all() and (table["seq_len"] == 32).all()
    assert (table["latency_p95_ms"] >= table["latency_p50_ms"]).all() and (table["throughput"] > 0).all()
    assert (table["peak_memory_mb"] >= table["size_mb"]).all()
    # No RAPL in the fake root: the energy is the labelled FLOP estimate.
    assert (table["energy_source"] == ENERGY_ESTIMATE).all()
    expected_mj = forward_flops(bench_models[0].config, 32) * JOULES_PER_FLOP * 1e3
    assert base["energy_mj_per_example"] == pytest.approx(expected_mj)


def test_benchmark_accuracy_is_the_models_own(bench, bench_models, tiny_dataset, tokenizer):
    enc = tokenizer(list(tiny_dataset["text"]), truncation=True, max_length=32, padding=True, return_tensors="pt")
    with torch.inference_mode():
        predictions = bench_models[0](**enc).logits.argmax(-1).numpy()
    assert bench.results.iloc[0]["accuracy"] == pytest.approx(accuracy(tiny_dataset["label"], predictions))


def test_benchmark_second_run_adds_onnx_quantized_and_callable(bench, bench_models, tmp_path):
    small = bench_models[0]
    path = tmp_path / "small.onnx"
    ids = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(small, (ids, ids, torch.zeros_like(ids)), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names},
                          dynamo=False)  # torch 2.13's default (dynamo) exporter needs onnxscript, not installed
        quantized = torch.ao.quantization.quantize_dynamic(bench_models[1], {torch.nn.Linear}, dtype=torch.qint8)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first = bench.results.copy()
    bench.add("small-onnx", session, path=path).add("wide-int8", quantized)
    bench.add("fn", lambda batch: small(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits, size_mb=1.5)
    table = bench.run()
    assert list(table["name"]) == ["small", "wide", "small-onnx", "wide-int8", "fn"]
    pd.testing.assert_frame_equal(table.iloc[:2], first)  # measured rows are kept, not re-measured
    rows = table.set_index("name")
    assert (rows.loc[["small-onnx", "wide-int8", "fn"], "run"] == 2).all()
    assert rows.loc["small-onnx", "accuracy"] == rows.loc["small", "accuracy"] == rows.loc["fn", "accuracy"]
    assert rows.loc["small-onnx", "size_mb"] == pytest.approx(path.stat().st_size / 1e6)
    assert rows.loc["small-onnx", "params_m"] == pytest.approx(rows.loc["small", "params_m"], rel=0.01)
    # The baseline was timed again beside the new variants: their speedups use that timing.
    onnx_row = rows.loc["small-onnx"]
    assert onnx_row["speedup"] == pytest.approx(onnx_row["baseline_p50_ms"] / onnx_row["latency_p50_ms"])
    assert rows.loc["wide-int8", "size_source"] == "torch.save"  # safetensors cannot hold packed int8
    assert rows.loc["wide-int8", "params_m"] == pytest.approx(rows.loc["wide", "params_m"])
    assert rows.loc["wide-int8", "size_mb"] < rows.loc["wide", "size_mb"]
    assert np.isnan(rows.loc["fn", "params_m"]) and rows.loc["fn", "size_source"] == "given"
    assert rows.loc["small-onnx", "energy_source"] == "unavailable"  # no config given: no FLOP count
    assert len(bench.run()) == 5  # nothing new: nothing measured


def test_benchmark_add_errors(bench, tiny_dataset, tokenizer):
    with pytest.raises(ValueError, match="already added"):
        bench.add("small", lambda b: None, size_mb=1.0)
    with pytest.raises(ValueError, match="size_mb"):
        Benchmark(tiny_dataset, tokenizer).add("fn", lambda batch: batch["input_ids"])
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        Benchmark(tiny_dataset, tokenizer).add("x", "missing.onnx")
    with pytest.raises(ValueError, match="columns"):
        Benchmark(tiny_dataset.remove_columns("label"), tokenizer)


def test_benchmark_uses_rapl_when_readable(tiny_dataset, tokenizer, bench_models, tmp_path):
    fake_rapl_zone(tmp_path, "intel-rapl:0", 1000)  # a counter that does not move: 0 J, but measured
    bench = Benchmark(tiny_dataset, tokenizer, max_length=16, n_eval=4, repeats=1, warmup=0, batch_size=2,
                      batch_repeats=1, rapl_root=tmp_path).add("small", bench_models[0])
    row = bench.run().iloc[0]
    assert row["energy_source"] == "rapl" and row["energy_mj_per_example"] == 0.0 and row["n_eval"] == 4


def test_benchmark_times_each_variant_in_bursts_of_calls_and_counts_every_repeat(tiny_dataset, tokenizer, bench_models):
    small, wide = bench_models
    bench = Benchmark(tiny_dataset, tokenizer, max_length=32, repeats=7, batch_repeats=1, batch_size=4, burst=3)
    bench.add("small", small).add("wide", wide)
    calls = []
    for v in bench._variants.values():
        predict = v.predict
        object.__setattr__(v, "predict", lambda batch, predict=predict, name=v.name: (calls.append(name), predict(batch))[1])
    timed = bench._time(list(bench._variants.values()), "single", repeats=7, warmup=0)
    assert {name: len(t[0]) for name, t in timed.items()} == {"small": 7, "wide": 7}
    # one warm-up call each, then rounds of 3, 3, 1 timed calls, each after one untimed call, in the
    # order A B, B A, A B
    runs = [(name, len(list(group))) for name, group in itertools.groupby(calls)]
    assert runs == [("small", 1), ("wide", 1), ("small", 4), ("wide", 8), ("small", 6), ("wide", 2)]
    with pytest.raises(ValueError, match="burst=0"):
        Benchmark(tiny_dataset, tokenizer, burst=0)


# --- Benchmark(cache=True) -------------------------------------------------------------------------


def _cached_bench(tiny_dataset, tokenizer, tmp_path, **kwargs):
    kwargs = {"baseline": "small", **kwargs}
    return Benchmark(tiny_dataset, tokenizer, max_length=32, repeats=3, batch_size=8, batch_repeats=1,
                     rapl_root=tmp_path, cache=True, **kwargs)


def test_cached_benchmark_reads_the_same_run_back_and_refresh_measures_again(tiny_dataset, tokenizer, bench_models,
                                                                             tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    small, wide = bench_models
    first = _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", wide).run()
    assert first["measured_at"].str.len().min() > 0

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run must not be timed again")

    monkeypatch.setattr(Benchmark, "_time", refuse)
    again = _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", wide).run()
    pd.testing.assert_frame_equal(again, first)
    with pytest.raises(AssertionError, match="must not be timed"):
        _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", wide).run(refresh=True)
    monkeypatch.undo()
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    fresh = _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", wide).run(refresh=True)
    assert fresh["latency_p50_ms"].tolist() != first["latency_p50_ms"].tolist()
    assert len(minikit.cache.entries("benchmarks")) == 1  # replaced, not added


def test_cached_benchmark_key_follows_weights_settings_and_data(tiny_dataset, tokenizer, bench_models, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    small, wide = bench_models
    _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", wide).run()
    changed = copy.deepcopy(wide)
    with torch.no_grad():
        next(changed.parameters()).add_(1e-3)  # one weight moved: another model
    _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", changed).run()
    _cached_bench(tiny_dataset, tokenizer, tmp_path, n_eval=8).add("small", small).add("wide", wide).run()
    other_text = tiny_dataset.map(lambda row, i: {"text": row["text"] + "!" if i == 0 else row["text"]},
                                  with_indices=True)
    _cached_bench(other_text, tokenizer, tmp_path).add("small", small).add("wide", wide).run()
    assert len(minikit.cache.entries("benchmarks")) == 4


def test_a_run_with_a_callable_is_never_cached(tiny_dataset, tokenizer, bench_models, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    small, _ = bench_models
    fixed = lambda batch: np.zeros((len(batch["input_ids"]), 4), dtype=np.float32)  # noqa: E731
    _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("zeros", fixed, size_mb=1.0).run()
    assert len(minikit.cache.entries("benchmarks")) == 0


def test_a_run_on_a_loaded_machine_is_timed_again_marked_and_not_cached(tiny_dataset, tokenizer, bench_models,
                                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    why = "the calibration probe ran 2.4× slower than this session's fastest"
    monkeypatch.setattr(timing, "judge", lambda *a, **k: timing.LoadCheck((why,), 1.0, 2.4, 1.0, 0.0, 2))
    monkeypatch.setattr(timing, "RETRY_PAUSE_S", 0.0)
    timed = []
    real_time = Benchmark._time
    monkeypatch.setattr(Benchmark, "_time", lambda self, *a: timed.append(a[1]) or real_time(self, *a))
    small, wide = bench_models
    table = _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", wide).run()
    assert timed == ["single", "full"] * timing.ATTEMPTS
    assert table["load_warning"].tolist() == [why, why]
    assert minikit.cache.entries("benchmarks").empty


def test_benchmark_round_drift_compares_each_variants_rounds_with_its_own_median(bench):
    drift = bench._round_drift({"a": (np.array([1.0] * 5 + [3.0] * 5), None), "b": (np.array([10.0] * 10), None)})
    assert len(drift) == 2 * -(-10 // bench.burst) and max(drift) / min(drift) == pytest.approx(3.0)


# --- the budget picker ------------------------------------------------------------------------------


def test_picker_chooses_the_most_accurate_variant_that_fits(results):
    pick = pick_variant(results, latency_budget_ms=20, memory_budget_mb=500)
    assert pick.chosen == "student"
    pick = pick_variant(results, latency_budget_ms=3.5)
    assert pick.chosen == "student int8"
    reasons = pick.table.set_index("name")["reason"]
    assert reasons["fp32"] == "16.00 ms > 3.5 ms" and reasons["student int8"] == "chosen"
    pick = pick_variant(results, latency_budget_ms=20, memory_budget_mb=50)
    assert pick.chosen == "student int8"
    assert "60.0 MB > 50 MB" in pick.table.set_index("name").loc["student", "reason"]
    pick = pick_variant(results, latency_budget_ms=12, memory_budget_mb=500)
    assert pick.chosen == "student"
    assert pick.table.set_index("name").loc["int8", "reason"].startswith("fits, but less accurate")


def test_picker_says_which_variant_comes_closest_when_none_fits(results):
    with pytest.raises(NoVariantFitsError) as err:
        pick_variant(results, latency_budget_ms=2.0, memory_budget_mb=500)
    message = str(err.value)
    assert "'student int8'" in message and "3.00 ms > 2 ms" in message and "50% over" in message
    with pytest.raises(NoVariantFitsError, match="'student int8'.*30.0 MB > 20 MB"):
        pick_variant(results, latency_budget_ms=100, memory_budget_mb=20)


@pytest.mark.parametrize("latency, memory", [(0, None), (-5, 100), (10, 0), (float("nan"), None), ("fast", None)])
def test_picker_refuses_budgets_that_are_not_positive_numbers(results, latency, memory):
    with pytest.raises(ValueError, match="budget"):
        pick_variant(results, latency_budget_ms=latency, memory_budget_mb=memory)


def test_picker_names_missing_columns(results):
    with pytest.raises(ValueError, match="lacks.*peak_memory_mb"):
        pick_variant(results.drop(columns="peak_memory_mb"), latency_budget_ms=10, memory_budget_mb=100)
    with pytest.raises(ValueError, match="empty"):
        pick_variant(results.iloc[:0], latency_budget_ms=10)


@pytest.mark.usefixtures("cache_root")
def test_benchmark_gives_a_pruned_student_its_own_tokenizer(teacher):
    texts = list(teacher.splits["train"]["text"])
    pruned = prune_vocabulary(teacher.model, teacher.tokenizer, texts)
    bench = minikit.Benchmark(teacher.splits["test"], teacher.tokenizer, max_length=32, repeats=2, batch_repeats=1,
                              batch_size=4)
    bench.add("teacher", teacher.model)
    bench.add("pruned", pruned.model, tokenizer=pruned.tokenizer)
    table = bench.run().set_index("name")
    # Every test text uses only kept tokens, so the pruned copy predicts exactly what the teacher does.
    assert table.loc["pruned", "accuracy"] == table.loc["teacher", "accuracy"]
    assert table.loc["pruned", "size_mb"] < table.loc["teacher", "size_mb"]
    with pytest.raises(IndexError):  # the teacher's ids are out of the pruned embedding's range
        bad = minikit.Benchmark(teacher.splits["test"], teacher.tokenizer, max_length=32, repeats=1, batch_repeats=1)
        bad.add("pruned, wrong tokenizer", pruned.model)
        bad.run()


def test_score_keeps_each_variants_accuracy_for_run_to_read_back(tiny_dataset, tokenizer, bench_models, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    small, wide = bench_models
    scores = _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", wide).score()
    assert scores["name"].tolist() == ["small", "wide"] and (scores["n_eval"] == len(tiny_dataset)).all()
    with torch.inference_mode():  # each accuracy is the model's own argmax against the labels
        enc = tokenizer(list(tiny_dataset["text"]), truncation=True, max_length=32, padding=True, return_tensors="pt")
        for name, net in (("small", small), ("wide", wide)):
            own = (net.eval()(**enc).logits.argmax(-1).numpy() == np.asarray(tiny_dataset["label"])).mean()
            assert scores.set_index("name").loc[name, "accuracy"] == pytest.approx(own)
    assert minikit.cache.entries("benchmarks").empty  # scoring times nothing, so no run is stored
    assert len(minikit.cache.entries("bench-quality")) == 2

    def refuse(*args, **kwargs):
        raise AssertionError("a scored variant must not be scored again")

    monkeypatch.setattr(Benchmark, "_quality", refuse)
    bench = _cached_bench(tiny_dataset, tokenizer, tmp_path, baseline="a").add("a", small).add("b", wide)
    table = bench.run().set_index("name")  # other names, the same weights: times both, reads their scores back
    assert table.loc[["a", "b"], "accuracy"].tolist() == scores["accuracy"].tolist()
    assert bench.correct("b").shape == (len(tiny_dataset),) and (table["peak_memory_mb"] > 0).all()
    changed = copy.deepcopy(wide)
    with torch.no_grad():
        next(changed.parameters()).add_(1e-3)  # other weights: another entry, scored anew
    with pytest.raises(AssertionError, match="scored again"):
        _cached_bench(tiny_dataset, tokenizer, tmp_path).add("small", small).add("wide", changed).score()
    with pytest.raises(AssertionError, match="scored again"):  # without the cache, every run scores anew
        Benchmark(tiny_dataset, tokenizer, max_length=16, repeats=2, batch_size=4, batch_repeats=1).add(
            "small", small).score()
