"""Chapter 6's exercise checks, re-exported by ``minikit.check`` (``minikit.check.<name>(answer, …)``).

Every check recomputes the right answer from the real model or measured runs; nothing is typed in.
"""

from __future__ import annotations

import pandas as pd

from minikit.practice import CheckResult, answered
from minikit.quantization import quantization_params, quantized_size_mb
from minikit.static_int8 import KEPT_ALL, OP_GROUPS


# --- 06 quantization ----------------------------------------------------------------------------


@answered
def scale_and_zero_point(answer: tuple[float, float] | None, x, bits: int = 4, symmetric: bool = False) -> CheckResult:
    """(scale, zero point) mapping the tensor ``x`` onto ``bits``-bit integers, one scale for the whole tensor."""
    import torch


    scale, zero_point, qmin, qmax = quantization_params(torch.as_tensor(x, dtype=torch.float32), bits, "per-tensor",
                                                        symmetric)
    scale, zero_point = float(scale), float(zero_point)
    try:
        got_scale, got_zero = (float(a) for a in answer)
    except (TypeError, ValueError):
        return CheckResult(False, "Give a pair: (scale, zero_point).")
    scale_ok = abs(got_scale - scale) <= 1e-4 * max(abs(scale), 1e-12)
    if scale_ok and abs(got_zero - zero_point) < 1e-9:
        return CheckResult(True, f"scale {scale:.4g}, zero point {zero_point:g}: the integers {qmin}…{qmax} cover "
                           f"[{qmin - zero_point:g}·scale, {qmax - zero_point:g}·scale], and 0.0 is stored exactly as "
                           f"the integer {zero_point:g}.")
    if not scale_ok:
        return CheckResult(False, f"The scale is the range [min(x, 0), max(x, 0)] divided by the number of steps "
                           f"between {qmin} and {qmax} (there are {qmax - qmin}, not {qmax - qmin + 1}).")
    if abs(got_zero + zero_point) < 1e-9:
        return CheckResult(False, "Right size, wrong sign: the zero point is the integer that stands for 0.0, "
                           "qmin − round(min / scale).")
    return CheckResult(False, "The scale is right. The zero point is qmin − round(min / scale), clamped to the "
                       "integer range.")


@answered
def packed_layer_bytes(answer: int | None, layer, bits: int = 3, granularity: str = "per-channel",
                       symmetric: bool = True) -> CheckResult:
    """Bytes one Linear layer takes with its weight packed at ``bits`` bits: weight, scales, float32 bias."""
    import math


    truth = round(quantized_size_mb(layer, bits, granularity, symmetric) * 1e6)
    rows, cols = layer.weight.shape
    packed = math.ceil(rows * cols * bits / 8)
    scales = (rows if granularity == "per-channel" else 1) * (4 + (0 if symmetric else 1))
    bias = 0 if layer.bias is None else layer.bias.numel() * 4
    if int(answer) == truth:
        return CheckResult(True, f"{truth:,} bytes: {packed:,} for {rows * cols:,} weights at {bits} bits, "
                           f"{scales:,} for the scales, {bias:,} for the float32 bias — against "
                           f"{rows * cols * 4 + bias:,} in float32 ({(rows * cols * 4 + bias) / truth:.1f}× more).")
    if int(answer) in (packed + bias, packed + scales):
        return CheckResult(False, "Close, one part is missing: each output row (channel) stores its float32 "
                           "scale, and the bias stays in float32.")
    if int(answer) == rows * cols * bits:
        return CheckResult(False, "That is bits, not bytes: divide by 8.")
    return CheckResult(False, f"Weights: rows × columns × {bits} / 8 bytes; scales: 4 bytes per row; bias: 4 bytes "
                       "per row. Get rows and columns from layer.weight.shape.")


@answered
def first_bits_losing(answer: int | None, table: pd.DataFrame, reference_accuracy: float,
                      granularity: str = "per-tensor", symmetric: bool = True, points: float = 2.0) -> CheckResult:
    """Scanning down from 8 bits: the first bit width whose accuracy is more than ``points`` below float32.

    ``table`` is ``QuantizationExplorer.table`` (it must hold bits 2–8 for the scheme).
    """
    rows = table[(table["granularity"] == granularity) & (table["symmetric"] == symmetric)].set_index("bits")
    if not set(range(2, 9)) <= set(rows.index):
        return CheckResult(False, f"The table lacks some of bits 2–8 for {granularity}, "
                           f"{'symmetric' if symmetric else 'asymmetric'}: run explorer.sweep() first.")
    loss = 100 * (reference_accuracy - rows["accuracy"])
    truth = next((b for b in range(8, 1, -1) if loss[b] > points), None)
    if truth is None:
        return CheckResult(False, f"No bit width loses more than {points:g} points with this scheme; try "
                           "another one.")
    if int(answer) == truth:
        scale = "one scale per matrix" if granularity == "per-tensor" else "one scale per row"
        return CheckResult(True, f"Scanning down from 8 bits, that is the first width more than {points:g} points "
                           f"below float32 on this subset: with {scale}, the rounding error there has outgrown "
                           "what the model tolerates.")
    if int(answer) < truth:
        return CheckResult(False, f"A wider bit width already loses more than {points:g} points: scan from 8 "
                           "downwards and stop at the first one.")
    return CheckResult(False, f"At {int(answer)} bits the loss is still within {points:g} points.")


@answered
def most_harmful_group(answer: str | None, runs: pd.DataFrame) -> CheckResult:
    """Which group (LayerNorm, Softmax or GELU), quantized alone in static int8, moves the logits most.

    ``runs`` is ``static_int8.exclusion_runs(baseline)``: its "<group> quantized" rows and their
    ``max_logit_gap`` against PyTorch.
    """
    wanted = [f"{group} quantized" for group in OP_GROUPS]
    if not isinstance(runs, pd.DataFrame) or "setting" not in runs or not set(wanted) <= set(runs["setting"]):
        return CheckResult(False, "Pass the table of section 10: runs = static_int8.exclusion_runs(baseline) "
                           f"(rows {wanted}).")
    table = runs.set_index("setting")
    gaps = {group: float(table.loc[f"{group} quantized", "max_logit_gap"]) for group in OP_GROUPS}
    truth = max(gaps, key=gaps.get)
    given = str(answer).strip()
    match = next((g for g in OP_GROUPS if g.lower() == given.lower()), None)
    if match is None:
        return CheckResult(False, f"Answer with one of {list(OP_GROUPS)}.")
    kept = float(table.loc[KEPT_ALL, "max_logit_gap"])
    measured = ", ".join(f"{g} {v:.2f}" for g, v in gaps.items())
    if match == truth:
        return CheckResult(True, f"{truth}: its quantized inputs moved the logits most ({measured}; all three "
                           f"kept float: {kept:.2f}). Each figure is one largest difference over 16 articles, "
                           "from one calibration: this model's answer, not a rule.")
    return CheckResult(False, f"Not {match}: compare the max_logit_gap of the three \"… quantized\" rows of the "
                       "table (the largest |logit difference| from PyTorch on 16 validation articles).")


__all__ = ["first_bits_losing", "most_harmful_group", "packed_layer_bytes", "scale_and_zero_point"]
