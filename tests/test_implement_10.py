"""Chapter 10's implement-it check: the exit rule. The reference passes; the usual wrong versions fail on a named case."""

from __future__ import annotations

import numpy as np
import pytest

from minikit import check
from minikit.early_exit import ExitRule, exit_layers


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def solution(layer_logits, threshold):
    top = _softmax(np.asarray(layer_logits, dtype=np.float64)).max(-1)
    above = np.flatnonzero(top > threshold)
    return int(above[0]) + 1 if above.size else len(top)


def solution_float32_loop(layer_logits, threshold):
    """Another right answer: a loop, in float32 (the precision a learner using torch would get)."""
    for layer, logits in enumerate(np.asarray(layer_logits, dtype=np.float32), start=1):
        z = np.exp(logits - logits.max())
        if (z / z.sum()).max() > threshold:
            return layer
    return len(layer_logits)


def off_by_one(layer_logits, threshold):  # forgot that layers count from 1
    return solution(layer_logits, threshold) - 1


def greater_or_equal(layer_logits, threshold):  # ≥ where minikit's rule says "above"
    top = _softmax(np.asarray(layer_logits, dtype=np.float64)).max(-1)
    above = np.flatnonzero(top >= threshold)
    return int(above[0]) + 1 if above.size else len(top)


def never_exits(layer_logits, threshold):
    return len(layer_logits)


def no_softmax(layer_logits, threshold):  # compares raw logits with a probability threshold
    top = np.asarray(layer_logits).max(-1)
    above = np.flatnonzero(top > threshold)
    return int(above[0]) + 1 if above.size else len(top)


def last_index_when_none_passes(layer_logits, threshold):  # the fallback counted from 0
    top = _softmax(np.asarray(layer_logits, dtype=np.float64)).max(-1)
    above = np.flatnonzero(top > threshold)
    return int(above[0]) + 1 if above.size else len(top) - 1


def test_the_reference_and_another_right_version_pass():
    result = check.exit_layer(solution)
    assert result and "All 6 hidden cases pass" in result.message
    assert check.exit_layer(solution_float32_loop)


@pytest.mark.parametrize("wrong, case, said", [
    (off_by_one, "Case 1 of 6", "got 2, expected 3"),
    (greater_or_equal, "Case 4 of 6", "got 1, expected 3"),
    (never_exits, "Case 1 of 6", "got 6, expected 3"),
    (no_softmax, "Case 1 of 6", "got 1, expected 3"),
    (last_index_when_none_passes, "Case 2 of 6", "got 5, expected 6"),
])
def test_wrong_versions_fail_on_a_named_case(wrong, case, said):
    result = check.exit_layer(wrong)
    assert not result
    assert result.message.startswith(case) and said in result.message


def test_threshold_one_never_exits_early_so_greater_or_equal_also_fails_there():
    def ge_only_at_one(layer_logits, threshold):  # right everywhere but the probability-1.0 case
        return greater_or_equal(layer_logits, threshold) if threshold == 1.0 else solution(layer_logits, threshold)

    result = check.exit_layer(ge_only_at_one)
    assert not result and result.message.startswith("Case 5 of 6") and "got 1, expected 4" in result.message


def test_the_stub_reads_not_answered_yet():
    def exit_layer(layer_logits, threshold):
        # YOUR CODE HERE
        raise NotImplementedError

    result = check.exit_layer(exit_layer)
    assert not result and repr(result).startswith("⏳ Not answered yet")


def test_the_reference_agrees_with_minikits_exit_layers_on_random_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(200, 6, 5))
    for threshold in (0.0, 0.5, 0.9, 0.99, 1.0):
        ours = [solution(text, threshold) for text in logits]
        assert ours == exit_layers(logits, ExitRule("max-prob", threshold)).tolist()


# --- chapter 10's Exercise 2: the mean exit layer under the entropy rule ----------------------------------


def test_mean_exit_layer_under_entropy_recomputes_the_answer_and_names_the_usual_slips():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, size=(300, 6, 5))
    probs = _softmax(logits)
    nats = -(probs * np.log(probs)).sum(-1)

    def mean_layer(entropy, threshold):
        stop = entropy < threshold
        stop[:, -1] = True
        return float((stop.argmax(1) + 1).mean())

    truth = mean_layer(nats, 0.2)
    assert check.mean_exit_layer(truth, logits, 0.2, kind="entropy")
    bits = check.mean_exit_layer(mean_layer(nats / np.log(2), 0.2), logits, 0.2, kind="entropy")
    assert mean_layer(nats / np.log(2), 0.2) != truth
    assert not bits and "bits" in bits.message and "nats" in bits.message
    zero_based = check.mean_exit_layer(truth - 1, logits, 0.2, kind="entropy")
    assert not zero_based and "Count layers from 1" in zero_based.message
    above = check.mean_exit_layer(mean_layer(-nats, -0.2), logits, 0.2, kind="entropy")
    assert not above and "*below* the threshold" in above.message
    assert check.mean_exit_layer(mean_layer(probs.max(-1) * -1, -0.9), logits, 0.9)  # max-prob stays the default
