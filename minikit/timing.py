"""Honest timings: was the machine quiet while we measured, and may a cached timing still be trusted?

A latency measured while another program was using the CPU is that program's story, not the
model's. So a measurement is watched: a short calibration probe (a fixed bit of Python) is timed
before and after it and held against the fastest probe seen in this session, the CPU time other
processes used meanwhile is read from ``/proc/stat`` (or, where there is none, the load average
against the core count), and the caller may pass its per-round medians to see how much they
spread. A loaded measurement is taken again a bounded number of times; if it is still loaded it
is returned with a ``load_warning`` and never written to the cache.

A cached timing belongs to one boot of one machine (``session_stamp``: the kernel's boot id and
the CPU model). Read back after a reboot, or on another machine sharing the cache folder, it is
re-validated with the probe (same CPU, quiet now, probe as fast as when it was measured) or
measured again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from minikit import cache
from minikit.system import machine_description

PROBE_SLOWDOWN = 1.5  # a probe this many times slower than the session's fastest: something else holds the CPU
OTHERS_SHARE = 0.25  # other processes kept more than this share of all cores busy while we measured
ROUND_SPREAD = 2.0  # the slowest round's median over the fastest round's: the machine changed under us
REVALIDATE_SLOWDOWN = 1.25  # a stored timing is re-validated when today's probe is within this of its own
ATTEMPTS = 2  # measurements taken before a loaded one is returned, marked (each may take minutes)
RETRY_PAUSE_S = 2.0  # a pause before measuring again: a burst of load from elsewhere may pass
TIMING_FILE = "timing.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PROC_STAT = Path("/proc/stat")


class SuspectTimingWarning(UserWarning):
    """Timings that no arithmetic explains (bigger models faster, same-shape models far apart): re-measure."""


_fastest_probe_ms: list[float] = []  # the fastest probe this session: the quiet machine's reference
_revalidations: dict[tuple[str, float | None], bool] = {}  # (stored stamp, its probe) → re-validated this session


def probe_ms(repeats: int = 5) -> float:
    """Median milliseconds of a fixed single-threaded piece of Python (about a millisecond on a laptop)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sum(i * i for i in range(20_000))
        times.append((time.perf_counter() - start) * 1e3)
    ms = sorted(times)[len(times) // 2]
    _fastest_probe_ms[:] = [min([ms, *_fastest_probe_ms])]
    return ms


def reference_probe_ms() -> float:
    """The fastest probe seen in this session (probing a few times first if none was taken)."""
    if not _fastest_probe_ms:
        for _ in range(3):
            probe_ms()
    return _fastest_probe_ms[0]


def _cpu_snapshot(stat: Path = PROC_STAT) -> tuple[float, float, float | None, int | None]:
    """(wall s, CPU s of this process, busy CPU s of the whole machine, CPUs it counts); the last two None without /proc/stat."""
    own = os.times()
    wall, mine = time.perf_counter(), own.user + own.system
    try:
        lines = stat.read_text().splitlines()
        values = [int(v) for v in lines[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return wall, mine, None, None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return wall, mine, (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK"), cpus


def loadavg() -> float | None:
    """The one-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


@dataclass(frozen=True)
class LoadCheck:
    """What was seen around one measurement; ``reasons`` is empty when the machine was quiet."""

    reasons: tuple[str, ...]
    probe_before_ms: float
    probe_after_ms: float
    reference_probe_ms: float
    others_cores: float | None  # cores other processes kept busy on average; None where unknown
    cores: int

    @property
    def loaded(self) -> bool:
        return bool(self.reasons)

    @property
    def warning(self) -> str:
        """The reasons in one line ("" when quiet): what the ``load_warning`` column shows."""
        return "; ".join(self.reasons)


def judge(probe_before_ms: float, probe_after_ms: float, reference_ms: float, others_cores: float | None,
          cores: int, round_ms: Sequence[float] = ()) -> LoadCheck:
    """Say whether a measurement was taken on a loaded machine, and why, from what was seen around it."""
    reasons = []
    slowest = max(probe_before_ms, probe_after_ms)
    if slowest > PROBE_SLOWDOWN * reference_ms:
        reasons.append(f"the calibration probe ran {slowest / reference_ms:.1f}× slower than this session's "
                       f"fastest ({probe_before_ms:.2f} ms before, {probe_after_ms:.2f} ms after)")
    if others_cores is not None and others_cores > OTHERS_SHARE * max(cores, 1):
        reasons.append(f"other processes kept {others_cores:.1f} of {cores} cores busy")
    rounds = [r for r in round_ms if r > 0]
    if len(rounds) >= 2 and max(rounds) > ROUND_SPREAD * min(rounds):
        reasons.append(f"the slowest round's median was {max(rounds) / min(rounds):.1f}× the fastest round's")
    return LoadCheck(tuple(reasons), probe_before_ms, probe_after_ms, reference_ms, others_cores, cores)


class LoadWatch:
    """``with LoadWatch() as watch: measure()`` then ``watch.check`` (a ``LoadCheck``)."""

    def __init__(self, round_ms: Callable[[], Sequence[float]] | None = None):
        self._round_ms = round_ms
        self.check: LoadCheck | None = None

    def __enter__(self) -> "LoadWatch":
        self._reference = reference_probe_ms()
        self._before = probe_ms()
        self._load = loadavg()
        self._start = _cpu_snapshot()
        return self

    def __exit__(self, *exc) -> None:
        after, end = probe_ms(), _cpu_snapshot()
        self.check = judge(self._before, after, self._reference, _others_cores(self._start, end, self._load),
                           end[3] or os.cpu_count() or 1, self._round_ms() if self._round_ms and exc[0] is None else ())


def _others_cores(start: tuple, end: tuple, load: float | None) -> float | None:
    """Cores other processes kept busy between two ``_cpu_snapshot``s, on average; None where unknown."""
    wall, mine = end[0] - start[0], end[1] - start[1]
    if wall <= 0:
        return None
    if start[2] is not None and end[2] is not None:
        return max(0.0, (end[2] - start[2]) - mine) / wall
    # No /proc/stat: the one-minute load average (taken before) less what this process itself ran.
    return None if load is None else max(0.0, load - mine / wall)


def others_cores_now(seconds: float = 2.0) -> float | None:
    """Cores other processes keep busy while this one sleeps ``seconds``, on average; None where unknown."""
    start, load = _cpu_snapshot(), loadavg()
    time.sleep(seconds)
    return _others_cores(start, _cpu_snapshot(), load)


def measure_quietly(measure: Callable[[], Any], attempts: int = ATTEMPTS,
                    round_ms: Callable[[Any], Sequence[float]] | None = None) -> tuple[Any, LoadCheck]:
    """Run ``measure()`` until the machine was quiet through it, at most ``attempts`` times.

    Returns (its result, the ``LoadCheck``): the first quiet measurement, or the last one marked
    loaded, with a ``SuspectTimingWarning`` so the note shows under whatever table the caller draws.
    ``round_ms(result)``, if given, returns the per-round medians whose spread is judged too.
    """
    if attempts < 1:
        raise ValueError(f"attempts={attempts}: need at least 1.")
    for attempt in range(attempts):
        if attempt:
            time.sleep(RETRY_PAUSE_S)
        box: list[Any] = []
        with LoadWatch(lambda: round_ms(box[0]) if round_ms is not None else ()) as watch:
            box.append(measure())
        if not watch.check.loaded:
            break
    else:
        warnings.warn(f"Timed {attempts}× on a busy machine ({watch.check.warning}). These timings are marked in "
                      "load_warning and not cached; measure again when the machine is quiet.", SuspectTimingWarning,
                      stacklevel=3)
    return box[0], watch.check


def session_stamp(boot_id: Path = BOOT_ID) -> dict[str, str]:
    """This boot of this machine: the kernel's boot id (or the boot time, rounded) and the CPU model."""
    try:
        boot = boot_id.read_text().strip()
    except OSError:  # not Linux: the time of boot, to the minute
        boot = f"booted-{round((time.time() - time.monotonic()) / 60)}"
    return {"boot_id": boot, "cpu_model": machine_description()["cpu_model"]}


@dataclass(frozen=True)
class Timing:
    """A measured payload and how far to trust it."""

    payload: Any  # what ``measure`` returned (JSON-able)
    measured_at: str
    load_warning: str  # "" when measured on a quiet machine; else why it was not
    from_cache: bool


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _store(kind: str, parts: dict, record: dict) -> None:
    def write(folder: Path) -> None:
        (folder / TIMING_FILE).write_text(json.dumps(record, indent=1))

    cache.load_or_build(kind, parts, write, rebuild=True)


def _revalidated(record: dict) -> bool:
    """True when a timing stored in another session may stand: same CPU, quiet now, the probe as fast as then."""
    if record.get("stamp", {}).get("cpu_model") != session_stamp()["cpu_model"] or not record.get("probe_ms"):
        return False
    with LoadWatch() as watch:
        now = min(probe_ms() for _ in range(3))
    return not watch.check.loaded and now <= REVALIDATE_SLOWDOWN * record["probe_ms"]


def stamped(record: dict) -> dict:
    """``record`` with this session's stamp and reference probe, as ``still_valid`` reads them back."""
    return {**record, "stamp": session_stamp(), "probe_ms": reference_probe_ms()}


def still_valid(record: dict) -> bool:
    """True when a ``stamped`` record was measured in this boot of this machine, or the probe re-validates it."""
    if record.get("stamp") == session_stamp():
        return True
    seen = (json.dumps(record.get("stamp"), sort_keys=True), record.get("probe_ms"))
    if seen not in _revalidations:  # a table of many stored rows from one session is probed once
        _revalidations[seen] = _revalidated(record)
    return _revalidations[seen]


def cached_timing(kind: str, parts: dict, measure: Callable[[], tuple[Any, str]], refresh: bool = False) -> Timing:
    """The JSON-able timing ``measure()`` returns, read from the cache when this session (or a re-validation) allows.

    ``measure()`` returns (payload, load warning): it measures with ``measure_quietly`` and passes on
    ``check.warning`` ("" when quiet). A stored timing from this boot of this machine is read back; one
    from another boot is re-validated with the probe (its stamp is then renewed) or measured again. A
    fresh one is cached only when its warning is empty; a loaded one is returned, marked, and forgotten.
    """
    entry = None if refresh else cache.find(kind, parts)
    if entry is not None and (entry / TIMING_FILE).is_file():
        record = json.loads((entry / TIMING_FILE).read_text())
        if still_valid(record):
            if record.get("stamp") != session_stamp():
                _store(kind, parts, {**record, "stamp": session_stamp()})
            return Timing(record["payload"], record["measured_at"], "", from_cache=True)
    payload, warning = measure()
    measured_at = _now()
    if not warning:
        _store(kind, parts, stamped({"payload": payload, "measured_at": measured_at}))
    return Timing(payload, measured_at, warning, from_cache=False)


__all__ = ["ATTEMPTS", "LoadCheck", "LoadWatch", "SuspectTimingWarning", "Timing", "cached_timing", "judge", "loadavg", "measure_quietly",
           "probe_ms", "reference_probe_ms", "session_stamp", "stamped", "still_valid"]
