"""Notebook budgets, measured during nbval's own run of the notebooks (no extra execution).

While nbval executes a notebook, each cell one test, this plugin samples the memory of the
notebook's kernel (its whole process tree, every 50 ms; anonymous resident memory is judged, all
resident pages are recorded too, see ``bench/notebook_budgets.py``) and times the notebook from kernel
start to its last cell. At the end of the session it writes ``artifacts/notebook_budgets.json``,
prints one row per notebook, and fails the run when a notebook went over its budget in
``bench/notebook_budgets.py`` (1.5 GB everywhere; a time per chapter).

A notebook that trained something in that run (new entries appeared in the minikit cache while it
ran) is held to its *cold-cache* budget, otherwise to its warm-cache one. Only notebooks that ran
every cell are judged: ``pytest notebooks/03_fine_tuning.ipynb::Cell 4`` records nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
ARTIFACT = ROOT / "artifacts" / "notebook_budgets.json"


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
        built = sorted(_cache_entries() - self.cache_before)
        cold = bool(built)
        warm_budget = budgets.TIME_BUDGET_S.get(self.notebook)
        budget = budgets.COLD_TIME_BUDGET_S.get(self.notebook, warm_budget) if cold else warm_budget
        row = {"notebook": self.notebook, "seconds": round(seconds, 1), "peak_mb": round(self.peak / 1e6), "peak_rss_mb": round(self.peak_rss / 1e6),
               "cache": "cold" if cold else "warm", "built": built, "time_budget_s": budget,
               "memory_budget_mb": budgets.MEMORY_BUDGET_MB, "failed_cells": self.failed}
        row["within_budget"] = (budget is not None and seconds <= budget and self.peak / 1e6 <= budgets.MEMORY_BUDGET_MB)
        return row


_BENCH = _budgets()





class NotebookBudgets:
    def __init__(self) -> None:
        self.budgets = _BENCH
        self.runs: dict[str, _Run] = {}
        self.rows: list[dict] = []

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
        if name not in self.runs:  # first cell: nbval starts the kernel in this setup
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

    def problems(self) -> list[str]:
        found = []
        for row in self.rows:
            if row["time_budget_s"] is None:
                found.append(f"{row['notebook']}: no time budget; add one to TIME_BUDGET_S in bench/notebook_budgets.py")
            elif row["seconds"] > row["time_budget_s"]:
                found.append(f"{row['notebook']}: {row['seconds']} s with a {row['cache']} cache, over its "
                             f"{row['time_budget_s']} s budget")
            if row["peak_mb"] > row["memory_budget_mb"]:
                found.append(f"{row['notebook']}: peak {row['peak_mb']} MB, over the {row['memory_budget_mb']} MB budget")
        return found

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.rows:
            return
        ARTIFACT.parent.mkdir(exist_ok=True)
        ARTIFACT.write_text(json.dumps({"cores": os.cpu_count(), "load_average": os.getloadavg(),
                                        "notebooks": self.rows}, indent=2))
        if self.problems() and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.rows:
            return
        write = terminalreporter.write_line
        terminalreporter.section("notebook budgets (measured during nbval's run)")
        for row in self.rows:
            write(f"{row['notebook']:<24} {row['seconds']:>7.1f} s ({row['cache']} cache, budget "
                  f"{row['time_budget_s']} s)  {row['peak_mb']:>5} MB (budget {row['memory_budget_mb']} MB; "
                  f"{row['peak_rss_mb']} MB with shared pages)  "
                  f"{'ok' if row['within_budget'] else 'OVER BUDGET'}")
        for problem in self.problems():
            write(f"FAILED budget: {problem}", red=True)
        write(f"written to {ARTIFACT.relative_to(ROOT)}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("nbval_lax", default=False) or config.getoption("nbval", default=False):
        config.pluginmanager.register(NotebookBudgets(), "minikit-notebook-budgets")
