"""The one definition of each measure, against hand-worked values."""

import numpy as np
import pytest

from holo_bench.measures import (
    SOLVED_TOLERANCE,
    best_so_far,
    curve_at,
    evaluation_grid,
    evaluations_to_reach,
    is_solved,
    regret,
)


def test_regret_is_the_gap_to_the_optimum_floored_at_the_worst_value():
    assert regret(0.75, 1.0, 0.0) == 0.25
    assert regret(-np.inf, 1.0, 0.0) == 1.0
    np.testing.assert_array_equal(regret(np.array([-np.inf, 0.5, 1.0]), 1.0, 0.0), [1.0, 0.5, 0.0])


def test_solved_is_regret_within_the_tolerance():
    assert is_solved(0.0) and is_solved(5.55e-17) and is_solved(SOLVED_TOLERANCE)
    assert not is_solved(1e-6) and not is_solved(1 / 256)
    np.testing.assert_array_equal(is_solved(np.array([0.0, 0.1])), [True, False])


def test_best_so_far_skips_infeasible_values():
    values = np.array([-np.inf, 0.2, 0.9, 0.5])
    np.testing.assert_array_equal(best_so_far(values, np.array([False, True, False, True])),
                                  [-np.inf, 0.2, 0.2, 0.5])


def test_evaluation_grid_is_log_spaced_and_always_ends_at_the_budget():
    for budget in (1, 7, 2818, 3000, 25_119, 28_000, 100_000):
        grid = evaluation_grid(budget)
        assert grid[0] == 1 and grid[-1] == budget and np.all(np.diff(grid) > 0)
    assert {1, 10, 100, 1000, 10_000} <= set(evaluation_grid(28_000).tolist())
    assert {13, 126, 1259, 12589} <= set(evaluation_grid(10**6).tolist())  # 10^(1/20) steps


def test_curve_at_reads_the_last_query_within_each_count():
    evaluations = np.array([1, 2, 2, 3, 5])  # the third query was a free repeat
    curve = np.array([0.9, 0.8, 0.8, 0.4, 0.1])
    np.testing.assert_array_equal(curve_at(np.array([1, 2, 4, 5, 9]), evaluations, curve, 1.0),
                                  [0.9, 0.8, 0.4, 0.1, 0.1])
    np.testing.assert_array_equal(curve_at(np.array([1, 2]), np.array([], dtype=int), np.array([]),
                                           1.0),
                                  [1.0, 1.0])


def test_evaluations_to_reach_counts_charged_evaluations():
    evaluations = np.array([1, 1, 2, 3])
    assert evaluations_to_reach(evaluations, np.array([False, False, False, True])) == 3
    assert evaluations_to_reach(evaluations, np.zeros(4, dtype=bool)) is None


def test_mean_regret_is_the_mean_over_every_charged_evaluation_of_the_budget():
    from holo_bench.measures import mean_regret

    evaluations = np.array([1, 2, 2, 5])  # the third query was a free repeat
    regret = np.array([0.9, 0.8, 0.8, 0.5])
    # evaluations 1..6 see 0.9, 0.8, 0.8, 0.8, 0.5, 0.5 (kept after the run's last query)
    assert mean_regret(evaluations, regret, 6, start=1.0) == pytest.approx(4.3 / 6)
    # a run whose first charged query comes at evaluation 3 has the start regret before it
    assert mean_regret(np.array([3]), np.array([0.2]), 4, start=2.0) == pytest.approx(4.4 / 4)
