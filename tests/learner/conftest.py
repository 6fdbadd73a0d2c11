"""Tests of what a learner meets: the course in a real browser, and the course built as Binder builds it.

They are slow (minutes), so they run last: after the package tests and after the notebooks
(nbval), whose kernels share this session's ``MINIKIT_CACHE``. The browser test and the Binder
dry-run then find that cache warm, as the notebooks' time budgets assume, and a quick failure
elsewhere is reported before them. The browser test runs before the dry-run, whose notebook run
is the one that measures the time and memory budgets. The dry-run's build (a fresh venv, pip) runs
beside the package tests, so its minute and a half of pip work does not add to CI's time: ``make
test`` starts it in a process of its own (``binder_build.py``, folder in ``MINIKIT_BINDER_BUILD``);
a plain ``pytest`` run starts it in a thread as soon as collection ends. Only its notebook run
waits for the end.

Everything they produce for a person to look at goes under ``artifacts/`` (gitignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_LAST = "test_binder_dry_run.py"  # the measurement run goes last, on an otherwise idle machine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in item.path.parents]
    if mine:
        others = [item for item in items if HERE not in item.path.parents]
        items[:] = others + sorted(mine, key=lambda item: item.path.name == _LAST)



def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the Binder build (pip work, ~90 s) now, beside the package tests, if its test will run."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        if item.get_closest_marker("binder") is not None:
            item.module.start_build()
            return


def pytest_sessionfinish(session: pytest.Session) -> None:
    for item in getattr(session, "items", []):
        if item.get_closest_marker("binder") is not None:
            item.module.stop_build()
            return
