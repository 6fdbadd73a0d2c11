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
    assert "Too few" in wrong.message and "LayerNorm" in wrong.message
    assert "768" not in wrong.message and str(truth) not in wrong.message and "1,774,464" not in wrong.message
    assert "Too many" in check.encoder_layer_params(truth + 5).message
    weights, biases = 4 * h * h + 2 * h * f, 4 * h + f + h
    assert "weight matrices only" in check.encoder_layer_params(weights).message
    assert "add the two LayerNorms" in check.encoder_layer_params(weights + biases).message
    assert "add one bias" in check.encoder_layer_params(weights + layer_norms).message


@pytest.mark.parametrize("fn, args", [
    (check.encoder_layer_params, ()),
    (check.faster_at_batch_1, (PROFILES,)),
    (check.most_truncated_topic, (LENGTHS, LENGTHS, [])),
    (check.near_split_leaks, (None, None, None)),
    (check.probe_parameters, ()),
    (check.merged_macro_f1, (np.eye(3), (0, 1))),
])
def test_checks_reject_none(fn, args):
    result = fn(None, *args)
    assert not result.passed
    assert result.message.startswith("Not answered yet") and "replace the `None`" in result.message
    assert repr(result).startswith("⏳ Not answered yet")
    assert not fn(..., *args).passed


def test_faster_at_batch_1():
    profiles = profiles_table([("mobilebert", 24.6, 30.0), ("minilm-l6", 22.7, 10.0)])
    result = check.faster_at_batch_1("minilm-l6", profiles)
    assert result.passed
    assert "mobilebert: 24.6 M params, 30.0 ms" in result.message
    assert "The deeper model (mobilebert, 24 layers against 6) is the slower one" in result.message
    assert "depth costs time" in result.message
    assert check.faster_at_batch_1("  MiniLM-L6 ", profiles).passed
    wrong = check.faster_at_batch_1("mobilebert", profiles)
    assert not wrong.passed
    assert "latency_p50_ms" in wrong.message
    assert "30.0" not in wrong.message and "10.0" not in wrong.message  # a wrong guess is not shown the times


def test_faster_at_batch_1_follows_the_data_when_the_shallow_model_is_slower():
    # MiniLM-L6 (6 layers) measured slower than MobileBERT (24 layers), well beyond the timings' spread.
    shallow_slower = profiles_table([("mobilebert", 24.6, 10.0), ("minilm-l6", 22.7, 30.0)])
    result = check.faster_at_batch_1("mobilebert", shallow_slower)
    assert result.passed
    assert "the deeper model (mobilebert, 24 layers against 6) was the faster one" in result.message
    assert "depth costs time" not in result.message and "is the slower one" not in result.message
    assert not check.faster_at_batch_1("minilm-l6", shallow_slower).passed


def test_faster_at_batch_1_says_when_the_gap_is_within_the_noise():
    noisy = profiles_table([("mobilebert", 24.6, 10.5), ("minilm-l6", 22.7, 10.0)])  # p95 = 1.2 × p50: 2 ms spread
    result = check.faster_at_batch_1("minilm-l6", noisy)
    assert result.passed and "cannot tell" in result.message and "depth costs time" not in result.message


def test_faster_at_batch_1_missing_rows():
    result = check.faster_at_batch_1("minilm-l6", profiles_table([("minilm-l6", 22.7, 10.0)]))
    assert not result.passed
    assert "Measure both 'mobilebert' and 'minilm-l6'" in result.message


def test_most_truncated_topic():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # with LENGTHS: topic "b" has 3 of 4 over 256, topic "a" none
    names = ["a", "b"]
    result = check.most_truncated_topic(("b", 0.75), LENGTHS, labels, names, max_length=256)
    assert result.passed and "b: 75.0%" in result.message
    assert check.most_truncated_topic([" B ", 0.7504], LENGTHS, labels, names, max_length=256).passed
    wrong_topic = check.most_truncated_topic(("a", 0.0), LENGTHS, labels, names, max_length=256)
    assert not wrong_topic.passed and "another topic" in wrong_topic.message and "75" not in wrong_topic.message
    assert "percentage" in check.most_truncated_topic(("b", 75), LENGTHS, labels, names, max_length=256).message
    overall = check.most_truncated_topic(("b", np.mean(LENGTHS > 256)), LENGTHS, labels, names, max_length=256)
    assert not overall.passed and "over all topics" in overall.message
    assert "too low" in check.most_truncated_topic(("b", 0.5), LENGTHS, labels, names, max_length=256).message
    assert "topic one of ['a', 'b']" in check.most_truncated_topic("b", LENGTHS, labels, names).message


def test_near_split_leaks_counts_exact_and_near_copies_across_train_and_test(bbc):
    # Independent truth: minikit's own leakage check with near-duplicates switched on.
    raw = minikit.split_dataset(bbc, seed=42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minikit.DataWarning)
        near = {b for _, b in minikit.check_leakage(raw, near_threshold=0.9).leaks[("train", "test")]}
        exact = {b for _, b in minikit.check_leakage(raw).leaks[("train", "test")]}
        report = minikit.find_duplicates(bbc, near_threshold=0.9)
    assert len(near) > len(exact) > 0
    result = check.near_split_leaks(len(near), report, bbc, raw)
    assert result.passed, result.message
    assert f"{len(near)} test articles" in result.message and f"{len(near) - len(exact)} more" in result.message
    assert "exact copies only" in check.near_split_leaks(len(exact), report, bbc, raw).message
    assert "only the ones the exact check missed" in check.near_split_leaks(len(near) - len(exact), report, bbc,
                                                                              raw).message
    many = check.near_split_leaks(len(near) + 7, report, bbc, raw)
    assert not many.passed and "Too many" in many.message and str(len(near)) not in many.message


def test_probe_parameters_counts_every_layer_outside_the_encoder():
    assert check.probe_parameters(384 * 5 + 5).passed  # MiniLM-L6: one 384 → 5 layer
    two_layers = 768 * 768 + 768 + 768 * 5 + 5  # DistilBERT: pre_classifier 768 → 768, classifier 768 → 5
    result = check.probe_parameters(two_layers, num_labels=5, model="distilbert")
    assert result.passed and "2 linear layer(s)" in result.message
    one = check.probe_parameters(768 * 5 + 5, num_labels=5, model="distilbert")
    assert not one.passed and "print the model" in one.message
    assert "Too few" in check.probe_parameters(768 * 5, num_labels=5, model="distilbert").message


def test_schedule_steps_with_another_config():
    config = minikit.TrainConfig(batch_size=16, epochs=3)
    assert check.schedule_steps((273, 27), n_train=1449, config=config).passed  # ceil(1449/16) = 91 per epoch
    assert "times the epochs" in check.schedule_steps((91, 9), n_train=1449, config=config).message
    assert "Warm-up" in check.schedule_steps((273, 28), n_train=1449, config=config).message


def test_merged_macro_f1_agrees_with_scikit_learn_on_relabelled_predictions():
    from sklearn.metrics import f1_score

    cm = np.array([[20, 1, 0, 3], [2, 15, 1, 0], [0, 2, 18, 1], [4, 0, 0, 11]])
    y_true = np.repeat(np.arange(4), cm.sum(1))
    y_pred = np.concatenate([np.repeat(np.arange(4), row) for row in cm])
    merge = lambda y: np.where(y == 3, 0, y)  # noqa: E731  (class 3 becomes class 0)
    truth = f1_score(merge(y_true), merge(y_pred), average="macro")
    assert check.merged_macro_f1(truth, cm, (0, 3)).passed
    before = check.merged_macro_f1(f1_score(y_true, y_pred, average="macro"), cm, (0, 3))
    assert not before.passed and "before merging" in before.message
    accuracy = check.merged_macro_f1(np.mean(merge(y_true) == merge(y_pred)), cm, (0, 3))
    assert not accuracy.passed and "accuracy" in accuracy.message
    low = check.merged_macro_f1(truth - 0.05, cm, (0, 3))
    assert not low.passed and "Too low" in low.message and f"{truth:.4f}" not in low.message


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
    assert f"against {1536 * 384 * 4 + bias:,} in float32" in check.packed_layer_bytes(weights + scales + bias, layer,
                                                                                        bits=3).message
    no_bias = torch.nn.Linear(384, 1536, bias=False)  # float32 is then the weights alone
    assert f"against {1536 * 384 * 4:,} in float32" in check.packed_layer_bytes(weights + scales, no_bias, bits=3).message


def test_first_bits_losing():
    acc = {8: 0.95, 7: 0.95, 6: 0.94, 5: 0.90, 4: 0.70, 3: 0.40, 2: 0.20}
    table = pd.DataFrame({"bits": list(acc), "granularity": "per-tensor", "symmetric": True, "accuracy": list(acc.values())})
    assert check.first_bits_losing(5, table, reference_accuracy=0.95)  # 6 bits: −1 point; 5 bits: −5
    low = check.first_bits_losing(4, table, 0.95).message
    assert "already" in low and "5 bits" not in low and " 5" not in low  # a direction, not the answer
    assert "still within" in check.first_bits_losing(6, table, 0.95).message
    assert "sweep" in check.first_bits_losing(5, table.iloc[:3], 0.95).message


# --- the messages follow the learner's data, and a wrong answer is never shown the value ------------------


def test_success_messages_follow_the_data():
    config = minikit.TrainConfig(batch_size=16, epochs=3)
    assert "last batch is smaller" in check.schedule_steps((273, 27), n_train=1449, config=config).message
    assert "last batch" not in check.schedule_steps((270, 27), n_train=1440, config=config).message  # 1440 = 90 × 16
    sizes = {"topic": 145, "headline": 288}
    tempered = minikit.tasks.TaskSampler(sizes, "temperature", 2.0).probabilities
    assert "T trades one against the other" in check.sampling_probabilities(tempered, sizes).message
    proportional = {k: n / 433 for k, n in sizes.items()}
    result = check.sampling_probabilities(proportional, sizes, "temperature", 1.0)
    assert result.passed and "proportional share" in result.message and "trades" not in result.message
    labels, names = np.array([0, 0, 0, 0, 1, 1, 1, 1]), ["a", "b"]
    even = np.array([300, 100, 100, 100, 300, 100, 100, 100])  # each topic: 1 of 4 over 256
    assert "similar rates" in check.most_truncated_topic(("a", 0.25), even, labels, names, max_length=256).message


def test_temperature_for_top_says_what_holds_at_any_share():
    logits = [3.0, 0.0, 0.0]

    def top(t: float) -> float:
        p = np.exp(np.array(logits) / t)
        return float(p.max() / p.sum())

    def crossing(share: float) -> float:
        lo, hi = 0.01, 100.0
        for _ in range(80):
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if top(mid) > share else (lo, mid)
        return lo

    result = check.temperature_for_top(crossing(0.6), logits, share=0.6)
    assert result.passed and "less than 60%" in result.message and "outweigh" not in result.message
    assert "runner-ups together outweigh it" in check.temperature_for_top(crossing(0.5), logits, share=0.5).message


def test_sampling_probabilities_gives_a_direction_not_the_value():
    sizes = {"topic": 145, "headline": 288}
    truth = minikit.tasks.TaskSampler(sizes, "temperature", 2.0).probabilities
    guess = {"topic": truth["topic"] + 0.05, "headline": truth["headline"] - 0.01}
    result = check.sampling_probabilities(guess, sizes)
    assert not result.passed and "topic: your share is too high" in result.message
    assert f"{truth['topic']:.3f}" not in result.message and "+0.050" not in result.message


def test_points_at_equal_compute_says_what_its_data_shows():
    table = pd.DataFrame({"run": ["single", "multi"], "kind": ["single-task", "multi-task"], "share": [0.1, 0.1],
                          "tokens": [1000, 1100], "accuracy": [0.800, 0.795]})
    close_call = check.points_at_equal_compute(-0.5, table, "multi")
    assert close_call.passed and "within a point" in close_call.message and "311" not in close_call.message
    table.loc[1, "accuracy"] = 0.85
    assert "helped" in check.points_at_equal_compute(5.0, table, "multi").message
    wrong = check.points_at_equal_compute(1.0, table, "multi")
    assert not wrong.passed and "+5.00" not in wrong.message
