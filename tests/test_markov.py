"""The banned-transition Markov chain: mask, matrix, stationary distribution, feasibility."""

import numpy as np
import pytest
import torch

from holo_bench import Ehrlich
from holo_bench.markov import (
    banded_mask,
    is_primitive,
    sample_transition_matrix,
    stationary_distribution,
    transitions_allowed,
)


@pytest.mark.parametrize("v,b", [(32, 12), (8, 3), (5, 2), (4, 1), (3, 1)])
def test_banded_mask_allows_the_wrapped_band(v, b):
    expected = np.zeros((v, v), dtype=bool)
    for i in range(v):
        for j in range(i - b, i + b + 1):
            expected[i, j % v] = True
    np.testing.assert_array_equal(banded_mask(v, b).numpy(), expected)


def test_stationary_distribution_is_invariant():
    P = sample_transition_matrix(20, 8, torch.Generator().manual_seed(3))
    pi = stationary_distribution(P).double().numpy()
    assert np.isclose(pi.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(pi @ P.double().numpy(), pi, atol=1e-5)


def test_two_states_are_not_ergodic_for_most_seeds():
    failures = 0
    for seed in range(10):
        try:
            Ehrlich(2, 8, 1, 2, random_seed=seed)
        except ValueError as err:
            assert "not ergodic" in str(err)
            failures += 1
    assert failures >= 5


def test_feasibility_matches_brute_force():
    rng = np.random.default_rng(0)
    allowed = rng.random((6, 6)) < 0.7
    X = rng.integers(0, 6, (500, 9))
    expected = [all(allowed[a, b] for a, b in zip(x[:-1], x[1:])) for x in X]
    np.testing.assert_array_equal(transitions_allowed(np.ascontiguousarray(X.T), allowed), expected)


def test_alphabets_of_three_and_five_states_have_no_banned_transitions():
    for v in (3, 5):
        f = Ehrlich(v, 12, 2, 3, random_seed=1)
        assert f.allowed.all()
        assert f.is_feasible(f.random_solution(200, rng=0)).all()


def test_primitivity_matches_the_float_power_check():
    """Exact boolean check against Wielandt's float64 power, on random sparse supports."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = int(rng.integers(2, 7))
        support = rng.random((v, v)) < rng.uniform(0.2, 0.6)
        power = np.linalg.matrix_power(support.astype(np.float64), (v - 1) ** 2 + 1)
        assert is_primitive(support) == bool((power > 0).all())
