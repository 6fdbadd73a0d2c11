"""Honest timings (minikit.timing): a loaded machine is detected, re-measured, marked, and never cached.

A loaded machine is faked (the probe, /proc/stat and the load average are monkeypatched), so no
test depends on how busy the test machine is, and none asserts a wall-clock duration.
"""

from __future__ import annotations

import itertools

import pytest

from minikit import cache, timing

pytestmark = pytest.mark.usefixtures("real_load_judge")

QUIET = dict(probe_before_ms=1.0, probe_after_ms=1.1, reference_ms=1.0, others_cores=0.1, cores=4)


def test_judge_a_quiet_machine_has_no_reasons():
    check = timing.judge(**QUIET, round_ms=[1.0, 1.2, 0.9])
    assert not check.loaded and check.warning == "" and check.reasons == ()


@pytest.mark.parametrize("change, words", [
    (dict(probe_after_ms=2.0), "probe ran 2.0× slower"),
    (dict(others_cores=1.5), "other processes kept 1.5 of 4 cores busy"),
    (dict(round_ms=[1.0, 2.5, 1.1]), "slowest round's median was 2.5× the fastest"),
])
def test_judge_names_each_sign_of_load(change, words):
    check = timing.judge(**{**QUIET, **change})
    assert check.loaded and words in check.warning


def test_judge_ignores_what_it_cannot_see():
    assert not timing.judge(**{**QUIET, "others_cores": None}, round_ms=[5.0]).loaded  # one round: no spread


def fake_machine(monkeypatch, *, probes, snapshots, load=None):
    """Make LoadWatch see these probe times and these /proc/stat snapshots (wall, own CPU, busy CPU, cpus)."""
    probe_times = iter(probes)
    monkeypatch.setattr(timing, "_fastest_probe_ms", [1.0])
    monkeypatch.setattr(timing, "probe_ms", lambda repeats=5: next(probe_times))
    monkeypatch.setattr(timing, "_cpu_snapshot", lambda stat=timing.PROC_STAT: next(snapshots))
    monkeypatch.setattr(timing, "loadavg", lambda: load)
    monkeypatch.setattr(timing, "RETRY_PAUSE_S", 0.0)


def test_load_watch_counts_other_processes_cpu_time(monkeypatch):
    # 1 s of wall time, this process ran 0.2 CPU s, the whole machine 1.9 busy CPU s: others used 1.7 cores.
    fake_machine(monkeypatch, probes=[1.0, 1.0], snapshots=iter([(0.0, 0.0, 0.0, 2), (1.0, 0.2, 1.9, 2)]))
    with timing.LoadWatch() as watch:
        pass
    assert watch.check.others_cores == pytest.approx(1.7)
    assert watch.check.loaded and "1.7 of 2 cores" in watch.check.warning


def test_load_watch_without_proc_stat_uses_the_load_average_against_the_cores(monkeypatch):
    fake_machine(monkeypatch, probes=[1.0, 1.0], snapshots=iter([(0.0, 0.0, None, None), (2.0, 1.0, None, None)]),
                 load=3.5)
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 4)
    with timing.LoadWatch() as watch:
        pass
    assert watch.check.others_cores == pytest.approx(3.0)  # 3.5 runnable, less this process's own 0.5 core
    assert watch.check.cores == 4 and watch.check.loaded


def test_load_watch_sees_a_probe_slowed_by_load(monkeypatch):
    fake_machine(monkeypatch, probes=[1.0, 3.0], snapshots=iter([(0.0, 0.0, 0.0, 2), (1.0, 1.0, 1.0, 2)]))
    with timing.LoadWatch() as watch:
        pass
    assert watch.check.loaded and "3.0× slower" in watch.check.warning


def quiet_then(monkeypatch, loaded_attempts: int):
    """The first ``loaded_attempts`` watches see a loaded machine, the later ones a quiet one."""
    busy = [(0.0, 0.0, 0.0, 2), (1.0, 0.0, 2.0, 2)] * loaded_attempts
    calm = itertools.cycle([(0.0, 0.0, 0.0, 2), (1.0, 1.0, 1.0, 2)])
    fake_machine(monkeypatch, probes=itertools.repeat(1.0), snapshots=itertools.chain(busy, calm))


def test_measure_quietly_measures_again_once_the_load_passes(monkeypatch):
    quiet_then(monkeypatch, loaded_attempts=1)
    calls = []
    result, check = timing.measure_quietly(lambda: calls.append(len(calls)) or len(calls))
    assert calls == [0, 1] and result == 2 and not check.loaded


def test_measure_quietly_gives_up_after_its_attempts_and_marks_the_result(monkeypatch):
    quiet_then(monkeypatch, loaded_attempts=99)
    calls = []
    with pytest.warns(timing.SuspectTimingWarning, match=r"Timed 3× on a busy machine \(other processes kept 2\.0"):
        result, check = timing.measure_quietly(lambda: calls.append(1) or "ms", attempts=3)
    assert len(calls) == 3 and result == "ms"
    assert check.loaded and "other processes kept 2.0 of 2 cores busy" in check.warning
    with pytest.raises(ValueError, match="attempts=0"):
        timing.measure_quietly(lambda: None, attempts=0)


def test_measure_quietly_judges_the_rounds_it_is_given(monkeypatch):
    quiet_then(monkeypatch, loaded_attempts=0)
    _, check = timing.measure_quietly(lambda: [10.0, 31.0], attempts=1, round_ms=lambda r: r)
    assert check.loaded and "3.1×" in check.warning


# --- cached timings ------------------------------------------------------------------------------

PARTS = {"what": "a test timing"}


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(timing, "session_stamp", lambda: {"boot_id": "boot-1", "cpu_model": "CPU A"})
    monkeypatch.setattr(timing, "_revalidations", {})


def counting(warning: str = ""):
    calls = []

    def measure():
        calls.append(1)
        return {"ms": float(len(calls))}, warning
    return measure, calls


def test_a_quiet_timing_is_cached_for_this_boot(own_cache):
    measure, calls = counting()
    first = timing.cached_timing("test-timings", PARTS, measure)
    second = timing.cached_timing("test-timings", PARTS, measure)
    assert len(calls) == 1 and second.payload == first.payload == {"ms": 1.0}
    assert (first.from_cache, second.from_cache) == (False, True) and second.load_warning == ""
    assert second.measured_at == first.measured_at


def test_a_loaded_timing_is_returned_marked_and_never_cached(own_cache):
    measure, calls = counting(warning="other processes kept 2.0 of 2 cores busy")
    first = timing.cached_timing("test-timings", PARTS, measure)
    assert first.load_warning.startswith("other processes") and not first.from_cache
    assert cache.entries("test-timings").empty
    timing.cached_timing("test-timings", PARTS, measure)
    assert len(calls) == 2  # measured again: nothing was kept


def test_a_cached_timing_expires_with_the_boot_unless_the_probe_revalidates_it(own_cache, monkeypatch):
    measure, calls = counting()
    timing.cached_timing("test-timings", PARTS, measure)
    monkeypatch.setattr(timing, "session_stamp", lambda: {"boot_id": "boot-2", "cpu_model": "CPU A"})
    monkeypatch.setattr(timing, "_revalidated", lambda record: False)
    after_reboot = timing.cached_timing("test-timings", PARTS, measure)
    assert len(calls) == 2 and after_reboot.payload == {"ms": 2.0} and not after_reboot.from_cache
    monkeypatch.setattr(timing, "session_stamp", lambda: {"boot_id": "boot-3", "cpu_model": "CPU A"})
    monkeypatch.setattr(timing, "_revalidated", lambda record: record["payload"] == {"ms": 2.0})
    kept = timing.cached_timing("test-timings", PARTS, measure)
    assert len(calls) == 2 and kept.from_cache and kept.payload == {"ms": 2.0}
    monkeypatch.setattr(timing, "_revalidated", lambda record: False)  # the renewed stamp needs no probe now
    assert timing.cached_timing("test-timings", PARTS, measure).from_cache and len(calls) == 2


def test_revalidation_needs_the_same_cpu_a_quiet_machine_and_an_equally_fast_probe(own_cache, monkeypatch):
    quiet_then(monkeypatch, loaded_attempts=0)
    record = {"stamp": {"boot_id": "old", "cpu_model": "CPU A"}, "probe_ms": 1.0}
    assert timing._revalidated(record)
    assert not timing._revalidated({**record, "stamp": {"boot_id": "old", "cpu_model": "CPU B"}})
    assert not timing._revalidated({**record, "probe_ms": 0.5})  # twice as fast then: another machine, or load now
    quiet_then(monkeypatch, loaded_attempts=1)
    assert not timing._revalidated(record)


def test_session_stamp_reads_the_boot_id_and_falls_back_off_linux(tmp_path):
    boot = tmp_path / "boot_id"
    boot.write_text("3f1c\n")
    assert timing.session_stamp(boot)["boot_id"] == "3f1c"
    assert timing.session_stamp(tmp_path / "absent")["boot_id"].startswith("booted-")
    assert timing.session_stamp(boot)["cpu_model"]
