"""Ehrlich instances and values are the same as pytorch-holo 0.0.5's, on many random
configurations."""

import numpy as np
import pytest
import torch
from holo.test_functions.closed_form import Ehrlich as HoloEhrlich

from holo_bench import Ehrlich


def random_configurations(count, seed):
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        v = int(rng.choice([3, 4, 5, 8, 20, 32]))
        k = int(rng.integers(2, 7))
        c = int(rng.integers(1, 6))
        L = c * k + int(rng.integers(0, 60))
        q = int(rng.choice([d for d in range(1, k + 1) if k % d == 0]))
        eps = float(rng.choice([0.0, 0.0, 0.25, 1.3, 3.9]))
        configs.append((v, L, c, k, q, eps, int(rng.integers(0, 2**31))))
    return configs


def probe_sequences(f: Ehrlich, rng: np.random.Generator) -> np.ndarray:
    """Random (mostly infeasible), feasible chains, and near-optimal mutants of the optimum."""
    optimum = np.tile(f.optimal_solution(), (150, 1))
    mutate = rng.random(optimum.shape) < rng.uniform(0.0, 0.3, size=(150, 1))
    optimum[mutate] = rng.integers(0, f.num_states, mutate.sum())
    return np.concatenate(
        [rng.integers(0, f.num_states, (150, f.dim)), f.initial_solution(150), optimum]
    )


@pytest.mark.parametrize("config", random_configurations(60, seed=1234))
def test_same_instance_and_values_as_holo(config):
    v, L, c, k, q, eps, seed = config
    holo = HoloEhrlich(v, L, c, k, q, epistasis_factor=eps, random_seed=seed)
    ours = Ehrlich(v, L, c, k, q, epistasis_factor=eps, random_seed=seed)

    np.testing.assert_array_equal(ours.transition_matrix, holo.transition_matrix.numpy())
    np.testing.assert_array_equal(ours.stationary_dist, holo.stationary_dist.squeeze(-1).numpy())
    np.testing.assert_array_equal(ours.motifs, torch.stack(holo.motifs).numpy())
    np.testing.assert_array_equal(ours.spacings, torch.stack(holo.spacings).numpy())
    np.testing.assert_array_equal(ours.initial_solution(), holo.initial_solution().numpy())
    np.testing.assert_array_equal(ours.initial_solution(7), holo.initial_solution(7).numpy())
    np.testing.assert_array_equal(ours.optimal_solution(), holo.optimal_solution().numpy())

    X = probe_sequences(ours, np.random.default_rng(seed))
    expected = holo(torch.from_numpy(X)).numpy().astype(np.float64)
    values = ours(X)
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(ours.is_feasible(X), expected > -np.inf)


def test_evaluation_strategies_agree_with_holo_at_every_batch_size():
    """Small batches use a gather, large ones slabs and blocks: all must give holo's values."""
    ours = Ehrlich(32, 64, 3, 4, 2, random_seed=5)
    holo = HoloEhrlich(32, 64, 3, 4, 2, random_seed=5)
    X = probe_sequences(ours, np.random.default_rng(0))
    X = np.concatenate([X] * 12)  # > one block of 4096
    expected = holo(torch.from_numpy(X)).numpy().astype(np.float64)
    np.testing.assert_array_equal(ours(X), expected)
    for size in (1, 2, 8, 9, 100):
        np.testing.assert_array_equal(ours(X[:size]), expected[:size])
    assert ours(X[3]) == expected[3]


def test_noise_and_negation_follow_holo_conventions():
    f = Ehrlich(32, 32, 4, 4, 4, random_seed=50494, negate=True)
    X = np.stack([f.optimal_solution(), f.random_solution(rng=0)])
    np.testing.assert_array_equal(f(X), [-1.0, np.inf])
    noisy = Ehrlich(32, 32, 4, 4, 4, random_seed=50494, noise_std=0.1)
    values = noisy(np.tile(f.optimal_solution(), (2000, 1)))
    assert abs(values.mean() - 1.0) < 0.01 and abs(values.std() - 0.1) < 0.01
    np.testing.assert_array_equal(noisy.evaluate_true(f.optimal_solution()), [1.0])


def test_non_ergodic_instances_are_refused_exactly_when_holo_refuses_them():
    for seed in range(10):
        try:
            HoloEhrlich(2, 8, 1, 2, random_seed=seed)
            holo_refuses = False
        except RuntimeError:
            holo_refuses = True
        try:
            Ehrlich(2, 8, 1, 2, random_seed=seed)
            ours_refuses = False
        except ValueError:
            ours_refuses = True
        assert ours_refuses == holo_refuses, seed
