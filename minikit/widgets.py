"""Widgets: ipywidgets wired to a minikit function and a chart from ``minikit.charts``.

Each widget class keeps its logic in an ``update`` method that tests (and benchmarks) can call
without a browser; ``.widget`` is what a notebook displays. The numbers come from the chapter
modules (``metrics``, ``profiling``, ``data``, ``multitask``, ``deployment``, ``lab``, ``benchmark``, ``early_exit``); this module
only builds widgets and links them. ``Explorer`` is what the knob-driven ones share. Chapters
1–4 and 8–10 live here; the compression chapters' explorers (5–7), which keep a working copy
of a model, are in ``minikit.compression_widgets``.
"""

from __future__ import annotations

import contextlib
import html
import math
import time
from typing import Any, Callable, Sequence

import altair as alt
import ipywidgets as W
import pandas as pd

from minikit import charts
from minikit.static_views import enable_static_views
from minikit.benchmark import NoVariantFitsError, pick_variant
from minikit.claims import SIZE_CLASSES
from minikit.data import kept_token_share, truncated_share
from minikit.early_exit import curve_row
from minikit.lab import BITS, DEPTHS, FFN_FRACTIONS, RUNTIMES, Recipe
from minikit.load_testing import load_test
from minikit.metrics import (
    ThresholdScores,
    class_probabilities,
    precision_recall_at_threshold,
    precision_recall_curve_table,
)
from minikit.models import CATALOG
from minikit.multitask import RUN_COLUMNS, nearest_single_task
from minikit.profiling import compare_models
from minikit.server import background_server


def jupyter_chart(chart: alt.TopLevelMixin) -> alt.JupyterChart:
    """``chart`` as a widget whose chart and parameters can be replaced from Python (Vega bundled, offline).

    In IPython, a box of such charts shown in a notebook also stores a static image (``minikit.static_views``).
    """
    charts.enable_offline_charts()
    enable_static_views()
    return alt.JupyterChart(chart)


class Explorer:
    """What the explorers share: knobs whose values are ``update``'s arguments, a status line and a label.

    A subclass defines ``update``, calls ``__init__``, makes its knobs and charts, calls
    ``_watch(*knobs)`` with the knobs in ``update``'s argument order (or sets ``self.knobs`` before
    a first ``update`` and calls ``_watch()`` after it), and lays out ``self.widget``. Moving a knob calls
    ``update(*values)``; an ``update`` called from code moves the knobs with ``_show_knobs``,
    which does not run ``update`` again.
    """

    def __init__(self) -> None:
        self.status, self.label = W.HTML(), W.HTML()
        self.knobs: tuple[W.ValueWidget, ...] = ()
        self._syncing = False
        self._charts: dict = {}  # built charts by setting, for explorers whose data never changes: a move back only redraws

    def _watch(self, *knobs: W.ValueWidget) -> None:
        """Call ``update`` when one of ``knobs`` (default: ``self.knobs``, set before a first update) moves."""
        self.knobs = knobs or self.knobs
        for knob in self.knobs:
            knob.observe(self._on_knob, names="value")

    def _on_knob(self, _change) -> None:
        if not self._syncing:
            self.update(*(knob.value for knob in self.knobs))

    def _show_knobs(self, *values) -> None:
        """Set the knobs to ``values`` (in ``update``'s order) without their observers calling ``update``."""
        self._syncing = True
        try:
            for knob, value in zip(self.knobs, values):
                knob.value = value
        finally:
            self._syncing = False

    def _redraw(self, value, chart_of: Callable, describe: Callable[[Any], str]) -> str:
        """``update`` of a one-knob explorer: a value from code moves the knob (whose observer comes back here);
        the knob's own value redraws ``self.chart`` and the label, timed into ``self.seconds``."""
        start = time.perf_counter()
        if self.knobs[0].value != value:
            self.knobs[0].value = value  # its observer calls update again
            return self.label.value
        if value not in self._charts:
            self._charts[value] = chart_of(value)
        self.chart.chart = self._charts[value]
        text = describe(value)
        self.seconds.append(time.perf_counter() - start)
        return text

    @contextlib.contextmanager
    def _busy(self, text: str, *others: W.DOMWidget):
        """While a measurement runs: ``text`` in the status line, the knobs (and ``others``) disabled; both restored even if it raises."""
        controls = (*self.knobs, *others)
        self.status.value = text
        for control in controls:
            control.disabled = True
        try:
            yield
        finally:
            for control in controls:
                control.disabled = False
            self.status.value = ""


# --- 01 model selection ------------------------------------------------------------------------------


class ModelExplorer(Explorer):
    """Pick models, sequence length and batch size; "Measure" re-profiles them (fresh, not cached) and redraws."""

    def __init__(self, names: Sequence[str] = ("minilm-l6", "tinybert-4", "distilbert"),
                 seq_len: int = 128, batch_size: int = 32, profiles: pd.DataFrame | None = None):
        super().__init__()
        self.models = W.SelectMultiple(options=list(CATALOG), value=tuple(names), rows=7, description="models")
        self.seq_len = W.Dropdown(options=[32, 64, 128, 256, 512], value=seq_len, description="seq length")
        self.batch_size = W.Dropdown(options=[1, 8, 16, 32, 64], value=batch_size, description="batch size")
        self.button = W.Button(description="Measure", button_style="primary", icon="play")
        self.profiles = profiles if profiles is not None else compare_models(names, seq_len, batch_size)
        self.chart = jupyter_chart(charts.latency_chart(self.profiles, claims=SIZE_CLASSES))
        self.bars = jupyter_chart(charts.throughput_chart(self.profiles))
        self.button.on_click(lambda _: self.update())
        controls = W.VBox([self.models, self.seq_len, self.batch_size, W.HBox([self.button, self.status])])
        self.widget = W.HBox([controls, W.VBox([self.chart, self.bars])])

    def update(self) -> pd.DataFrame:
        """Re-measure the selected models and redraw both charts; returns the new profiles."""
        if not self.models.value:
            self.status.value = "<b style='color:#b00'>Select at least one model.</b>"
            return self.profiles
        with self._busy(f"measuring {len(self.models.value)} model(s)… (a few seconds each)", self.button):
            # A press is a request for a fresh measurement: the cached table is replaced, not shown again.
            self.profiles = compare_models(self.models.value, self.seq_len.value, self.batch_size.value,
                                           refresh=True)
        self.chart.chart = charts.latency_chart(self.profiles, claims=SIZE_CLASSES)
        self.bars.chart = charts.throughput_chart(self.profiles)
        self.status.value = f"measured at {self.profiles['measured_at'].iloc[0]}"
        return self.profiles


# --- 02 preprocessing --------------------------------------------------------------------------------


class TruncationExplorer(Explorer):
    """A ``max_length`` slider over a token-length histogram, with the share of articles cut."""

    def __init__(self, lengths, max_length: int = 128):
        super().__init__()
        self.lengths = lengths
        self.slider = W.IntSlider(value=max_length, min=32, max=512, step=32, description="max_length",
                                  continuous_update=True)
        self.chart = jupyter_chart(charts.token_length_histogram(self.lengths, max_length))
        # The chart's own parameter follows the slider (ipywidgets.link syncs the two traits in the
        # kernel); the chart is never rebuilt, only its max_length rule moves.
        W.link((self.slider, "value"), (self.chart.params, "max_length"))
        self._watch(self.slider)
        self.update(max_length)
        self.widget = W.VBox([W.HBox([self.slider, self.label]), self.chart])

    def update(self, max_length: int) -> float:
        """Recompute the truncated share for ``max_length``; returns it."""
        share = truncated_share(self.lengths, max_length)
        kept = kept_token_share(self.lengths, max_length)
        self.label.value = (f"<b>{share:.1%}</b> of articles are truncated at {max_length} tokens; "
                            f"the model sees <b>{kept:.1%}</b> of all tokens.")
        return share


# --- 03 fine-tuning ----------------------------------------------------------------------------------


class LiveTrainingChart:
    """A training chart that redraws on each call: pass it as ``callback=`` to ``fine_tune``.

    ``fine_tune`` calls it with the history after every evaluation; ``.widget`` is what to display
    (before the training cell starts, so the chart fills in while the model trains).
    """

    def __init__(self, title: str = "Fine-tuning"):
        self.title = title
        empty = pd.DataFrame({"step": [], "epoch": [], "train_loss": [], "val_accuracy": [], "lr": []})
        self.chart = jupyter_chart(charts.training_chart(empty, title))
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
        elif len(history):  # a callback between evaluations (multi-task training logs every few steps)
            last = history.iloc[-1]
            self.label.value = f"step {int(last['step'])}: training loss {last['train_loss']:.3f}; no validation yet"
        return self.label.value


# --- 03b multi-task ----------------------------------------------------------------------------------


class MultiTaskExplorer(Explorer):
    """Chapter 3b: a dropdown over the multi-task runs of a comparison table; the chart and the verdict redraw.

    ``table`` has ``multitask.RUN_COLUMNS`` (``single_task_row`` / ``multitask_row`` /
    ``multitask_runs``): nothing is trained here, every run was trained (and cached) before, so a
    switch only redraws. The verdict compares the chosen run with the single-task runs at the same
    share of main-task labels: the one that took as many main-task steps, and the one that read
    the nearest number of tokens in training (the fair comparison of compute). ``seconds`` keeps how long each switch took.
    """

    def __init__(self, table: pd.DataFrame, run: str | None = None, main: str = "topic"):
        super().__init__()
        missing = [c for c in RUN_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"The table lacks the columns {missing}. Fix: build it from multitask.single_task_row, "
                             "multitask_row and multitask_runs.")
        self.table, self.main = table.reset_index(drop=True), main
        runs = list(self.table.loc[self.table["kind"] == "multi-task", "run"])
        if not runs:
            raise ValueError("The table has no multi-task run to show. Fix: train one with "
                             "multitask.get_multitask and add multitask_row(run) to the table.")
        run = runs[0] if run is None else run
        if run not in runs:
            raise ValueError(f"run={run!r} is not a multi-task run of the table; pick one of {runs}.")
        self.dropdown = W.Dropdown(options=runs, value=run, description="run", layout=W.Layout(width="95%"))
        self.seconds: list[float] = []
        self.chart = jupyter_chart(charts.multitask_chart(self.table, run, main))
        self._watch(self.dropdown)
        self._describe(run)
        self.widget = W.VBox([self.dropdown, self.label, self.chart])

    def _describe(self, run: str) -> str:
        r = self.table[self.table["run"] == run].iloc[0]
        parts = [f"<b>{html.escape(run)}</b>: {self.main} accuracy <b>{r['accuracy']:.2%}</b>, macro-F1 "
                 f"{r['macro_f1']:.3f}; other tasks {r['aux_accuracy']:.2%}; {int(r['steps'])} steps, "
                 f"{int(r['main_steps'])} of them on {self.main}; {r['tokens'] / 1e3:.0f}k tokens read."]
        for column, what in (("main_steps", f"as many {self.main} steps"), ("tokens", "about as much compute")):
            single = nearest_single_task(self.table, r, column)
            if single is not None:
                points = 100 * (r["accuracy"] - single["accuracy"])
                parts.append(f"Single-task with {what} ({int(single['steps'])} steps, {single['tokens'] / 1e3:.0f}k "
                             f"tokens): {single['accuracy']:.2%}, multi-task <b>{points:+.2f} points</b>.")
        if len(parts) == 1:
            parts.append(f"No single-task run at {r['share']:.0%} of the labels in the table to compare with.")
        self.label.value = "<br>".join(parts)
        return self.label.value

    def update(self, run: str) -> str:
        """Show ``run`` (a multi-task run's label): redraw the chart and the verdict; returns the verdict."""
        return self._redraw(run, lambda r: charts.multitask_chart(self.table, r, self.main), self._describe)


# --- 04 metrics --------------------------------------------------------------------------------------


class ThresholdExplorer(Explorer):
    """A class dropdown and a threshold slider over one-vs-rest precision and recall.

    The slider moves the chart's ``threshold`` parameter in the browser; changing the class
    replaces the chart's data (a new chart, so the slider is linked to it again).
    """

    def __init__(self, probs, y_true, label_names: Sequence[str], cls: int = 0, threshold: float = 0.5):
        super().__init__()
        self.names = list(getattr(label_names, "names", label_names))
        self.probs, self.y_true = class_probabilities(probs, y_true, len(self.names))
        self.dropdown = W.Dropdown(options=[(name, i) for i, name in enumerate(self.names)], value=cls,
                                   description="class")
        self.slider = W.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                    continuous_update=True, readout_format=".2f")
        self.cls = cls
        self.table = precision_recall_curve_table(self.probs, self.y_true, cls)
        self.chart = jupyter_chart(charts.precision_recall_chart(self.table, threshold, self._title(cls)))
        self._link = W.link((self.slider, "value"), (self.chart.params, "threshold"))
        self._watch(self.dropdown, self.slider)
        self.update(cls, threshold)
        self.widget = W.VBox([W.HBox([self.dropdown, self.slider]), self.label, self.chart])

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
        self._show_knobs(cls, threshold)  # a call from code moves the widgets too, without running update twice
        return scores


# --- 08 deployment -----------------------------------------------------------------------------------


class BatchingExplorer(Explorer):
    """Max batch size and max wait sliders → a short load test of the server with those settings.

    Each setting starts the server (in a thread, on 127.0.0.1) around ``predict`` (a served
    model), sends ``requests`` requests from ``clients`` concurrent clients, stops it, and adds a
    row to the chart of every setting tried. ``max_batch_size=1`` is batching off. A few seconds a
    move with a small model; settings tried before are answered from memory.
    """

    def __init__(self, predict, texts: Sequence[str], clients: int = 16, requests: int = 160,
                 max_batch_size: int = 16, max_wait_ms: float = 5.0, timeout_s: float = 60.0):
        super().__init__()
        if isinstance(texts, str) or not texts:
            raise ValueError("texts: expected a non-empty list of strings.")
        self.predict, self.texts = predict, list(texts)
        self.clients, self.requests, self.timeout_s = clients, requests, timeout_s
        self.cache: dict[tuple, dict] = {}
        self.batch = W.SelectionSlider(options=[1, 2, 4, 8, 16, 32], value=max_batch_size,
                                       description="max batch", continuous_update=False)
        self.wait = W.SelectionSlider(options=[0.0, 1.0, 2.0, 5.0, 10.0, 20.0], value=float(max_wait_ms),
                                      description="max wait ms", continuous_update=False)
        self.knobs = (self.batch, self.wait)
        row = self.update(max_batch_size, max_wait_ms, redraw=False)
        self.chart = jupyter_chart(charts.load_test_chart(self.table(), row["setting"]))
        self._watch()
        self.widget = W.VBox([W.HBox([self.batch, self.wait]), W.HBox([self.status, self.label]), self.chart])

    @staticmethod
    def setting(max_batch_size: int, max_wait_ms: float) -> str:
        return "batching off" if max_batch_size == 1 else f"batch ≤ {max_batch_size}, wait ≤ {max_wait_ms:g} ms"

    def measure(self, max_batch_size: int, max_wait_ms: float) -> dict:
        """Load-test one setting (or recall it); returns its row."""
        key = (int(max_batch_size), 0.0 if max_batch_size == 1 else float(max_wait_ms))
        if key not in self.cache:
            with background_server(self.predict, max_batch_size=key[0], max_wait_ms=key[1]) as server:
                result = load_test(server.url, self.texts, clients=self.clients, requests=self.requests,
                                   timeout_s=self.timeout_s)
            self.cache[key] = {"setting": self.setting(*key), "max_batch_size": key[0], "max_wait_ms": key[1],
                               **result.as_dict()}
        return self.cache[key]

    def table(self) -> pd.DataFrame:
        """Every setting tried so far, one row each (batching off first, then by batch size and wait)."""
        rows = [self.cache[k] for k in sorted(self.cache)]
        return pd.DataFrame(rows)

    def update(self, max_batch_size: int, max_wait_ms: float, redraw: bool = True) -> dict:
        """Load-test (or recall) one setting, then redraw the chart and the label; returns its row."""
        with self._busy(f"<i>load-testing {self.setting(max_batch_size, max_wait_ms)}…</i>"):
            row = self.measure(max_batch_size, max_wait_ms)
        if redraw:
            self.chart.chart = charts.load_test_chart(self.table(), row["setting"])
        batch = f"mean batch {row['mean_batch_size']:.1f}" if row["mean_batch_size"] is not None else ""
        self.label.value = (f"<b>{row['setting']}</b>: {row['requests_per_s']:.0f} requests/s · p50 "
                            f"{row['p50_ms']:.0f} ms · p95 <b>{row['p95_ms']:.0f} ms</b> · {batch} · "
                            f"{row['ok']}/{row['sent']} answered, {row['errors']} errors ({self.clients} clients)")
        self._show_knobs(int(max_batch_size), float(max_wait_ms))
        return row


# --- 09 compression lab ----------------------------------------------------------------------------


class LabDashboard(Explorer):
    """Chapter 9's dashboard: four knobs make a ``lab.Recipe``; Measure builds and times it; the Pareto chart grows.

    Moving a knob costs nothing: the chart rings the recipe if it was measured before (on this
    machine, in any session), else draws its size predicted from arithmetic as a dashed line.
    Measure builds what the recipe needs (distillation ~1–2 min, recovery ~40 s, export seconds,
    all cached) and times it beside the baseline. ``seconds`` keeps how long each knob move took.
    """

    def __init__(self, lab, recipe=None):
        super().__init__()
        self.lab = lab
        recipe = Recipe() if recipe is None else recipe
        self.ffn = W.SelectionSlider(options=[(f"{f:.0%}", f) for f in FFN_FRACTIONS], value=recipe.ffn_pruned,
                                     description="FFN pruned", continuous_update=False)
        self.vocabulary = W.Checkbox(value=recipe.vocabulary, description="prune vocabulary", indent=False)
        bits_labels = {32: "32-bit float", 8: "8-bit int (ONNX)", 4: "4-bit (simulated)"}
        self.bits = W.ToggleButtons(options=[(bits_labels[b], b) for b in BITS], value=recipe.bits, description="bits",
                                    tooltips=[RUNTIMES[b] for b in BITS])
        depths = [(f"{d} layer{'s' if d > 1 else ''} ({'fine-tuned' if d == 6 else 'distilled'})", d) for d in DEPTHS]
        self.depth = W.Dropdown(options=depths, value=recipe.depth, description="depth")
        self.measure_button = W.Button(description="Measure", button_style="primary",
                                       tooltip="Build this recipe (cached) and time it beside the baseline")
        self.seconds: list[float] = []
        self._sizes: dict = {}  # predicted MB per recipe: arithmetic over the model's parts, ~0.5 s each, fixed
        self.chart = jupyter_chart(self._draw(recipe))
        self._watch(self.ffn, self.vocabulary, self.bits, self.depth)
        self.measure_button.on_click(lambda _: self.measure())
        self.widget = W.VBox([W.HBox([self.ffn, self.vocabulary, self.depth]), W.HBox([self.bits, self.measure_button]),
                              self.label, self.status, self.chart])

    @property
    def recipe(self) -> Recipe:
        return Recipe(depth=self.depth.value, ffn_pruned=self.ffn.value, vocabulary=self.vocabulary.value,
                      bits=self.bits.value)

    def _on_knob(self, _change) -> None:  # the knobs make one recipe: update reads them all
        if not self._syncing:
            self.update()

    def _predicted_mb(self, recipe) -> float:
        if recipe not in self._sizes:
            self._sizes[recipe] = self.lab.predicted_size_mb(recipe)
        return self._sizes[recipe]

    def _chart(self, table: pd.DataFrame, recipe, predicted_mb: float | None = None) -> alt.TopLevelMixin:
        """``lab.chart`` from the known sizes (a knob move recounts no parameters), once per setting and results."""
        key = (recipe, predicted_mb, int(pd.util.hash_pandas_object(table.astype(str), index=False).sum()))
        if key not in self._charts:  # results may grow: the table is part of the key
            self._charts[key] = self.lab.chart(recipe, predicted_mb, results=table,
                                               base_mb=self._predicted_mb(Recipe()))
        return self._charts[key]

    def _draw(self, recipe) -> alt.TopLevelMixin:
        predicted = self._predicted_mb(recipe)
        table = self.lab.results()
        measured = table[table["name"] == recipe.name]
        if len(measured):
            r = measured.iloc[0]
            self.label.value = (f"<b>{html.escape(recipe.name)}</b>: accuracy {r['accuracy']:.2%} "
                                f"({r['points']:+.2f} points), {r['size_mb']:.1f} MB ({r['size_pct']:.0f} % of the "
                                f"baseline; predicted {predicted:.1f} MB), {r['speedup']:.2f}× faster — measured "
                                f"{html.escape(str(r['measured_at']))}")
            return self._chart(table, recipe)
        needs = {"distillation": "distils it first, ~1–2 min the first time,",
                 "recovery": "gives it a recovery fine-tune first, ~40 s the first time,"}.get(recipe.trains, "builds it")
        self.label.value = (f"<b>{html.escape(recipe.name)}</b>: not measured yet. Predicted size "
                            f"<b>{predicted:.1f} MB</b> (dashed line). Measure {needs} and times it beside the baseline.")
        return self._chart(table, recipe, predicted)

    def update(self, recipe=None) -> str:
        """Redraw for ``recipe`` (default: the knobs' recipe), measuring nothing; returns the status line."""
        start = time.perf_counter()
        if recipe is not None and recipe != self.recipe:
            self._show_knobs(recipe.ffn_pruned, recipe.vocabulary, recipe.bits, recipe.depth)
        self.chart.chart = self._draw(self.recipe)
        self.seconds.append(time.perf_counter() - start)
        return self.label.value

    def measure(self, recipe=None) -> pd.Series:
        """Measure ``recipe`` (default: the knobs'), cached, and redraw with it ringed; returns its row."""
        if recipe is not None:
            self.update(recipe)
        recipe = self.recipe
        with self._busy(f"measuring <b>{html.escape(recipe.name)}</b>…", self.measure_button):
            row = self.lab.measure(recipe)
        self.update()
        return row


# --- 10 adaptive inference ---------------------------------------------------------------------------


class EarlyExitExplorer(Explorer):
    """A threshold slider over ``early_exit.latency_curve``'s grid: accuracy, mean layers, measured latency.

    Every position is a threshold whose latency was measured (once, cached); accuracy and layers
    come from every layer's logits computed once, so a move only redraws (no model runs).
    ``seconds`` keeps how long each update took.
    """

    def __init__(self, curve: pd.DataFrame, threshold: float = 0.99):
        super().__init__()
        self.curve = curve.reset_index(drop=True)
        options = [float(t) for t in self.curve["threshold"]]
        if threshold not in options:
            raise ValueError(f"threshold={threshold} is not on the measured grid {options}. "
                             "Fix: pick one of them, or measure that threshold with latency_curve.")
        self.slider = W.SelectionSlider(options=options, value=threshold, description="threshold",
                                        continuous_update=False)
        self.seconds: list[float] = []
        self.chart = jupyter_chart(charts.early_exit_chart(self.curve, threshold))
        self._watch(self.slider)
        self._describe(threshold)
        self.widget = W.VBox([W.HBox([self.slider, self.label]), self.chart])

    def row(self, threshold: float) -> pd.Series:
        return curve_row(self.curve, threshold)

    def _describe(self, threshold: float) -> str:
        r, full = self.row(threshold), self.curve.iloc[-1]
        self.label.value = (f"accuracy <b>{r['accuracy']:.1%}</b> (full model {full['accuracy']:.1%}), "
                            f"<b>{r['mean_layers']:.2f}</b> of {int(round(full['mean_layers']))} layers on average, "
                            f"<b>{r['mean_ms']:.1f} ms</b> vs {r['full_ms']:.1f} ms (<b>{r['speedup']:.2f}×</b>)")
        return self.label.value

    def update(self, threshold: float) -> str:
        """Redraw for ``threshold`` (a grid value); returns the status line."""
        return self._redraw(threshold, lambda th: charts.early_exit_chart(self.curve, th), self._describe)


class BudgetPicker(Explorer):
    """Latency and memory budget sliders → ``benchmark.pick_variant`` on a results table, redrawn.

    The chosen variant is ringed; every rejected one says why. When nothing fits, the label says
    which variant comes closest and by how much.
    """

    def __init__(self, results: pd.DataFrame, latency_budget_ms: float = 20.0, memory_budget_mb: float = 500.0,
                 latency_column: str = "latency_p50_ms", memory_column: str = "peak_memory_mb"):
        super().__init__()
        self.results, self.columns = results, (latency_column, memory_column)
        pick_variant(results, latency_budget_ms, memory_budget_mb, *self.columns)  # bad input fails here
        top_ms = float(math.ceil(results[latency_column].max() * 1.5))  # room to loosen the budget
        top_mb = float(math.ceil(results[memory_column].max() * 1.5 / 10) * 10)
        self.latency = W.FloatSlider(value=latency_budget_ms, min=0.5, max=max(top_ms, latency_budget_ms), step=0.5,
                                     description="latency ms", continuous_update=False)
        self.memory = W.FloatSlider(value=memory_budget_mb, min=10, max=max(top_mb, memory_budget_mb), step=10,
                                    description="memory MB", continuous_update=False)
        self.pick = None
        self.chart = jupyter_chart(charts.budget_chart(self._table(latency_budget_ms, memory_budget_mb),
                                                       latency_budget_ms, memory_budget_mb))
        self._watch(self.latency, self.memory)
        self.widget = W.VBox([W.HBox([self.latency, self.memory]), self.label, self.chart])

    def _table(self, latency_budget_ms: float, memory_budget_mb: float) -> pd.DataFrame:
        try:
            self.pick = pick_variant(self.results, latency_budget_ms, memory_budget_mb, *self.columns)
        except NoVariantFitsError as none:
            self.pick = None
            self.label.value = f"<b style='color:#b00'>{html.escape(str(none))}</b>"
            lat, mem = self.columns
            return pd.DataFrame({"name": self.results["name"], "accuracy": self.results["accuracy"],
                                 "latency_ms": self.results[lat], "memory_mb": self.results[mem], "fits": False,
                                 "reason": "over budget"})
        row = self.pick.table.set_index("name").loc[self.pick.chosen]
        self.label.value = (f"chosen: <b>{html.escape(self.pick.chosen)}</b> — accuracy {row['accuracy']:.2%}, "
                            f"{row['latency_ms']:.2f} ms, {row['memory_mb']:.0f} MB; "
                            f"{int((~self.pick.table['fits']).sum())} variant(s) over budget")
        return self.pick.table

    def update(self, latency_budget_ms: float, memory_budget_mb: float) -> str:
        """Pick for these budgets and redraw; returns the status line."""
        table = self._table(latency_budget_ms, memory_budget_mb)
        key = (latency_budget_ms, memory_budget_mb)
        if key not in self._charts:
            self._charts[key] = charts.budget_chart(table, latency_budget_ms, memory_budget_mb)
        self.chart.chart = self._charts[key]
        return self.label.value
