"""Static fallbacks (minikit.static_views): every chart and chart widget shown stores an SVG beside its live view.

The display path is tested in a real IPython shell (no kernel, no browser): what ``display`` and a
cell's last expression publish, and the update a later cell sends. The stored notebooks are
checked by ``tests/test_notebook_static_views.py``.
"""

from __future__ import annotations

import altair as alt
import ipywidgets as W
import pandas as pd
import pytest
from helpers import LENGTHS
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output

from minikit import charts, static_views, widgets

VIEW, SVG = static_views.WIDGET_VIEW, static_views.SVG
HISTORY = pd.DataFrame({"step": [20, 40, 60, 80], "epoch": [0.5, 1.0, 1.5, 2.0],
                        "train_loss": [1.2, 0.7, 0.5, 0.4], "val_accuracy": [None, 0.81, None, 0.9],
                        "lr": [1e-4] * 4})


@pytest.fixture
def shell():
    """An IPython shell with the static views on and the jupyter renderer, as ``minikit.setup()`` leaves a notebook."""
    existed = InteractiveShell.initialized()
    ip = InteractiveShell.instance()
    renderer = alt.renderers.active
    charts.enable_offline_charts()
    assert static_views.enable_static_views(ip)
    yield ip
    static_views.disable_static_views(ip)
    alt.renderers.enable(renderer)
    if not existed:
        InteractiveShell.clear_instance()


def _chart() -> alt.Chart:
    return charts.class_balance_chart({"train": _Split([0, 0, 1]), "test": _Split([0, 1])})


class _Split:
    """The two things class_balance_chart reads of a Dataset."""

    def __init__(self, labels):
        self.features = {"label": type("F", (), {"names": ["neg", "pos"]})()}
        self._labels = labels

    def __getitem__(self, key):
        return self._labels

    def __len__(self):
        return len(self._labels)


def test_a_chart_shown_carries_its_widget_view_and_an_svg(shell):
    with capture_output() as shown:
        display(_chart())
    (out,) = shown.outputs
    assert VIEW in out.data, "JupyterLab's live view must stay in the bundle"
    assert out.data[SVG].startswith("<svg") and "Class balance per split" in out.data[SVG]
    assert out.data["text/plain"] == "Chart: Class balance per split"  # not an object address


def test_a_chart_as_the_last_expression_stays_an_execute_result_with_an_svg(shell):
    shell.user_ns["chart"] = _chart()
    format_dict, _ = shell.display_formatter.format(shell.user_ns["chart"])
    assert VIEW in format_dict and SVG in format_dict


def test_a_widget_shown_carries_its_charts_and_a_caption_of_its_knobs(shell):
    explorer = widgets.TruncationExplorer(LENGTHS, max_length=128)
    with capture_output() as shown:
        display(explorer.widget)
    (out,) = shown.outputs
    assert out.data[VIEW]["model_id"] == explorer.widget.model_id
    svg = out.data[SVG]
    assert svg.count("<svg") == 2, "one outer SVG holding the histogram"
    assert "max_length = 128" in svg and "75.0% of articles are truncated" in svg
    assert "max_length = 128" in out.data["text/plain"]
    assert out.transient["display_id"], "a display id lets a later cell update the stored image"


def test_a_widget_caption_follows_the_knob_and_the_chart_follows_its_parameter(shell):
    explorer = widgets.TruncationExplorer(LENGTHS, max_length=128)
    explorer.slider.value = 256
    spec = static_views.chart_spec(explorer.chart)
    assert {"name": "max_length", "value": 256} in [
        {k: p[k] for k in ("name", "value")} for p in _params(spec) if p.get("name") == "max_length"]
    assert "max_length = 256" in static_views.widget_svg(explorer.widget)


def _params(node):
    if isinstance(node, dict):
        yield from (p for p in node.get("params", []) if isinstance(p, dict))
        for child in node.values():
            yield from _params(child)
    elif isinstance(node, list):
        for child in node:
            yield from _params(child)


def test_side_by_side_charts_are_laid_out_as_their_box():
    left, right = widgets.jupyter_chart(_chart()), widgets.jupyter_chart(_chart())
    width = float(static_views._SIZE.search(static_views.chart_svg(left)).group(1))
    svg = static_views.widget_svg(W.HBox([left, right]))
    assert f'<svg x="{width + static_views.GAP:g}"' in svg, "the second chart starts right of the first"
    stacked = static_views.widget_svg(W.VBox([left, right]))
    assert '<svg x="0"' in stacked and f'<svg x="{width + static_views.GAP:g}"' not in stacked


def test_ids_are_made_unique_so_two_inlined_charts_do_not_share_a_clip_path():
    svg = '<svg><clipPath id="clip1"/><g clip-path="url(#clip1)"/><use xlink:href="#clip1"/></svg>'
    unique = static_views._unique_ids(svg)
    prefix = unique.split('id="')[1].split("clip1")[0]
    assert prefix and f"url(#{prefix}clip1)" in unique and f'href="#{prefix}clip1"' in unique


def test_a_box_without_charts_is_shown_as_ipywidgets_shows_it(shell):
    box = W.VBox([W.IntSlider(3, description="n")])
    with capture_output() as shown:
        display(box)
    (out,) = shown.outputs
    assert VIEW in out.data and SVG not in out.data and not out.transient


def test_too_large_an_image_is_replaced_by_a_text_that_says_so(shell):
    bundle = static_views.static_bundle(_chart(), max_kb=1)
    assert SVG not in bundle and VIEW in bundle
    assert "too large to store as an image" in bundle["text/plain"] and "1 KB limit" in bundle["text/plain"]
    explorer = widgets.TruncationExplorer(LENGTHS)
    bundle = static_views.static_bundle(explorer.widget, max_kb=1)
    assert SVG not in bundle and "too large" in bundle["text/plain"]


def test_the_live_training_chart_stores_its_final_curves(shell):
    live = widgets.LiveTrainingChart("Fine-tuning under test")
    shell.user_ns.update(live=live, history=HISTORY)
    with capture_output() as shown:
        shell.run_cell("live.widget", store_history=False)  # shown empty, as chapter 3 does before training
        shell.run_cell("live(history)", store_history=False)  # the training cell: the chart redraws
        shell.run_cell("x = 1", store_history=False)  # nothing changed: no update
    first, update = shown.outputs
    assert first.transient["display_id"] == update.transient["display_id"] and update.update
    assert "waiting for the first evaluation" in first.data[SVG]
    assert "step 80: validation accuracy 90.0%" in update.data[SVG] and update.data[SVG] != first.data[SVG]


def test_a_change_made_in_the_same_cell_is_stored_too(shell):
    live = widgets.LiveTrainingChart()
    shell.user_ns.update(live=live, history=HISTORY, display=display)
    with capture_output() as shown:
        shell.run_cell("display(live.widget)\nlive(history)", store_history=False)  # chapter 7's cell
    assert "best 90.0% at step 80" in shown.outputs[-1].data[SVG]


def test_nothing_is_registered_outside_ipython(monkeypatch):
    monkeypatch.setattr("IPython.get_ipython", lambda: None)
    assert static_views.enable_static_views() is False


def test_chart_spec_names_what_it_accepts():
    with pytest.raises(TypeError, match="altair chart or an alt.JupyterChart"):
        static_views.chart_spec({"mark": "bar"})


def test_a_chart_vl_convert_cannot_draw_still_shows_live_and_says_why(monkeypatch):
    def fail(_spec):
        raise RuntimeError("unsupported mark")

    monkeypatch.setattr(static_views, "chart_svg", fail)
    bundle = static_views.static_bundle(widgets.jupyter_chart(_chart()))
    assert VIEW in bundle and SVG not in bundle
    assert "could not draw it (RuntimeError: unsupported mark)" in bundle["text/plain"]


def test_a_failed_update_warns_instead_of_raising_under_the_cell(shell, monkeypatch):
    live = widgets.LiveTrainingChart()
    with capture_output():
        display(live.widget)
    live(HISTORY)
    monkeypatch.setattr(static_views, "static_bundle", lambda _obj: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.warns(RuntimeWarning, match="could not update a chart's static image .OSError: disk full"):
        static_views._after_cell()


def test_the_cost_of_the_images_is_counted(shell):
    before = static_views.cost()
    with capture_output():
        display(_chart())
    after = static_views.cost()
    assert after["images"] == before["images"] + 1 and after["seconds"] > before["seconds"]


def test_a_two_knob_explorer_caption_shows_each_knob_as_it_reads(probs):
    p, y = probs
    explorer = widgets.ThresholdExplorer(p, y, ["a", "b", "c", "d"])
    explorer.update(2, 0.4)
    layout, caption = static_views.describe_widget(explorer.widget)
    assert layout[0] == "chart", "the one chart of the widget, its knobs and label in the caption"
    assert caption[0].startswith("Static view at class = c; threshold = 0.40,")
    assert caption[1].startswith("c at threshold 0.40: precision")
