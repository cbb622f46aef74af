"""PEX's proximal frontier against hand computations (optimizers/pex.py)."""

import numpy as np
import pytest

from optimizers.base import Problem
from optimizers.pex import (
    PEX,
    frontier_batch,
    frontier_neighbours,
    hamming,
    proximal_frontier,
    random_mutations,
)


def test_frontier_neighbours_beat_every_value_closer_to_the_wild_type():
    distance = np.array([0, 1, 1, 1, 2, 2, 3])
    values = np.array([0.2, 0.1, 0.3, 0.25, 0.28, 0.4, 0.35])
    # d=0: 0.2 (height 0.2); d=1: best two 0.3, 0.25 both > 0.2 (height 0.3);
    # d=2: 0.4 > 0.3, 0.28 not (height 0.4); d=3: 0.35 not
    np.testing.assert_array_equal(frontier_neighbours(distance, values, size=2), [0, 2, 3, 5])


def test_frontier_neighbours_of_infeasible_labels_are_none():
    distance = np.array([0, 1])
    assert len(frontier_neighbours(distance, np.full(2, -np.inf), size=5)) == 0


def test_proximal_frontier_is_the_rising_part_of_the_upper_hull():
    # (3, 0.3) lies below the chord from (2, 0.5) to (4, 0.65); (5, 0.3) falls after the peak
    points = [(1, 0.1), (2, 0.5), (3, 0.3), (4, 0.65), (5, 0.3)]
    assert proximal_frontier(points) == [(1, 0.1), (2, 0.5), (4, 0.65)]
    # (2, 0.2) lies below the chord from (1, 0.1) to (3, 0.9)
    assert proximal_frontier([(1, 0.1), (2, 0.2), (3, 0.9)]) == [(1, 0.1), (3, 0.9)]
    # collinear points stay
    assert proximal_frontier([(1, 0.1), (2, 0.2), (3, 0.3)]) == [(1, 0.1), (2, 0.2), (3, 0.3)]


def test_the_batch_peels_the_frontier_nearest_first():
    distance = np.array([1, 1, 2, 2, 3])
    scores = np.array([0.1, 0.05, 0.5, 0.4, 0.3])
    # peel 1: (1, .1), (2, .5), (3, .3) -> (3, .3) falls after the peak: take 0, 2
    # peel 2: (1, .05), (2, .4), (3, .3) -> take 1, 3; peel 3: (3, .3) alone -> take 4
    np.testing.assert_array_equal(frontier_batch(distance, scores, 5), [0, 2, 1, 3, 4])
    np.testing.assert_array_equal(frontier_batch(distance, scores, 3), [0, 2, 1])


def test_random_mutations_change_at_most_that_many_positions():
    parents = np.zeros((1000, 10), dtype=np.int64)
    mutated = random_mutations(parents, 2, 20, np.random.default_rng(0))
    changed = hamming(mutated, parents[0])
    assert changed.max() == 2 and (changed == 2).mean() > 0.8


@pytest.fixture
def problem():
    start = np.array([[0, 1, 2, 3, 0, 1, 2, 3]])
    return Problem(num_states=4, dim=8, budget=1000, initial_solution=start)


def test_rounds_send_new_mutants_of_the_start_then_of_the_frontier(problem, one_torch_thread):
    """Round 1 (only the wild type measured): 2-mutation mutants of it. Round 2: the frontier
    batch of mutants of the frontier neighbours, each within 2 of one of them."""
    optimizer = PEX(batch_size=10, model_queries_per_round=100, preset="cpu")
    optimizer.setup(problem, np.random.SeedSequence(0))
    wild_type = problem.initial_solution[0]
    optimizer.tell(optimizer.ask(100), np.array([0.1]))
    first = optimizer.ask(100)
    assert len(first) == 10 and len(np.unique(first, axis=0)) == 10
    assert (hamming(first, wild_type) >= 1).all() and (hamming(first, wild_type) <= 2).all()
    values = np.linspace(0.0, 0.5, 10)
    optimizer.tell(first, values)
    second = optimizer.ask(100)
    X = np.concatenate([problem.initial_solution, first])
    near = X[frontier_neighbours(hamming(X, wild_type), np.r_[0.1, values], size=5)]
    assert len(second) == 10
    assert all(min(hamming(near, row)) <= 2 for row in second)
    assert not any((np.concatenate([X, second[:i]]) == row).all(axis=1).any()
                   for i, row in enumerate(second))
