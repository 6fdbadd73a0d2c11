"""Quantization-aware training (QAT): train with the N-bit weights in the forward pass.

Post-training quantization (``quantization.fake_quantize``) rounds a trained model's weights once;
at 4 bits and below that moves the logits enough to cost accuracy. QAT keeps float weights as the
thing being trained, but every forward pass uses them *rounded* (``quantization.quantize_tensor``),
so the loss sees the rounding and the weights move to where rounding hurts least. Rounding has a
zero gradient almost everywhere; the straight-through estimator (STE) lets the gradient pass the
rounding as if it were the identity: ``w + (q(w) − w).detach()`` is ``q(w)`` going forward and has
gradient 1 with respect to ``w`` going back (Bengio et al., 2013; Jacob et al., 2018).

``prepare_qat`` puts that rounding on every Linear weight of a copy with
``torch.nn.utils.parametrize`` (the weight attribute becomes the rounded view of a float
original); ``train_classifier`` or any loop trains it as usual; ``convert`` bakes the rounded
weights in, which gives the same model ``fake_quantize`` would give for those float weights.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from minikit import cache
from minikit.loop import TrainConfig
from minikit.pruning import RECOVERY_CONFIG
from minikit.quantization import GRANULARITIES, SUPPORTED_BITS, fake_quantize, quantize_tensor
from minikit.settings import seed_everything
from minikit.stats import scored
from minikit.training import correct_per_example, train_classifier

QAT_BITS = (8, 4, 3, 2)  # chapter 6's bits knob: int8's width, then where post-training rounding breaks
# Chapter 5's recovery run: a quarter of the train split at half the baseline's learning rate, since the weights
# start close to good ones (~45 steps at batch 8).
QAT_CONFIG = RECOVERY_CONFIG
CONTROL = "train, then PTQ"  # ptq_vs_qat's control: QAT's extra steps in float, then post-training rounding
RUNS_KIND = "qat-runs"  # cache kind: PTQ and QAT at each bit width, scored on the test split (results only)
RUNS_FILE = "runs.json"


def check_qat_bits(bits, granularity: str = "per-channel") -> None:
    """Refuse a bit width or granularity QAT cannot simulate, saying which it can."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in SUPPORTED_BITS:
        raise ValueError(f"bits={bits!r}: QAT simulates whole bit widths from {SUPPORTED_BITS[0]} to "
                         f"{SUPPORTED_BITS[-1]}. Fix: pass one of {list(SUPPORTED_BITS)} (16 bits needs no QAT: "
                         "quantization.half_precision).")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}: expected one of {list(GRANULARITIES)}.")


def ste_quantize(w: torch.Tensor, bits: int = 4, granularity: str = "per-channel",
                 symmetric: bool = True) -> torch.Tensor:
    """``w`` rounded to ``bits`` going forward; gradient 1 with respect to ``w`` going back (the STE)."""
    return w + (quantize_tensor(w, bits, granularity, symmetric) - w).detach()


class FakeQuantize(nn.Module):
    """A parametrization: the weight a layer sees is its float original through ``ste_quantize``."""

    def __init__(self, bits: int = 4, granularity: str = "per-channel", symmetric: bool = True):
        super().__init__()
        check_qat_bits(bits, granularity)
        self.bits, self.granularity, self.symmetric = bits, granularity, symmetric

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return ste_quantize(w, self.bits, self.granularity, self.symmetric)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, {self.granularity}, {'symmetric' if self.symmetric else 'asymmetric'}"


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def prepare_qat(model: nn.Module, bits: int = 4, granularity: str = "per-channel",
                symmetric: bool = True) -> nn.Module:
    """A copy of ``model`` whose every Linear weight is seen rounded to ``bits`` (trainable through the STE).

    The same layers as ``fake_quantize``: Linear weights; embeddings, biases and LayerNorms stay float.
    The model passed in is not changed.
    """
    check_qat_bits(bits, granularity)
    prepared = copy.deepcopy(model)
    linears = _linears(prepared)
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: nothing for QAT to round.")
    for linear in linears:
        if not parametrize.is_parametrized(linear, "weight"):
            parametrize.register_parametrization(linear, "weight", FakeQuantize(bits, granularity, symmetric))
    return prepared


def is_prepared(model: nn.Module) -> bool:
    """True when ``prepare_qat`` put its rounding on the model's Linear weights (and ``convert`` has not run)."""
    return any(parametrize.is_parametrized(m, "weight") for m in _linears(model))


def convert(model: nn.Module) -> nn.Module:
    """A copy with the rounded weights baked in and the parametrizations gone: N-bit weights stored in float32."""
    if not is_prepared(model):
        raise ValueError("The model has no QAT rounding on its weights. Fix: pass the model prepare_qat returned "
                         "(and trained).")
    converted = copy.deepcopy(model)
    for linear in _linears(converted):
        if parametrize.is_parametrized(linear, "weight"):
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=True)
    return converted


def train_qat(model: nn.Module, tokenizer, splits, bits: int = 4, granularity: str = "per-channel",
              config: TrainConfig = QAT_CONFIG, progress: bool = False):
    """Fine-tune a ``prepare_qat`` copy of ``model`` (``train_classifier``), then ``convert``: (model, TrainResult)."""
    seed_everything(config.seed)
    prepared = prepare_qat(model, bits, granularity)
    result = train_classifier(prepared, tokenizer, splits, config, progress=progress)
    return convert(prepared), result


def ptq_vs_qat(baseline, bits: Sequence[int] = QAT_BITS, granularity: str = "per-channel",
               config: TrainConfig = QAT_CONFIG, progress: bool = False) -> pd.DataFrame:
    """Post-training rounding (``fake_quantize``) against QAT (``train_qat``) at each bit width, on the test split.

    QAT trains: part of any gain over PTQ may be the extra training, not the rounding in the loop. So a
    control (``CONTROL``) trains a float copy with the same config and steps, then rounds it: QAT against
    the control is the effect of training *through* the rounding.

    ``baseline`` is a ``FineTuned`` (``get_baseline``). One row per (bits, method), plus the float32
    model and the control unrounded (bits 32): accuracy, n, its 95 % Wilson bounds (low, high), the
    per-example ``correct`` list (for paired comparisons), and the training steps and seconds (the control's once, repeated on its rows). Cached
    as results only, no models (kind ``qat-runs``, keyed by the weights, the splits, the bits and the
    config): ``minikit build`` runs it, a notebook reads it.
    """
    for b in bits:
        check_qat_bits(b, granularity)
    model, tokenizer, splits = baseline.model, baseline.tokenizer, baseline.splits
    test = splits["test"]
    parts = {"model": cache.model_sha256(model), "splits": cache.splits_sha256(splits), "bits": list(bits),
             "granularity": granularity, "config": config}

    def correct(net) -> list[int]:
        return correct_per_example(net.eval(), tokenizer, test, config.max_length, truncation=config.truncation)

    def build(folder: Path) -> None:
        rows = [{"bits": 32, "method": "float32", "correct": correct(model), "steps": 0, "seconds": 0.0}]
        start = time.perf_counter()
        seed_everything(config.seed)
        more = copy.deepcopy(model)  # the control: the same extra steps in float, rounded afterwards
        steps = train_classifier(more, tokenizer, splits, config, progress=progress).steps
        seconds = round(time.perf_counter() - start, 1)
        rows.append({"bits": 32, "method": CONTROL, "correct": correct(more), "steps": steps, "seconds": seconds})
        for b in bits:
            rows.append({"bits": b, "method": "PTQ", "correct": correct(fake_quantize(model, b, granularity)),
                         "steps": 0, "seconds": 0.0})
            rows.append({"bits": b, "method": CONTROL, "correct": correct(fake_quantize(more, b, granularity)),
                         "steps": steps, "seconds": seconds})
            start = time.perf_counter()
            trained, result = train_qat(model, tokenizer, splits, b, granularity, config, progress)
            rows.append({"bits": b, "method": "QAT", "correct": correct(trained), "steps": result.steps,
                         "seconds": round(time.perf_counter() - start, 1)})
            del trained
        (folder / RUNS_FILE).write_text(json.dumps(rows))

    folder = cache.load_or_build(RUNS_KIND, parts, build)
    table = pd.DataFrame(json.loads((folder / RUNS_FILE).read_text()))
    table = table.assign(**scored(table["correct"]))
    return table[["bits", "method", "accuracy", "n", "low", "high", "steps", "seconds", "correct"]]


def chapter_runs(baseline, bits: Sequence[int] = QAT_BITS) -> pd.DataFrame:
    """Chapter 6's runs: ``ptq_vs_qat`` at both granularities (column ``granularity``)."""
    tables = [ptq_vs_qat(baseline, bits, granularity).assign(granularity=granularity) for granularity in GRANULARITIES]
    return pd.concat(tables, ignore_index=True)


__all__ = ["CONTROL", "FakeQuantize", "QAT_BITS", "QAT_CONFIG", "RUNS_KIND", "chapter_runs", "check_qat_bits",
           "convert", "is_prepared", "prepare_qat", "ptq_vs_qat", "ste_quantize", "train_qat"]
