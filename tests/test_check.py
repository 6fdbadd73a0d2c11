"""Exercise checks (minikit.check): each recomputes the answer and says what is off.

The chapter-by-chapter checks that need a trained model stay beside that model's fixtures in the chapter's file.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import LENGTHS, PROFILES, profiles_table

import minikit
from minikit import check, pruning
from minikit.data import normalize_text
from minikit.quantization import (
    quantization_params,
)

# --- chapters 1 to 4 -----------------------------------------------------------------------------------


def test_check_result_behaves_like_a_bool():
    good, bad = check.CheckResult(True, "fine"), check.CheckResult(False, "hint")
    assert bool(good) and not bool(bad)
    assert repr(good).startswith("✅ Correct. ") and repr(bad).startswith("❌ Not yet. ")


def test_encoder_layer_params():
    h, f = 384, 1536  # MiniLM-L6: hidden and feed-forward sizes
    attention = 4 * (h * h + h)  # Q, K, V, output projections with biases
    ffn = (h * f + f) + (f * h + h)
    layer_norms = 2 * (2 * h)
    truth = attention + ffn + layer_norms
    assert truth == 1_774_464
    result = check.encoder_layer_params(truth)
    assert result.passed
    assert "1,774,464" in result.message
    wrong = check.encoder_layer_params(truth - 2 * h)  # forgot a LayerNorm
    assert not wrong.passed
    assert "off by -768" in wrong.message
    assert "LayerNorm" in wrong.message


@pytest.mark.parametrize("fn, args", [
    (check.encoder_layer_params, ()),
    (check.faster_at_batch_1, (PROFILES,)),
    (check.share_over, (LENGTHS,)),
    (check.raw_split_leaks, ()),
])
def test_checks_reject_none(fn, args):
    result = fn(None, *args)
    assert not result.passed
    assert "Replace the `None`" in result.message
    assert not fn(..., *args).passed


def test_faster_at_batch_1():
    profiles = profiles_table([("mobilebert", 24.6, 30.0), ("minilm-l6", 22.7, 10.0)])
    result = check.faster_at_batch_1("minilm-l6", profiles)
    assert result.passed
    assert "mobilebert: 24.6 M params, 30.0 ms" in result.message
    assert check.faster_at_batch_1("  MiniLM-L6 ", profiles).passed
    wrong = check.faster_at_batch_1("mobilebert", profiles)
    assert not wrong.passed
    assert "number of layers" in wrong.message
    flipped = profiles_table([("mobilebert", 24.6, 9.0), ("minilm-l6", 22.7, 10.0)])
    assert check.faster_at_batch_1("mobilebert", flipped).passed
    assert "Here mobilebert was the faster one" in check.faster_at_batch_1("mobilebert", flipped).message
    assert "was the faster one" not in result.message


def test_faster_at_batch_1_missing_rows():
    result = check.faster_at_batch_1("minilm-l6", profiles_table([("minilm-l6", 22.7, 10.0)]))
    assert not result.passed
    assert "Measure both 'mobilebert' and 'minilm-l6'" in result.message


def test_share_over():
    truth = float(np.mean(LENGTHS > 256))
    assert truth == 3 / 8
    assert check.share_over(truth, LENGTHS, max_length=256).passed
    assert check.share_over(0.3754, LENGTHS, max_length=256).passed  # within rounding
    percent = check.share_over(37.5, LENGTHS, max_length=256)
    assert not percent.passed and "not a percentage" in percent.message
    wrong = check.share_over(5 / 8, LENGTHS, max_length=256)  # the share kept, not the share cut
    assert not wrong.passed and "strictly greater" in wrong.message
    assert check.share_over(np.mean(LENGTHS > 128), LENGTHS, max_length=128).passed


def test_raw_split_leaks(bbc):
    # Independent count: test articles whose normalized text also occurs in train.
    splits = minikit.split_dataset(bbc, seed=42)
    train = {normalize_text(t, lowercase=True) for t in splits["train"]["text"]}
    truth = sum(normalize_text(t, lowercase=True) in train for t in splits["test"]["text"])
    assert truth > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minikit.DataWarning)
        result = check.raw_split_leaks(truth)
        assert result.passed, result.message
        assert f"{truth} test articles" in result.message
        wrong = check.raw_split_leaks(truth + 1)
    assert not wrong.passed
    assert "check_leakage" in wrong.message


# --- chapter 5's checks --------------------------------------------------------------------------------

W = torch.tensor([[0.5, -0.1, 0.3, -0.9], [0.05, 0.2, -0.4, 0.7], [-0.6, 0.15, 0.8, -0.25]])


def test_pruning_threshold_check():
    assert check.pruning_threshold(0.3, W, 0.5)  # |w| sorted: .05 .1 .15 .2 .25 .3 | .4 …
    assert "Off by one" in repr(check.pruning_threshold(0.4, W, 0.5))
    assert not check.pruning_threshold(0.25, W, 0.5)
    assert not check.pruning_threshold(None, W, 0.5)


def test_csr_bytes_check():
    pruned = W * (W.abs() > 0.3)  # 6 non-zeros in 3 rows
    assert check.csr_bytes(6 * 4 + 6 * 4 + 4 * 4, pruned)
    assert "row pointers" in repr(check.csr_bytes(48, pruned))
    assert "rows + 1" in repr(check.csr_bytes(48 + 12, pruned))
    assert "int32" in repr(check.csr_bytes(6 * 4 + 6 * 8 + 4 * 8, pruned))
    assert not check.csr_bytes(1, W.flatten())


def test_most_pruned_layer_check(random_bert4):
    with torch.no_grad():  # make layer 2 the one with the smallest weights
        for layer, _, m in pruning.encoder_linears(random_bert4):
            m.weight.mul_(0.1 if layer == 2 else 1.0)
    assert check.most_pruned_layer(2, random_bert4, 0.5)
    assert not check.most_pruned_layer(0, random_bert4, 0.5)
    table = pruning.sparsity_table(pruning.magnitude_prune(random_bert4, 0.5))
    per_layer = table.assign(zeros=table["params"] - table["nonzero"]).groupby("layer")[["zeros", "params"]].sum()
    assert int((per_layer["zeros"] / per_layer["params"]).idxmax()) == 2  # the route the hint describes


# --- chapter 6's checks --------------------------------------------------------------------------------


def test_scale_and_zero_point():
    x = [-0.3, 0.0, 0.45, 1.2]
    scale, zero_point, _, _ = quantization_params(torch.tensor(x), 4, "per-tensor", symmetric=False)
    assert check.scale_and_zero_point((float(scale), float(zero_point)), x)
    assert check.scale_and_zero_point((0.1, 3), x)
    assert "steps" in check.scale_and_zero_point((1.5 / 16, 3), x).message  # 16 levels, but 15 steps
    assert "sign" in check.scale_and_zero_point((0.1, -3), x).message
    assert not check.scale_and_zero_point(None, x)


def test_packed_layer_bytes():
    layer = torch.nn.Linear(384, 1536)
    weights, scales, bias = math.ceil(1536 * 384 * 3 / 8), 1536 * 4, 1536 * 4
    assert check.packed_layer_bytes(weights + scales + bias, layer, bits=3)
    for short in (weights + bias, weights + scales):
        assert "one part is missing" in check.packed_layer_bytes(short, layer, bits=3).message
    assert "bytes" in check.packed_layer_bytes(1536 * 384 * 3, layer, bits=3).message
    assert not check.packed_layer_bytes(123, layer, bits=3)


def test_first_bits_losing():
    acc = {8: 0.95, 7: 0.95, 6: 0.94, 5: 0.90, 4: 0.70, 3: 0.40, 2: 0.20}
    table = pd.DataFrame({"bits": list(acc), "granularity": "per-tensor", "symmetric": True, "accuracy": list(acc.values())})
    assert check.first_bits_losing(5, table, reference_accuracy=0.95)  # 6 bits: −1 point; 5 bits: −5
    assert "already" in check.first_bits_losing(4, table, 0.95).message
    assert "still within" in check.first_bits_losing(6, table, 0.95).message
    assert "sweep" in check.first_bits_losing(5, table.iloc[:3], 0.95).message
