"""Rough Mount Fuji: the same instances as pytorch-holo, and an exact optimum by brute force."""

import itertools

import numpy as np
import pytest
import torch
from holo.test_functions.closed_form import RoughMtFuji as HoloRMF

from holo_bench import Oracle, RoughMtFuji


@pytest.mark.parametrize("dim,a,std,seed",
                         [(2, 0.25, 1.0, 0), (10, 0.5, 0.3, 7), (64, 0.1, 2.0, 123)])
def test_same_instance_and_values_as_holo(dim, a, std, seed):
    holo = HoloRMF(dim, additive_term=a, random_term_std=std, random_seed=seed)
    ours = RoughMtFuji(dim, additive_term=a, random_term_std=std, random_seed=seed)
    np.testing.assert_array_equal(ours.centroid, holo.centroids.squeeze(0).numpy())
    np.testing.assert_array_equal(ours.random_term, holo._random_term.squeeze(0).numpy())
    X = ours.random_solution(300, rng=seed)
    # holo computes in float32; ours in float64 from the same float32 random field.
    np.testing.assert_allclose(ours(X), holo(torch.from_numpy(X)).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours.optimal_solution(),
                                  holo.optimal_solution().squeeze(0).numpy())


@pytest.mark.parametrize("seed", range(5))
def test_optimum_and_worst_value_by_brute_force(seed):
    f = RoughMtFuji(8, additive_term=0.4, random_seed=seed)
    X = np.array(list(itertools.product([0, 1], repeat=8)))
    values = f(X)
    assert np.isclose(f.optimal_value, values.max()) and np.isclose(f.worst_value, values.min())
    assert np.isclose(f(f.optimal_solution()), values.max())


def test_regret_on_rmf_is_distance_to_the_optimum():
    f = RoughMtFuji(8, random_seed=1)
    oracle = Oracle(f, budget=3)
    x = f.initial_solution()
    oracle.evaluate(x)
    assert np.isclose(oracle.regret, f.optimal_value - f(x))
    oracle.evaluate(f.optimal_solution())
    assert np.isclose(oracle.regret, 0.0, atol=1e-12)


def test_initial_solution_is_deterministic():
    f = RoughMtFuji(16, random_seed=3)
    np.testing.assert_array_equal(f.initial_solution(4), f.initial_solution(4))
