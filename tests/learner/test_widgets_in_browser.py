"""Every notebook with a widget, run in JupyterLab in a real (headless) Chromium, knobs moved.

For each notebook whose source uses a ``minikit.widgets.`` (or ``minikit.compression_widgets.``)
class with a knob (found by globbing ``notebooks/``, so a new chapter is covered without editing
this file; a notebook whose only widget is ``LiveTrainingChart`` is left to nbval) the test does what a learner does: open it in
JupyterLab, Run All, then move one knob of every widget that carries a chart (a widget without
knobs, like a chart that fills in during training, is only checked to be drawn). It fails when

* a cell shows an error output, a widget does not render, or the kernel dies;
* the page has uncaught JavaScript errors (e.g. a chart widget that fetches Vega from a CDN,
  which fails offline);
* a notebook shows no widget at all, or a chart that is never drawn;
* an output that carries a live widget and its static image (``minikit.static_views``) shows the
  image instead of the widget: JupyterLab must render the widget view, its richest MIME type;
* after the knob moves, no chart in that widget is drawn differently (the rendered marks are
  compared, so a chart that exists but never redraws fails);
* a widget callback raises (ipywidgets sends its traceback to the kernel's output channel,
  which the test listens to; the learner would see nothing but a chart that stopped following).

Knob per widget, the first that applies: a slider (one keyboard step); else a button, after
changing the first dropdown if there is one ("pick, then Measure"); else a dropdown.

Artifacts, per notebook, in ``artifacts/browser/``: ``<notebook>.png`` (the window after the knob
moved), ``<notebook>-widget<N>-before.png`` / ``-after.png``, and ``<notebook>.json`` (timings,
knobs moved, chart hashes, browser console errors, callback output); for the whole run,
``knob_times.json``: per knob moved, ``redraw_s`` (the move to a chart first drawn differently,
polled every 0.1 s) and ``settled_s`` (to the charts steady for 1 s, the kernel idle and the
screenshot taken: an upper bound). The session prints them as a table at its end (``conftest.py``).

Browser: Debian's ``chromium`` (``apt-get install chromium``; ``make chromium`` does it). Playwright
only drives it and never downloads a browser. ``MINIKIT_CHROMIUM`` points to another Chromium or
Chrome binary. Without one the test fails and says how to get one: it does not skip, so that a
green ``make test`` always means the widgets were tried in a browser.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from .course import ARTIFACTS, NOTEBOOKS, ROOT

SHOTS = ARTIFACTS / "browser"
# JupyterLab user settings for the test server (a throw-away settings folder).
LAB_SETTINGS = {
    # 4.2+ keeps only visible cells in the DOM ("full"); the test looks at every cell's output.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # Never write the run's outputs back into a notebook (the server also serves copies).
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # No "get Jupyter news?" toast over the notebook, no update check on a closed network.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
RUN_ALL_TIMEOUT_S = 1200  # the same limit the budget bench gives a notebook
# Seconds from moving a knob to the chart redrawn. A slider should feel live; a button may start
# a measurement of several models first (ModelExplorer's "Measure": ~30 s on 2 busy cores).
KNOB_TIMEOUT_S = {"slider": 60, "dropdown": 60, "button": 300}
WIDGET_ERROR_TEXT = ["Error displaying widget", "JavaScript Error:"]  # ipywidgets, altair JupyterChart
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # its outputs also carry an SVG for static renderers
KNOB_TIMES = SHOTS / "knob_times.json"
knob_times: list[dict] = []  # this session's knobs, all notebooks: conftest.py prints them at the end


# Widgets with nothing to move: a notebook that shows only these is left to nbval (its chart fills in
# while a model trains, which nbval already runs), which saves CI a full second run of chapter 3.
KNOBLESS_WIDGETS = {"LiveTrainingChart"}
WIDGET_USE = re.compile(r"minikit\.(?:compression_)?widgets\.(\w+)")  # minikit.widgets, minikit.compression_widgets


def widget_notebooks() -> list[Path]:
    """Notebooks whose code uses a ``minikit.widgets.`` or ``minikit.compression_widgets.`` class with a knob."""
    def widgets_used(path: Path) -> set[str]:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return {name for cell in cells if cell["cell_type"] == "code"
                for name in WIDGET_USE.findall("".join(cell.get("source", "")))}

    return [path for path in sorted(NOTEBOOKS.glob("*.ipynb")) if widgets_used(path) - KNOBLESS_WIDGETS]


# --- JupyterLab server ---------------------------------------------------------------------------


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never through a proxy


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with _LOCAL.open(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _course_copy(root: Path) -> None:
    """Copies of the notebooks in a folder laid out like the repository (the rest symlinked)."""
    root.mkdir()
    shutil.copytree(NOTEBOOKS, root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for entry in ROOT.iterdir():  # so that a notebook reading ../data/… finds it, as in the repository
        if entry.name not in {"notebooks", "artifacts"} and not entry.name.startswith("."):
            (root / entry.name).symlink_to(entry)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 with a token, serving copies of the notebooks, with test settings."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "course"
    _course_copy(root)
    for plugin, values in LAB_SETTINGS.items():
        path = tmp / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ)
    env.pop("JUPYTER_PATH", None)
    # Fresh config/data/runtime folders: no user config (passwords, extensions) and no user
    # kernelspec shadowing this environment's "python3" kernel.
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    shutil.rmtree(SHOTS, ignore_errors=True)  # only this run's screenshots, not a removed notebook's
    SHOTS.mkdir(parents=True)
    log = SHOTS / "jupyterlab-server.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={tmp / 'user-settings'}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run commands, read cell models
        "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {server.returncode} while starting:\n{_tail(log)}",
                            pytrace=False)
            try:
                lab.api("GET", "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {lab.url} within 120 s:\n{_tail(log)}", pytrace=False)
                time.sleep(0.5)
        yield lab
    finally:
        server.terminate()  # shuts its kernels down too
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _plain(text: str) -> str:
    """Text without the terminal colour codes of an IPython traceback."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- in-page helpers (JupyterLab's own objects, through window.jupyterapp) ---------------------------

PANEL = "[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === path)"

JS_READY = f"""(path) => {{
    const panel = window.jupyterapp && {PANEL};
    const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return Boolean(kernel && kernel.status === 'idle' && panel.content.widgets.length);
}}"""

# Record what the kernel says outside of cells (widget callbacks), and whether it ever died.
JS_LISTEN = f"""(path) => {{
    const panel = {PANEL};
    window.jupyterapp.shell.activateById(panel.id);
    const session = panel.sessionContext;  // its signals follow the kernel across restarts
    window.__minikit = {{errors: [], callbackOutput: [], statuses: [], runAll: null}};
    session.iopubMessage.connect((_, msg) => {{
        const type = msg.header.msg_type, parent = (msg.parent_header || {{}}).msg_type;
        if (type === 'error') {{
            window.__minikit.errors.push({{parent, ename: msg.content.ename, evalue: msg.content.evalue,
                                           traceback: msg.content.traceback.join('\\n')}});
        }} else if (parent && parent !== 'execute_request' && (type === 'stream' || type === 'display_data')) {{
            window.__minikit.callbackOutput.push({{parent, type, text: JSON.stringify(msg.content).slice(0, 2000)}});
        }}
    }});
    session.statusChanged.connect((_, status) => window.__minikit.statuses.push(status));
}}"""

# Callback errors: what the kernel raised outside of running a cell (ipywidgets handlers).
JS_CALLBACK_ERRORS = "() => window.__minikit.errors.filter(e => e.parent !== 'execute_request').length"

# Clear stored outputs first (a stored chart must not pass for a new one), then Run All; the
# command's promise settles when every cell has run (true) or one failed (false).
JS_RUN_ALL = """() => {
    const commands = window.jupyterapp.commands;
    commands.execute('notebook:clear-all-cell-outputs')
        .then(() => commands.execute('notebook:run-all-cells'))
        .then(ok => { window.__minikit.runAll = ok === true ? 'ok' : 'stopped'; },
              err => { window.__minikit.runAll = 'rejected: ' + err; });
}"""

# Galata's wait: kernel idle, every code cell has an execution count (after Run All settled).
JS_SETTLED = f"""(path) => {{
    const panel = {PANEL};
    if (window.__minikit.runAll === null || panel.sessionContext.session.kernel.status !== 'idle') return false;
    const cells = [...panel.content.model.cells].filter(cell => cell.type === 'code');
    return window.__minikit.runAll !== 'ok' || cells.every(cell => cell.executionCount !== null);
}}"""

JS_CELLS = f"""(path) => {{
    const panel = {PANEL};
    return [...panel.content.model.cells].map((cell, index) => ({{
        index, type: cell.type,
        source: cell.sharedModel.getSource(),
        tags: cell.getMetadata('tags') || [],
        executionCount: cell.type === 'code' ? cell.executionCount : null,
        outputs: cell.type === 'code' ? cell.outputs.toJSON()
            .filter(o => o.output_type === 'error')
            .map(o => ({{ename: o.ename, evalue: o.evalue}})) : [],
    }}));
}}"""

JS_KERNEL_IDLE = f"(path) => {{ const panel = {PANEL}; return panel.sessionContext.session.kernel.status === 'idle'; }}"

# What the learner sees of each chart in an element: the SVG marks (or canvas pixels) vega drew.
JS_CHARTS = """(element) => [...element.querySelectorAll('.vega-embed')].map(embed => {
    const svg = embed.querySelector('svg.marks');
    if (svg) return svg.outerHTML;
    const canvas = embed.querySelector('canvas.marks');
    return canvas ? canvas.toDataURL() : null;
})"""

KNOB = ".widget-slider .noUi-handle, .widget-dropdown select, button.widget-button"


# --- one widget's knob ------------------------------------------------------------------------------


def _charts(element) -> list[str | None]:
    return element.evaluate(JS_CHARTS)


def _settled_charts(page, element, timeout_s: float = 60) -> list[str]:
    """Chart drawings once every chart in ``element`` is drawn and unchanged for 1 s."""
    deadline, last, stable_since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        now = _charts(element)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif now and all(now) and time.monotonic() - stable_since >= 1.0:
            return now
        page.wait_for_timeout(200)
    raise AssertionError(f"the widget's charts were not drawn and steady within {timeout_s:.0f} s "
                         f"({sum(map(bool, last or []))} of {len(last or [])} drawn)")


def _digest(drawings: list[str | None]) -> list[str | None]:
    return [hashlib.sha256(d.encode()).hexdigest()[:12] if d else None for d in drawings]


def _move_knob(cell) -> tuple[str, str]:
    """Move one knob in ``cell``'s widget (see the module docstring); return (kind, what was done)."""
    handles = cell.locator(".widget-slider .noUi-handle")
    buttons = cell.locator("button.widget-button:not([disabled])")
    dropdowns = cell.locator(".widget-dropdown select:not([disabled])")
    if handles.count():
        handle = handles.first
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        key = "ArrowLeft" if at_max else "ArrowRight"
        before = handle.get_attribute("aria-valuenow")
        handle.focus()
        handle.press(key)
        return "slider", f"slider {before} → {key}"
    done = []
    if dropdowns.count():
        select = dropdowns.first
        options = select.locator("option").evaluate_all("(options) => options.map(o => o.value)")
        current = select.input_value()
        index = options.index(current) if current in options else 0
        new = index - 1 if index > 0 else index + 1  # the neighbour below: usually the cheaper setting
        if 0 <= new < len(options):
            select.select_option(value=options[new])
            done.append(f"dropdown {select.locator('option').nth(index).inner_text()!r} → "
                        f"{select.locator('option').nth(new).inner_text()!r}")
    if buttons.count():
        buttons.first.click()
        done.append(f"button {buttons.first.inner_text().strip()!r}")
    if not done:
        raise AssertionError("the widget has no slider, dropdown or enabled button to move")
    return ("button" if buttons.count() else "dropdown"), ", then ".join(done)


@dataclass
class Record:
    notebook: str
    seconds: dict = field(default_factory=dict)
    knobs: list = field(default_factory=list)
    cell_errors: list = field(default_factory=list)
    callback_errors: list = field(default_factory=list)
    callback_output: list = field(default_factory=list)
    widget_errors: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)
    kernel_statuses: list = field(default_factory=list)


# --- the test ---------------------------------------------------------------------------------------


def _run_all(page, path: str, record: Record) -> None:
    """Clear outputs, Run All, wait as Galata does; fail on error outputs or widgets that did not render."""
    page.evaluate(JS_RUN_ALL)
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    while not page.evaluate(JS_SETTLED, path):
        if record.page_errors:  # a widget's JavaScript failed: say so now, not after the last cell
            _check_kernel(page, path, record)
        if time.monotonic() > deadline:
            pytest.fail(f"{path}: Run All had not finished after {RUN_ALL_TIMEOUT_S} s", pytrace=False)
        page.wait_for_timeout(1000)
    cells = page.evaluate(JS_CELLS, path)
    expected = {c["index"] for c in cells if "raises-exception" in c["tags"] or "NBVAL_RAISES_EXCEPTION" in c["source"]}
    record.cell_errors = [{"cell": c["index"], **o, "source": c["source"][:300]}
                          for c in cells for o in c["outputs"] if c["index"] not in expected]
    if record.cell_errors:
        pytest.fail(f"{path}: cells show errors after Run All:\n" + "\n".join(
            f"cell {e['cell']}: {e['ename']}: {e['evalue']}" for e in record.cell_errors), pytrace=False)
    run_all = page.evaluate("() => window.__minikit.runAll")
    assert run_all == "ok", f"{path}: Run All did not complete ({run_all})"
    unrun = [c["index"] for c in cells if c["type"] == "code" and c["executionCount"] is None]
    assert not unrun, f"{path}: code cells {unrun} have no execution count after Run All"
    record.widget_errors = [text for text in WIDGET_ERROR_TEXT
                            if page.locator(".jp-OutputArea-output", has_text=text).count()]
    assert not record.widget_errors, f"{path}: a widget failed to render: {record.widget_errors}"


def _exercise(page, path: str, cell, name: str, record: Record) -> None:
    """Move one knob of the widget in ``cell``; its chart must redraw differently, and no callback raise."""
    output = cell.locator(".jp-Cell-outputArea")
    output.scroll_into_view_if_needed()
    before = _settled_charts(page, output)
    output.screenshot(path=SHOTS / f"{name}-before.png")
    errors_before = page.evaluate(JS_CALLBACK_ERRORS)
    moved, redrawn = time.monotonic(), None
    kind, action = _move_knob(cell)
    try:  # until a chart is drawn differently, or a callback has raised
        page.wait_for_function(
            f"([element, before, errors]) => {{ const now = ({JS_CHARTS})(element);"
            f" return ({JS_CALLBACK_ERRORS})() > errors"
            "   || (now.every(Boolean) && JSON.stringify(now) !== JSON.stringify(before)); }",
            arg=[output.element_handle(), before, errors_before], timeout=KNOB_TIMEOUT_S[kind] * 1000, polling=100)
        redrawn = round(time.monotonic() - moved, 2)
    except Exception as err:  # a Playwright timeout: judged below from the drawings
        if "Timeout" not in type(err).__name__:
            raise
    page.wait_for_function(JS_KERNEL_IDLE, arg=path, timeout=KNOB_TIMEOUT_S["button"] * 1000, polling=250)
    after = _settled_charts(page, output)
    if kind == "slider":
        action += f" = {cell.locator('.widget-slider .noUi-handle').first.get_attribute('aria-valuenow')}"
    output.screenshot(path=SHOTS / f"{name}-after.png")
    record.knobs.append({"widget": name, "kind": kind, "action": action, "chart_changed": after != before,
                         "redraw_s": redrawn, "seconds": round(time.monotonic() - moved, 1),
                         "charts_before": _digest(before), "charts_after": _digest(after)})
    _check_kernel(page, path, record)
    if after == before:
        pytest.fail(f"{path}, {name}: after {action}, no chart was drawn differently within {KNOB_TIMEOUT_S[kind]} s "
                    f"(chart hashes {_digest(before)}). The knob does not reach the chart.", pytrace=False)


def _check_live_not_static(page, path: str) -> None:
    """Every chart output shows its live widget (a vega view), never the static SVG stored beside it."""
    static = page.locator(".jp-OutputArea-output.jp-RenderedSVG, .jp-OutputArea-output .jp-RenderedSVG")
    assert static.count() == 0, (f"{path}: {static.count()} output(s) show the static SVG instead of the live widget; "
                                 f"JupyterLab should rank the widget view ({WIDGET_VIEW}) first.")
    live = page.locator(".jp-OutputArea-output .jupyter-widgets .vega-embed, .jp-OutputArea-output .vega-embed")
    assert live.count(), f"{path}: no live chart widget (a vega view) was rendered"


def _check_kernel(page, path: str, record: Record) -> None:
    """Fail on callback errors, a kernel that died or restarted, and uncaught errors in the page."""
    state = page.evaluate("() => window.__minikit")
    record.callback_output = state["callbackOutput"]
    record.kernel_statuses = sorted(set(state["statuses"]))
    record.callback_errors = [e for e in state["errors"] if e["parent"] != "execute_request"]
    if record.callback_errors:
        pytest.fail(f"{path}: a widget callback raised in the kernel (a learner sees no error, only a widget that "
                    "stops responding):\n" + "\n\n".join("\n".join(_plain(e["traceback"]).splitlines()[-16:])
                                                       for e in record.callback_errors),
                    pytrace=False)
    died = {"dead", "restarting", "autorestarting"} & set(record.kernel_statuses)
    assert not died, f"{path}: the kernel went {sorted(died)} (out of memory?)"
    if record.page_errors:
        pytest.fail(f"{path}: uncaught errors in the page (a widget's JavaScript failed):\n  "
                    + "\n  ".join(record.page_errors) + "\nbrowser console errors:\n  "
                    + "\n  ".join(record.console_errors[:10]), pytrace=False)


@pytest.mark.browser
@pytest.mark.parametrize("notebook", widget_notebooks(), ids=lambda path: path.stem)
def test_widgets_in_browser(notebook: Path, lab: Lab, browser) -> None:
    path = f"notebooks/{notebook.name}"
    record = Record(notebook.stem)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda error: record.page_errors.append(str(error)[:2000]))
    page.on("console", lambda msg: record.console_errors.append(msg.text[:500]) if msg.type == "error" else None)
    start = time.monotonic()
    try:
        # A workspace per notebook, so JupyterLab does not reopen the previous notebook (and its kernel).
        page.goto(f"{lab.url}/lab/workspaces/{notebook.stem}/tree/{path}?token={lab.token}")
        page.wait_for_function(JS_READY, arg=path, timeout=180_000, polling=250)
        page.evaluate(JS_LISTEN, path)
        record.seconds["open"] = round(time.monotonic() - start, 1)
        _run_all(page, path, record)
        record.seconds["run_all"] = round(time.monotonic() - start - record.seconds["open"], 1)

        _check_kernel(page, path, record)  # a widget whose JavaScript failed shows up here, before any knob
        _check_live_not_static(page, path)

        # Widgets that carry a chart and a knob, each in its own cell's output. A notebook whose
        # widgets have no knob (a chart that fills in during training) must still show one, drawn.
        widgets = page.locator(".jp-CodeCell").filter(has=page.locator(".jp-Cell-outputArea .vega-embed")).filter(
            has=page.locator(f".jp-Cell-outputArea :is({KNOB})"))
        if not widgets.count():
            shown = page.locator(".jp-OutputArea-output .jupyter-widgets, .jp-OutputArea-output .vega-embed")
            assert shown.count(), f"{path} uses minikit.widgets but shows no widget after Run All"
            if page.locator(".jp-OutputArea-output .vega-embed").count():
                _settled_charts(page, page.locator(".jp-Notebook"))  # every chart drawn
            record.knobs.append({"widget": None, "action": "none: no widget here has both a knob and a chart"})
        for number in range(widgets.count()):
            _exercise(page, path, widgets.nth(number), f"{notebook.stem}-widget{number + 1}", record)
        page.screenshot(path=SHOTS / f"{notebook.stem}.png")  # the window, last widget in view
        page.wait_for_timeout(1000)  # late output from a callback
        _check_kernel(page, path, record)
    except Exception:
        page.screenshot(path=SHOTS / f"{notebook.stem}-failure.png")
        try:  # what the kernel said, for the JSON record
            state = page.evaluate("() => window.__minikit || null") or {}
            record.kernel_statuses = sorted(set(state.get("statuses", [])))
            record.callback_errors = [e for e in state.get("errors", []) if e["parent"] != "execute_request"]
            record.callback_output = state.get("callbackOutput", [])
        except Exception:
            pass
        raise
    finally:
        record.seconds["total"] = round(time.monotonic() - start, 1)
        (SHOTS / f"{notebook.stem}.json").write_text(json.dumps(record.__dict__, indent=2, ensure_ascii=False))
        knob_times.extend({"notebook": notebook.stem, "widget": k["widget"], "knob": k["kind"], "action": k["action"],
                           "redraw_s": k["redraw_s"], "settled_s": k["seconds"]} for k in record.knobs if k["widget"])
        KNOB_TIMES.write_text(json.dumps(knob_times, indent=2, ensure_ascii=False))
        context.close()
        lab.shutdown_kernels()  # a finished notebook's kernel holds up to 1.5 GB
    print(f"{notebook.stem}: {record.seconds}; " + "; ".join(k["action"] for k in record.knobs))
