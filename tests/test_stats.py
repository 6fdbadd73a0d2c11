"""minikit.stats: intervals and paired tests against hand computations, and verdicts that can say "cannot tell"."""

import math

import numpy as np
import pytest

from minikit import stats


def test_wilson_interval_matches_a_hand_computation():
    # 9 right of 10, z = 1.959964: p = 0.9, centre = (0.9 + z²/20) / (1 + z²/10), half-width
    # = z·√(0.9·0.1/10 + z²/400) / (1 + z²/10), worked out by hand: 0.5958 and 0.9821.
    low, high = stats.wilson_interval(9, 10)
    assert low == pytest.approx(0.5958, abs=1e-4)
    assert high == pytest.approx(0.9821, abs=1e-4)


def test_wilson_interval_at_the_edges_stays_in_range_and_is_not_degenerate():
    # The textbook Wald interval gives [1, 1] for 9 of 9; Wilson gives [0.7009, 1]: 9 examples prove little.
    low, high = stats.wilson_interval(9, 9)
    assert low == pytest.approx(0.7009, abs=1e-4) and high == 1.0
    low, high = stats.wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)


def test_wilson_interval_narrows_with_more_examples():
    small = stats.wilson_interval(30, 40)
    large = stats.wilson_interval(300, 400)
    assert small[1] - small[0] > 2.5 * (large[1] - large[0])


@pytest.mark.parametrize("successes, n", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_interval_refuses_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="n="):
        stats.wilson_interval(successes, n)


def test_mcnemar_exact_p_is_the_two_sided_binomial_tail():
    # 6 examples only the first gets right, 1 only the second: 2 × P(X ≤ 1 | 7, ½) = 2 × 8/128.
    assert stats.mcnemar_p(6, 1) == pytest.approx(2 * (1 + 7) / 2 ** 7)
    assert stats.mcnemar_p(0, 0) == 1.0
    assert stats.mcnemar_p(3, 3) == pytest.approx(1.0)


def test_paired_comparison_counts_only_the_disagreements():
    variant = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    reference = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 1], dtype=bool)
    result = stats.paired_comparison(variant, reference)
    assert (result.n, result.only_variant, result.only_reference) == (10, 1, 2)
    assert result.points == pytest.approx(-10.0)
    assert result.p_value == pytest.approx(1.0)  # 1 against 2 of 3 disagreements: no evidence either way
    assert result.low < result.points < result.high
    assert result.change == "cannot tell (n = 10)"


def test_paired_interval_matches_newcombe_method_10_by_hand():
    # 30 both right, 12 only the variant, 1 only the reference, 7 neither (n = 50).
    variant = np.array([1] * 30 + [1] * 12 + [0] * 1 + [0] * 7, dtype=bool)
    reference = np.array([1] * 30 + [0] * 12 + [1] * 1 + [0] * 7, dtype=bool)
    result = stats.paired_comparison(variant, reference)
    p1, p2 = 42 / 50, 31 / 50
    l1, u1 = stats.wilson_interval(42, 50)
    l2, u2 = stats.wilson_interval(31, 50)
    phi = (30 * 7 - 12 * 1) / math.sqrt(42 * 8 * 31 * 19)
    low = (p1 - p2) - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = (p1 - p2) + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert result.points == pytest.approx(22.0)
    assert result.low == pytest.approx(100 * low) and result.high == pytest.approx(100 * high)
    assert result.p_value == pytest.approx(2 * 14 / 2 ** 13)  # 2 × P(X ≤ 1 | 13, ½)
    assert 0 < result.low < 22 < result.high and result.change == "better"


def test_few_disagreements_are_not_a_difference():
    # 8 against 2 of 50: +12 points, but McNemar's p is 0.11 and the interval holds 0.
    variant = np.array([1] * 30 + [1] * 8 + [0] * 2 + [0] * 10, dtype=bool)
    reference = np.array([1] * 30 + [0] * 8 + [1] * 2 + [0] * 10, dtype=bool)
    result = stats.paired_comparison(variant, reference)
    assert result.points == pytest.approx(12.0) and result.p_value > 0.05
    assert result.low < 0 < result.high and result.change == "cannot tell (n = 50)"


def test_a_change_needs_the_interval_and_the_test_to_agree():
    # 5 only the reference gets right, none only the variant (n = 75): Newcombe's interval just clears 0,
    # McNemar's p = 2 × 0.5⁵ = 0.0625. Printed side by side, "worse" would contradict p; so: cannot tell.
    variant = np.array([1] * 65 + [0] * 5 + [0] * 5, dtype=bool)
    reference = np.array([1] * 65 + [1] * 5 + [0] * 5, dtype=bool)
    result = stats.paired_comparison(variant, reference)
    assert result.high < 0 and result.p_value == pytest.approx(0.0625)
    assert result.change == "cannot tell (n = 75)"


def test_identical_models_cannot_be_told_apart():
    same = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    result = stats.paired_comparison(same, same)
    assert result.points == 0 and result.p_value == 1.0 and result.low < 0 < result.high


def test_paired_comparison_refuses_different_examples():
    with pytest.raises(ValueError, match="same examples"):
        stats.paired_comparison([True, False], [True, False, True])
    with pytest.raises(ValueError, match="True/False"):
        stats.paired_comparison([0.5, 1.0], [1, 1])


def test_loss_verdicts_hold_fail_or_cannot_tell():
    def comparison(low, high, n=300):
        return stats.PairedComparison(n=n, points=(low + high) / 2, low=low, high=high, p_value=0.5,
                                      only_variant=0, only_reference=0)

    assert stats.loss_verdict(comparison(-1.5, 0.5), 2) == "holds"  # at worst 1.5 points lost: < 2
    assert stats.loss_verdict(comparison(-5.0, -2.5), 2) == "fails"  # at best 2.5 points lost
    assert stats.loss_verdict(comparison(-3.0, 0.4), 2) == "cannot tell (n = 300)"
    assert stats.loss_verdict(comparison(-1.0, 0.0), 1, strict=False) == "holds"  # ≤ 1 point: the bound counts
    assert stats.loss_verdict(comparison(-1.0, 0.0), 1, strict=True) == "cannot tell (n = 300)"


def test_chance_level_on_nine_examples_supports_no_verdict():
    # Issue 25's tickets: 3 of 9 right for the baseline and for its compressed copy.
    baseline = np.array([1, 0, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    result = stats.paired_comparison(baseline, baseline)
    assert stats.loss_verdict(result, 2).startswith("cannot tell")


def test_majority_class_comes_from_the_training_labels():
    label, right = stats.majority_correct([0, 1, 1, 2, 1], [1, 0, 1, 2])
    assert label == 1 and right.tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="empty"):
        stats.majority_correct([], [1])


def test_format_accuracy_names_its_examples():
    assert stats.format_accuracy(9, 10) == "90.00% [59.6, 98.2], n = 10"


def test_scored_gives_each_run_its_accuracy_n_and_wilson_bounds():
    from minikit.stats import scored, wilson_interval
    columns = scored([[1, 0, 1, 1], (0, 0)])
    assert columns["accuracy"] == [0.75, 0.0] and columns["n"] == [4, 2]
    assert (columns["low"][0], columns["high"][0]) == wilson_interval(3, 4)
    assert (columns["low"][1], columns["high"][1]) == wilson_interval(0, 2)
