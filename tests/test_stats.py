"""The leaderboard's statistics (tests, Holm, bootstrap intervals, ERT) against hand computations
and independent estimates."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from leaderboard.aggregate import _fixed_target
from leaderboard.render import fixed_target_grid
from leaderboard.stats import (
    average_ranks,
    bootstrap_interval,
    friedman_p,
    holm,
    nemenyi_critical_difference,
    one_sided_p,
    verdict,
)


def test_holm_multiplies_the_ith_smallest_by_m_minus_i_plus_1_and_keeps_the_order():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> raised to 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.3, 0.6]), [0.6, 0.6])  # capped below by the running max
    np.testing.assert_allclose(holm([0.4, 0.9]), [0.8, 0.9])
    np.testing.assert_allclose(holm([0.7, 0.8]), [1.0, 1.0])  # 1.4 and 0.8: capped at 1


def test_holm_leaves_untested_cells_out_of_the_count():
    adjusted = holm([math.nan, 0.02, 0.5])
    assert math.isnan(adjusted[0])
    np.testing.assert_allclose(adjusted[1:], [0.04, 0.5])  # m = 2, not 3
    assert holm([]).shape == (0,)


def test_one_sided_mann_whitney_by_exact_enumeration():
    # x = {1, 3} among {1, 2, 3, 4, 5}: x's ranks {1, 3}, U = 1 + 3 - 3 = 1. Of the C(5, 2) = 10
    # rank pairs, U <= 1 for {1, 2} and {1, 3} (2 of 10), U >= 1 for all but {1, 2} (9 of 10).
    lower, higher = one_sided_p([1, 3], [2, 4, 5])
    assert lower == pytest.approx(0.2) and higher == pytest.approx(0.9)
    lower, higher = one_sided_p([4, 5], [1, 2, 3])  # the most extreme of 10: U = 6
    assert lower == pytest.approx(1.0) and higher == pytest.approx(0.1)
    assert all(math.isnan(p) for p in one_sided_p([], [1.0]))


def test_verdicts_read_adjusted_p_values_at_alpha():
    assert verdict(0.01, 1.0) == "better" and verdict(1.0, 0.049) == "worse"
    assert verdict(0.05, 0.9) == "no evidence"
    assert verdict(math.nan, math.nan) == "no evidence"


def test_bootstrap_interval_of_a_mean_matches_the_normal_theory_width():
    values = np.random.default_rng(1).normal(size=40)
    low, high = bootstrap_interval(values, np.mean)
    # the bootstrap standard error of a mean is the sample's (biased) sd over sqrt(n)
    half = 1.96 * values.std() / math.sqrt(len(values))
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert bootstrap_interval(values, np.mean) == (low, high)  # seeded: the same page twice


def test_bootstrap_interval_of_a_median_by_enumeration_and_degenerate_samples():
    # resampling {0, 1}: medians 0 (1/4), 0.5 (1/2), 1 (1/4): the 2.5% and 97.5% points are 0, 1
    assert bootstrap_interval([0.0, 1.0], np.median) == (0.0, 1.0)
    assert bootstrap_interval([0.25, 0.25, 0.25], np.median) == (0.25, 0.25)
    assert all(math.isnan(v) for v in bootstrap_interval([0.5], np.median))


def test_fixed_target_ert_by_hand_including_zero_successes():
    """ERT = evaluations of every run up to the target (or all it was charged) / successes."""
    targets = pd.DataFrame({
        "problem": "p", "optimizer": "ga", "target": [0.5, 0.5, 0.5, 1.0, 1.0, 1.0],
        "target_regret": [0.5, 0.5, 0.5, 0.0, 0.0, 0.0],
        "evaluations": [10, 30, None, None, None, None], "used": [50, 60, 100, 50, 60, 100]})
    table = _fixed_target(targets).set_index("target")
    assert table.loc[0.5, "ert"] == (10 + 30 + 100) / 2
    assert table.loc[0.5, "successes"] == 2 and table.loc[0.5, "success_rate"] == 2 / 3
    assert math.isinf(table.loc[1.0, "ert"]) and table.loc[1.0, "successes"] == 0
    headers, grid = fixed_target_grid(_fixed_target(targets), "p")
    assert headers == ["regret ≤ 0.5", "regret ≤ 0"] and grid == [["ga", "70 (2/3)", "∞ (0/3)"]]


def test_nemenyi_critical_difference_uses_demsars_published_q_values():
    # Demsar (2006), Table 5(a): q_0.05 for k = 2..10 classifiers
    published = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    for k, q in zip(range(2, 11), published):
        cd = nemenyi_critical_difference(k, 14)
        assert cd / math.sqrt(k * (k + 1) / (6 * 14)) == pytest.approx(q, abs=2e-3)


def test_average_ranks_and_friedman_by_hand():
    scores = np.array([[0.1, 0.5, 0.9], [0.2, 0.2, 0.7], [0.3, 0.1, 0.8], [0.0, 0.4, 0.6]])
    ranks = np.array([[1, 2, 3], [1.5, 1.5, 3], [2, 1, 3], [1, 2, 3]])
    np.testing.assert_allclose(average_ranks(scores), ranks.mean(axis=0))
    # Friedman's statistic with the tie correction (one tied pair in one of the n = 4 blocks)
    n, k = ranks.shape
    sums = ranks.sum(axis=0)
    statistic = 12 / (n * k * (k + 1)) * np.sum(sums ** 2) - 3 * n * (k + 1)
    statistic /= 1 - (2 ** 3 - 2) / (n * (k ** 3 - k))
    assert friedman_p(scores) == pytest.approx(chi2.sf(statistic, k - 1))
    assert math.isnan(friedman_p(scores[:, :2])) and math.isnan(friedman_p(scores[:1]))
