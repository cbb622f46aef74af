"""CbAS/DbAS's weights, threshold schedule and sampling against hand computations
(optimizers/cbas.py)."""

import math

import numpy as np
import pytest
import torch

from optimizers.base import Problem
from optimizers.cbas import (
    CbAS,
    CbASParams,
    DbAS,
    SequenceVAE,
    cycle_weights,
    fit_vae,
    quantile,
    sample_new,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_quantile_interpolates_and_an_infeasible_lower_end_gives_minus_infinity():
    values = np.array([0.5, -np.inf, 0.1, -np.inf, 0.2])
    # sorted: -inf, -inf, 0.1, 0.2, 0.5; q=0.9: rank 3.6 -> 0.2 + 0.6 * 0.3
    assert quantile(values, 0.9) == pytest.approx(0.38)
    assert quantile(values, 0.5) == pytest.approx(0.1)  # rank 2
    assert quantile(values, 0.3) == -math.inf  # rank 1.2: between -inf and -inf
    assert quantile(values, 0.4) == -math.inf  # rank 1.6: between -inf and 0.1


def test_cbas_weights_are_prior_over_current_likelihood_above_the_raised_threshold():
    scores = np.array([0.1, 0.5, 0.3, 0.9])
    log_ratio = np.log([1.0, 2.0, 0.5, 3.0])
    # median of the scores: (0.3 + 0.5) / 2 = 0.4 > 0.2, so gamma rises to 0.4
    gamma, weights = cycle_weights(scores, 0.2, 0.5, log_ratio)
    assert gamma == pytest.approx(0.4)
    np.testing.assert_allclose(weights, [0.0, 2.0, 0.0, 3.0])


def test_dbas_weights_are_the_indicator_alone():
    gamma, weights = cycle_weights(np.array([0.1, 0.5, 0.3, 0.9]), 0.2, 0.5, None)
    assert gamma == pytest.approx(0.4)
    np.testing.assert_array_equal(weights, [0.0, 1.0, 0.0, 1.0])


def test_the_threshold_never_falls():
    """gamma starts at the last round's Q-quantile and follows the running maximum of the
    cycles' score quantiles."""
    gamma, schedule = 0.3, []
    for scores in ([0.1, 0.2, 0.4, 0.6], [0.0, 0.1, 0.1, 0.2], [0.5, 0.7, 0.9, 1.0]):
        gamma, weights = cycle_weights(np.array(scores), gamma, 0.5, None)
        schedule.append(gamma)
    # medians: 0.3, 0.1, 0.8
    assert schedule == pytest.approx([0.3, 0.3, 0.8])
    np.testing.assert_array_equal(weights, [0, 0, 1, 1])


def test_sampling_starts_at_the_most_likely_sequence_and_warms_up_on_repeats():
    probabilities = np.array([[0.1, 0.7, 0.1, 0.1], [0.05, 0.05, 0.8, 0.1],
                              [0.2, 0.1, 0.1, 0.6]])
    rng = np.random.default_rng(0)
    samples = sample_new(probabilities, 5, set(), rng)
    np.testing.assert_array_equal(samples[0], [1, 2, 3])  # at T = 0.001, the argmax
    assert len(np.unique(samples, axis=0)) == 5
    existing = {np.array([1, 2, 3], dtype=np.int64).tobytes()}
    samples = sample_new(probabilities, 3, existing, np.random.default_rng(0))
    assert len(samples) == 3 and not (samples == [1, 2, 3]).all(axis=1).any()


def test_rows_of_zero_weight_do_not_train_the_vae():
    X = np.array([[0, 1, 2], [3, 3, 3], [2, 1, 0]])

    def trained(rows, weights):
        vae = SequenceVAE(4, 3, 8, 2, torch.Generator().manual_seed(0))
        adam = torch.optim.Adam(vae.parameters(), lr=1e-2, foreach=True)
        fit_vae(vae, adam, rows, weights, epochs=3, batch_size=2, max_steps=None,
                generator=torch.Generator().manual_seed(1))
        return vae.log_prob(X)

    # weights are scaled to a maximum of 1 (which Adam would barely notice)
    np.testing.assert_array_equal(trained(X, np.array([2.0, 0.0, 2.0])),
                                  trained(X[[0, 2]], np.array([1.0, 1.0])))


def test_the_vae_learns_its_training_set():
    X = np.tile([[0, 1, 2, 3, 0, 1]], (50, 1))
    vae = SequenceVAE(4, 6, 16, 2, torch.Generator().manual_seed(0))
    before = vae.log_prob(X[:1])[0]
    adam = torch.optim.Adam(vae.parameters(), lr=1e-2, foreach=True)
    fit_vae(vae, adam, X, np.ones(50), epochs=20, batch_size=10, max_steps=None,
            generator=torch.Generator().manual_seed(1))
    assert vae.log_prob(X[:1])[0] > max(before, 6 * math.log(0.9))


@pytest.fixture
def problem():
    start = np.array([[0, 1, 2, 3, 0, 1, 2, 3]])
    return Problem(num_states=4, dim=8, budget=1000, initial_solution=start)


@pytest.mark.parametrize("cls", [CbAS, DbAS])
def test_rounds_send_new_sequences_best_first(cls, problem):
    """Round 1: distinct mutants of the start; round 2: the best new samples by the surrogate."""
    optimizer = cls(batch_size=10, model_queries_per_round=200, cycle_batch_size=50,
                    preset="cpu")
    optimizer.setup(problem, np.random.SeedSequence(0))
    optimizer.tell(optimizer.ask(100), np.array([0.1]))
    first = optimizer.ask(100)
    assert len(first) == 10 and len(np.unique(first, axis=0)) == 10
    assert not (first == problem.initial_solution).all(axis=1).any()
    optimizer.tell(first, np.linspace(0.0, 0.5, 10))
    second = optimizer.ask(100)
    assert 0 < len(second) <= 10 and optimizer.is_new(second).all()
    assert (np.diff(optimizer.surrogate.score(second)) <= 0).all()
    assert optimizer.model_queries == 200  # four cycles of 50


def test_dbas_is_cbas_without_importance_weights():
    assert DbAS.Params is CbAS.Params is CbASParams
    assert CbAS.importance_weights and not DbAS.importance_weights
    own = {name for name in vars(DbAS) if not name.startswith("__")}
    assert issubclass(DbAS, CbAS) and own == {"importance_weights"}
