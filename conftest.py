"""Notebook budgets, measured during nbval's own run of the notebooks (no extra execution).

While nbval executes a notebook, each cell one test, this plugin samples the memory of the
notebook's kernel (its whole process tree, every 50 ms; anonymous resident memory is judged, all
resident pages are recorded too, see ``bench/notebook_budgets.py``) and times the notebook from kernel
start to its last cell. At the end of the session it writes ``artifacts/notebook_budgets.json``,
prints one row per notebook, and fails the run when a notebook went over its budget in
``bench/notebook_budgets.py`` (1.5 GB everywhere; a time per chapter).

A notebook that trained something in that run (new entries of a trained kind, ``minikit.cache.TRAINED_KINDS``,
appeared in the cache while it ran) is held to its *cold-cache* budget, otherwise to its warm-cache one. Time budgets are scaled to
this machine by a calibration workload timed in the same run (at the start and at the end of the
session; see ``bench/notebook_budgets.py``): a notebook over its scaled budget is reported, and only one
more than twice over it fails. Memory budgets fail as they are. Only notebooks that ran every cell are
judged: ``pytest notebooks/03_fine_tuning.ipynb::Cell 4`` records nothing.

How the notebooks find their cache (``make test`` sets these; see the Makefile):

* ``MINIKIT_BUILT_CACHE=DIR``: a cache made by ``python -m minikit build``. It is never written to:
  the session works on a copy (hard links, so it costs no disk), and so does every notebook with
* ``MINIKIT_NOTEBOOK_CACHE=alone``: each notebook starts its kernel on a fresh copy of the built cache,
  so no notebook can lean on what another one left in the cache. The default, ``shared``, gives all
  notebooks the session's one copy, as a learner's course has.
* ``MINIKIT_NOTEBOOK_ORDER=reverse`` runs the notebooks last chapter first (each one's cells in order).
* ``MINIKIT_NO_TRAIN=1`` (read by minikit in the kernels) makes any training raise: with a built
  cache, a notebook that passes has trained nothing.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
ARTIFACT = ROOT / "artifacts" / "notebook_budgets.json"


def copy_cache(built: Path) -> Path:
    """A fresh copy of a built minikit cache, made of hard links (entries are never changed in place: the cache
    writes a new entry into a temp folder and renames it), without its lock files; removed at exit."""
    built = Path(built)
    if not built.is_dir():
        raise pytest.UsageError(f"MINIKIT_BUILT_CACHE={built} is not a folder. Fix: run `MINIKIT_CACHE={built} "
                                "python -m minikit build` first, or unset MINIKIT_BUILT_CACHE.")
    dest = Path(tempfile.mkdtemp(prefix="minikit-notebook-cache-"))
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    shutil.copytree(built, dest / "cache", copy_function=os.link,
                    ignore=shutil.ignore_patterns("*.lock", ".*"))
    return dest / "cache"


# The session's cache, set at import (before tests/conftest.py, which keeps it when MINIKIT_BUILT_CACHE is set):
# the kernels nbval starts, the browser test's JupyterLab and the Binder dry-run inherit this environment.
if os.environ.get("MINIKIT_BUILT_CACHE"):
    os.environ["MINIKIT_CACHE"] = str(copy_cache(Path(os.environ["MINIKIT_BUILT_CACHE"])))


def _budgets():
    spec = importlib.util.spec_from_file_location("notebook_budgets", ROOT / "bench" / "notebook_budgets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cache_entries() -> set[str]:
    """Names of the minikit cache's entries (``<kind>/<key>``), read from MINIKIT_CACHE as kernels see it."""
    from minikit.settings import get_settings  # the kernels' own rule for where the cache is

    root = get_settings().cache_dir
    if not root.is_dir():
        return set()
    return {f"{kind.name}/{entry.name}" for kind in root.iterdir() if kind.is_dir()
            for entry in kind.iterdir() if not entry.name.startswith(".") and not entry.name.endswith(".lock")}


@dataclass
class _Run:
    notebook: str
    cells: int  # cells nbval collected for this notebook
    start: float = field(default_factory=time.perf_counter)
    cache_before: set[str] = field(default_factory=_cache_entries)
    done: int = 0
    failed: int = 0
    peak: int = 0  # anonymous resident bytes: what the budget judges
    peak_rss: int = 0  # plus shared, file-backed pages
    stop: threading.Event = field(default_factory=threading.Event)
    sampler: threading.Thread | None = None

    def watch(self, pid: int) -> None:
        def sample() -> None:
            while not self.stop.is_set():
                anon, rss = _BENCH._tree_memory(pid)  # the bench's own rule
                self.peak, self.peak_rss = max(self.peak, anon), max(self.peak_rss, rss)
                time.sleep(0.05)

        self.sampler = threading.Thread(target=sample, daemon=True)
        self.sampler.start()

    def finish(self, budgets) -> dict:
        self.stop.set()
        if self.sampler:
            self.sampler.join()
        seconds = time.perf_counter() - self.start
        from minikit.cache import TRAINED_KINDS

        built = sorted(_cache_entries() - self.cache_before)
        # Cold: it trained something. Measurements it cached (latencies, exports) are its own work, not training.
        trained = [name for name in built if name.split("/")[0] in TRAINED_KINDS]
        cold = bool(trained)
        warm_budget = budgets.TIME_BUDGET_S.get(self.notebook)
        budget = budgets.COLD_TIME_BUDGET_S.get(self.notebook, warm_budget) if cold else warm_budget
        return {"notebook": self.notebook, "seconds": round(seconds, 1), "peak_mb": round(self.peak / 1e6),
                "peak_rss_mb": round(self.peak_rss / 1e6), "cache": "cold" if cold else "warm", "built": built,
                "trained": trained,
                "time_budget_s": budget, "memory_budget_mb": budgets.MEMORY_BUDGET_MB, "failed_cells": self.failed}


_BENCH = _budgets()





class NotebookBudgets:
    def __init__(self, config: pytest.Config) -> None:
        self.budgets = _BENCH
        self.runs: dict[str, _Run] = {}
        self.rows: list[dict] = []
        self.calibrations: list[float] = []  # ms, at the first notebook and at the end of the session
        self.alone = os.environ.get("MINIKIT_NOTEBOOK_CACHE", "shared") == "alone"
        self.reverse = os.environ.get("MINIKIT_NOTEBOOK_ORDER", "course") == "reverse"
        for name, value, allowed in (("MINIKIT_NOTEBOOK_CACHE", os.environ.get("MINIKIT_NOTEBOOK_CACHE"), ("alone", "shared")),
                                     ("MINIKIT_NOTEBOOK_ORDER", os.environ.get("MINIKIT_NOTEBOOK_ORDER"), ("course", "reverse"))):
            if value not in (None, "", *allowed):
                raise pytest.UsageError(f"{name}={value!r}: expected one of {allowed}.")
        if self.alone and not os.environ.get("MINIKIT_BUILT_CACHE"):
            raise pytest.UsageError("MINIKIT_NOTEBOOK_CACHE=alone copies a built cache for each notebook. Fix: set "
                                    "MINIKIT_BUILT_CACHE to a folder made by `python -m minikit build`.")

    @property
    def scale(self) -> float:
        return self.budgets.scale_factor(sum(self.calibrations) / len(self.calibrations))

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if not self.reverse:
            return
        files = list(dict.fromkeys(item.parent for item in items if self._is_cell(item)))
        rank = {nbfile: position for position, nbfile in enumerate(reversed(files))}
        cells = sorted((item for item in items if self._is_cell(item)), key=lambda item: rank[item.parent])
        rest = [item for item in items if not self._is_cell(item)]
        items[:] = cells + rest  # sorted() is stable: each notebook's cells keep their order

    @staticmethod
    def _is_cell(item: pytest.Item) -> bool:
        return type(item).__name__ == "IPyNbCell"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        if not self._is_cell(item):
            yield
            return
        nbfile = item.parent
        name = Path(str(nbfile.path)).stem
        if not self.calibrations:
            self.calibrations.append(self.budgets.calibrate())
        if name not in self.runs:  # first cell: nbval starts the kernel in this setup, with this environment
            if self.alone:
                os.environ["MINIKIT_CACHE"] = str(copy_cache(Path(os.environ["MINIKIT_BUILT_CACHE"])))
            self.runs[name] = _Run(name, cells=sum(1 for i in item.session.items if i.parent is nbfile))
        yield
        run = self.runs[name]
        kernel = getattr(nbfile, "kernel", None)
        if run.sampler is None and kernel is not None:
            run.watch(kernel.km.provisioner.process.pid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = Path(report.nodeid.split("::")[0]).stem
        run = self.runs.get(name)
        if run is None or not report.nodeid.split("::")[0].endswith(".ipynb"):
            return
        if report.failed:
            run.failed += 1
        if report.when == "call":
            run.done += 1

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None):
        yield
        if not self._is_cell(item) or (nextitem is not None and nextitem.parent is item.parent):
            return
        run = self.runs.get(Path(str(item.parent.path)).stem)
        if run is not None and run.sampler is not None:
            row = run.finish(self.budgets)
            if run.done == run.cells:  # a partial run (one cell, -k, -x) is not a measurement
                self.rows.append(row)

    def _judge(self) -> None:
        """Each row's scaled budget and verdicts, from every calibration of the session."""
        scale, fail = self.scale, self.budgets.FAIL_FACTOR
        for row in self.rows:
            budget = row["time_budget_s"]
            row["scaled_budget_s"] = None if budget is None else round(budget * scale, 1)
            row["time_verdict"] = self.budgets.verdict(row["seconds"], budget, scale)
            row["within_budget"] = row["time_verdict"] != "FAIL" and row["peak_mb"] <= row["memory_budget_mb"]
        self.fail_factor = fail

    def problems(self) -> list[str]:
        found = []
        for row in self.rows:
            if row["time_budget_s"] is None:
                found.append(f"{row['notebook']}: no time budget; add one to TIME_BUDGET_S in bench/notebook_budgets.py")
            elif row["time_verdict"] == "FAIL":
                found.append(f"{row['notebook']}: {row['seconds']} s with a {row['cache']} cache, more than "
                             f"{self.budgets.FAIL_FACTOR:g}× its {row['time_budget_s']} s budget scaled to this machine "
                             f"({row['scaled_budget_s']} s)")
            if row["peak_mb"] > row["memory_budget_mb"]:
                found.append(f"{row['notebook']}: peak {row['peak_mb']} MB, over the {row['memory_budget_mb']} MB budget")
        return found

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.rows:
            return
        self.calibrations.append(self.budgets.calibrate())  # the end of the run too: load can change on the way
        self._judge()
        ARTIFACT.parent.mkdir(exist_ok=True)
        name = os.environ.get("MINIKIT_BUDGETS_NAME")  # make test names each notebook pass's file
        self.artifact = ARTIFACT.with_name(f"notebook_budgets_{name}.json") if name else ARTIFACT
        self.artifact.write_text(json.dumps({
            "cores": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
            "calibration_ms": [round(ms, 2) for ms in self.calibrations],
            "calibration_reference_ms": self.budgets.CALIBRATION_REFERENCE_MS, "scale": round(self.scale, 3),
            "fail_factor": self.budgets.FAIL_FACTOR, "cache_mode": "alone" if self.alone else "shared",
            "order": "reverse" if self.reverse else "course", "no_train": os.environ.get("MINIKIT_NO_TRAIN", ""),
            "total_seconds": round(sum(row["seconds"] for row in self.rows), 1), "notebooks": self.rows}, indent=2))
        if self.problems() and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.rows:
            return
        write = terminalreporter.write_line
        terminalreporter.section("notebook budgets (measured during nbval's run)")
        write(f"calibration workload: {', '.join(f'{ms:.1f}' for ms in self.calibrations)} ms here against "
              f"{self.budgets.CALIBRATION_REFERENCE_MS} ms on the reference machine: time budgets × {self.scale:.2f}; "
              f"cache {'copied for each notebook' if self.alone else 'shared'}, "
              f"{'reverse' if self.reverse else 'course'} order, MINIKIT_NO_TRAIN={os.environ.get('MINIKIT_NO_TRAIN', '')!r}")
        write(f"{'notebook':<24} {'seconds':>8} {'budget':>7} {'scaled':>7}  verdict  {'peak MB':>7} (budget, all pages)")
        for row in self.rows:
            write(f"{row['notebook']:<24} {row['seconds']:>8.1f} {row['time_budget_s']!s:>7} {row['scaled_budget_s']!s:>7}"
                  f"  {row['time_verdict']:<7}  {row['peak_mb']:>7} ({row['memory_budget_mb']}, {row['peak_rss_mb']})"
                  f"  [{row['cache']} cache]")
        write(f"{'total':<24} {sum(row['seconds'] for row in self.rows):>8.1f}")
        for problem in self.problems():
            write(f"FAILED budget: {problem}", red=True)
        write(f"written to {self.artifact.relative_to(ROOT)}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("nbval_lax", default=False) or config.getoption("nbval", default=False):
        config.pluginmanager.register(NotebookBudgets(config), "minikit-notebook-budgets")
