"""Widgets: ipywidgets wired to a minikit function and a chart from ``minikit.charts``.

Each widget class keeps its logic in an ``update`` method that tests (and benchmarks) can call
without a browser; ``.widget`` is what a notebook displays.
"""

from __future__ import annotations

from typing import Sequence

import altair as alt
import ipywidgets as W
import numpy as np
import pandas as pd

from minikit import charts
from minikit.data import truncated_share
from minikit.metrics import compare_models
from minikit.models import CATALOG


def _jupyter_chart(chart: alt.TopLevelMixin) -> alt.JupyterChart:
    charts.enable_offline_charts()
    return alt.JupyterChart(chart)


class ModelExplorer:
    """Pick models, sequence length and batch size; "Measure" re-profiles them and redraws."""

    def __init__(self, names: Sequence[str] = ("minilm-l6", "tinybert-4", "distilbert"),
                 seq_len: int = 128, batch_size: int = 32, profiles: pd.DataFrame | None = None):
        self.models = W.SelectMultiple(options=list(CATALOG), value=tuple(names), rows=7, description="models")
        self.seq_len = W.Dropdown(options=[32, 64, 128, 256, 512], value=seq_len, description="seq length")
        self.batch_size = W.Dropdown(options=[1, 8, 16, 32, 64], value=batch_size, description="batch size")
        self.button = W.Button(description="Measure", button_style="primary", icon="play")
        self.status = W.HTML()
        self.profiles = profiles if profiles is not None else compare_models(names, seq_len, batch_size)
        self.chart = _jupyter_chart(charts.latency_chart(self.profiles))
        self.bars = _jupyter_chart(charts.throughput_chart(self.profiles))
        self.button.on_click(lambda _: self.update())
        controls = W.VBox([self.models, self.seq_len, self.batch_size, W.HBox([self.button, self.status])])
        self.widget = W.HBox([controls, W.VBox([self.chart, self.bars])])

    def update(self) -> pd.DataFrame:
        """Re-measure the selected models and redraw both charts; returns the new profiles."""
        if not self.models.value:
            self.status.value = "<b style='color:#b00'>Select at least one model.</b>"
            return self.profiles
        self.button.disabled = True
        self.status.value = f"measuring {len(self.models.value)} model(s)… (a few seconds each)"
        try:
            self.profiles = compare_models(self.models.value, self.seq_len.value, self.batch_size.value)
            self.chart.chart = charts.latency_chart(self.profiles)
            self.bars.chart = charts.throughput_chart(self.profiles)
            self.status.value = "done"
        finally:
            self.button.disabled = False
        return self.profiles


class TruncationExplorer:
    """A ``max_length`` slider over a token-length histogram, with the share of articles cut."""

    def __init__(self, lengths: np.ndarray, max_length: int = 128):
        self.lengths = np.asarray(lengths)
        self.slider = W.IntSlider(value=max_length, min=32, max=512, step=32, description="max_length",
                                  continuous_update=True)
        self.label = W.HTML()
        self.chart = _jupyter_chart(charts.token_length_histogram(self.lengths, max_length))
        # Client-side link: the chart's own parameter follows the slider without Python redrawing it.
        W.link((self.slider, "value"), (self.chart.params, "max_length"))
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.update(max_length)
        self.widget = W.VBox([W.HBox([self.slider, self.label]), self.chart])

    def update(self, max_length: int) -> float:
        """Recompute the truncated share for ``max_length``; returns it."""
        share = truncated_share(self.lengths, max_length)
        kept = float(np.minimum(self.lengths, max_length).sum() / self.lengths.sum())
        self.label.value = (f"<b>{share:.1%}</b> of articles are truncated at {max_length} tokens; "
                            f"the model sees <b>{kept:.1%}</b> of all tokens.")
        return share
