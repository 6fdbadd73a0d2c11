"""Chapter 4 — parameters, size on disk, latency, energy and whole-model profiles (minikit.profiling)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import fake_rapl_zone
from transformers import DistilBertConfig

import minikit
from minikit import cache, profiling, system, timing
from minikit.models import dummy_inputs
from minikit.profiling import (
    ENERGY_ESTIMATE,
    JOULES_PER_FLOP,
    ModelProfile,
    energy_reading,
    estimate_energy_j,
    forward_flops,
    measure_latency,
    profile_model,
    rapl_joules,
    read_rapl_uj,
)


def test_count_parameters_of_a_linear_layer():
    assert minikit.count_parameters(torch.nn.Linear(10, 3)) == 10 * 3 + 3
    assert minikit.count_parameters(torch.nn.Linear(10, 3, bias=False)) == 30


def test_count_parameters_counts_shared_tensors_once():
    shared = torch.nn.Linear(8, 8)
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    assert minikit.count_parameters(model) == 8 * 8 + 8

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4, bias=False)
            self.b = torch.nn.Linear(4, 4, bias=False)
            self.b.weight = self.a.weight

    assert minikit.count_parameters(Tied()) == 16


def test_count_parameters_matches_numel(tiny_model):
    assert minikit.count_parameters(tiny_model) == sum(p.numel() for p in tiny_model.parameters())


def test_count_nonzero_parameters_after_pruning(tiny_model):
    total = minikit.count_parameters(tiny_model)
    before = minikit.count_parameters(tiny_model, nonzero=True)
    assert before == sum(int((p != 0).sum()) for p in tiny_model.parameters())
    assert before < total  # BERT initialises biases and LayerNorm betas at zero
    weight = tiny_model.bert.encoder.layer[0].intermediate.dense.weight
    assert int((weight == 0).sum()) == 0  # random normal weights: no exact zeros to start with
    with torch.no_grad():
        weight[:, : weight.shape[1] // 2] = 0  # prune half the columns
    after = minikit.count_parameters(tiny_model, nonzero=True)
    assert after == before - weight.shape[0] * (weight.shape[1] // 2)
    assert minikit.count_parameters(tiny_model) == total  # zeros still count as parameters


def test_size_on_disk_is_four_bytes_per_parameter(tiny_bert_config):
    model = minikit.build_model(tiny_bert_config(vocab_size=30522), num_labels=2, seed=0)  # ~1 M params
    params = minikit.count_parameters(model)
    size = minikit.size_on_disk_mb(model)
    assert size == pytest.approx(4 * params / 1e6, rel=0.02)
    assert size >= 4 * params / 1e6  # the safetensors header only adds


def test_size_on_disk_halves_in_fp16(tiny_bert_config):
    model = minikit.build_model(tiny_bert_config(vocab_size=30522), seed=0)
    fp32 = minikit.size_on_disk_mb(model)
    fp16 = minikit.size_on_disk_mb(model.half())
    assert fp16 == pytest.approx(fp32 / 2, rel=0.02)


def test_measure_latency(tiny_model):
    inputs = dummy_inputs(tiny_model, 1, 16)
    times = measure_latency(tiny_model, inputs, warmup=1, repeats=7)
    assert isinstance(times, np.ndarray)
    assert times.shape == (7,)
    assert np.all(times > 0)
    assert np.all(np.isfinite(times))
    assert times.max() < 10_000  # milliseconds, not seconds or nanoseconds


def test_measure_latency_counts_calls():
    calls = []

    class Counting(torch.nn.Module):
        def forward(self, **kwargs):
            calls.append(torch.is_inference_mode_enabled())
            return None

    times = measure_latency(Counting(), {"input_ids": torch.zeros(1, 2)}, warmup=2, repeats=3)
    assert len(times) == 3
    assert len(calls) == 5  # warm-up runs happen but are not timed
    assert all(calls)  # timed without autograd bookkeeping


def test_median_latency_is_the_median_of_the_timed_runs(monkeypatch):
    seen = []

    def fake(model, inputs, warmup, repeats):
        seen.append((warmup, repeats))
        return np.array([5.0, 1.0, 3.0]) if repeats == 3 else np.array([1.0, 2.0, 3.0, 10.0])

    monkeypatch.setattr(profiling, "measure_latency", fake)
    assert profiling.median_latency_ms(None, {}, warmup=1, repeats=3) == 3.0
    assert profiling.median_latency_ms(None, {}, warmup=0, repeats=4) == 2.5  # even count: the mean of the middle two
    assert seen == [(1, 3), (0, 4)] and isinstance(profiling.median_latency_ms(None, {}, 1, 3), float)


def test_time_by_kind_splits_a_forward_pass_into_linear_attention_and_the_rest(tiny_model):
    split = profiling.time_by_kind(tiny_model, dummy_inputs(tiny_model, 1, 16), warmup=1, repeats=2)
    assert set(split) == {"linear_ms", "attention_ms", "other_ms"}
    assert split["linear_ms"] > 0 and split["attention_ms"] > 0 and split["other_ms"] > 0  # BERT: all three
    int8 = profiling.time_by_kind(minikit.quantization.dynamic_int8(tiny_model), dummy_inputs(tiny_model, 1, 16),
                                  warmup=1, repeats=2)
    assert int8["linear_ms"] > 0  # torch's dynamic int8 Linear layers count as Linear
    assert sum(split.values()) < 10_000  # milliseconds per pass


def test_time_by_kind_of_a_lone_linear_layer_is_mostly_linear():
    class OnlyLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(512, 512)

        def forward(self, x):
            return self.lin(x)

    split = profiling.time_by_kind(OnlyLinear(), {"x": torch.randn(256, 512)}, warmup=1, repeats=5)
    assert split["linear_ms"] > 0 and split["attention_ms"] == 0
    assert 0 <= split["other_ms"] < split["linear_ms"]  # only the call around the layer is left over


@pytest.mark.parametrize("warmup, repeats", [(3, 0), (3, -1), (-1, 5)])
def test_measure_latency_bad_arguments(tiny_model, warmup, repeats):
    with pytest.raises(ValueError, match=r"need repeats ≥ 1 and warmup ≥ 0"):
        measure_latency(tiny_model, dummy_inputs(tiny_model, 1, 8), warmup=warmup, repeats=repeats)


def test_profile_model(tiny_model):
    profile = profile_model(tiny_model, name="tiny", seq_len=16, batch_size=4, repeats=5, batch_repeats=2)
    assert isinstance(profile, ModelProfile)
    params = minikit.count_parameters(tiny_model)
    weights_mb = 4 * params / 1e6
    assert profile.name == "tiny"
    assert profile.params_m == pytest.approx(params / 1e6)
    assert profile.size_mb == pytest.approx(weights_mb, rel=0.05)
    assert (profile.seq_len, profile.batch_size) == (16, 4)
    assert profile.latency_p95_ms >= profile.latency_p50_ms > 0
    assert profile.throughput > 0
    assert profile.peak_memory_mb >= weights_mb
    assert np.isfinite([profile.latency_p50_ms, profile.throughput, profile.peak_memory_mb]).all()
    assert not tiny_model.training


def test_profile_fields_are_what_charts_use():
    names = [f.name for f in dataclasses.fields(ModelProfile)]
    assert names == ["name", "params_m", "size_mb", "seq_len", "latency_p50_ms", "latency_p95_ms", "batch_size",
                     "throughput", "peak_memory_mb"]


def test_compare_models_one_catalog_model():
    table = minikit.compare_models(["tinybert-4"], seq_len=16, batch_size=2, repeats=2, batch_repeats=1)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == [f.name for f in dataclasses.fields(ModelProfile)] + ["measured_at", "load_warning"]
    assert table["name"].tolist() == ["tinybert-4"]
    row = table.iloc[0]
    assert row["params_m"] == pytest.approx(14.35, rel=0.01)  # 5-label head
    assert row["size_mb"] == pytest.approx(4 * row["params_m"], rel=0.02)
    assert row["latency_p95_ms"] >= row["latency_p50_ms"] > 0
    assert (row["seq_len"], row["batch_size"]) == (16, 2)


# --- compare_models' cache ------------------------------------------------------------------------

SMALL = dict(names=["tinybert-4"], seq_len=16, batch_size=2, repeats=2, batch_repeats=1)


@pytest.fixture
def counted_profiles(tmp_path, monkeypatch) -> list[tuple[str, int]]:
    """An empty cache of its own, and a fake profile_model that records its calls.

    Each call returns different latencies (1 ms, 2 ms, …), so a table measured again differs from
    the cached one. build_model is stubbed too: these tests are about the cache, not the numbers
    (test_compare_models_one_catalog_model measures for real).
    """
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "minikit-cache"))
    calls: list[tuple[str, int]] = []

    def fake_profile(model, name="model", seq_len=128, batch_size=32, repeats=10, batch_repeats=2):
        calls.append((name, seq_len))
        n = float(len(calls))
        return ModelProfile(name, 14.35, 57.4, seq_len, n, n + 0.5, batch_size, 100.0 / n, 80.0 + n)

    monkeypatch.setattr(profiling, "profile_model", fake_profile)
    monkeypatch.setattr(minikit.models, "build_model", lambda name, num_labels=None, seed=None: object())
    return calls


def test_compare_models_second_call_reads_the_cache(counted_profiles):
    first = minikit.compare_models(**SMALL)
    second = minikit.compare_models(**SMALL)
    assert counted_profiles == [("tinybert-4", 16)]  # measured once
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == [f.name for f in dataclasses.fields(ModelProfile)] + ["measured_at", "load_warning"]
    measured_at = dt.datetime.fromisoformat(first.loc[0, "measured_at"])
    assert measured_at.tzinfo is not None
    assert abs(dt.datetime.now(dt.timezone.utc) - measured_at) < dt.timedelta(minutes=5)
    table = cache.entries(profiling.PROFILES_KIND)
    assert len(table) == 1
    assert table.loc[0, "parts"]["machine"] == system.machine_description()


def test_compare_models_refresh_measures_again_and_replaces_the_entry(counted_profiles):
    first = minikit.compare_models(**SMALL)
    fresh = minikit.compare_models(**SMALL, refresh=True)
    assert len(counted_profiles) == 2
    assert fresh.loc[0, "latency_p50_ms"] == 2.0 != first.loc[0, "latency_p50_ms"]
    later = minikit.compare_models(**SMALL)
    assert len(counted_profiles) == 2
    pd.testing.assert_frame_equal(later, fresh)  # the refreshed table replaced the old one
    assert len(cache.entries(profiling.PROFILES_KIND)) == 1


def test_compare_models_a_failed_refresh_keeps_the_cached_table(counted_profiles, monkeypatch):
    first = minikit.compare_models(**SMALL)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(profiling, "profile_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        minikit.compare_models(**SMALL, refresh=True)
    pd.testing.assert_frame_equal(minikit.compare_models(**SMALL), first)


@pytest.mark.parametrize("change", [
    dict(seq_len=32), dict(batch_size=4), dict(repeats=3), dict(batch_repeats=2), dict(seed=1),
    dict(names=["tinybert-4", "minilm-l6"]), dict(names=["minilm-l6"]), "threads", "machine",
])
def test_compare_models_anything_that_changes_the_numbers_is_a_new_entry(counted_profiles, monkeypatch, change):
    first = minikit.compare_models(**SMALL)
    with monkeypatch.context() as elsewhere:
        if change == "threads":
            threads = torch.get_num_threads()
            elsewhere.setattr(torch, "get_num_threads", lambda: threads + 1)
        elif change == "machine":
            elsewhere.setattr(system, "_cpu_model_name", lambda: "Another CPU @ 1.0GHz")
        other = minikit.compare_models(**(SMALL if isinstance(change, str) else {**SMALL, **change}))
    assert len(counted_profiles) == 1 + len(other)  # measured again, not read from the cache
    assert len(cache.entries(profiling.PROFILES_KIND)) == 2
    pd.testing.assert_frame_equal(minikit.compare_models(**SMALL), first)  # the first entry is still there


def loaded_machine(monkeypatch) -> str:
    """Every measurement is judged taken on a loaded machine (and measured again without a pause)."""
    why = "other processes kept 1.9 of 2 cores busy"
    monkeypatch.setattr(timing, "judge", lambda *a, **k: timing.LoadCheck((why,), 1.0, 1.0, 1.0, 1.9, 2))
    monkeypatch.setattr(timing, "RETRY_PAUSE_S", 0.0)
    return why


def test_compare_models_on_a_loaded_machine_measures_again_then_marks_and_caches_nothing(counted_profiles,
                                                                                         monkeypatch):
    why = loaded_machine(monkeypatch)
    table = minikit.compare_models(**SMALL)
    assert len(counted_profiles) == timing.ATTEMPTS  # measured again, a bounded number of times
    assert table["load_warning"].tolist() == [why]
    assert cache.entries(profiling.PROFILES_KIND).empty
    monkeypatch.setattr(timing, "judge", lambda *a, **k: timing.LoadCheck((), 1.0, 1.0, 1.0, 0.0, 2))
    quiet = minikit.compare_models(**SMALL)  # the marked table was not kept: measured anew, now cached
    assert len(counted_profiles) == timing.ATTEMPTS + 1 and quiet["load_warning"].tolist() == [""]
    assert len(cache.entries(profiling.PROFILES_KIND)) == 1


def test_compare_models_warns_about_a_table_no_arithmetic_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "minikit-cache"))
    p50 = {"distilbert": 810.0, "tinybert-6": 54.0}  # both 6×768: chapter 1's stored table before issue 26

    def fake_profile(model, name="model", seq_len=128, batch_size=32, repeats=10, batch_repeats=2):
        return ModelProfile(name, 67.0, 268.0, seq_len, p50[name], p50[name] * 1.1, batch_size, 10.0, 500.0)

    monkeypatch.setattr(profiling, "profile_model", fake_profile)
    monkeypatch.setattr(profiling, "build_model", lambda name, num_labels=None, seed=None: object())
    with pytest.warns(timing.SuspectTimingWarning, match="distilbert at 810.0 ms is 15.0× tinybert-6"):
        minikit.compare_models(["distilbert", "tinybert-6"], seq_len=16, batch_size=2)


def test_compare_models_unknown_name_fails_before_measuring_or_caching(counted_profiles):
    with pytest.raises(minikit.models.UnknownNameError, match="Unknown model name 'no-such-model'"):
        minikit.compare_models(["tinybert-4", "no-such-model"], seq_len=16, batch_size=2)
    assert counted_profiles == []
    assert cache.entries(profiling.PROFILES_KIND).empty


# --- FLOPs and energy -----------------------------------------------------------------------------


def test_forward_flops_of_minilm_is_about_2_9_gflop():
    config = minikit.models.get_card("minilm-l6").config(5)
    assert forward_flops(config, seq_len=128) == pytest.approx(2.9e9, rel=0.10)
    assert forward_flops(config, 128, batch_size=4) == 4 * forward_flops(config, 128)
    same_in_distilbert_names = DistilBertConfig(dim=384, n_layers=6, n_heads=12, hidden_dim=1536)
    assert forward_flops(same_in_distilbert_names) == forward_flops(config)
    mobilebert = forward_flops(minikit.models.get_card("mobilebert").config())
    assert mobilebert == pytest.approx(5.7e9, rel=0.15)  # the MobileBERT paper's figure at 128 tokens
    with pytest.raises(ValueError, match="num_hidden_layers"):
        forward_flops(object())


def test_rapl_reader_on_a_fake_sysfs(tmp_path):
    fake_rapl_zone(tmp_path, "intel-rapl:0", 100_000)
    fake_rapl_zone(tmp_path, "intel-rapl:0:0", 50_000, label="core")  # inside package 0: not counted again
    fake_rapl_zone(tmp_path, "intel-rapl:1", 7, label="psys")  # whole platform: would count twice
    assert read_rapl_uj(tmp_path) == {"intel-rapl:0": (100_000, 1_000_000)}
    with energy_reading(tmp_path) as reading:
        fake_rapl_zone(tmp_path, "intel-rapl:0", 700_000)  # 600 000 µJ later
    assert reading.source == "rapl" and reading.joules == pytest.approx(0.6) and reading.seconds >= 0


def test_rapl_counter_wrap_and_unreadable(tmp_path):
    before, after = {"intel-rapl:0": (900_000, 1_000_000)}, {"intel-rapl:0": (150_000, 1_000_000)}
    assert rapl_joules(before, after) == pytest.approx(0.25)  # 100 000 to the wrap, 150 000 after it
    assert read_rapl_uj(tmp_path / "absent") is None
    zone = fake_rapl_zone(tmp_path, "intel-rapl:0", 5)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()  # reading it fails like a root-only file does for a user
    assert read_rapl_uj(tmp_path) is None
    with energy_reading(tmp_path) as reading:
        pass
    assert reading.joules is None and reading.source == "unavailable"


def test_energy_estimate_is_labelled():
    estimate = estimate_energy_j(2.9e9)
    assert estimate.joules == pytest.approx(2.9e9 * JOULES_PER_FLOP) and estimate.source == ENERGY_ESTIMATE
    assert "estimate" in estimate.source
