"""Exercise checks (minikit.check): each recomputes the answer and says what is off.

The chapter-by-chapter checks that need a trained model stay beside that model's fixtures in the chapter's file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import minikit
from minikit import check
from minikit.data import normalize_text


def _profiles(rows) -> pd.DataFrame:
    base = dict(size_mb=40.0, seq_len=64, latency_p95_ms=0.0, batch_size=8, throughput=100.0, peak_memory_mb=80.0)
    out = []
    for name, params_m, p50 in rows:
        out.append(base | dict(name=name, params_m=params_m, latency_p50_ms=p50, latency_p95_ms=p50 * 1.2,
                               throughput=1000.0 / p50))
    return pd.DataFrame(out)


PROFILES = _profiles([("small", 14.4, 8.0), ("medium", 66.9, 35.0), ("big", 109.5, 60.0)])


LENGTHS = np.array([50, 100, 150, 200, 250, 300, 600, 700])


# --- exercise checks ---------------------------------------------------------------------------------


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
    profiles = _profiles([("mobilebert", 24.6, 30.0), ("minilm-l6", 22.7, 10.0)])
    result = check.faster_at_batch_1("minilm-l6", profiles)
    assert result.passed
    assert "mobilebert: 24.6 M params, 30.0 ms" in result.message
    assert check.faster_at_batch_1("  MiniLM-L6 ", profiles).passed
    wrong = check.faster_at_batch_1("mobilebert", profiles)
    assert not wrong.passed
    assert "number of layers" in wrong.message
    flipped = _profiles([("mobilebert", 24.6, 9.0), ("minilm-l6", 22.7, 10.0)])
    assert check.faster_at_batch_1("mobilebert", flipped).passed


def test_faster_at_batch_1_missing_rows():
    result = check.faster_at_batch_1("minilm-l6", _profiles([("minilm-l6", 22.7, 10.0)]))
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
