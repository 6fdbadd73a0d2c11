"""Widgets: ipywidgets wired to a minikit function and a chart from ``minikit.charts``.

Each widget class keeps its logic in an ``update`` method that tests (and benchmarks) can call
without a browser; ``.widget`` is what a notebook displays.
"""

from __future__ import annotations

import contextlib
import html
import copy
import time
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import altair as alt
import ipywidgets as W
import numpy as np
import pandas as pd
import torch
from torch import nn

from minikit import charts, pruning
from minikit.claims import SIZE_CLASSES
from minikit.data import truncated_share
from minikit.metrics import precision_recall_at_threshold, precision_recall_curve_table, ThresholdScores
from minikit.profiling import compare_models, count_parameters, measure_latency
from minikit.models import CATALOG
from minikit.quantization import (
    GRANULARITIES,
    SUPPORTED_BITS,
    quantization_grid,
    quantize_tensor,
    quantized_size_mb,
)
from minikit.models import encoder_layers


def _jupyter_chart(chart: alt.TopLevelMixin) -> alt.JupyterChart:
    charts.enable_offline_charts()
    return alt.JupyterChart(chart)


@contextlib.contextmanager
def _busy(controls: Sequence[W.DOMWidget], status: W.HTML, text: str):
    """While a measurement runs: ``text`` in the status line and the knobs disabled; both restored even if it raises."""
    status.value = text
    for control in controls:
        control.disabled = True
    try:
        yield
    finally:
        for control in controls:
            control.disabled = False
        status.value = ""


@contextlib.contextmanager
def _moving_knobs(explorer):
    """Set an explorer's knobs from code without their observers calling ``update`` again."""
    explorer._syncing = True
    try:
        yield
    finally:
        explorer._syncing = False


class ModelExplorer:
    """Pick models, sequence length and batch size; "Measure" re-profiles them (fresh, not cached) and redraws."""

    def __init__(self, names: Sequence[str] = ("minilm-l6", "tinybert-4", "distilbert"),
                 seq_len: int = 128, batch_size: int = 32, profiles: pd.DataFrame | None = None):
        self.models = W.SelectMultiple(options=list(CATALOG), value=tuple(names), rows=7, description="models")
        self.seq_len = W.Dropdown(options=[32, 64, 128, 256, 512], value=seq_len, description="seq length")
        self.batch_size = W.Dropdown(options=[1, 8, 16, 32, 64], value=batch_size, description="batch size")
        self.button = W.Button(description="Measure", button_style="primary", icon="play")
        self.status = W.HTML()
        self.profiles = profiles if profiles is not None else compare_models(names, seq_len, batch_size)
        self.chart = _jupyter_chart(charts.latency_chart(self.profiles, claims=SIZE_CLASSES))
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
            # A press is a request for a fresh measurement: the cached table is replaced, not shown again.
            self.profiles = compare_models(self.models.value, self.seq_len.value, self.batch_size.value,
                                           refresh=True)
            self.chart.chart = charts.latency_chart(self.profiles, claims=SIZE_CLASSES)
            self.bars.chart = charts.throughput_chart(self.profiles)
            self.status.value = f"measured at {self.profiles['measured_at'].iloc[0]}"
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
        # The chart's own parameter follows the slider (ipywidgets.link syncs the two traits in the
        # kernel); the chart is never rebuilt, only its max_length rule moves.
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
        with _moving_knobs(self):  # a call from code moves the widgets too, without running update twice
            self.dropdown.value, self.slider.value = cls, threshold
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
        elif len(history):  # a callback between evaluations (multi-task training logs every few steps)
            last = history.iloc[-1]
            self.label.value = f"step {int(last['step'])}: training loss {last['train_loss']:.3f}; no validation yet"
        return self.label.value


# --- 06 quantization ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizationPoint:
    """One setting of ``QuantizationExplorer``, measured: accuracy on its subset and packed size."""

    bits: int
    granularity: str
    symmetric: bool
    accuracy: float  # on the explorer's fixed validation subset
    size_mb: float  # Linear weights packed at ``bits`` (quantization.quantized_size_mb), the rest float32
    errors: pd.DataFrame = field(repr=False, compare=False)  # quantization_error_table's columns, Linear weights
    seconds: float = field(compare=False)  # time the first measurement took

    @property
    def scheme(self) -> str:
        return f"{self.granularity}, {'symmetric' if self.symmetric else 'asymmetric'}"


class QuantizationExplorer:
    """A bits slider and granularity / symmetry toggles → accuracy and packed size, redrawn live.

    Three charts follow the knobs: accuracy and size against bits (every setting measured so
    far), one weight row's histogram with the grid for the chosen setting, and the error of every
    weight matrix. A setting is simulated as ``quantization.fake_quantize`` does it (Linear weights
    rounded, embeddings kept in float), but in place on one working copy, from the float
    originals: a new setting costs one forward pass over a fixed validation subset, a setting
    seen before costs nothing (results are cached per setting).
    """

    def __init__(self, model, tokenizer, dataset, n_examples: int = 64, max_length: int = 64,
                 layer: str | None = None, bits: int = 8, granularity: str = "per-channel",
                 symmetric: bool = True, batch_size: int = 32, seed: int = 0):
        if n_examples < 1 or len(dataset) == 0:
            raise ValueError(f"n_examples={n_examples} of {len(dataset)} examples: need at least one to score.")
        # The working copy shares every tensor except the Linear weights, the only ones rewritten.
        linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
        shared = {id(t): t for t in model.state_dict(keep_vars=True).values()
                  if all(t is not m.weight for m in linears.values())}
        self.work = copy.deepcopy(model, memo=dict(shared)).eval()
        self.originals = {name: m.weight for name, m in linears.items()}  # the float weights, never written
        self.targets = {name: m for name, m in self.work.named_modules() if isinstance(m, nn.Linear)}
        self._layer_of = {id(m): i for i, layer in enumerate(encoder_layers(self.work)) for m in layer.modules()}
        self.batches, self.labels = _fixed_subset(tokenizer, dataset, n_examples, max_length, batch_size, seed)
        self.n_examples, self.max_length = len(self.labels), max_length
        self.reference_accuracy = self.accuracy(model)
        self.reference_size_mb = sum(t.numel() * t.element_size() for t in
                                     {id(t): t for t in model.state_dict(keep_vars=True).values()}.values()) / 1e6
        self.layer = layer or next(n for n in linears if any(linears[n] is m for m in encoder_layers(model)[0].modules()))
        if self.layer not in linears:
            raise ValueError(f"layer={layer!r} is not a Linear layer of the model. Fix: pick one of {list(linears)[:4]}…")
        w = self.originals[self.layer].detach()
        spans = (w.amax(dim=1) - w.amin(dim=1)).numpy()
        self.channel = int(np.argsort(spans)[len(spans) // 2])  # a typical row: median range
        self.cache: dict[tuple[int, str, bool], QuantizationPoint] = {}

        self.slider = W.IntSlider(value=bits, min=SUPPORTED_BITS[0], max=SUPPORTED_BITS[-1], step=1,
                                  description="bits", continuous_update=False)
        self.granularity = W.ToggleButtons(options=list(GRANULARITIES), value=granularity, description="scales")
        self.symmetry = W.ToggleButtons(options=[("symmetric", True), ("asymmetric", False)], value=symmetric,
                                        description="grid")
        self.status, self.label = W.HTML(), W.HTML()
        self._syncing = False
        point = self._point(bits, granularity, symmetric)
        self._charts: dict[tuple[int, str, bool], tuple] = {}  # built grid and error charts, per setting
        self.sweep_chart = _jupyter_chart(self._sweep_chart(point))
        self._drawn = len(self.cache)  # points in the sweep chart's data
        self.grid_chart = _jupyter_chart(self._grid_chart(point))
        self.error_chart = _jupyter_chart(self._error_chart(point))
        self._show(point)
        for control in (self.slider, self.granularity, self.symmetry):
            control.observe(self._on_widget, names="value")
        controls = W.HBox([self.slider, self.granularity, self.symmetry])
        self.widget = W.VBox([controls, W.HBox([self.status, self.label]), self.sweep_chart,
                              W.HBox([self.grid_chart, self.error_chart])])

    # --- measuring -------------------------------------------------------------------------------

    def accuracy(self, model=None) -> float:
        """Accuracy of ``model`` (default: the working copy as it is now) on the explorer's subset."""
        model = self.work if model is None else model
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            predicted = np.concatenate([model(**batch).logits.argmax(-1).numpy() for batch in self.batches])
        model.train(was_training)
        return float(np.mean(predicted == self.labels))

    def _measure(self, bits: int, granularity: str, symmetric: bool) -> QuantizationPoint:
        start = time.perf_counter()
        size = quantized_size_mb(self.work, bits, granularity, symmetric)  # also refuses bad bits/granularity
        rows = []
        with torch.no_grad():
            for name, m in self.targets.items():
                w = self.originals[name]
                q = quantize_tensor(w, bits, granularity, symmetric)
                m.weight.copy_(q)
                err = float((w - q).norm() / w.norm().clamp(min=1e-12))  # as quantization_error_table
                rows.append({"name": name, "layer": self._layer_of.get(id(m), -1), "kind": "linear", "params": w.numel(),
                             "relative_error": err, "sqnr_db": -20 * np.log10(err) if err > 0 else float("inf")})
        accuracy = self.accuracy()
        return QuantizationPoint(bits, granularity, symmetric, accuracy, size, pd.DataFrame(rows),
                                 time.perf_counter() - start)

    def _point(self, bits: int, granularity: str, symmetric: bool) -> QuantizationPoint:
        key = (bits, granularity, bool(symmetric))
        if key not in self.cache:
            self.cache[key] = self._measure(*key)
        return self.cache[key]

    @property
    def table(self) -> pd.DataFrame:
        """Every setting measured so far: bits, granularity, symmetric, scheme, accuracy, size_mb, seconds."""
        rows = [{"bits": p.bits, "granularity": p.granularity, "symmetric": p.symmetric, "scheme": p.scheme,
                 "accuracy": p.accuracy, "size_mb": p.size_mb, "seconds": p.seconds} for p in self.cache.values()]
        columns = ["bits", "granularity", "symmetric", "scheme", "accuracy", "size_mb", "seconds"]
        return pd.DataFrame(rows, columns=columns).sort_values(["scheme", "bits"], ignore_index=True)

    def sweep(self, bits: Sequence[int] = SUPPORTED_BITS, granularities: Sequence[str] = GRANULARITIES,
              symmetric: Sequence[bool] = (True, False)) -> pd.DataFrame:
        """Measure every combination (cached ones cost nothing), redraw, and return ``table``."""
        for b in bits:
            for g in granularities:
                for s in symmetric:
                    self._point(b, g, s)
        self._draw(self._current())
        return self.table

    # --- drawing ---------------------------------------------------------------------------------

    def _current(self) -> QuantizationPoint:
        return self._point(self.slider.value, self.granularity.value, self.symmetry.value)

    def _sweep_chart(self, point: QuantizationPoint):
        return charts.quantization_sweep_chart(self.table, (point.bits, point.scheme), self.reference_accuracy,
                                               self.reference_size_mb)

    def _grid_chart(self, point: QuantizationPoint):
        w = self.originals[self.layer].detach()
        grid = quantization_grid(w, point.bits, point.granularity, point.symmetric, channel=self.channel)
        return charts.quantization_grid_chart(
            w[self.channel].numpy(), grid,
            title=f"{self.layer}, row {self.channel}: {point.bits}-bit {point.scheme} grid (red)")

    def _error_chart(self, point: QuantizationPoint):
        return charts.quantization_error_chart(point.errors, title=f"Error per matrix at {point.bits} bits, {point.scheme}")

    def _show(self, point: QuantizationPoint) -> None:
        self.status.value = ""
        self.label.value = (f"<b>{point.bits}-bit {point.scheme}</b>: accuracy <b>{point.accuracy:.1%}</b> on "
                            f"{self.n_examples} validation articles (float32: {self.reference_accuracy:.1%}), "
                            f"packed size <b>{point.size_mb:.1f} MB</b> (float32: {self.reference_size_mb:.1f} MB)")

    def _on_widget(self, _change) -> None:
        if not self._syncing:
            self.update(self.slider.value, self.granularity.value, self.symmetry.value)

    def update(self, bits: int, granularity: str = "per-channel", symmetric: bool = True) -> QuantizationPoint:
        """Measure the setting (or take it from the cache), move the knobs to it, redraw; returns it."""
        key = (bits, granularity, bool(symmetric))
        if key not in self.cache:
            self.status.value = (f"<i>computing {bits}-bit {granularity}… (a forward pass over "
                                 f"{self.n_examples} articles)</i>")
        try:
            point = self._point(*key)  # a bad setting raises here, before anything moves
        except ValueError:
            self.status.value = ""
            raise
        with _moving_knobs(self):  # a call from code moves the widgets too, without running update again
            self.slider.value, self.granularity.value, self.symmetry.value = key
        self._draw(point)
        self._show(point)
        return point

    def _draw(self, point: QuantizationPoint) -> None:
        if len(self.cache) != self._drawn:  # a new point: the sweep chart needs its data
            self.sweep_chart.chart = self._sweep_chart(point)
            self._drawn = len(self.cache)
        else:  # same data: move the ring through the chart's parameters, in the browser
            self.sweep_chart.params.bits, self.sweep_chart.params.scheme = point.bits, point.scheme
        key = (point.bits, point.granularity, point.symmetric)
        if key not in self._charts:
            self._charts[key] = (self._grid_chart(point), self._error_chart(point))
        self.grid_chart.chart, self.error_chart.chart = self._charts[key]


# --- 05 pruning ------------------------------------------------------------------------------------

PRUNING_METHODS = {  # knob value → what the slider's fraction removes
    "global magnitude": "the smallest |w| of all encoder weights, ranked together",
    "per-layer magnitude": "the smallest |w| of every Linear layer, the same share in each",
    "heads": "the least important attention heads (every layer keeps one)",
    "FFN neurons": "the feed-forward neurons with the smallest weights",
    "layers": "whole encoder layers, middle ones first (at least one stays)",
}


@dataclass(frozen=True)
class PruningPoint:
    """One setting of ``PruningExplorer``, measured on this machine."""

    method: str
    amount: float  # the slider: share of weights / heads / neurons / layers to remove
    removed: float  # share of the encoder's Linear weights gone (zeroed or cut out): one x-axis for all methods
    accuracy: float  # on the explorer's fixed validation subset
    params_m: float  # parameters, zeros included
    nonzero_m: float
    dense_mb: float  # every tensor stored dense (fp32): what save_pretrained writes, less its small header
    sparse_mb: float  # matrices stored as CSR (int32 indices) where that is smaller, as pruning.sparse_size_mb
    latency_ms: float  # batch 1, median of a few runs
    heatmap: pd.DataFrame = field(repr=False, compare=False)  # layer, role, params, removed (vs the original)
    seconds: float = field(compare=False)  # time the first measurement took


_POINT_COLUMNS = [f.name for f in fields(PruningPoint) if f.name not in ("heatmap", "seconds")]


def _point_row(point: PruningPoint) -> dict:
    return {name: getattr(point, name) for name in _POINT_COLUMNS}


def _csr_or_dense_bytes(t: torch.Tensor) -> int:
    """Bytes of ``t`` dense, or as CSR (values + int32 column indices + int32 row pointers) if smaller."""
    dense = t.numel() * t.element_size()
    if t.ndim != 2 or not t.is_floating_point():
        return dense
    csr = int(torch.count_nonzero(t)) * (t.element_size() + 4) + (t.shape[0] + 1) * 4
    return min(dense, csr)


def _fixed_subset(tokenizer, dataset, n: int, max_length: int, batch_size: int, seed: int):
    """``n`` rows drawn with ``seed`` (the same rows every time), tokenized once: (batches, labels)."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    subset = dataset.select(rows)
    texts, labels = list(subset["text"]), np.asarray(subset["label"])
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: little padding
    batches = []
    for start in range(0, len(order), batch_size):
        enc = tokenizer([texts[i] for i in order[start:start + batch_size]], truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt")
        batches.append({k: enc[k] for k in ("input_ids", "attention_mask")})  # what all three architectures take
    return batches, labels[order]


def _middle_out(n: int) -> list[int]:
    """Layer indices, middle ones first: dropping middle layers hurts a fine-tuned encoder least.

    (Measured on minilm-l6 without retraining: dropping layers 4 and 5 leaves ~30 % accuracy,
    dropping 2 and 3 leaves ~92 %; the first and last layers matter most.)
    """
    return sorted(range(n), key=lambda i: (abs(i - (n - 1) / 2), i))


class PruningExplorer:
    """A sparsity slider and a method selector → accuracy, non-zeros, dense/sparse size, latency.

    Two charts follow the knobs: every setting measured so far (one line per method, against the
    share of encoder weights removed, the current one ringed), and a heatmap of what the current
    setting removed per layer and role. Magnitude pruning is applied in place to one working copy,
    from the original weights (same result as ``pruning.magnitude_prune``, without a copy per
    move); structured methods build a pruned copy with ``pruning``'s functions. Results are cached
    per setting. ``importance`` (a ``pruning.head_importance`` table) ranks heads; by default the
    weight-norm proxy.
    """

    def __init__(self, model, tokenizer, dataset, n_examples: int = 64, max_length: int = 64,
                 latency_length: int = 128, importance: pd.DataFrame | None = None,
                 method: str = "global magnitude", amount: float = 0.5, batch_size: int = 32, seed: int = 0):
        if n_examples < 1 or len(dataset) == 0:
            raise ValueError(f"n_examples={n_examples} of {len(dataset)} examples: need at least one to score.")
        self.model = model.eval()
        self.work = copy.deepcopy(model).eval()
        self.originals = [m.weight for _, _, m in pruning.encoder_linears(model)]  # never written
        self.targets = [m.weight for _, _, m in pruning.encoder_linears(self.work)]
        self.importance = importance if importance is not None else pruning.head_importance(model)
        self.num_layers = len(encoder_layers(model))
        self.layer_order = _middle_out(self.num_layers)
        base = pruning.sparsity_table(model)
        self.roles = base[["layer", "module", "role", "params"]]
        self.total_weights = int(base["params"].sum())
        self.batches, self.labels = _fixed_subset(tokenizer, dataset, n_examples, max_length, batch_size, seed)
        self.n_examples, self.max_length = len(self.labels), max_length
        single = tokenizer([dataset[0]["text"]], truncation=True, max_length=latency_length,
                           padding="max_length", return_tensors="pt")
        self.single = {k: single[k] for k in ("input_ids", "attention_mask")}
        self.cache: dict[tuple, PruningPoint] = {}
        self.current: PruningPoint | None = None

        self.method = W.Dropdown(options=list(PRUNING_METHODS), value=method, description="method")
        self.slider = W.FloatSlider(value=amount, min=0.0, max=0.95, step=0.05, description="remove",
                                    continuous_update=False, readout_format=".0%")
        self.status, self.label = W.HTML(), W.HTML()
        self._syncing = False
        point = self.update(method, amount, redraw=False)
        self.chart = _jupyter_chart(charts.pruning_tradeoff_chart(self.table(), point))
        self.heatmap = _jupyter_chart(charts.pruning_heatmap(point.heatmap, self._title(point)))
        for control in (self.slider, self.method):
            control.observe(self._on_widget, names="value")
        self.widget = W.VBox([W.HBox([self.slider, self.method]), W.HBox([self.status, self.label]),
                              self.chart, self.heatmap])

    # --- measuring -------------------------------------------------------------------------------

    def _key(self, method: str, amount: float) -> tuple:
        """The setting as it acts on the model: slider values that remove the same thing share a key."""
        if amount == 0:
            return ("none",)  # every method at 0 is the unpruned model
        if method in ("global magnitude", "per-layer magnitude"):
            return method, round(amount, 4)
        if method == "heads":
            heads = pruning.least_important_heads(self.importance, amount)
            return method, tuple((layer, tuple(h)) for layer, h in heads.items())
        if method == "FFN neurons":
            return method, round(amount, 4)
        return method, tuple(sorted(self.layer_order[:min(round(amount * self.num_layers), self.num_layers - 1)]))

    def _pruned(self, method: str, key: tuple):
        """The model for a setting: the working copy masked in place, or a structurally pruned copy."""
        if key == ("none",):
            method, key = "global magnitude", ("global magnitude", 0.0)  # a threshold of -1 keeps every weight
        if method in ("global magnitude", "per-layer magnitude"):
            amount = key[1]
            cut = pruning.magnitude_threshold(self.originals, amount) if method == "global magnitude" else None
            with torch.no_grad():
                for w, original in zip(self.targets, self.originals):
                    layer_cut = cut if cut is not None else pruning.magnitude_threshold([original], amount)
                    w.copy_(original).masked_fill_(original.abs() <= layer_cut, 0.0)  # as magnitude_prune
            return self.work, list(range(self.num_layers))
        if method == "heads":
            return pruning.prune_heads(self.model, dict(key[1])), list(range(self.num_layers))
        if method == "FFN neurons":
            return pruning.prune_ffn_neurons(self.model, key[1]), list(range(self.num_layers))
        dropped = set(key[1])
        kept = [i for i in range(self.num_layers) if i not in dropped]
        return pruning.drop_layers(self.model, sorted(dropped)), kept

    def _heatmap(self, model, kept: list[int]) -> pd.DataFrame:
        nonzero = {(kept[i], name): int(torch.count_nonzero(m.weight)) for i, name, m in pruning.encoder_linears(model)}
        table = self.roles.assign(nonzero=[nonzero.get((r.layer, r.module), 0) for r in self.roles.itertuples()])
        table = table.groupby(["layer", "role"], as_index=False)[["params", "nonzero"]].sum()
        return table.assign(removed=1 - table["nonzero"] / table["params"])

    def accuracy(self, model=None) -> float:
        """Accuracy of ``model`` (default: the unpruned model) on the explorer's fixed subset."""
        model = self.model if model is None else model
        with torch.inference_mode():
            predicted = np.concatenate([model(**batch).logits.argmax(-1).numpy() for batch in self.batches])
        return float(np.mean(predicted == self.labels))

    def measure(self, method: str, amount: float) -> PruningPoint:
        """The point for one setting, from the cache or measured now (no widget is touched)."""
        if method not in PRUNING_METHODS:
            raise ValueError(f"method={method!r}: expected one of {', '.join(map(repr, PRUNING_METHODS))}.")
        amount = round(pruning._check_fraction(amount, "amount"), 4)
        key = self._key(method, amount)
        if key in self.cache:
            cached = self.cache[key]
            same = (cached.method, cached.amount) == (method, amount)
            return cached if same else replace(cached, method=method, amount=amount)
        start = time.perf_counter()
        model, kept = self._pruned(method, key)
        heatmap = self._heatmap(model, kept)
        state = {id(t): t for t in model.state_dict(keep_vars=True).values()}.values()
        point = PruningPoint(
            method=method, amount=amount, removed=float(1 - heatmap["nonzero"].sum() / self.total_weights),
            accuracy=self.accuracy(model), params_m=count_parameters(model) / 1e6,
            nonzero_m=count_parameters(model, nonzero=True) / 1e6,
            dense_mb=sum(t.numel() * t.element_size() for t in state) / 1e6,
            sparse_mb=sum(_csr_or_dense_bytes(t) for t in state) / 1e6,
            latency_ms=float(np.median(measure_latency(model, self.single, warmup=1, repeats=5))),
            heatmap=heatmap, seconds=time.perf_counter() - start)
        self.cache[key] = point
        return point

    def pruned_model(self, method: str, amount: float):
        """A pruned copy of the model for one setting (what ``measure`` scores), e.g. to benchmark it."""
        if method not in PRUNING_METHODS:
            raise ValueError(f"method={method!r}: expected one of {', '.join(map(repr, PRUNING_METHODS))}.")
        amount = round(pruning._check_fraction(amount, "amount"), 4)
        if amount == 0:
            return copy.deepcopy(self.model)
        if method in ("global magnitude", "per-layer magnitude"):
            return pruning.magnitude_prune(self.model, amount, "global" if method == "global magnitude" else "layer")
        return self._pruned(method, self._key(method, amount))[0]

    def table(self) -> pd.DataFrame:
        """Every setting measured so far, one row each (without the heatmaps).

        The unpruned model (amount 0) gets one row per method shown, so every line starts there.
        """
        points = [p for key, p in self.cache.items() if key != ("none",)]
        if ("none",) in self.cache:
            methods = {p.method for p in points} | {self.cache[("none",)].method}
            points += [replace(self.cache[("none",)], method=m, amount=0.0) for m in PRUNING_METHODS if m in methods]
        return pd.DataFrame([_point_row(p) for p in points], columns=_POINT_COLUMNS)

    def sweep(self, amounts: Sequence[float], methods: Sequence[str] | None = None) -> pd.DataFrame:
        """Measure every (method, amount) pair (cached ones cost nothing); returns their rows."""
        points = [self.measure(m, a) for m in (methods or list(PRUNING_METHODS)) for a in amounts]
        return pd.DataFrame([_point_row(p) for p in points], columns=_POINT_COLUMNS)

    # --- the widget ------------------------------------------------------------------------------

    def _on_widget(self, _change) -> None:
        if not self._syncing:
            self.update(self.method.value, self.slider.value)

    @staticmethod
    def _title(point: PruningPoint) -> str:
        return f"{point.method}, {point.amount:.0%} removed: share of weights gone per layer and role"

    def update(self, method: str, amount: float, redraw: bool = True) -> PruningPoint:
        """Measure (or recall) one setting, then redraw both charts and the label; returns the point."""
        with _busy((self.slider, self.method), self.status, f"<i>computing {method} at {amount:.0%}…</i>"):
            point = self.measure(method, amount)
        self.current = point
        if redraw:
            self.chart.chart = charts.pruning_tradeoff_chart(self.table(), point)
            self.heatmap.chart = charts.pruning_heatmap(point.heatmap, self._title(point))
        self.label.value = (f"<b>{method}</b>, {amount:.0%}: {point.removed:.0%} of encoder weights gone · accuracy "
                            f"<b>{point.accuracy:.1%}</b> ({self.n_examples} validation articles) · "
                            f"{point.nonzero_m:.1f} M non-zero of {point.params_m:.1f} M · dense "
                            f"{point.dense_mb:.0f} MB, sparse {point.sparse_mb:.0f} MB · "
                            f"<b>{point.latency_ms:.1f} ms</b> at batch 1")
        with _moving_knobs(self):  # a call from code moves the widgets too, without measuring twice
            self.method.value, self.slider.value = method, amount
        return point


# --- 07 distillation ---------------------------------------------------------------------------------


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


class TemperatureExplorer:
    """A temperature slider and an article picker → the teacher's softened distribution, redrawn live.

    ``logits`` (N, C) are the teacher's for ``texts`` (computed once, e.g. with
    ``distillation.teacher_logits``); each move only divides them by T and takes a softmax.
    ``examples`` picks the articles offered (default: six, from the most to the least confident).
    """

    def __init__(self, logits, texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str],
                 examples: Sequence[int] | None = None, temperature: float = 2.0):
        self.logits = np.asarray(logits, dtype=np.float64)
        if self.logits.ndim != 2 or len(self.logits) != len(texts) or len(texts) != len(labels):
            raise ValueError(f"logits {self.logits.shape}, {len(texts)} texts and {len(labels)} labels: expected "
                             "logits of shape (N, classes) for N texts and N labels.")
        self.texts, self.labels, self.label_names = list(texts), np.asarray(labels), list(label_names)
        if examples is None:  # spread over confidence at T = 1: from sure to unsure
            order = np.argsort(-_softmax(self.logits, 1.0).max(axis=1))
            examples = [int(order[round(q * (len(order) - 1))]) for q in np.linspace(0, 1, min(6, len(order)))]
        self.examples = [int(i) for i in examples]
        for i in self.examples:
            if not 0 <= i < len(self.texts):
                raise ValueError(f"examples: index {i} is outside the {len(self.texts)} texts.")
        options = [(f"#{i} ({self.label_names[self.labels[i]]}): {self.texts[i].splitlines()[0][:60]}", i)
                   for i in self.examples]
        self.picker = W.Dropdown(options=options, value=self.examples[0], description="article",
                                 layout=W.Layout(width="520px"))
        self.slider = W.FloatLogSlider(value=temperature, base=10, min=-0.5, max=1.3, step=0.05,
                                       description="T", continuous_update=True, readout_format=".2f")
        self.label = W.HTML()
        table = self.update(self.examples[0], temperature, redraw=False)
        self.chart = _jupyter_chart(charts.softened_chart(table, self._title(table)))
        self.picker.observe(self._on_widget, names="value")
        self.slider.observe(self._on_widget, names="value")
        self.widget = W.VBox([W.HBox([self.slider, self.picker]), self.label, self.chart])

    def distribution(self, example: int, temperature: float) -> pd.DataFrame:
        """Columns label, probability (at T), probability_t1 (at T = 1), is_true."""
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature={temperature!r}: expected a number > 0.")
        row = self.logits[example]
        return pd.DataFrame({"label": self.label_names, "probability": _softmax(row, temperature),
                             "probability_t1": _softmax(row, 1.0),
                             "is_true": np.arange(len(row)) == self.labels[example]})

    def _title(self, table: pd.DataFrame) -> str:
        return (f"T = {self.temperature:.2f}: entropy {_entropy_bits(table['probability'].to_numpy()):.2f} bits "
                f"(at most {np.log2(len(table)):.2f})")

    def _on_widget(self, _change) -> None:
        self.update(self.picker.value, self.slider.value)

    def update(self, example: int, temperature: float, redraw: bool = True) -> pd.DataFrame:
        """Redraw the chart for one article at one temperature; returns its distribution."""
        table = self.distribution(example, temperature)
        self.example, self.temperature = example, float(temperature)
        if redraw:
            self.chart.chart = charts.softened_chart(table, self._title(table))
        runner_up = table.drop(index=int(table["probability"].idxmax()))["probability"].max()
        self.label.value = (f"top class <b>{table.loc[table['probability'].idxmax(), 'label']}</b> at "
                            f"{table['probability'].max():.1%}; runner-up {runner_up:.1%}. What the student learns "
                            f"beyond the label is in the runner-ups.")
        return table


# ~360 articles × 64 tokens, one pass at a raised learning rate (45 steps): about 10 s a run on 2 cores.
QUICK_DISTILL = dict(epochs=1, train_fraction=0.25, max_length=64, batch_size=8, learning_rate=1e-4,
                     eval_every=10_000, activation_checkpointing=False)


@dataclass(frozen=True)
class DistillationPoint:
    alpha: float
    layers: int
    temperature: float
    val_accuracy: float
    params_m: float
    seconds: float  # training + evaluation, or loading from the cache
    from_cache: bool


class DistillationExplorer:
    """α and student-depth sliders → a short distillation run, its validation accuracy on a chart of all runs.

    Each setting trains a student made of ``spread_layers`` of the teacher's layers for one epoch
    on a quarter of the train split at 64 tokens (``QUICK_DISTILL``, about 10 s on 2 cores), then
    scores it on the validation split at 64 tokens. Runs are cached on disk by ``distill``, so a
    setting tried before (in any session) comes back at once. The teacher is scored the same way
    once, as the dashed reference.
    """

    def __init__(self, teacher, alpha: float = 0.5, layers: int = 3, temperature: float = 2.0,
                 config=None, progress: bool = False):
        from minikit.distillation import _check_kd
        from minikit.training import TrainConfig, evaluate_accuracy

        _check_kd(alpha, temperature)
        self.teacher, self.temperature, self.progress = teacher, float(temperature), progress
        self.config = config or TrainConfig(**QUICK_DISTILL)
        self.num_layers = len(encoder_layers(teacher.model))
        self.teacher_accuracy = evaluate_accuracy(teacher.model, teacher.tokenizer, teacher.splits["validation"],
                                                  self.config.max_length)
        self.cache: dict[tuple, DistillationPoint] = {}
        self.current: DistillationPoint | None = None
        self.alpha = W.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.25, description="α",
                                   continuous_update=False, readout_format=".2f")
        self.depth = W.IntSlider(value=layers, min=1, max=self.num_layers, step=1, description="layers",
                                 continuous_update=False)
        self.status, self.label = W.HTML(), W.HTML()
        self._syncing = False
        point = self.update(alpha, layers, redraw=False)
        self.chart = _jupyter_chart(charts.distillation_runs_chart(self.table(), (point.alpha, point.layers),
                                                                   self.teacher_accuracy))
        for control in (self.alpha, self.depth):
            control.observe(self._on_widget, names="value")
        self.widget = W.VBox([W.HBox([self.alpha, self.depth]), W.HBox([self.status, self.label]), self.chart])

    def measure(self, alpha: float, layers: int) -> DistillationPoint:
        """Train (or load) the short run for one setting; no widget is touched."""
        from minikit.distillation import _check_kd, distill, select_layers, spread_layers

        _check_kd(alpha, self.temperature)
        if not (isinstance(layers, (int, np.integer)) and 1 <= layers <= self.num_layers):
            raise ValueError(f"layers={layers!r}: expected a whole number from 1 to {self.num_layers} (the teacher's).")
        key = (round(float(alpha), 4), int(layers))
        if key in self.cache:
            return self.cache[key]
        start = time.perf_counter()
        student = select_layers(self.teacher.model, spread_layers(self.num_layers, int(layers)))
        run = distill(student, self.teacher, alpha=key[0], temperature=self.temperature, config=self.config,
                      progress=self.progress)
        point = DistillationPoint(alpha=key[0], layers=key[1], temperature=self.temperature,
                                  val_accuracy=float(run.result.best_val_accuracy),
                                  params_m=count_parameters(run.model) / 1e6,
                                  seconds=time.perf_counter() - start, from_cache=run.from_cache)
        del student, run
        self.cache[key] = point
        return point

    def table(self) -> pd.DataFrame:
        """Every setting measured so far, one row each."""
        columns = [f.name for f in fields(DistillationPoint)]
        return pd.DataFrame([p.__dict__ for p in self.cache.values()], columns=columns)

    def sweep(self, alphas: Sequence[float] = (0.5,), layers: Sequence[int] = (3,)) -> pd.DataFrame:
        """Measure every (α, layers) pair (cached ones cost nothing); returns their rows."""
        points = [self.measure(a, n) for a in alphas for n in layers]
        return pd.DataFrame([p.__dict__ for p in points])

    def _on_widget(self, _change) -> None:
        if not self._syncing:
            self.update(self.alpha.value, self.depth.value)

    def update(self, alpha: float, layers: int, redraw: bool = True) -> DistillationPoint:
        """Train (or recall) one setting, then redraw the chart and the label; returns the point."""
        busy = f"<i>distilling a {layers}-layer student, α = {alpha:g} (about 10 s)…</i>"
        with _busy((self.alpha, self.depth), self.status, busy):
            point = self.measure(alpha, layers)
        self.current = point
        if redraw:
            self.chart.chart = charts.distillation_runs_chart(self.table(), (point.alpha, point.layers),
                                                              self.teacher_accuracy)
        how = "from the cache" if point.from_cache else f"trained in {point.seconds:.0f} s"
        self.label.value = (f"<b>{layers} layers</b>, α = {point.alpha:g}, T = {point.temperature:g}: validation "
                            f"accuracy <b>{point.val_accuracy:.1%}</b> (teacher {self.teacher_accuracy:.1%}) · "
                            f"{point.params_m:.1f} M parameters · {how}")
        with _moving_knobs(self):
            self.alpha.value, self.depth.value = point.alpha, point.layers
        return point


# --- 08 deployment -----------------------------------------------------------------------------------


class BatchingExplorer:
    """Max batch size and max wait sliders → a short load test of the server with those settings.

    Each setting starts the server (in a thread, on 127.0.0.1) around ``predict`` (a served
    model), sends ``requests`` requests from ``clients`` concurrent clients, stops it, and adds a
    row to the chart of every setting tried. ``max_batch_size=1`` is batching off. A few seconds a
    move with a small model; settings tried before are answered from memory.
    """

    def __init__(self, predict, texts: Sequence[str], clients: int = 16, requests: int = 160,
                 max_batch_size: int = 16, max_wait_ms: float = 5.0, timeout_s: float = 60.0):
        if isinstance(texts, str) or not texts:
            raise ValueError("texts: expected a non-empty list of strings.")
        self.predict, self.texts = predict, list(texts)
        self.clients, self.requests, self.timeout_s = clients, requests, timeout_s
        self.cache: dict[tuple, dict] = {}
        self.batch = W.SelectionSlider(options=[1, 2, 4, 8, 16, 32], value=max_batch_size,
                                       description="max batch", continuous_update=False)
        self.wait = W.SelectionSlider(options=[0.0, 1.0, 2.0, 5.0, 10.0, 20.0], value=float(max_wait_ms),
                                      description="max wait ms", continuous_update=False)
        self.status, self.label = W.HTML(), W.HTML()
        self._syncing = False
        row = self.update(max_batch_size, max_wait_ms, redraw=False)
        self.chart = _jupyter_chart(charts.load_test_chart(self.table(), row["setting"]))
        for control in (self.batch, self.wait):
            control.observe(self._on_widget, names="value")
        self.widget = W.VBox([W.HBox([self.batch, self.wait]), W.HBox([self.status, self.label]), self.chart])

    @staticmethod
    def setting(max_batch_size: int, max_wait_ms: float) -> str:
        return "batching off" if max_batch_size == 1 else f"batch ≤ {max_batch_size}, wait ≤ {max_wait_ms:g} ms"

    def measure(self, max_batch_size: int, max_wait_ms: float) -> dict:
        """Load-test one setting (or recall it); returns its row."""
        from minikit.deployment import load_test
        from minikit.server import background_server

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

    def _on_widget(self, _change) -> None:
        if not self._syncing:
            self.update(self.batch.value, self.wait.value)

    def update(self, max_batch_size: int, max_wait_ms: float, redraw: bool = True) -> dict:
        """Load-test (or recall) one setting, then redraw the chart and the label; returns its row."""
        busy = f"<i>load-testing {self.setting(max_batch_size, max_wait_ms)}…</i>"
        with _busy((self.batch, self.wait), self.status, busy):
            row = self.measure(max_batch_size, max_wait_ms)
        if redraw:
            self.chart.chart = charts.load_test_chart(self.table(), row["setting"])
        batch = f"mean batch {row['mean_batch_size']:.1f}" if row["mean_batch_size"] is not None else ""
        self.label.value = (f"<b>{row['setting']}</b>: {row['requests_per_s']:.0f} requests/s · p50 "
                            f"{row['p50_ms']:.0f} ms · p95 <b>{row['p95_ms']:.0f} ms</b> · {batch} · "
                            f"{row['ok']}/{row['sent']} answered, {row['errors']} errors ({self.clients} clients)")
        with _moving_knobs(self):
            self.batch.value, self.wait.value = int(max_batch_size), float(max_wait_ms)
        return row


# --- 10 adaptive inference ---------------------------------------------------------------------------


class EarlyExitExplorer:
    """A threshold slider over ``early_exit.latency_curve``'s grid: accuracy, mean layers, measured latency.

    Every position is a threshold whose latency was measured (once, cached); accuracy and layers
    come from every layer's logits computed once, so a move only redraws (no model runs).
    ``seconds`` keeps how long each update took.
    """

    def __init__(self, curve: pd.DataFrame, threshold: float = 0.99):
        self.curve = curve.reset_index(drop=True)
        options = [float(t) for t in self.curve["threshold"]]
        if threshold not in options:
            raise ValueError(f"threshold={threshold} is not on the measured grid {options}. "
                             "Fix: pick one of them, or measure that threshold with latency_curve.")
        self.slider = W.SelectionSlider(options=options, value=threshold, description="threshold",
                                        continuous_update=False)
        self.label = W.HTML()
        self.seconds: list[float] = []
        self.chart = _jupyter_chart(charts.early_exit_chart(self.curve, threshold))
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self._describe(threshold)
        self.widget = W.VBox([W.HBox([self.slider, self.label]), self.chart])

    def row(self, threshold: float) -> pd.Series:
        return self.curve[np.isclose(self.curve["threshold"], threshold)].iloc[0]

    def _describe(self, threshold: float) -> str:
        r, full = self.row(threshold), self.curve.iloc[-1]
        self.label.value = (f"accuracy <b>{r['accuracy']:.1%}</b> (full model {full['accuracy']:.1%}), "
                            f"<b>{r['mean_layers']:.2f}</b> of {int(round(full['mean_layers']))} layers on average, "
                            f"<b>{r['mean_ms']:.1f} ms</b> vs {r['full_ms']:.1f} ms (<b>{r['speedup']:.2f}×</b>)")
        return self.label.value

    def update(self, threshold: float) -> str:
        """Redraw for ``threshold`` (a grid value); returns the status line."""
        start = time.perf_counter()
        if self.slider.value != threshold:
            self.slider.value = threshold  # its observer calls update again
            return self.label.value
        self.chart.chart = charts.early_exit_chart(self.curve, threshold)
        text = self._describe(threshold)
        self.seconds.append(time.perf_counter() - start)
        return text


class BudgetPicker:
    """Latency and memory budget sliders → ``benchmark.pick_variant`` on a results table, redrawn.

    The chosen variant is ringed; every rejected one says why. When nothing fits, the label says
    which variant comes closest and by how much.
    """

    def __init__(self, results: pd.DataFrame, latency_budget_ms: float = 20.0, memory_budget_mb: float = 500.0,
                 latency_column: str = "latency_p50_ms", memory_column: str = "peak_memory_mb"):
        from minikit.benchmark import pick_variant

        self.results, self.columns = results, (latency_column, memory_column)
        pick_variant(results, latency_budget_ms, memory_budget_mb, *self.columns)  # bad input fails here
        top_ms = float(np.ceil(results[latency_column].max() * 1.5))
        top_mb = float(np.ceil(results[memory_column].max() * 1.5 / 10) * 10)
        self.latency = W.FloatSlider(value=latency_budget_ms, min=0.5, max=max(top_ms, latency_budget_ms), step=0.5,
                                     description="latency ms", continuous_update=False)
        self.memory = W.FloatSlider(value=memory_budget_mb, min=10, max=max(top_mb, memory_budget_mb), step=10,
                                    description="memory MB", continuous_update=False)
        self.label = W.HTML()
        self.pick = None
        self.chart = _jupyter_chart(charts.budget_chart(self._table(latency_budget_ms, memory_budget_mb),
                                                        latency_budget_ms, memory_budget_mb))
        for control in (self.latency, self.memory):
            control.observe(lambda _: self.update(self.latency.value, self.memory.value), names="value")
        self.widget = W.VBox([W.HBox([self.latency, self.memory]), self.label, self.chart])

    def _table(self, latency_budget_ms: float, memory_budget_mb: float) -> pd.DataFrame:
        from minikit.benchmark import NoVariantFitsError, pick_variant

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
        self.chart.chart = charts.budget_chart(table, latency_budget_ms, memory_budget_mb)
        return self.label.value


# --- 09 compression lab ----------------------------------------------------------------------------


class LabDashboard:
    """Chapter 9's dashboard: four knobs make a ``lab.Recipe``; Measure builds and times it; the Pareto chart grows.

    Moving a knob costs nothing: the chart rings the recipe if it was measured before (on this
    machine, in any session), else draws its size predicted from arithmetic as a dashed line.
    Measure builds what the recipe needs (distillation ~1–2 min, recovery ~40 s, export seconds,
    all cached) and times it beside the baseline. ``seconds`` keeps how long each knob move took.
    """

    def __init__(self, lab, recipe=None):
        from minikit.lab import BITS, DEPTHS, FFN_FRACTIONS, Recipe

        self.lab = lab
        recipe = Recipe() if recipe is None else recipe
        self.ffn = W.SelectionSlider(options=[(f"{f:.0%}", f) for f in FFN_FRACTIONS], value=recipe.ffn_pruned,
                                     description="FFN pruned", continuous_update=False)
        self.vocabulary = W.Checkbox(value=recipe.vocabulary, description="prune vocabulary", indent=False)
        self.bits = W.ToggleButtons(options=[(f"{b}-bit" + (" float" if b == 32 else " int (ONNX)"), b) for b in BITS],
                                    value=recipe.bits, description="bits")
        self.depth = W.Dropdown(options=[(f"{d} layers" + (" (fine-tuned)" if d == 6 else " (distilled)"), d)
                                         for d in DEPTHS], value=recipe.depth, description="depth")
        self.measure_button = W.Button(description="Measure", button_style="primary",
                                       tooltip="Build this recipe (cached) and time it beside the baseline")
        self.label, self.status = W.HTML(), W.HTML()
        self.seconds: list[float] = []
        self.chart = _jupyter_chart(self._draw(recipe))
        for control in (self.ffn, self.vocabulary, self.bits, self.depth):
            control.observe(lambda _: self.update(), names="value")
        self.measure_button.on_click(lambda _: self.measure())
        self.widget = W.VBox([W.HBox([self.ffn, self.vocabulary, self.depth]), W.HBox([self.bits, self.measure_button]),
                              self.label, self.status, self.chart])

    @property
    def recipe(self):
        from minikit.lab import Recipe

        return Recipe(depth=self.depth.value, ffn_pruned=self.ffn.value, vocabulary=self.vocabulary.value,
                      bits=self.bits.value)

    def _draw(self, recipe) -> alt.TopLevelMixin:
        predicted = self.lab.predicted_size_mb(recipe)
        table = self.lab.results()
        measured = table[table["name"] == recipe.name]
        if len(measured):
            r = measured.iloc[0]
            self.label.value = (f"<b>{html.escape(recipe.name)}</b>: accuracy {r['accuracy']:.2%} "
                                f"({r['points']:+.2f} points), {r['size_mb']:.1f} MB ({r['size_pct']:.0f} % of the "
                                f"baseline; predicted {predicted:.1f} MB), {r['speedup']:.2f}× faster — measured "
                                f"{html.escape(str(r['measured_at']))}")
            return self.lab.chart(current=recipe)
        needs = {"distillation": "distils it first, ~1–2 min the first time,",
                 "recovery": "gives it a recovery fine-tune first, ~40 s the first time,"}.get(recipe.trains, "builds it")
        self.label.value = (f"<b>{html.escape(recipe.name)}</b>: not measured yet. Predicted size "
                            f"<b>{predicted:.1f} MB</b> (dashed line). Measure {needs} and times it beside the baseline.")
        return self.lab.chart(current=recipe, predicted_mb=predicted)

    def update(self, recipe=None) -> str:
        """Redraw for ``recipe`` (default: the knobs' recipe), measuring nothing; returns the status line."""
        start = time.perf_counter()
        if recipe is not None and recipe != self.recipe:
            with _moving_knobs(self):
                self.ffn.value, self.vocabulary.value = recipe.ffn_pruned, recipe.vocabulary
                self.bits.value, self.depth.value = recipe.bits, recipe.depth
        if getattr(self, "_syncing", False):
            return self.label.value
        self.chart.chart = self._draw(self.recipe)
        self.seconds.append(time.perf_counter() - start)
        return self.label.value

    def measure(self, recipe=None) -> pd.Series:
        """Measure ``recipe`` (default: the knobs'), cached, and redraw with it ringed; returns its row."""
        if recipe is not None:
            self.update(recipe)
        recipe = self.recipe
        controls = [self.ffn, self.vocabulary, self.bits, self.depth, self.measure_button]
        with _busy(controls, self.status, f"measuring <b>{html.escape(recipe.name)}</b>…"):
            row = self.lab.measure(recipe)
        self.update()
        return row


class MultiTaskExplorer:
    """Chapter 3b: a dropdown over the multi-task runs of a comparison table; the chart and the verdict redraw.

    ``table`` has ``multitask.RUN_COLUMNS`` (``single_task_row`` / ``multitask_row`` /
    ``multitask_runs``): nothing is trained here, every run was trained (and cached) before, so a
    switch only redraws. The verdict compares the chosen run with the single-task runs at the same
    share of main-task labels: the one that took as many main-task steps, and the one that read
    the nearest number of tokens in training (the fair comparison of compute). ``seconds`` keeps how long each switch took.
    """

    def __init__(self, table: pd.DataFrame, run: str | None = None, main: str = "topic"):
        from minikit.multitask import RUN_COLUMNS

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
        self.label = W.HTML()
        self.seconds: list[float] = []
        self.chart = _jupyter_chart(charts.multitask_chart(self.table, run, main))
        self.dropdown.observe(lambda change: self.update(change["new"]), names="value")
        self._describe(run)
        self.widget = W.VBox([self.dropdown, self.label, self.chart])

    def _nearest_single(self, row: pd.Series, column: str) -> pd.Series | None:
        singles = self.table[(self.table["kind"] == "single-task") & np.isclose(self.table["share"], row["share"])]
        if singles.empty:
            return None
        return singles.loc[(singles[column] - row[column]).abs().idxmin()]

    def _describe(self, run: str) -> str:
        r = self.table[self.table["run"] == run].iloc[0]
        parts = [f"<b>{html.escape(run)}</b>: {self.main} accuracy <b>{r['accuracy']:.2%}</b>, macro-F1 "
                 f"{r['macro_f1']:.3f}; other tasks {r['aux_accuracy']:.2%}; {int(r['steps'])} steps, "
                 f"{int(r['main_steps'])} of them on {self.main}; {r['tokens'] / 1e3:.0f}k tokens read."]
        for column, what in (("main_steps", f"as many {self.main} steps"), ("tokens", "about as much compute")):
            single = self._nearest_single(r, column)
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
        start = time.perf_counter()
        if self.dropdown.value != run:
            self.dropdown.value = run  # its observer calls update again
            return self.label.value
        self.chart.chart = charts.multitask_chart(self.table, run, self.main)
        text = self._describe(run)
        self.seconds.append(time.perf_counter() - start)
        return text
