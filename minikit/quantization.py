"""Chapter 6 — quantization: store weights in fewer bits, and run int8 arithmetic where a runtime can.

Three kinds of copies of a model, all leaving the original as it was:

* simulated N-bit (``fake_quantize``): each weight is rounded to one of 2^N levels and turned
  back into a float, so any CPU runs it and you see the accuracy the rounding costs;
* real int8 in PyTorch (``dynamic_int8``: torch's eager dynamic quantization of the Linear
  layers, optionally int8 embeddings) and half precision (``half_precision``);
* int8 in ONNX Runtime (``export_onnx`` then ``quantize_onnx``), a second int8 path with its own
  kernels: which of the two is faster depends on the CPU and the model, so chapter 6 times both
  side by side. Both check their outputs against PyTorch and raise if they disagree.

The quantize/dequantize formula lives in ``quantize_tensor``, short enough to print in a notebook.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import PreTrainedModel

from minikit.errors import OnnxMismatchError
from minikit.models import dummy_inputs, encoder_layers, forward_arguments
from minikit.system import release_freed_memory

SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8)
GRANULARITIES = ("per-tensor", "per-channel")
# Output checks pass when max |logit difference| ≤ atol + rtol · max |PyTorch logit| over the batch.
# float ONNX vs PyTorch: the same arithmetic in another order (minilm-l6 fine-tuned: 3e-6).
EXPORT_TOLERANCE = (1e-4, 1e-4)  # (atol, rtol)
# int8 ONNX vs float PyTorch. Fine-tuned minilm-l6 on the 311 BBC validation articles (logits
# within ±3.8): per-tensor int8 moved logits by up to 1.05 (99th percentile 0.33), per-channel
# by up to 0.21, with 99.4 % / 99.7 % of predictions unchanged. A wrong scale or a broken graph
# moves them by about the logits' own size.
INT8_TOLERANCE = (0.05, 0.3)



# --------------------------------------------------------------------------------------------
# The formula: quantize to integers, dequantize back to floats
# --------------------------------------------------------------------------------------------


def _check(bits, granularity: str) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits not in SUPPORTED_BITS:
        raise ValueError(f"bits={bits!r}: expected a whole number of bits from {SUPPORTED_BITS[0]} to "
                         f"{SUPPORTED_BITS[-1]}. For 16 bits use half_precision(model); for 32, the model itself.")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}: expected 'per-tensor' (one scale for the whole matrix) "
                         "or 'per-channel' (one scale per output row).")


def quantization_params(w: torch.Tensor, bits: int = 8, granularity: str = "per-channel",
                        symmetric: bool = True) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(scale, zero_point, qmin, qmax) mapping ``w``'s range onto the integers qmin…qmax.

    Per channel means one scale per output row (dim 0). Symmetric: zero point 0, integers
    −(2^(b−1)−1)…2^(b−1)−1, so one level is given up to keep the grid centred (3 levels at 2
    bits). Asymmetric: integers 0…2^b−1 stretched over [min, max] (widened to include 0, so
    zero stays exact) with a zero point shifting the grid.
    """
    _check(bits, granularity)
    w = w.detach().float()
    flat = w.reshape(len(w), -1) if granularity == "per-channel" else w.reshape(1, -1)
    lo, hi = flat.amin(dim=1).clamp(max=0), flat.amax(dim=1).clamp(min=0)
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
        scale = torch.maximum(-lo, hi) / qmax
    else:
        qmin, qmax = 0, 2 ** bits - 1
        scale = (hi - lo) / (qmax - qmin)
    scale = scale.clamp(min=1e-12)  # an all-zero row: any scale works
    zero_point = torch.zeros_like(scale) if symmetric else (qmin - torch.round(lo / scale)).clamp(qmin, qmax)
    return scale, zero_point, qmin, qmax


def quantize_tensor(w: torch.Tensor, bits: int = 8, granularity: str = "per-channel",
                    symmetric: bool = True) -> torch.Tensor:
    """``w`` rounded onto a grid of at most 2^bits levels and turned back into floats (same shape)."""
    scale, zero_point, qmin, qmax = quantization_params(w, bits, granularity, symmetric)
    shape = (-1,) + (1,) * (w.dim() - 1) if granularity == "per-channel" else ()
    scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    q = torch.clamp(torch.round(w / scale) + zero_point, qmin, qmax)  # the integers that would be stored
    return ((q - zero_point) * scale).to(w.dtype)  # back to floats: the rounding error stays


def quantization_grid(w: torch.Tensor, bits: int = 8, granularity: str = "per-channel", symmetric: bool = True,
                      channel: int = 0) -> np.ndarray:
    """The float values ``quantize_tensor`` can give ``w`` (per channel: those of row ``channel``)."""
    scale, zero_point, qmin, qmax = quantization_params(w, bits, granularity, symmetric)
    row = 0 if granularity == "per-tensor" else channel
    if not 0 <= row < len(scale):
        raise ValueError(f"channel={channel}: the tensor has channels 0…{len(scale) - 1}.")
    q = torch.arange(qmin, qmax + 1, dtype=torch.float32)
    return ((q - zero_point[row]) * scale[row]).numpy()


# --------------------------------------------------------------------------------------------
# Simulated N-bit copies, their size and their error per layer
# --------------------------------------------------------------------------------------------


def _targets(model: nn.Module, include_embeddings: bool) -> list[tuple[str, nn.Module]]:
    kinds = (nn.Linear, nn.Embedding) if include_embeddings else (nn.Linear,)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


def fake_quantize(model: PreTrainedModel, bits: int = 8, granularity: str = "per-channel", symmetric: bool = True,
                  include_embeddings: bool = False) -> PreTrainedModel:
    """A copy whose Linear weights (and embeddings, if asked) went through ``quantize_tensor``.

    Simulated: the weights stay float32, so size and speed do not change (see ``quantized_size_mb``
    for what packing them would save); accuracy does, as it would with real N-bit kernels.
    Biases and LayerNorms stay in float, as in real int8 schemes.
    """
    _check(bits, granularity)
    quantized = copy.deepcopy(model)
    with torch.no_grad():
        for _, m in _targets(quantized, include_embeddings):
            m.weight.copy_(quantize_tensor(m.weight, bits, granularity, symmetric))
    return quantized


def quantized_size_mb(model: nn.Module, bits: int = 8, granularity: str = "per-channel", symmetric: bool = True,
                      include_embeddings: bool = False) -> float:
    """Megabytes the weights would take with the quantized ones packed at ``bits`` bits (computed).

    Each quantized matrix costs numel·bits/8 bytes plus a float32 scale per channel (and a
    one-byte zero point when asymmetric); everything else stays at its own width.
    """
    _check(bits, granularity)
    quantized = {id(m.weight): m.weight for _, m in _targets(model, include_embeddings)}
    total = 0.0
    for p in {id(t): t for t in model.state_dict(keep_vars=True).values()}.values():  # what a file would hold
        if id(p) in quantized:
            channels = len(p) if granularity == "per-channel" else 1
            total += math.ceil(p.numel() * bits / 8) + channels * (4 + (0 if symmetric else 1))
        else:
            total += p.numel() * p.element_size()
    return total / 1e6


def quantization_error_table(model: nn.Module, bits: int = 8, granularity: str = "per-channel",
                             symmetric: bool = True, include_embeddings: bool = True) -> pd.DataFrame:
    """One row per Linear (and embedding) weight: name, layer, kind, params, relative_error, sqnr_db.

    relative_error = ‖W − Q(W)‖ / ‖W‖; sqnr_db = −20·log10(relative_error), the signal-to-noise
    ratio: each extra bit adds about 6 dB. ``layer`` is the encoder layer index, −1 outside it.
    """
    _check(bits, granularity)
    layer_of = {id(m): i for i, layer in enumerate(encoder_layers(model)) for m in layer.modules()}
    rows = []
    for name, m in _targets(model, include_embeddings):
        w = m.weight.detach().float()
        err = float((w - quantize_tensor(w, bits, granularity, symmetric)).norm() / w.norm().clamp(min=1e-12))
        rows.append({"name": name, "layer": layer_of.get(id(m), -1),
                     "kind": "embedding" if isinstance(m, nn.Embedding) else "linear", "params": w.numel(),
                     "relative_error": err, "sqnr_db": -20 * math.log10(err) if err > 0 else float("inf")})
    return pd.DataFrame(rows)


def typical_row(w: torch.Tensor) -> int:
    """Index of the row of ``w`` whose range (max − min) is the median one: a representative channel to plot."""
    w = w.detach()
    spans = (w.amax(dim=1) - w.amin(dim=1)).numpy()
    return int(np.argsort(spans)[len(spans) // 2])


# --------------------------------------------------------------------------------------------
# One working copy, re-quantized in place: a slider's worth of settings without a copy each
# --------------------------------------------------------------------------------------------


def linear_working_copy(model: nn.Module) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """(a copy of ``model`` in eval mode, ``model``'s Linear weights by module name).

    Only the Linear weights are copied; every other tensor is shared with ``model``, so the copy
    costs the matrices' memory, not the model's. ``requantize_linears`` rewrites those weights.
    """
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    shared = {id(t): t for t in model.state_dict(keep_vars=True).values()
              if all(t is not m.weight for m in linears.values())}
    work = copy.deepcopy(model, memo=dict(shared)).eval()
    return work, {name: m.weight for name, m in linears.items()}


def requantize_linears(work: nn.Module, originals: dict[str, torch.Tensor], bits: int = 8,
                       granularity: str = "per-channel", symmetric: bool = True) -> pd.DataFrame:
    """Write ``quantize_tensor`` of each original into ``work``'s Linear of that name, in place.

    As ``fake_quantize`` (Linear weights rounded, embeddings kept in float), but on a copy from
    ``linear_working_copy``, always from the float originals. Returns ``quantization_error_table``'s
    columns for those weights.
    """
    _check(bits, granularity)
    layer_of = {id(m): i for i, layer in enumerate(encoder_layers(work)) for m in layer.modules()}
    rows = []
    with torch.no_grad():
        for name, m in _targets(work, include_embeddings=False):
            w = originals[name]
            q = quantize_tensor(w, bits, granularity, symmetric)
            m.weight.copy_(q)
            err = float((w - q).norm() / w.norm().clamp(min=1e-12))
            rows.append({"name": name, "layer": layer_of.get(id(m), -1), "kind": "linear", "params": w.numel(),
                         "relative_error": err, "sqnr_db": -20 * np.log10(err) if err > 0 else float("inf")})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Real int8 in PyTorch: dynamic quantization of Linear layers, int8 embeddings
# --------------------------------------------------------------------------------------------


class Int8Embedding(nn.Module):
    """An ``nn.Embedding`` stored as int8 rows, each with its own float32 scale (symmetric, weight-only).

    The table shrinks 4×; a look-up turns only the rows it fetches back into floats. The int8
    table is a frozen parameter, so parameter counts and ``save_pretrained`` see it.
    """

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        w = embedding.weight.detach().float()  # (V, E)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (V,): one scale per token's row
        self.weight = nn.Parameter(torch.round(w / scale[:, None]).to(torch.int8), requires_grad=False)
        self.register_buffer("scale", scale)
        self.num_embeddings, self.embedding_dim = w.shape
        self.padding_idx = embedding.padding_idx

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].to(self.scale.dtype) * self.scale[ids].unsqueeze(-1)  # (..., E)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per-row"


def quantize_embeddings(model: PreTrainedModel) -> PreTrainedModel:
    """A copy whose ``nn.Embedding`` tables (words, positions, …) are ``Int8Embedding``s."""
    quantized = copy.deepcopy(model)
    for name, m in list(quantized.named_modules()):
        if isinstance(m, nn.Embedding):
            parent, _, attr = name.rpartition(".")
            setattr(quantized.get_submodule(parent), attr, Int8Embedding(m))
    return quantized


@contextlib.contextmanager
def _quiet_torch_ao() -> Iterator[None]:
    # torch.ao.quantization announces its deprecation on every call; the API still works in
    # torch 2.13 and its replacement (torchao) is slower than fp32 for BERT on CPU.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        yield


def dynamic_int8(model: PreTrainedModel, embeddings: bool = False) -> PreTrainedModel:
    """A copy with every ``nn.Linear`` in int8 (torch dynamic quantization), embeddings too if asked.

    Weights are int8 per tensor; activations are quantized on the fly, batch by batch, so no
    calibration data is needed. Size it with ``Benchmark`` (``torch.save``): ``save_pretrained``
    cannot store torch's packed int8 weights.
    """
    quantized = quantize_embeddings(model) if embeddings else copy.deepcopy(model)
    with _quiet_torch_ao():
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(quantized.eval(), {nn.Linear}, dtype=torch.qint8, inplace=True)


# --------------------------------------------------------------------------------------------
# Half precision
# --------------------------------------------------------------------------------------------

_HALF = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def cpu_half_support() -> dict[str, bool]:
    """{"float16": …, "bfloat16": …}: whether this CPU has native instructions for them (oneDNN's check).

    Without them PyTorch still runs the copy, on generic kernels. With them, whether a half-precision copy
    beats float32 depends on which operations have fast kernels on this CPU: chapter 6 measures it.
    """
    support = {}
    for name, check in (("float16", "_is_mkldnn_fp16_supported"), ("bfloat16", "_is_mkldnn_bf16_supported")):
        try:
            support[name] = bool(getattr(torch.ops.mkldnn, check)())
        except (AttributeError, RuntimeError):  # a private check: absent in some builds
            support[name] = False
    return support


def half_precision(model: PreTrainedModel, dtype: str | torch.dtype = "bfloat16") -> PreTrainedModel:
    """A copy with every floating-point weight in float16 or bfloat16 (half the size)."""
    key = str(dtype).removeprefix("torch.")
    if key not in _HALF:
        raise ValueError(f"dtype={dtype!r}: expected 'float16' (fp16) or 'bfloat16' (bf16). For 8 bits and "
                         "fewer use dynamic_int8 or fake_quantize.")
    return copy.deepcopy(model).to(_HALF[key])


# --------------------------------------------------------------------------------------------
# ONNX Runtime: export, check, quantize to int8
# --------------------------------------------------------------------------------------------

_ONNX_INPUTS = ("input_ids", "attention_mask")  # one-sentence inputs: token_type_ids are all 0


def _padded_dummy(model: PreTrainedModel, batch_size: int, seq_len: int, seed: int) -> dict[str, torch.Tensor]:
    inputs = dummy_inputs(model, batch_size, seq_len, seed)
    inputs["attention_mask"][-1, seq_len // 2:] = 0  # one padded row, so the mask path is checked too
    return inputs


def check_onnx(path: str | Path, model: PreTrainedModel, inputs: dict[str, torch.Tensor] | None = None,
               tolerance: tuple[float, float] = EXPORT_TOLERANCE) -> float:
    """Largest |logit difference| between the ONNX file and ``model``; raises ``OnnxMismatchError`` above tolerance.

    ``tolerance=(atol, rtol)`` allows atol + rtol · max |logit| per batch. Checked on ``inputs``
    (default: random ids; pass tokenized real texts, which int8 must get right) and on a slice
    of them with one row and three tokens fewer, so an export that froze the batch or sequence
    length fails here instead of later.
    """
    atol, rtol = tolerance
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    first = inputs if inputs is not None else _padded_dummy(model, 2, 16, seed=0)
    second = {k: v[:max(1, len(v) - 1), :max(2, v.shape[1] - 3)] for k, v in first.items()}
    worst = 0.0
    model.eval()
    for batch in (first, second):
        with torch.inference_mode():
            expected = model(**{k: v for k, v in batch.items() if k in _ONNX_INPUTS}).logits.float().numpy()
        got = session.run(["logits"], {k: batch[k].numpy().astype(np.int64) for k in names})[0]
        gap, limit = float(np.abs(got - expected).max()), atol + rtol * float(np.abs(expected).max())
        if not gap <= limit:  # also catches NaN
            raise OnnxMismatchError(
                f"{Path(path).name}: logits differ from the PyTorch model's by up to {gap:.4g}, above the tolerance "
                f"{limit:.4g} (atol={atol:g} + rtol={rtol:g} × max |logit|). Do not use this file. Fix: for a float "
                "export, export again from the model in eval mode; for int8, try quantize_onnx(..., "
                "per_channel=True), and loosen the tolerance only after measuring that accuracy holds.")
        worst = max(worst, gap)
    del session
    release_freed_memory()  # the session's copy of the weights: give it back before the next big step
    return worst


def export_onnx(model: PreTrainedModel, path: str | Path, inputs: dict[str, torch.Tensor] | None = None,
                tolerance: tuple[float, float] = EXPORT_TOLERANCE, opset: int = 17) -> Path:
    """Export ``model`` to ONNX (inputs input_ids, attention_mask; output logits), checked by ``check_onnx``.

    Uses the TorchScript exporter (``dynamo=False``), which handles transformers' encoders
    without extra packages; batch and sequence length stay dynamic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = [n for n in _ONNX_INPUTS if n not in forward_arguments(model)]
    if missing:
        raise ValueError(f"{type(model).__name__}.forward takes no {missing}. Fix: pass a transformers "
                         "sequence-classification model (minikit.load_model / get_baseline().model).")
    example = inputs if inputs is not None else _padded_dummy(model, 2, 16, seed=0)
    release_freed_memory()  # export and check hold several copies of the weights: start from a trimmed heap
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    traced = {k: v[:2] for k, v in example.items()}  # batch and length stay dynamic: two rows trace the same graph
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():  # no autograd graph to hold while tracing: less peak memory
        warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter notice: expected, not actionable
        torch.onnx.export(model, (traced["input_ids"], traced["attention_mask"]), str(path),
                          input_names=list(_ONNX_INPUTS), output_names=["logits"], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)
    check_onnx(path, model, inputs, tolerance)
    return path


@contextlib.contextmanager
def quiet_onnx_quantization_logs() -> Iterator[None]:
    """Silence onnxruntime.quantization's advice for the block (dynamic here, static in ``minikit.static_int8``;
    ``minikit.onnx_graph`` silences the transformer optimizer's with it too).

    It logs through the root logger, which would also give the root logger a handler
    (logging.basicConfig) as a side effect.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_onnx(onnx_path: str | Path, out_path: str | Path, model: PreTrainedModel,
                  inputs: dict[str, torch.Tensor] | None = None,
                  tolerance: tuple[float, float] = INT8_TOLERANCE, per_channel: bool = True) -> Path:
    """int8 copy of an exported ONNX file (ONNX Runtime dynamic quantization), checked against ``model``.

    MatMul weights become int8 (activations are quantized at run time) and so does the
    embedding table (Gather). ``per_channel=True`` (one scale per output column) costs ~0.1 MB
    and no time on minilm-l6 and keeps logits 5× closer than one scale per matrix. Raises
    ``OnnxMismatchError`` if logits move further from the float PyTorch model's than
    ``tolerance`` allows (see ``INT8_TOLERANCE``). Pass real tokenized texts as ``inputs`` for
    the check that matters: random ids are out of distribution.
    """
    import onnx  # with onnxruntime: only the ONNX path needs them
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    release_freed_memory()
    with quiet_onnx_quantization_logs():
        # DefaultTensorType: a graph fused by onnxruntime's transformer optimizer (minikit.onnx_graph) has
        # contrib operators whose outputs shape inference cannot type; they are float32.
        quantize_dynamic(str(onnx_path), str(out_path), weight_type=QuantType.QInt8, per_channel=per_channel,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    check_onnx(out_path, model, inputs, tolerance)
    return out_path


__all__ = [
    "EXPORT_TOLERANCE", "GRANULARITIES", "INT8_TOLERANCE", "Int8Embedding", "OnnxMismatchError", "SUPPORTED_BITS",
    "check_onnx", "cpu_half_support", "dynamic_int8", "export_onnx", "fake_quantize", "half_precision",
    "linear_working_copy", "quantization_error_table", "quantization_grid", "quantization_params",
    "quantize_embeddings", "quantize_onnx", "quantize_tensor", "quantized_size_mb", "quiet_onnx_quantization_logs",
    "requantize_linears", "typical_row",
]
