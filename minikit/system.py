"""The machine and the process: freed memory handed back, peak resident memory, what this computer is.

The bottom layer of minikit, beside ``errors``, ``settings`` and ``cache``: it imports nothing of minikit.
"""

from __future__ import annotations

import gc
import os
import platform
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS so the next RSS reading starts from what is in use."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere the figure is an upper bound
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Samples this process's resident memory in a background thread; ``peak_mb`` is above the start."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self._process = psutil.Process(os.getpid())
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRSS":
        release_freed_memory()
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 1e6


def _cpuinfo_fields(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """The first non-empty value of each ``key: value`` field of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        info = Path(cpuinfo).read_text(errors="replace")
    except OSError:  # macOS, Windows, or a sandbox that hides /proc
        return {}
    fields_seen: dict[str, str] = {}
    for line in info.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields_seen.setdefault(key.strip(), value.strip())
    return fields_seen


def _cpu_model_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``, else "unknown"."""
    fields_seen = _cpuinfo_fields(cpuinfo)
    # x86 says "model name"; ARM boards often say only "Hardware" or the implementer and part ids.
    for key in ("model name", "Hardware", "cpu model", "Processor", "cpu"):
        if key in fields_seen:
            return fields_seen[key]
    if "CPU implementer" in fields_seen:
        return f"implementer {fields_seen['CPU implementer']}, part {fields_seen.get('CPU part', '?')}"
    return platform.processor() or "unknown"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The instruction-set flags the CPU reports in /proc/cpuinfo (Linux: avx512_bf16, amx_tile, …); empty elsewhere."""
    fields_seen = _cpuinfo_fields(cpuinfo)
    return set(fields_seen.get("flags", fields_seen.get("Features", "")).split())  # x86, ARM


def machine_description() -> dict[str, Any]:
    """What about this computer sets the speed figures: processor architecture, core count, CPU model.

    Part of ``compare_models``' cache key, so a table measured on one machine is never shown as
    another's when they share a cache folder (a laptop's and a Binder server's, say). Each field
    falls back to a placeholder where the platform does not say.
    """
    return {"machine": platform.machine() or "unknown", "system": platform.system() or "unknown",
            "cpu_count": os.cpu_count() or 0, "cpu_model": _cpu_model_name()}


def cpu_identity() -> dict[str, Any]:
    """What about this computer can change a result, not only its speed: architecture, system, CPU model.

    Part of the keys of cached accuracies that run int8 kernels (their instructions differ between
    CPUs); the core count is left out, so a build pod and a session on the same CPU model share them.
    """
    return {k: v for k, v in machine_description().items() if k != "cpu_count"}


def prove_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write and delete a file there, before any work depends on it.

    Raises ``OSError`` (the caller's message says the fix in its own terms: an option, a variable).
    """
    probe = folder / f".minikit-write-test-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    probe.write_text("ok")
    probe.unlink()
