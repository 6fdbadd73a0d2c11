"""Running a model so that its attention maps can be read: eager attention, and no dropout on the maps.

PyTorch's fused attention (SDPA) never forms the attention probabilities, so ``output_attentions=True`` needs the
eager implementation; ONNX Runtime's fuser also matches the eager pattern (chapter 6). In training, eager attention
applies dropout to the probabilities it returns, so a loss on them (attention-map distillation, chapter 7) must
switch that dropout off, as MiniLM and TinyBERT compare the maps before dropout.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@contextlib.contextmanager
def eager_attention(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """``model`` with eager attention inside the block, its own setting after."""
    previous = getattr(model.config, "_attn_implementation", None)
    if previous in (None, "eager") or not hasattr(model, "set_attn_implementation"):
        yield model
        return
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(previous)


def attention_dropouts(model: nn.Module) -> list[nn.Dropout]:
    """The dropouts applied to the attention probabilities: each self-attention block's own ``dropout``.

    A self-attention block is found by its query projection (``query`` in BERT and MobileBERT, ``q_lin`` in
    DistilBERT); the dropouts on hidden states (after the output projection, the feed-forward block, the
    embeddings) are not these.
    """
    return [m.dropout for m in model.modules()
            if isinstance(getattr(m, "dropout", None), nn.Dropout) and (hasattr(m, "query") or hasattr(m, "q_lin"))]


@contextlib.contextmanager
def no_attention_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with no dropout on its attention probabilities inside the block, the rates restored after."""
    dropouts = attention_dropouts(model)
    rates = [d.p for d in dropouts]
    for d in dropouts:
        d.p = 0.0
    try:
        yield model
    finally:
        for d, rate in zip(dropouts, rates):
            d.p = rate


__all__ = ["attention_dropouts", "eager_attention", "no_attention_dropout"]
