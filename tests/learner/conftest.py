"""Tests of what a learner meets: the course in a real browser, and the course built as Binder builds it.

They are slow (minutes), so ``make test`` runs them last (``tests/run_all.sh``), in a pytest run of their
own, on a copy of the cache ``python -m minikit build`` made earlier in the run (``MINIKIT_BUILT_CACHE``;
see the root ``conftest.py``): the browser test finds every trained artifact there, as a learner on a
built Binder image does, and the Binder dry-run's ``postBuild`` runs the real ``minikit build`` on it,
which must find everything built. The browser test runs before the dry-run, whose notebook run is
the one that measures the time and memory budgets in the Binder environment. The dry-run's environment
(a fresh venv, pip, ~90 s) is made beside the package tests: ``make test`` starts it in a process of its
own (``binder_build.py``, folder in ``MINIKIT_BINDER_BUILD``); a plain ``pytest`` run starts it in a
thread as soon as collection ends. Run without a built cache, these tests start from an empty one,
and postBuild's build trains the course first, with one thread as on Binder (~24 minutes).

Everything they produce for a person to look at goes under ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import sys
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


def pytest_terminal_summary(terminalreporter) -> None:
    """The browser test's knob times (``knob_times.json``), one line per knob moved, if it ran."""
    module = next((m for name, m in sys.modules.items() if name.endswith("test_widgets_in_browser")), None)
    rows = getattr(module, "knob_times", None)
    if not rows:
        return
    terminalreporter.section("knob → chart redrawn in the browser (seconds; settled = + 1 s steady + screenshot)")
    terminalreporter.write_line(f"{'widget':28s} {'knob':9s} {'redraw':>7s} {'settled':>8s}  action")
    for r in rows:
        redraw = "-" if r["redraw_s"] is None else f"{r['redraw_s']:.2f}"
        terminalreporter.write_line(f"{r['widget']:28s} {r['knob']:9s} {redraw:>7s} {r['settled_s']:8.1f}  "
                                    f"{r['action'][:60]}")
    terminalreporter.write_line(f"(also in {module.KNOB_TIMES})")


# --- the headless Chromium both browser tests drive (the widgets in JupyterLab, the course site) ---------

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    # Without these Chromium keeps calling home, which a closed CI network answers with errors.
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def find_chromium() -> str:
    """The browser to drive: MINIKIT_CHROMIUM, else Debian's /usr/bin/chromium, else `chromium` on PATH."""
    wanted = os.environ.get("MINIKIT_CHROMIUM")
    if wanted:
        if not Path(wanted).is_file():
            pytest.fail(f"MINIKIT_CHROMIUM={wanted!r} is not a file. Fix: point it at a Chromium or Chrome "
                        "executable, or unset it to use /usr/bin/chromium.", pytrace=False)
        return wanted
    found = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    if not found:
        pytest.fail(
            "The browser test needs Chromium and found none (looked for /usr/bin/chromium and `chromium` on PATH).\n"
            "Fix, on Debian: `sudo apt-get install chromium` (or `make chromium`).\n"
            "Elsewhere: set MINIKIT_CHROMIUM to a Chromium or Google Chrome executable.\n"
            "To run everything else meanwhile: make test PYTEST_ARGS='-m \"not browser\"'.\n"
            "(Playwright drives that browser; `playwright install` is never needed.)",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright; one per test module."""
    executable = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed. Fix: pip install -e '.[test]' (make test does it).", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
