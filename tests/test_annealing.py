"""Simulated annealing (``optimizers/annealing.py``).

Expected values: the geometric schedule at its ends and midpoint, Metropolis' acceptance
probability ``exp(delta / T)`` (from the uniforms drawn, and from a whole run on two sequences,
where every acceptance shows in the next ask), and whole runs through the runner.
"""

import math

import numpy as np
import pytest
from scipy.stats import binomtest
from test_ea import check_killed_run_resumes, check_runs_verify_and_repeat

from optimizers.annealing import metropolis_accepts, temperature
from optimizers.base import Problem
from optimizers.registry import make_optimizer

ALPHA = 0.01


def test_temperature_is_geometric_from_the_initial_to_the_final_one():
    assert temperature(0, 1000, 0.33, 0.00033) == pytest.approx(0.33, rel=1e-12)
    assert temperature(1000, 1000, 0.33, 0.00033) == pytest.approx(0.00033, rel=1e-12)
    assert temperature(500, 1000, 0.33, 0.00033) == pytest.approx(math.sqrt(0.33 * 0.00033))
    ratios = np.diff(np.log(temperature(np.arange(3000), 1000, 0.33, 0.00033)))
    np.testing.assert_allclose(ratios, math.log(0.001) / 1000)  # the same factor every ask
    assert temperature(7, 10, 0.5, 0.5) == 0.5  # constant when final = initial


def test_metropolis_always_takes_improvements_and_ties_never_infeasible_from_feasible():
    new = np.array([0.6, 0.5, -np.inf, -np.inf, 0.0])
    current = np.array([0.5, 0.5, 0.5, -np.inf, -np.inf])
    # the uniform 1 - 1e-12 refuses anything with a probability below 1
    accepted = metropolis_accepts(new, current, np.full(5, 1e9), np.full(5, 1 - 1e-12))
    assert accepted.tolist() == [True, True, False, True, True]


@pytest.mark.parametrize("delta,heat", [(-0.1, 0.1), (-0.05, 0.2), (-0.3, 0.1)])
def test_metropolis_takes_a_worse_value_with_probability_exp_delta_over_t(delta, heat):
    uniform = np.random.default_rng(0).random(100_000)
    accepted = metropolis_accepts(np.full(len(uniform), 0.5 + delta), np.full(len(uniform), 0.5),
                                  heat, uniform)
    assert binomtest(int(accepted.sum()), len(uniform), math.exp(delta / heat)).pvalue > ALPHA


def two_sequence_run(asks, values, budget, **params):
    """SA on one position with two tokens: a proposal is always the other token, so the next
    ask after proposing 1 from 0 is 0 exactly when 1 was accepted. ``values[token]`` is told.
    Returns the tokens asked."""
    sa = make_optimizer("sa", params)
    sa.setup(Problem(2, 1, budget, np.zeros((1, 1), dtype=np.int64)), np.random.SeedSequence(0))
    asked = []
    for _ in range(asks):
        X = sa.ask(1)
        asked.append(int(X[0, 0]))
        sa.tell(X, np.array([values[asked[-1]]]))
    return np.array(asked)


def test_a_run_accepts_worse_proposals_at_the_metropolis_rate():
    # 0 has value 0, 1 has -0.05; at the constant temperature 0.05 a move to 1 has chance 1/e
    asked = two_sequence_run(20_000, {0: 0.0, 1: -0.05}, 10**6,
                             initial_temperature=0.05, final_temperature=0.05)
    assert asked[0] == 0
    from_zero = asked[1:-1] == 1  # proposals of 1, from the state 0 (after an ask of 0 or a
    # rejected 1); a proposal of 0 (from the state 1) is better and always accepted
    proposals = np.flatnonzero(from_zero) + 1
    accepted = asked[proposals + 1] == 0
    assert binomtest(int(accepted.sum()), len(accepted), math.exp(-1)).pvalue > ALPHA


def test_a_run_cools_as_its_asks_go_by():
    """A worse proposal at ask k is taken with chance exp(-d / T_k): in each stretch of the run,
    the count of those taken is within 4 standard deviations of the sum of their chances."""
    budget, d = 2000, 0.01
    asked = two_sequence_run(6000, {0: 0.0, 1: -d}, budget,
                             initial_temperature=1.0, final_temperature=0.001)
    proposals = np.flatnonzero(asked[1:-1] == 1) + 1  # ask numbers (the start is ask 0)
    accepted = asked[proposals + 1] == 0
    chance = np.exp(-d / temperature(proposals, budget, 1.0, 0.001))
    for stretch in ((proposals < 500), (proposals >= 500) & (proposals < 1500),
                    (proposals >= 1500)):
        taken, p = accepted[stretch], chance[stretch]
        assert abs(taken.sum() - p.sum()) <= 4 * np.sqrt((p * (1 - p)).sum()) + 1e-9
    assert accepted[proposals < 200].mean() > 0.8  # T > 0.5: exp(-d / T) > 0.98
    assert not accepted[proposals > 1.2 * budget].any()  # T < 3e-4: exp(-d / T) < 1e-17


def test_from_a_feasible_state_an_infeasible_proposal_is_never_taken():
    asked = two_sequence_run(500, {0: 0.0, 1: -np.inf}, 1000)
    assert asked.tolist() == [0] + [1] * 499


def test_from_an_infeasible_start_every_proposal_is_taken_until_a_feasible_one():
    assert two_sequence_run(6, {0: -np.inf, 1: -np.inf}, 1000).tolist() == [0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("params,message", [
    ({"initial_temperature": 0.0}, "initial_temperature must be"),
    ({"final_temperature": 0.0}, "final_temperature must be"),
    ({"initial_temperature": 0.1, "final_temperature": 0.2}, "final_temperature must be"),
])
def test_bad_parameters_are_rejected_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer("sa", params)


def test_defaults_are_nevergrads_exp09auto_schedule_on_the_value_scale():
    # nevergrad: 0.33 * amplitude * 0.001 ** (k / budget), the amplitude fixed at 1
    assert make_optimizer("sa").config() == {"initial_temperature": 0.33,
                                             "final_temperature": 0.00033}


def test_tell_rejects_values_that_do_not_match_the_ask():
    sa = make_optimizer("sa")
    sa.setup(Problem(8, 16, 1000, np.zeros((1, 16), dtype=np.int64)), 0)
    X = sa.ask(5)
    assert X.shape == (1, 16)  # one proposal per ask
    with pytest.raises(ValueError, match="the 1 sequences of the last ask"):
        sa.tell(X, np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        sa.tell(X, np.full(1, np.nan))


@pytest.mark.parametrize("count", ["distinct", "all"])
def test_runs_verify_and_repeat_under_both_counting_rules(tmp_path, count):
    check_runs_verify_and_repeat(tmp_path, "sa", count)


def test_killed_run_resumes_with_the_trace_of_an_unkilled_run(tmp_path):
    check_killed_run_resumes(tmp_path, "sa", 700)
