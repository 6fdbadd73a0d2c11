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
from minikit.metrics import (
    ThresholdScores,
    compare_models,
    precision_recall_at_threshold,
    precision_recall_curve_table,
)
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


class ThresholdExplorer:
    """A class dropdown and a threshold slider over one-vs-rest precision and recall.

    The slider moves the chart's ``threshold`` parameter in the browser; changing the class
    replaces the chart's data (a new chart, so the slider is linked to it again).
    """

    def __init__(self, probs, y_true, label_names: Sequence[str], cls: int = 0, threshold: float = 0.5):
        self.probs, self.y_true = np.asarray(probs), np.asarray(y_true)
        self.names = list(getattr(label_names, "names", label_names))
        if self.probs.ndim != 2 or self.probs.shape[1] != len(self.names):
            raise ValueError(f"probs has shape {self.probs.shape} but there are {len(self.names)} label names. "
                             "Fix: pass probabilities of shape (N, number of classes) and those classes' names.")
        self.dropdown = W.Dropdown(options=[(name, i) for i, name in enumerate(self.names)], value=cls,
                                   description="class")
        self.slider = W.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                    continuous_update=True, readout_format=".2f")
        self.label = W.HTML()
        self.cls, self._syncing = cls, False
        self.table = precision_recall_curve_table(self.probs, self.y_true, cls)
        self.chart = _jupyter_chart(charts.precision_recall_chart(self.table, threshold, self._title(cls)))
        self._link = W.link((self.slider, "value"), (self.chart.params, "threshold"))
        self.slider.observe(self._on_widget, names="value")
        self.dropdown.observe(self._on_widget, names="value")
        self.update(cls, threshold)
        self.widget = W.VBox([W.HBox([self.dropdown, self.slider]), self.label, self.chart])

    def _on_widget(self, _change) -> None:
        if not self._syncing:
            self.update(self.dropdown.value, self.slider.value)

    def _title(self, cls: int) -> str:
        return f"'{self.names[cls]}' against the rest: precision and recall as the threshold moves"

    def update(self, cls: int, threshold: float) -> ThresholdScores:
        """Scores of class ``cls`` at ``threshold``; redraws the label (and the chart if the class changed)."""
        if cls != self.cls:
            table = precision_recall_curve_table(self.probs, self.y_true, cls)  # a bad class raises here
            self.cls, self.table = cls, table
            self._link.unlink()  # the new chart brings a new params object
            self.chart.chart = charts.precision_recall_chart(self.table, threshold, self._title(cls))
            self._link = W.link((self.slider, "value"), (self.chart.params, "threshold"))
        scores = precision_recall_at_threshold(self.probs, self.y_true, cls, threshold)
        self.label.value = (f"<b>{self.names[cls]}</b> at threshold {threshold:.2f}: precision "
                            f"<b>{scores.precision:.1%}</b>, recall <b>{scores.recall:.1%}</b>, F1 "
                            f"<b>{scores.f1:.1%}</b> ({scores.predicted} flagged, {scores.positives} truly "
                            f"{self.names[cls]})")
        self._syncing = True  # a call from code moves the widgets too, without running update twice
        try:
            self.dropdown.value, self.slider.value = cls, threshold
        finally:
            self._syncing = False
        return scores


class LiveTrainingChart:
    """A training chart that redraws on each call: pass it as ``callback=`` to ``fine_tune``.

    ``fine_tune`` calls it with the history after every evaluation; ``.widget`` is what to display
    (before the training cell starts, so the chart fills in while the model trains).
    """

    def __init__(self, title: str = "Fine-tuning"):
        self.title = title
        empty = pd.DataFrame({"step": [], "epoch": [], "train_loss": [], "val_accuracy": [], "lr": []})
        self.chart = _jupyter_chart(charts.training_chart(empty, title))
        self.label = W.HTML("waiting for the first evaluation…")
        self.widget = W.VBox([self.chart, self.label])

    def __call__(self, history: pd.DataFrame) -> None:
        self.update(history)

    def update(self, history: pd.DataFrame) -> str:
        """Redraw the chart from ``history`` (a TrainResult.history); returns the status line."""
        self.chart.chart = charts.training_chart(history, self.title)
        evaluated = history.dropna(subset=["val_accuracy"])
        if len(evaluated):
            last, best = evaluated.iloc[-1], evaluated.loc[evaluated["val_accuracy"].idxmax()]
            self.label.value = (f"step {int(last['step'])}: validation accuracy <b>{last['val_accuracy']:.1%}</b> "
                                f"(best {best['val_accuracy']:.1%} at step {int(best['step'])})")
        return self.label.value
