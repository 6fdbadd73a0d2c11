"""Widgets of the compression chapters (5 pruning, 6 quantization, 7 distillation).

Each explorer measures a setting with the chapter's own functions (on a working copy of the
model, over a fixed validation subset from ``data.fixed_subset``), caches the result per
setting, and redraws ``charts``; this module only builds widgets and links them (the shared
``Explorer`` is in ``minikit.widgets``).
"""

from __future__ import annotations

import copy
import html
import math
import numbers
import time
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import ipywidgets as W
import pandas as pd

from minikit import compression_charts, pruning
from minikit.data import fixed_subset
from minikit.distillation import (
    QUICK_DISTILL,
    check_kd,
    check_logits,
    confidence_spread,
    distill,
    entropy_bits,
    softened_table,
)
from minikit.metrics import subset_accuracy
from minikit.models import encoder_layers
from minikit.profiling import count_parameters, median_latency_ms
from minikit.distill_variants import LABELS_ONLY, LOGITS
from minikit.qat import CONTROL
from minikit.stats import paired_comparison
from minikit.pruning_sweep import PRUNING_METHODS, SLIDER_STOPS, PruningSweep
from minikit.quantization import (
    GRANULARITIES,
    SUPPORTED_BITS,
    linear_working_copy,
    quantization_grid,
    quantized_size_mb,
    requantize_linears,
    typical_row,
)
from minikit.students import select_layers, spread_layers
from minikit.training import TrainConfig, evaluate_accuracy
from minikit.widgets import Explorer, jupyter_chart

# --- 05 pruning ------------------------------------------------------------------------------------


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


POINT_COLUMNS = [f.name for f in fields(PruningPoint) if f.name not in ("heatmap", "seconds")]


def _point_row(point: PruningPoint) -> dict:
    return {name: getattr(point, name) for name in POINT_COLUMNS}


class PruningExplorer(PruningSweep, Explorer):
    """A sparsity slider and a method selector → accuracy, non-zeros, dense/sparse size, latency.

    Two charts follow the knobs: every setting measured so far (one line per method, against the
    share of encoder weights removed, the current one ringed), and a heatmap of what the current
    setting removed per layer and role. What a setting does to the model, and its accuracy on the
    fixed subset, come from ``pruning_sweep.PruningSweep`` (magnitude pruning in place on one working
    copy, structured methods on a pruned copy). Results are cached per setting. ``importance`` (a
    ``pruning.head_importance`` table) ranks heads; by default the weight-norm proxy.

    The accuracy pass is most of a new setting's cost (64 articles through the encoder).
    ``python -m minikit build`` runs it ahead for every slider stop of every method
    (``build_accuracies``), keyed by the model's weights and the subset's tokens; with
    ``use_built`` (the default) a setting found there takes its accuracy from the build, and
    everything else (the pruning, sizes, the heatmap, latency) is measured live. Without a build,
    or with another model, subset or code, the accuracy is measured live too; the number is the same.
    """

    def __init__(self, model, tokenizer, dataset, n_examples: int = 64, max_length: int = 64,
                 latency_length: int = 128, importance: pd.DataFrame | None = None,
                 method: str = "global magnitude", amount: float = 0.5, batch_size: int = 32, seed: int = 0,
                 use_built: bool = True):
        Explorer.__init__(self)
        PruningSweep.__init__(self, model, tokenizer, dataset, n_examples, max_length, importance, batch_size, seed,
                              use_built)
        self.base = pruning.sparsity_table(model)
        single = tokenizer([dataset[0]["text"]], truncation=True, max_length=latency_length,
                           padding="max_length", return_tensors="pt")
        self.single = {k: single[k] for k in ("input_ids", "attention_mask")}
        self.cache: dict[tuple, PruningPoint] = {}
        self.current: PruningPoint | None = None
        self._drawn: dict[tuple, tuple] = {}  # both charts per (setting, points measured): a move back only redraws

        self.method = W.Dropdown(options=list(PRUNING_METHODS), value=method, description="method")
        # the slider's stops are the ones `minikit build` scores (pruning_sweep.SLIDER_STOPS)
        self.slider = W.FloatSlider(value=amount, min=SLIDER_STOPS[0], max=SLIDER_STOPS[-1],
                                    step=round(SLIDER_STOPS[1] - SLIDER_STOPS[0], 4), description="remove",
                                    continuous_update=False, readout_format=".0%")
        self.knobs = (self.method, self.slider)
        point = self.update(method, amount, redraw=False)
        self.chart = jupyter_chart(compression_charts.pruning_tradeoff_chart(self.table(), point))
        self.heatmap = jupyter_chart(compression_charts.pruning_heatmap(point.heatmap, self._title(point)))
        self._watch()
        self.widget = W.VBox([W.HBox([self.slider, self.method]), W.HBox([self.status, self.label]),
                              self.chart, self.heatmap])

    # --- measuring -------------------------------------------------------------------------------

    def measure(self, method: str, amount: float) -> PruningPoint:
        """The point for one setting, from the cache or measured now (no widget is touched)."""
        amount = self._checked(method, amount)
        key = self._key(method, amount)
        if key in self.cache:
            cached = self.cache[key]
            same = (cached.method, cached.amount) == (method, amount)
            return cached if same else replace(cached, method=method, amount=amount)
        start = time.perf_counter()
        model, kept = self._pruned(method, key)
        heatmap = pruning.removal_table(model, self.base, kept)
        point = PruningPoint(
            method=method, amount=amount, removed=pruning.removed_share(heatmap),
            accuracy=self._setting_accuracy(key, model), params_m=count_parameters(model) / 1e6,
            nonzero_m=count_parameters(model, nonzero=True) / 1e6,
            dense_mb=pruning.tensor_bytes(model) / 1e6, sparse_mb=pruning.tensor_bytes(model, sparse=True) / 1e6,
            latency_ms=median_latency_ms(model, self.single, warmup=1, repeats=5),
            heatmap=heatmap, seconds=time.perf_counter() - start)
        self.cache[key] = point
        return point

    def pruned_model(self, method: str, amount: float):
        """A pruned copy of the model for one setting (what ``measure`` scores), e.g. to benchmark it."""
        amount = self._checked(method, amount)
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
        return pd.DataFrame([_point_row(p) for p in points], columns=POINT_COLUMNS)

    def sweep(self, amounts: Sequence[float], methods: Sequence[str] | None = None) -> pd.DataFrame:
        """Measure every (method, amount) pair (cached ones cost nothing); returns their rows."""
        points = [self.measure(m, a) for m in (methods or list(PRUNING_METHODS)) for a in amounts]
        return pd.DataFrame([_point_row(p) for p in points], columns=POINT_COLUMNS)

    # --- the widget ------------------------------------------------------------------------------

    @staticmethod
    def _title(point: PruningPoint) -> str:
        return f"{point.method}, {point.amount:.0%} removed: share of weights gone per layer and role"

    def update(self, method: str, amount: float, redraw: bool = True) -> PruningPoint:
        """Measure (or recall) one setting, then redraw both charts and the label; returns the point."""
        with self._busy(f"<i>computing {method} at {amount:.0%}…</i>"):
            point = self.measure(method, amount)
        self.current = point
        if redraw:
            key = (method, point.amount, len(self.cache))
            if key not in self._drawn:
                self._drawn[key] = (compression_charts.pruning_tradeoff_chart(self.table(), point),
                                    compression_charts.pruning_heatmap(point.heatmap, self._title(point)))
            self.chart.chart, self.heatmap.chart = self._drawn[key]
        self.label.value = (f"<b>{method}</b>, {amount:.0%}: {point.removed:.0%} of encoder weights gone · accuracy "
                            f"<b>{point.accuracy:.1%}</b> ({self.n_examples} validation articles) · "
                            f"{point.nonzero_m:.1f} M non-zero of {point.params_m:.1f} M · dense "
                            f"{point.dense_mb:.0f} MB, sparse {point.sparse_mb:.0f} MB · "
                            f"<b>{point.latency_ms:.1f} ms</b> at batch 1")
        self._show_knobs(method, amount)  # a call from code moves the widgets too, without measuring twice
        return point


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


class QuantizationExplorer(Explorer):
    """A bits slider and granularity / symmetry toggles → accuracy and packed size, redrawn live.

    Three charts follow the knobs: accuracy and size against bits (every setting measured so
    far), one weight row's histogram with the grid for the chosen setting, and the error of every
    weight matrix. A setting is simulated as ``quantization.fake_quantize`` does it (Linear weights
    rounded, embeddings kept in float), but in place on one working copy, from the float
    originals (``quantization.requantize_linears``): a new setting costs one forward pass over a
    fixed validation subset, a setting seen before costs nothing (results are cached per setting).
    """

    def __init__(self, model, tokenizer, dataset, n_examples: int = 64, max_length: int = 64,
                 layer: str | None = None, bits: int = 8, granularity: str = "per-channel",
                 symmetric: bool = True, batch_size: int = 32, seed: int = 0):
        super().__init__()
        if n_examples < 1 or len(dataset) == 0:
            raise ValueError(f"n_examples={n_examples} of {len(dataset)} examples: need at least one to score.")
        self.work, self.originals = linear_working_copy(model)  # the originals are never written
        self.batches, self.labels = fixed_subset(tokenizer, dataset, n_examples, max_length, batch_size, seed)
        self.n_examples, self.max_length = len(self.labels), max_length
        self.reference_accuracy = self.accuracy(model)
        self.reference_size_mb = pruning.tensor_bytes(model) / 1e6
        first = {id(m) for m in encoder_layers(model)[0].modules()}
        self.layer = layer or next(n for n in self.originals if id(model.get_submodule(n)) in first)
        if self.layer not in self.originals:
            raise ValueError(f"layer={layer!r} is not a Linear layer of the model. "
                             f"Fix: pick one of {list(self.originals)[:4]}…")
        self.channel = typical_row(self.originals[self.layer])  # a typical row: median range
        self.cache: dict[tuple[int, str, bool], QuantizationPoint] = {}

        self.slider = W.IntSlider(value=bits, min=SUPPORTED_BITS[0], max=SUPPORTED_BITS[-1], step=1,
                                  description="bits", continuous_update=False)
        self.granularity = W.ToggleButtons(options=list(GRANULARITIES), value=granularity, description="scales")
        self.symmetry = W.ToggleButtons(options=[("symmetric", True), ("asymmetric", False)], value=symmetric,
                                        description="grid")
        point = self._point(bits, granularity, symmetric)
        self._charts: dict[tuple[int, str, bool], tuple] = {}  # built grid and error charts, per setting
        self.sweep_chart = jupyter_chart(self._sweep_chart(point))
        self._drawn = len(self.cache)  # points in the sweep chart's data
        self.grid_chart = jupyter_chart(self._grid_chart(point))
        self.error_chart = jupyter_chart(self._error_chart(point))
        self._show(point)
        self._watch(self.slider, self.granularity, self.symmetry)
        controls = W.HBox([self.slider, self.granularity, self.symmetry])
        self.widget = W.VBox([controls, W.HBox([self.status, self.label]), self.sweep_chart,
                              W.HBox([self.grid_chart, self.error_chart])])

    # --- measuring -------------------------------------------------------------------------------

    def accuracy(self, model=None) -> float:
        """Accuracy of ``model`` (default: the working copy as it is now) on the explorer's subset."""
        return subset_accuracy(self.work if model is None else model, self.batches, self.labels)

    def _measure(self, bits: int, granularity: str, symmetric: bool) -> QuantizationPoint:
        start = time.perf_counter()
        size = quantized_size_mb(self.work, bits, granularity, symmetric)  # also refuses bad bits/granularity
        errors = requantize_linears(self.work, self.originals, bits, granularity, symmetric)
        accuracy = self.accuracy()
        return QuantizationPoint(bits, granularity, symmetric, accuracy, size, errors, time.perf_counter() - start)

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
        return compression_charts.quantization_sweep_chart(self.table, (point.bits, point.scheme), self.reference_accuracy,
                                               self.reference_size_mb)

    def _grid_chart(self, point: QuantizationPoint):
        w = self.originals[self.layer].detach()
        grid = quantization_grid(w, point.bits, point.granularity, point.symmetric, channel=self.channel)
        return compression_charts.quantization_grid_chart(
            w[self.channel].numpy(), grid,
            title=f"{self.layer}, row {self.channel}: {point.bits}-bit {point.scheme} grid (red)")

    def _error_chart(self, point: QuantizationPoint):
        return compression_charts.quantization_error_chart(point.errors, title=f"Error per matrix at {point.bits} bits, {point.scheme}")

    def _show(self, point: QuantizationPoint) -> None:
        self.status.value = ""
        self.label.value = (f"<b>{point.bits}-bit {point.scheme}</b>: accuracy <b>{point.accuracy:.1%}</b> on "
                            f"{self.n_examples} validation articles (float32: {self.reference_accuracy:.1%}), "
                            f"packed size <b>{point.size_mb:.1f} MB</b> (float32: {self.reference_size_mb:.1f} MB)")

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
        self._show_knobs(*key)  # a call from code moves the widgets too, without running update again
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


# --- 07 distillation ---------------------------------------------------------------------------------


class TemperatureExplorer(Explorer):
    """A temperature slider and an article picker → the teacher's softened distribution, redrawn live.

    ``logits`` (N, C) are the teacher's for ``texts`` (computed once, e.g. with
    ``distillation.teacher_logits``); each move only divides them by T and takes a softmax
    (``distillation.softened_table``). ``examples`` picks the articles offered (default: six,
    from the most to the least confident, ``distillation.confidence_spread``).
    """

    def __init__(self, logits, texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str],
                 examples: Sequence[int] | None = None, temperature: float = 2.0):
        super().__init__()
        self.logits, self.labels = check_logits(logits, texts, labels)
        self.texts, self.label_names = list(texts), list(label_names)
        if examples is None:  # spread over confidence at T = 1: from sure to unsure
            examples = confidence_spread(self.logits, 6)
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
        table = self.update(self.examples[0], temperature, redraw=False)
        self.chart = jupyter_chart(compression_charts.softened_chart(table, self._title(table)))
        self._watch(self.picker, self.slider)
        self.widget = W.VBox([W.HBox([self.slider, self.picker]), self.label, self.chart])

    def distribution(self, example: int, temperature: float) -> pd.DataFrame:
        """Columns label, probability (at T), probability_t1 (at T = 1), is_true."""
        return softened_table(self.logits[example], self.label_names, self.labels[example], temperature)

    def _title(self, table: pd.DataFrame) -> str:
        return (f"T = {self.temperature:.2f}: entropy {entropy_bits(table['probability']):.2f} bits "
                f"(at most {math.log2(len(table)):.2f})")

    def update(self, example: int, temperature: float, redraw: bool = True) -> pd.DataFrame:
        """Redraw the chart for one article at one temperature; returns its distribution."""
        table = self.distribution(example, temperature)
        self.example, self.temperature = example, float(temperature)
        if redraw:
            self.chart.chart = compression_charts.softened_chart(table, self._title(table))
        runner_up = table.drop(index=int(table["probability"].idxmax()))["probability"].max()
        self.label.value = (f"top class <b>{table.loc[table['probability'].idxmax(), 'label']}</b> at "
                            f"{table['probability'].max():.1%}; runner-up {runner_up:.1%}. What the student learns "
                            f"beyond the label is in the runner-ups.")
        return table


@dataclass(frozen=True)
class DistillationPoint:
    alpha: float
    layers: int
    temperature: float
    val_accuracy: float
    params_m: float
    seconds: float  # training + evaluation, or loading from the cache
    from_cache: bool


class DistillationExplorer(Explorer):
    """α and student-depth sliders → a short distillation run, its validation accuracy on a chart of all runs.

    Each setting trains a student made of ``spread_layers`` of the teacher's layers for one epoch
    on a quarter of the train split at 64 tokens (``QUICK_DISTILL``, about 10 s on 2 cores), then
    scores it on the validation split at 64 tokens. Runs are cached on disk by ``distill``, so a
    setting tried before (in any session) comes back at once. The teacher is scored the same way
    once, as the dashed reference.
    """

    def __init__(self, teacher, alpha: float = 0.5, layers: int = 3, temperature: float = 2.0,
                 config=None, progress: bool = False):
        super().__init__()
        check_kd(alpha, temperature)
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
        self.knobs = (self.alpha, self.depth)
        point = self.update(alpha, layers, redraw=False)
        self.chart = jupyter_chart(compression_charts.distillation_runs_chart(self.table(), (point.alpha, point.layers),
                                                                  self.teacher_accuracy))
        self._watch()
        self.widget = W.VBox([W.HBox([self.alpha, self.depth]), W.HBox([self.status, self.label]), self.chart])

    def measure(self, alpha: float, layers: int) -> DistillationPoint:
        """Train (or load) the short run for one setting; no widget is touched."""
        check_kd(alpha, self.temperature)
        if not (isinstance(layers, numbers.Integral) and 1 <= layers <= self.num_layers):
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

    def update(self, alpha: float, layers: int, redraw: bool = True) -> DistillationPoint:
        """Train (or recall) one setting, then redraw the chart and the label; returns the point."""
        with self._busy(f"<i>distilling a {layers}-layer student, α = {alpha:g} (about 10 s)…</i>"):
            point = self.measure(alpha, layers)
        self.current = point
        if redraw:
            self.chart.chart = compression_charts.distillation_runs_chart(self.table(), (point.alpha, point.layers),
                                                              self.teacher_accuracy)
        how = "from the cache" if point.from_cache else f"trained in {point.seconds:.0f} s"
        self.label.value = (f"<b>{layers} layers</b>, α = {point.alpha:g}, T = {point.temperature:g}: validation "
                            f"accuracy <b>{point.val_accuracy:.1%}</b> (teacher {self.teacher_accuracy:.1%}) · "
                            f"{point.params_m:.1f} M parameters · {how}")
        self._show_knobs(point.alpha, point.layers)
        return point


class QatExplorer(Explorer):
    """Chapter 6: bits and granularity knobs over ``qat.chapter_runs``' cached runs (nothing trains here).

    The label gives, at the chosen setting, PTQ, the control (the same extra steps in float, then
    PTQ) and QAT on the test split, with the paired verdicts of QAT against each.
    """

    def __init__(self, runs: pd.DataFrame, bits: int = 4, granularity: str = "per-tensor"):
        super().__init__()
        self.runs = runs
        choices = sorted(set(runs.loc[runs["bits"] < 32, "bits"]), reverse=True)
        self.bits = W.SelectionSlider(options=choices, value=bits, description="bits", continuous_update=False)
        self.granularity = W.ToggleButtons(options=list(dict.fromkeys(runs["granularity"])), value=granularity,
                                           description="scale")
        self.seconds: list[float] = []
        self.knobs = (self.bits, self.granularity)
        self.chart = jupyter_chart(compression_charts.qat_chart(runs, granularity, bits))
        self._watch()
        self.update(bits, granularity)
        self.widget = W.VBox([W.HBox([self.bits, self.granularity]), self.label, self.chart])

    def _row(self, bits: int, granularity: str, method: str) -> pd.Series:
        found = self.runs[(self.runs["bits"] == bits) & (self.runs["granularity"] == granularity)
                          & (self.runs["method"] == method)]
        if found.empty:
            raise ValueError(f"No {method} run at bits={bits}, {granularity}. Fix: pick bits from "
                             f"{list(self.bits.options)} and granularity from {list(self.granularity.options)}.")
        return found.iloc[0]

    def lines(self, bits: int, granularity: str) -> list[str]:
        """The setting's accuracies, then QAT's paired verdicts against PTQ and against the control."""
        qat_row = self._row(bits, granularity, "QAT")
        accuracies = ", ".join(f"{method} {self._row(bits, granularity, method)['accuracy']:.1%}"
                               for method in ("PTQ", CONTROL, "QAT"))
        lines = [f"{bits} bits, {granularity} (test, n = {qat_row['n']}): {accuracies}"]
        for method in ("PTQ", CONTROL):
            comparison = paired_comparison(qat_row["correct"], self._row(bits, granularity, method)["correct"])
            lines.append(f"  QAT against {method}: {comparison}")
        return lines

    def update(self, bits: int, granularity: str) -> str:
        """Show one setting: the label and the chart's marker; returns the label's text."""
        start = time.perf_counter()
        self.chart.chart = compression_charts.qat_chart(self.runs, granularity, bits)
        self.label.value = "<br>".join(html.escape(line) for line in self.lines(bits, granularity))
        self._show_knobs(bits, granularity)
        self.seconds.append(time.perf_counter() - start)
        return self.label.value


class KdVariantsExplorer(Explorer):
    """Chapter 7: an objective knob over ``distill_variants.kd_variants``' cached runs (nothing trains).

    The knob lists the objectives that use the teacher (logits, then logits plus hidden states or attention maps
    at each weight); the label compares the chosen one with logits only and with labels only on the same test
    examples (paired).
    """

    def __init__(self, runs: pd.DataFrame, objective: str | None = None):
        super().__init__()
        self.runs = runs.reset_index(drop=True)
        objective = objective or self._taught()[-1]
        self.objective = W.Dropdown(options=self._taught(), value=self._row(objective)["variant"],
                                    description="objective", layout=W.Layout(width="420px"))
        self.seconds: list[float] = []
        self.chart = jupyter_chart(compression_charts.kd_variants_chart(self.runs, objective))
        self._watch(self.objective)
        self.update(objective)
        self.widget = W.VBox([self.objective, self.label, self.chart])

    def _taught(self) -> list[str]:
        """The objectives the knob offers: the runs that use the teacher."""
        return list(self.runs.loc[self.runs["alpha"] < 1, "variant"])

    def _row(self, variant: str, knob: bool = True) -> pd.Series:
        """The run of ``variant``; with ``knob``, only an objective the knob offers."""
        found = self.runs[(self.runs["variant"] == variant) & ((self.runs["alpha"] < 1) | (not knob))]
        if found.empty:
            raise ValueError(f"No run for the objective {variant!r}. Fix: pick one of {self._taught()}.")
        return found.iloc[0]

    def lines(self, objective: str) -> list[str]:
        """The chosen objective's accuracy, then its paired verdicts against logits only and labels only."""
        row = self._row(objective)
        lines = [f"{row['variant']}: {row['accuracy']:.1%} (test, n = {row['n']}, {row['steps']} steps)"]
        for other in (LOGITS, LABELS_ONLY):
            if other != row["variant"]:
                comparison = paired_comparison(row["correct"], self._row(other, knob=False)["correct"])
                lines.append(f"  against {other}: {comparison}")
        return lines

    def update(self, objective: str) -> str:
        """Show one objective: the label and the chart's highlight; returns the label's text."""
        start = time.perf_counter()
        self.chart.chart = compression_charts.kd_variants_chart(self.runs, self._row(objective)["variant"])
        self.label.value = "<br>".join(html.escape(line) for line in self.lines(objective))
        self._show_knobs(objective)
        self.seconds.append(time.perf_counter() - start)
        return self.label.value
