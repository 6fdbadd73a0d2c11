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

import torch
from torch import nn
from torch.nn.utils import parametrize

from minikit.quantization import GRANULARITIES, SUPPORTED_BITS, quantize_tensor


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


__all__ = ["FakeQuantize", "check_qat_bits", "convert", "is_prepared", "prepare_qat", "ste_quantize"]
