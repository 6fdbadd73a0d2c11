"""Static views: every chart and chart widget a notebook shows also stores an SVG image of itself.

A live chart is an ``alt.JupyterChart`` widget: without a kernel (GitHub, nbviewer, nbconvert,
the course site) a reader would see only its text. So each display carries two MIME types: the
widget view, which JupyterLab ranks first and runs live, and ``image/svg+xml``, made offline
with vl-convert, which every static renderer shows (nbconvert drops a widget view when the
notebook holds no widget state). ``enable_static_views`` registers this with IPython:

- an altair chart (the "jupyter" renderer makes it a JupyterChart) gets its SVG in its bundle;
- an ``alt.JupyterChart`` or an ipywidgets box holding some is shown with a display id: its
  image lays out the charts as the boxes do, under a caption of the knobs' values and labels.
  At the end of every cell the shown widgets whose charts or labels changed are drawn again and
  their displays updated, so the stored image of a chart shown before training holds the final
  curves, and that of an explorer the state a later cell left it in. A knob moved in the
  browser redraws nothing until the next cell runs.

An image over ``MAX_SVG_KB`` is not embedded: the text output says so instead. This module
imports nothing of minikit.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
import textwrap
import time
import uuid
import warnings
import weakref
from typing import Any, Callable

import altair as alt
import ipywidgets as W

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SVG = "image/svg+xml"
MAX_SVG_KB = 250  # a larger image would bloat the notebook file; its text says so instead
CACHED_SVGS = 64  # chart images kept in memory (an explorer's knob moves make a new one per cell run)
GAP = 10  # pixels between charts laid out side by side or stacked
LINE = 16  # pixels per caption line (12 px text)

_svg_cache: dict[str, str] = {}  # chart spec (JSON) → its SVG: an unchanged chart is converted once
_shown: dict[str, tuple[weakref.ref, str]] = {}  # display id → (widget, fingerprint of what its image shows)
_spent = {"seconds": 0.0, "images": 0}  # time IPython spent in this module (drawing, checking for changes), images made
_SIZE = re.compile(r'<svg\b[^>]*?\bwidth="([\d.]+)"[^>]*?\bheight="([\d.]+)"')


class StaticViewTooLarge(ValueError):
    """The image of a chart or widget is over ``MAX_SVG_KB``: it is described in text instead."""


# --- one chart ------------------------------------------------------------------------------------


def chart_spec(chart: alt.TopLevelMixin | alt.JupyterChart) -> dict:
    """The Vega-Lite spec of ``chart``; for a JupyterChart, with its parameters (a linked slider's) as they are now."""
    if isinstance(chart, alt.JupyterChart):
        spec = json.loads(json.dumps(chart.spec))  # a copy: the widget's own spec is not touched
        values = {name: getattr(chart.params, name) for name in chart.params.trait_names()}
        _set_params(spec, values)
        return spec
    if isinstance(chart, alt.TopLevelMixin):
        return chart.to_dict()
    raise TypeError(f"Expected an altair chart or an alt.JupyterChart, got {type(chart).__name__}.")


def _set_params(node: Any, values: dict) -> None:
    """Set the ``value`` of every variable parameter named in ``values``, wherever the spec declares it."""
    if isinstance(node, dict):
        for param in node.get("params", []) if isinstance(node.get("params"), list) else []:
            if isinstance(param, dict) and param.get("name") in values and "select" not in param:
                param["value"] = values[param["name"]]
        for child in node.values():
            _set_params(child, values)
    elif isinstance(node, list):
        for child in node:
            _set_params(child, values)


def chart_svg(chart: alt.TopLevelMixin | alt.JupyterChart | dict) -> str:
    """``chart`` (or a Vega-Lite spec) drawn as SVG, offline with vl-convert; converted once per distinct spec.

    The first conversion in a process starts vl-convert's JavaScript runtime (about a second);
    later ones take tens of milliseconds.
    """
    spec = chart if isinstance(chart, dict) else chart_spec(chart)
    key = json.dumps(spec, sort_keys=True, default=str)
    if key not in _svg_cache:
        import vl_convert  # heavy (a JavaScript runtime): loaded on the first image only

        version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # 'v6.4.1' → 'v6_4', as altair's own save does
        if len(_svg_cache) >= CACHED_SVGS:
            del _svg_cache[next(iter(_svg_cache))]  # the oldest
        _svg_cache[key] = vl_convert.vegalite_to_svg(json.loads(key), vl_version=version)
    return _svg_cache[key]


def _size(svg: str) -> tuple[float, float]:
    match = _SIZE.search(svg)
    return (float(match.group(1)), float(match.group(2))) if match else (400.0, 300.0)


def _unique_ids(svg: str) -> str:
    """Prefix the SVG's ids with a hash of it: two charts inlined in one HTML page must not share a clip path."""
    prefix = "s" + hashlib.sha1(svg.encode()).hexdigest()[:8] + "-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    return re.sub(r'(url\(#|href="#)([^)"]+)', lambda m: f"{m.group(1)}{prefix}{m.group(2)}", svg)


# --- a widget ------------------------------------------------------------------------------------


def _text(widget: W.Widget) -> str:
    """What an HTML or Label widget shows, as plain text (``<br>`` as new lines)."""
    text = re.sub(r"<br\s*/?>", "\n", str(widget.value), flags=re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _knob(widget: W.Widget) -> str | None:
    """``description = value`` as the knob shows it (its option label, its readout format), or None."""
    if isinstance(widget, (W.Button, W.HTML, W.HTMLMath, W.Label)) or not hasattr(widget, "value"):
        return None
    name = getattr(widget, "description", "") or type(widget).__name__
    label = getattr(widget, "label", None)
    if isinstance(label, (tuple, list)):
        shown = ", ".join(map(str, label))
    elif label is not None:
        shown = str(label)
    elif isinstance(widget.value, bool):
        shown = "on" if widget.value else "off"
    else:
        shown = str(widget.value)
        fmt = getattr(widget, "readout_format", None)
        if fmt:
            try:
                shown = format(widget.value, fmt)
            except (TypeError, ValueError):  # a format Python does not know (d3's ",") shows the raw value
                pass
    return f"{name} = {shown}"


def _describe(widget: W.Widget, knobs: list[str], texts: list[str]) -> tuple | None:
    """The chart layout of ``widget`` (``("chart", spec)``, ``("h"|"v", parts)``); knobs and texts are collected."""
    if isinstance(widget, alt.JupyterChart):
        return ("chart", chart_spec(widget))
    if isinstance(widget, W.Box):
        parts = [p for p in (_describe(child, knobs, texts) for child in widget.children) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ("h" if isinstance(widget, W.HBox) else "v", parts)
    if isinstance(widget, (W.HTML, W.HTMLMath, W.Label)):
        if _text(widget):
            texts.append(_text(widget))
    elif (knob := _knob(widget)) is not None:
        knobs.append(knob)
    return None


def describe_widget(widget: W.Widget) -> tuple[tuple | None, list[str]]:
    """``widget``'s charts as laid out (None if it holds no chart) and its caption lines (knobs, then labels)."""
    knobs: list[str] = []
    texts: list[str] = []
    layout = _describe(widget, knobs, texts)
    where = f"at {'; '.join(knobs)}, " if knobs else ""
    what = "move the knobs" if knobs else "see it live"
    return layout, [f"Static view {where}as the notebook last ran: run it to {what}.", *texts]


def _place(layout: tuple) -> tuple[list[tuple[float, float, str]], float, float]:
    """Chart SVGs with their offsets, and the size of the whole, for a layout from ``describe_widget``."""
    if layout[0] == "chart":
        svg = chart_svg(layout[1])
        width, height = _size(svg)
        return [(0.0, 0.0, svg)], width, height
    placed, width, height = [], 0.0, 0.0
    for part in layout[1]:
        items, w, h = _place(part)
        if layout[0] == "h":
            placed += [(x + width, y, s) for x, y, s in items]
            width, height = width + w + GAP, max(height, h)
        else:
            placed += [(x, y + height, s) for x, y, s in items]
            width, height = max(width, w), height + h + GAP
    return placed, width - GAP * (layout[0] == "h"), height - GAP * (layout[0] == "v")


def widget_svg(widget: W.Widget) -> str | None:
    """One SVG of ``widget``: its caption above its charts, laid out as its boxes are; None if it holds no chart."""
    layout, caption = describe_widget(widget)
    if layout is None:
        return None
    placed, width, height = _place(layout)
    width = max(width, 480.0)
    lines = [wrapped for line in caption for part in line.splitlines()
             for wrapped in textwrap.wrap(part, max(40, int(width / 6.6))) or [""]]
    top = LINE * len(lines) + GAP
    text = "".join(f'<text x="4" y="{LINE * (i + 1) - 4}">{html.escape(line)}</text>' for i, line in enumerate(lines))
    charts = "".join(re.sub(r"^<svg\b", f'<svg x="{x:g}" y="{y + top:g}"', _unique_ids(svg), count=1)
                     for x, y, svg in placed)
    total = height + top
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{width:g}" '
            f'height="{total:g}" viewBox="0 0 {width:g} {total:g}"><rect width="100%" height="100%" fill="white"/>'
            f'<g font-family="sans-serif" font-size="12" fill="#333">{text}</g>{charts}</svg>')


# --- display bundles ---------------------------------------------------------------------------------


def _own_bundle(obj: Any) -> dict:
    method = getattr(obj, "_repr_mimebundle_", None)
    bundle = method() if callable(method) else None
    if isinstance(bundle, tuple):
        bundle = bundle[0]
    return dict(bundle) if bundle else {"text/plain": repr(obj)}


def _title(spec: dict) -> str:
    title = spec.get("title", "")
    title = title.get("text", "") if isinstance(title, dict) else title
    return " ".join(title) if isinstance(title, list) else str(title)


def cost() -> dict:
    """Seconds the displays and cell ends of this session spent on static images (vl-convert's start included,
    looking for changed widgets too), and how many images were made."""
    return dict(_spent)


def _timed(function: Callable) -> Callable:
    """``function`` with its time added to ``cost()``: for what IPython calls (a display, a cell's end)."""
    @functools.wraps(function)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _spent["seconds"] += time.perf_counter() - start
    return timed


def static_bundle(obj: Any, max_kb: float = MAX_SVG_KB) -> dict:
    """``obj``'s display bundle with a static image beside its live view.

    ``obj`` is an altair chart, an ``alt.JupyterChart`` or a widget box holding some. The bundle
    keeps the widget view and gets ``image/svg+xml``; ``text/plain`` names the chart or gives the
    widget's caption. An image over ``max_kb`` is left out and ``text/plain`` says so. A bundle with
    no widget view (another altair renderer), or a box with no chart, is returned as it is.
    """
    bundle = _own_bundle(obj)
    if WIDGET_VIEW not in bundle:
        return bundle
    _spent["images"] += 1
    try:
        if isinstance(obj, alt.TopLevelMixin):
            spec = obj.to_dict()
            svg, caption = _unique_ids(chart_svg(spec)), [f"Chart: {_title(spec) or type(obj).__name__}"]
        else:
            svg, caption = widget_svg(obj), describe_widget(obj)[1]
    except Exception as error:  # the live view must still show: say why there is no image instead
        bundle["text/plain"] = (f"No static image of this chart: vl-convert could not draw it ({type(error).__name__}: "
                                f"{error}). Run the notebook to see it live.")
        return bundle
    if svg is None:
        return bundle
    size_kb = len(svg.encode()) / 1000
    if size_kb > max_kb:
        bundle["text/plain"] = (f"This chart is too large to store as an image ({size_kb:.0f} KB of SVG, over the "
                                f"{max_kb:g} KB limit), so no static view was kept. Run the notebook to see it live, "
                                "or draw fewer points (aggregate the data).")
        return bundle
    return {**bundle, SVG: svg, "text/plain": "\n".join(caption)}


_chart_bundle = _timed(static_bundle)  # what IPython calls to show an altair chart


def _fingerprint(widget: W.Widget) -> str:
    return json.dumps(describe_widget(widget), sort_keys=True, default=str)


@_timed
def _show_widget(widget: W.Widget) -> None:
    """Display a JupyterChart or a box with a display id, so a later change can update its stored image."""
    from IPython.display import display  # IPython is there whenever a display formatter calls this

    if _describe(widget, [], []) is None:  # a box with no chart: shown as ipywidgets shows it
        display(_own_bundle(widget), raw=True)
        return
    display_id = uuid.uuid4().hex
    display(static_bundle(widget), raw=True, display_id=display_id)
    _shown[display_id] = (weakref.ref(widget), _fingerprint(widget))


def refresh_static_views() -> int:
    """Redraw the image of every shown widget that changed since it was drawn; returns how many were updated."""
    from IPython.display import update_display  # only ever called from a running IPython

    updated = 0
    for display_id, (ref, before) in list(_shown.items()):
        widget = ref()
        if widget is None or getattr(widget, "comm", True) is None:  # gone or closed: nothing to show
            del _shown[display_id]
            continue
        now = _fingerprint(widget)
        if now != before:
            update_display(static_bundle(widget), raw=True, display_id=display_id)
            _shown[display_id] = (ref, now)
            updated += 1
    return updated


@_timed
def _after_cell(_result: Any = None) -> None:
    try:
        refresh_static_views()
    except Exception as error:  # a stale image is no reason to print a traceback under the learner's cell
        warnings.warn(f"minikit could not update a chart's static image ({type(error).__name__}: {error}); "
                      "the live chart is unaffected.", RuntimeWarning, stacklevel=2)


def enable_static_views(shell: Any = None) -> bool:
    """Store a static image beside every chart and chart widget shown in this IPython session (idempotent).

    Returns False outside IPython (a script), where nothing is displayed.
    """
    if shell is None:
        from IPython import get_ipython  # optional: minikit also runs outside Jupyter

        shell = get_ipython()
    if shell is None:
        return False
    formatter = shell.display_formatter
    formatter.mimebundle_formatter.for_type(alt.TopLevelMixin, _chart_bundle)
    for kind in (alt.JupyterChart, W.Box):
        formatter.ipython_display_formatter.for_type(kind, _show_widget)
    if _after_cell not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _after_cell)
    return True


def disable_static_views(shell: Any = None) -> None:
    """Undo ``enable_static_views``: charts and widgets show their live view only."""
    if shell is None:
        from IPython import get_ipython  # optional: minikit also runs outside Jupyter

        shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter
    for registry, kinds in ((formatter.mimebundle_formatter, (alt.TopLevelMixin,)),
                            (formatter.ipython_display_formatter, (alt.JupyterChart, W.Box))):
        for kind in kinds:
            registry.pop(kind, None)
    if _after_cell in shell.events.callbacks["post_run_cell"]:
        shell.events.unregister("post_run_cell", _after_cell)
    _shown.clear()
