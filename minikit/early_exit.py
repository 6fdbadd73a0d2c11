"""Adaptive inference (chapter 10): an early-exit classifier.

Early exit (DeeBERT-style, second stage): the fine-tuned model stays frozen; a small head
(LayerNorm + Linear on the layer's mean-pooled tokens) is trained after each encoder layer but
the last, whose answer stays the model's own head, so the full model's accuracy is unchanged. At
inference, one text at a time, the model stops at the first layer whose answer is confident
enough (``ExitRule``), and the layers above it never run: forward hooks on the encoder's layers
compute each head and stop the forward pass by raising. Layers are found by module type
(``models.encoder_layers``), so BERT, DistilBERT and MobileBERT all work.

The other half of the chapter, the variant picked to fit a budget, is ``benchmark.pick_variant``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from minikit.cache import cache_key, load_or_build
from minikit.metrics import soft_probabilities
from minikit.models import encoder_layers
from minikit.system import machine_description
from minikit.timing import cached_timing, measure_quietly
from minikit.training import predict_logits

RULES = ("max-prob", "entropy", "patience")
HEAD_STEPS = 300  # AdamW steps per head, batches of 64 cached features: well under a second each
MAX_PROB_GRID = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


# --------------------------------------------------------------------------------------------
# Exit rules: one function decides, for cached logits (the slider) and for a live forward pass
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExitRule:
    """When to stop: the first layer whose answer passes the rule (the last layer always answers).

    - ``max-prob``: the top softmax probability is **above** ``threshold`` (0 ≤ threshold ≤ 1;
      0 exits after the first layer, 1 never exits early: a probability never exceeds 1);
    - ``entropy``: the softmax entropy (nats) is **below** ``threshold`` (0 never exits early;
      ln(number of classes) or more exits at once, unless the answer is exactly uniform);
    - ``patience``: ``patience`` consecutive layers predict the same class (PABEE); a patience
      larger than the number of layers never exits early.
    """

    kind: str = "max-prob"
    threshold: float = 0.9
    patience: int = 2

    def __post_init__(self):
        if self.kind not in RULES:
            raise ValueError(f"Unknown exit rule {self.kind!r}. Fix: use one of {', '.join(RULES)}.")
        if self.kind == "max-prob" and not (0.0 <= float(self.threshold) <= 1.0):
            raise ValueError(f"threshold={self.threshold} is outside [0, 1], the range of a probability. "
                             "Fix: e.g. ExitRule('max-prob', 0.9).")
        if self.kind == "entropy" and not (float(self.threshold) >= 0.0 and math.isfinite(float(self.threshold))):
            raise ValueError(f"threshold={self.threshold}: an entropy threshold is a finite number of nats ≥ 0 "
                             "(ln 5 ≈ 1.61 for five classes). Fix: e.g. ExitRule('entropy', 0.3).")
        if self.kind == "patience" and (isinstance(self.patience, bool) or int(self.patience) != self.patience
                                        or self.patience < 1):
            raise ValueError(f"patience={self.patience}: the number of consecutive agreeing layers must be an "
                             "integer ≥ 1. Fix: e.g. ExitRule('patience', patience=2).")

    def describe(self) -> str:
        if self.kind == "patience":
            return f"patience {self.patience}"
        return f"{self.kind} {'>' if self.kind == 'max-prob' else '<'} {self.threshold:g}"


def _confident(layer_logits: np.ndarray, rule: ExitRule) -> np.ndarray:
    """(N, L) booleans: would the rule stop at this layer (the last column is always True)."""
    logits = np.asarray(layer_logits, dtype=np.float64)
    if logits.ndim != 3:
        raise ValueError(f"Expected logits of shape (texts, layers, classes), got {logits.shape}.")
    if rule.kind == "patience":
        preds = logits.argmax(-1)
        run = np.ones(preds.shape, dtype=np.int64)
        for layer in range(1, preds.shape[1]):
            run[:, layer] = np.where(preds[:, layer] == preds[:, layer - 1], run[:, layer - 1] + 1, 1)
        stop = run >= rule.patience
    else:
        stop = _passes(logits, rule)
    stop[:, -1] = True
    return stop


def _passes(logits: np.ndarray, rule: ExitRule) -> np.ndarray:
    """Does each answer (logits on the last axis) pass a max-prob or entropy rule."""
    probs = soft_probabilities(logits, 1.0)
    if rule.kind == "max-prob":
        return probs.max(-1) > rule.threshold
    entropy = -(probs * np.log(np.clip(probs, 1e-30, None))).sum(-1)
    return entropy < rule.threshold


def exit_layers(layer_logits: np.ndarray, rule: ExitRule) -> np.ndarray:
    """For each text, the 1-based layer where ``rule`` stops, from every layer's logits (N, L, C)."""
    return _confident(layer_logits, rule).argmax(axis=1) + 1


def exit_predictions(layer_logits: np.ndarray, rule: ExitRule) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, 1-based exit layer) per text: the answer of the layer where ``rule`` stops."""
    layers = exit_layers(layer_logits, rule)
    logits = np.asarray(layer_logits)
    return logits[np.arange(len(logits)), layers - 1].argmax(-1), layers


def threshold_table(layer_logits: np.ndarray, labels, kind: str = "max-prob",
                    thresholds: Sequence[float] = MAX_PROB_GRID, patience: Sequence[int] = ()) -> pd.DataFrame:
    """Accuracy and mean layers used at each threshold (or patience), from cached logits: instant."""
    y = np.asarray(labels)
    n_layers = np.asarray(layer_logits).shape[1]
    rules = [ExitRule("patience", patience=p) for p in patience] if kind == "patience" else \
        [ExitRule(kind, float(t)) for t in thresholds]
    rows = []
    for rule in rules:
        preds, layers = exit_predictions(layer_logits, rule)
        rows.append({"rule": rule.kind, "threshold": rule.threshold if kind != "patience" else float("nan"),
                     "patience": rule.patience if kind == "patience" else np.nan,
                     "accuracy": float((preds == y).mean()), "mean_layers": float(layers.mean()),
                     "layer_share": float(layers.mean() / n_layers)})
    return pd.DataFrame(rows)


def choose_threshold(layer_logits: np.ndarray, labels, kind: str = "max-prob",
                     thresholds: Sequence[float] = MAX_PROB_GRID, max_loss_points: float = 0.0,
                     max_layer_share: float | None = None) -> ExitRule:
    """A threshold chosen on ``layer_logits`` and ``labels`` (the validation split; report on test).

    Only thresholds losing at most ``max_loss_points`` of accuracy against the full model (the
    last layer, same texts) qualify. Among them:

    - ``max_layer_share=None``: the one using the fewest layers (fastest; with a few hundred
      validation texts, "no loss" can rest on one or two texts, so this tends to be optimistic);
    - ``max_layer_share=s``: the most cautious (highest threshold) whose mean layers are at most
      ``s`` × the model's depth: it buys the speed asked for and spends the rest on safety.
    """
    if max_loss_points < 0:
        raise ValueError(f"max_loss_points={max_loss_points}: an allowed loss is ≥ 0 points.")
    if max_layer_share is not None and not (0 < max_layer_share <= 1):
        raise ValueError(f"max_layer_share={max_layer_share}: a share of the layers, in (0, 1].")
    y = np.asarray(labels)
    logits = np.asarray(layer_logits)
    full = float((logits[:, -1].argmax(-1) == y).mean())
    table = threshold_table(logits, y, kind, thresholds)
    ok = table[table["accuracy"] >= full - max_loss_points / 100 - 1e-12]
    if max_layer_share is None:
        best = ok.sort_values(["mean_layers", "threshold"], ascending=[True, False]).iloc[0]
        return ExitRule(kind, float(best["threshold"]))
    fast_enough = ok[ok["mean_layers"] <= max_layer_share * logits.shape[1] + 1e-12]
    if fast_enough.empty:
        fewest = ok["mean_layers"].min()
        raise ValueError(f"No threshold in {list(thresholds)} keeps the mean layers at or below "
                         f"{max_layer_share:.0%} of {logits.shape[1]} within {max_loss_points} points lost "
                         f"(the fewest is {fewest:.2f} layers). Fix: allow more layers or more loss.")
    best = fast_enough.sort_values("threshold", ascending=False).iloc[0]
    return ExitRule(kind, float(best["threshold"]))


# --------------------------------------------------------------------------------------------
# The heads and the early-exit model
# --------------------------------------------------------------------------------------------


class ExitHeads(nn.Module):
    """One LayerNorm + Linear per encoder layer but the last, on the layer's mean-pooled tokens."""

    def __init__(self, num_layers: int, hidden_size: int, num_labels: int):
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"{num_layers} encoder layer(s): early exit needs at least two (a layer to exit "
                             "after and the last one).")
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, num_labels))
                                   for _ in range(num_layers - 1))

    def forward(self, layer: int, pooled: torch.Tensor) -> torch.Tensor:
        return self.heads[layer](pooled)


def _hidden(output) -> torch.Tensor:
    """A layer's output hidden states, whether the layer returns a tensor or a tuple."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return hidden.mean(dim=1)
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


class _Stop(Exception):
    """Raised by a hook to end the forward pass at an exit layer."""

    def __init__(self, layer: int, logits: torch.Tensor):
        super().__init__(layer)
        self.layer, self.logits = layer, logits


def _hidden_size(model: nn.Module) -> int:
    config = model.config
    for name in ("hidden_size", "dim", "d_model"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    raise ValueError(f"Cannot read the hidden size from {type(config).__name__}.")


class EarlyExitModel:
    """A fine-tuned classifier plus exit heads: ``predict`` stops at the first confident layer.

    ``model`` is never changed (its hooks are added for a call and removed after it).
    """

    def __init__(self, model: nn.Module, tokenizer, heads: ExitHeads | None = None, max_length: int = 128):
        layers = encoder_layers(model)  # raises a clear error when there are none
        self.model, self.tokenizer, self.max_length = model.eval(), tokenizer, max_length
        self.layers = layers
        self.heads = heads if heads is not None else ExitHeads(len(layers), _hidden_size(model),
                                                               model.config.num_labels)
        if len(self.heads.heads) != len(layers) - 1:
            raise ValueError(f"{len(self.heads.heads)} heads for {len(layers)} layers: expected {len(layers) - 1} "
                             "(one per layer but the last). Fix: train heads for this model (train_heads).")
        self.heads.eval()

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def _encode(self, texts: Sequence[str], padding: bool) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=padding,
                                   return_tensors="pt"))

    def pooled_features(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Mean-pooled hidden states after every layer, (N, L, H), batched by length (what heads train on)."""
        texts = list(texts)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(texts), self.num_layers, _hidden_size(self.model)), dtype=np.float32)
        captured: list[torch.Tensor] = []
        mask_box: list[torch.Tensor] = []

        def hook(_module, _inputs, output):
            captured.append(_mean_pool(_hidden(output), mask_box[0]))

        handles = [layer.register_forward_hook(hook) for layer in self.layers]
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    rows = order[start:start + batch_size]
                    batch = self._encode([texts[i] for i in rows], padding=True)
                    captured.clear()
                    mask_box[:] = [batch["attention_mask"]]
                    self.model.base_model(**batch)
                    out[rows] = torch.stack(captured, dim=1).numpy()
        finally:
            for handle in handles:
                handle.remove()
        return out

    def layer_logits(self, texts: Sequence[str] | None = None, features: np.ndarray | None = None,
                     final_logits: np.ndarray | None = None) -> np.ndarray:
        """Every layer's answer for each text, (N, L, C): heads for layers 1..L-1, the model's head for L."""
        if features is None:
            features = self.pooled_features(texts)
        if final_logits is None:
            final_logits = predict_logits(self.model, self.tokenizer, list(texts), max_length=self.max_length)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features))
            early = [self.heads(i, x[:, i]).numpy() for i in range(self.num_layers - 1)]
        return np.stack([*early, np.asarray(final_logits, dtype=np.float32)], axis=1)

    def predict(self, text: str, rule: ExitRule, inputs: dict[str, torch.Tensor] | None = None) -> tuple[int, int]:
        """(class, 1-based exit layer) for one text; layers above the exit do not run."""
        inputs = inputs if inputs is not None else self._encode([text], padding=False)
        state = {"previous": None, "run": 0}

        def make_hook(index: int):
            def hook(_module, _inputs, output):
                logits = self.heads(index, _mean_pool(_hidden(output), None))
                if rule.kind == "patience":
                    pred = int(logits.argmax(-1))
                    state["run"] = state["run"] + 1 if pred == state["previous"] else 1
                    state["previous"] = pred
                    stop = state["run"] >= rule.patience
                else:
                    stop = bool(_passes(logits.numpy(), rule)[0])
                if stop:
                    raise _Stop(index + 1, logits)
            return hook

        handles = [layer.register_forward_hook(make_hook(i)) for i, layer in enumerate(self.layers[:-1])]
        try:
            with torch.inference_mode():
                logits = self.model(**inputs).logits
            layer = self.num_layers
        except _Stop as stop:
            logits, layer = stop.logits, stop.layer
        finally:
            for handle in handles:
                handle.remove()
        return int(logits.argmax(-1)), layer


def train_heads(model: nn.Module, features: np.ndarray, labels, steps: int = HEAD_STEPS, lr: float = 1e-3,
                batch_size: int = 64, seed: int = 0) -> ExitHeads:
    """Train one head per layer but the last on cached features (N, L, H); the model stays frozen."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    x = torch.from_numpy(np.ascontiguousarray(features))
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows but {len(y)} labels: they must match one to one.")
    heads = ExitHeads(x.shape[1], x.shape[2], model.config.num_labels)
    generator = torch.Generator().manual_seed(seed)
    for index, head in enumerate(heads.heads):
        torch.manual_seed(seed + index)
        for module in head:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
        for _ in range(steps):
            rows = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=generator)
            loss = nn.functional.cross_entropy(head(x[rows, index]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return heads.eval()


@dataclass(frozen=True, eq=False)
class EarlyExit:
    """The early-exit model with every layer's logits on validation and test, cached."""

    model: EarlyExitModel
    val_logits: np.ndarray  # (N, L, C)
    test_logits: np.ndarray
    val_labels: np.ndarray
    test_labels: np.ndarray
    cache_dir: Path | None
    from_cache: bool

    def layer_accuracy(self, split: str = "validation") -> pd.DataFrame:
        """Accuracy of each layer's own answer: how much each depth knows."""
        logits, y = (self.val_logits, self.val_labels) if split == "validation" else (self.test_logits, self.test_labels)
        acc = (logits.argmax(-1) == y[:, None]).mean(0)
        return pd.DataFrame({"layer": np.arange(1, len(acc) + 1), "accuracy": acc,
                             "answer": ["exit head"] * (len(acc) - 1) + ["model's own head"]})


def get_early_exit(finetuned, steps: int = HEAD_STEPS, seed: int = 0, progress: bool = True) -> EarlyExit:
    """Exit heads for a ``FineTuned`` model (e.g. ``get_baseline()``), trained once and cached.

    Cold: one forward pass over train, validation and test (~30 s on 2 cores for MiniLM on
    BBC News) and a few seconds of head training. The cache key includes the model's cache entry.
    """
    from safetensors.torch import load_file, save_file


    model, tokenizer, splits = finetuned.model, finetuned.tokenizer, finetuned.splits
    if finetuned.cache_dir is None:
        raise ValueError("This model was trained with cache=False, so its heads cannot be cached against it. "
                         "Fix: fine_tune(..., cache=True) (the default).")
    early = EarlyExitModel(model, tokenizer)
    parts = {"model": Path(finetuned.cache_dir).name, "steps": steps, "seed": seed, "pooling": "mean",
             "max_length": early.max_length}
    built = []

    def build(folder: Path) -> None:
        bar = _progress(progress, ["train", "validation", "test"])
        features = {}
        for split in bar:
            features[split] = early.pooled_features(splits[split]["text"])
        heads = train_heads(model, features["train"], splits["train"]["label"], steps=steps, seed=seed)
        save_file(heads.state_dict(), str(folder / "heads.safetensors"))
        early.heads = heads
        arrays = {split: early.layer_logits(splits[split]["text"], features=features[split])
                  for split in ("validation", "test")}
        np.savez(folder / "layer_logits.npz", **arrays)
        built.append(arrays)

    entry = load_or_build("early_exit", parts, build)
    if built:
        arrays = built[0]
    else:
        heads = ExitHeads(early.num_layers, _hidden_size(model), model.config.num_labels)
        heads.load_state_dict(load_file(str(entry / "heads.safetensors")))
        early.heads = heads.eval()
        with np.load(entry / "layer_logits.npz") as stored:
            arrays = {k: stored[k] for k in stored.files}
    return EarlyExit(early, arrays["validation"], arrays["test"], np.asarray(splits["validation"]["label"]),
                     np.asarray(splits["test"]["label"]), entry, not built)


def _progress(show: bool, items):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="exit heads: features per split")


# --------------------------------------------------------------------------------------------
# Measured latency: batch 1, the full model and early exit timed alternately on the same texts
# --------------------------------------------------------------------------------------------


def measure_exit_latency(early: EarlyExitModel, texts: Sequence[str], rules: Sequence[ExitRule],
                         warmup: int = 3) -> pd.DataFrame:
    """Mean batch-1 latency (ms) of the plain model and of early exit under each rule, timed here.

    For each text, the full model and every rule run once, in an order rotated text by text,
    so drift of the machine hits all alike. Tokenization is done beforehand (it is the same for
    all). Returns one row per rule plus ``full model``: mean and p50 ms, mean layers, speedup.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: need at least one text to time.")
    inputs = [early._encode([t], padding=False) for t in texts]
    names = ["full model", *[r.describe() for r in rules]]

    def full(batch):
        with torch.inference_mode():
            early.model(**batch)
        return early.num_layers

    calls = [full, *[(lambda batch, r=r: early.predict("", r, inputs=batch)[1]) for r in rules]]
    for batch in inputs[:warmup]:
        for call in calls:
            call(batch)
    times = np.zeros((len(texts), len(calls)))
    layers = np.zeros((len(texts), len(calls)))
    for i, batch in enumerate(inputs):
        for j in np.roll(np.arange(len(calls)), i):
            start = time.perf_counter()
            layers[i, j] = calls[j](batch)
            times[i, j] = (time.perf_counter() - start) * 1e3
    mean = times.mean(0)
    return pd.DataFrame({"variant": names, "rule": [None, *rules], "mean_ms": mean,
                         "p50_ms": np.percentile(times, 50, axis=0), "mean_layers": layers.mean(0),
                         "speedup": mean[0] / mean})


def latency_curve(result: EarlyExit, texts: Sequence[str], thresholds: Sequence[float] = MAX_PROB_GRID,
                  kind: str = "max-prob", refresh: bool = False) -> pd.DataFrame:
    """Measured mean batch-1 latency at each threshold on ``texts``, cached for this boot of this machine.

    Rows: threshold, mean_ms, full_ms (the full model timed beside it), speedup, mean_layers,
    plus accuracy on ``result``'s validation logits at that threshold, and ``load_warning``: why the
    machine was not quiet ("" when it was; such a curve is measured again once, then shown, never cached).
    """
    texts = list(texts)
    rules = [ExitRule(kind, float(t)) for t in thresholds]
    parts = {"heads": None if result.cache_dir is None else Path(result.cache_dir).name, "kind": kind,
             "thresholds": [float(t) for t in thresholds], "texts": cache_key(texts=texts),
             "threads": torch.get_num_threads(), "machine": machine_description(), "method": 2}  # 2: timing.py

    def rows() -> list[dict]:
        table = measure_exit_latency(result.model, texts, rules)
        full_ms = float(table["mean_ms"].iloc[0])
        return [{"threshold": float(t), "mean_ms": float(r["mean_ms"]), "full_ms": full_ms,
                 "speedup": float(r["speedup"]), "mean_layers_timed": float(r["mean_layers"])}
                for t, (_, r) in zip(thresholds, table.iloc[1:].iterrows())]

    def measure() -> tuple[list[dict], str]:
        curve, check = measure_quietly(rows)
        return curve, check.warning

    timing = cached_timing("latency_curve", parts, measure, refresh=refresh)
    quality = threshold_table(result.val_logits, result.val_labels, kind, thresholds)
    return pd.DataFrame(timing.payload).assign(accuracy=quality["accuracy"].to_numpy(),
                                               mean_layers=quality["mean_layers"].to_numpy(),
                                               load_warning=timing.load_warning)


def curve_row(curve: pd.DataFrame, threshold: float) -> pd.Series:
    """The row of a ``latency_curve`` table measured at ``threshold`` (compared with np.isclose)."""
    rows = curve[np.isclose(curve["threshold"], threshold)]
    if rows.empty:
        raise ValueError(f"threshold={threshold} is not in the curve; measured: {list(curve['threshold'])}.")
    return rows.iloc[0]


__all__ = ["EarlyExit", "EarlyExitModel", "ExitHeads", "ExitRule", "MAX_PROB_GRID", "RULES", "choose_threshold",
           "curve_row", "exit_layers", "exit_predictions", "get_early_exit", "latency_curve", "measure_exit_latency",
           "threshold_table", "train_heads"]
