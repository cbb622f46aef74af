"""AdaLead's distinctive steps against hand computations (optimizers/adalead.py)."""

import numpy as np
import pytest

from optimizers.adalead import AdaLead, recombine, rollout, threshold_set
from optimizers.base import Problem


def test_threshold_set_keeps_values_within_the_threshold_of_the_best():
    values = np.array([0.5, 0.49, 0.47, -np.inf, 0.475, 0.1])
    # 0.5 * (1 - 0.05) = 0.475
    np.testing.assert_array_equal(threshold_set(values, 0.05), [1, 1, 0, 0, 1, 0])


def test_threshold_set_of_a_negative_best_widens_downwards():
    values = np.array([-1.0, -1.04, -1.06])
    # -1 * (1 + 0.05) = -1.05
    np.testing.assert_array_equal(threshold_set(values, 0.05), [1, 1, 0])


def test_threshold_set_of_a_zero_best_is_every_feasible_zero_and_of_no_feasible_all():
    np.testing.assert_array_equal(threshold_set(np.array([0.0, -np.inf, 0.0]), 0.05), [1, 0, 1])
    np.testing.assert_array_equal(threshold_set(np.full(3, -np.inf), 0.05), [1, 1, 1])


def test_recombination_switches_parents_at_each_crossover():
    """Rate 1 switches at every position, so a pair's children alternate between the parents;
    rate 0 swaps whole parents; an odd parent out is dropped."""
    parents = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2]])
    rng = np.random.default_rng(0)
    order = np.random.default_rng(0).permutation(3)
    a, b = parents[order[0]], parents[order[1]]
    children = recombine(parents, 1.0, rng)
    np.testing.assert_array_equal(children, [[a[0], b[0], a[0], b[0]], [b[0], a[0], b[0], a[0]]])
    np.testing.assert_array_equal(recombine(parents, 0.0, np.random.default_rng(0)), [b, a])
    np.testing.assert_array_equal(recombine(parents[:1], 1.0, rng), parents[:1])


def test_a_rollout_goes_on_while_children_score_at_least_their_root():
    """Two roots of score 5 and 0. Child n of a node is the node plus one (token 0), scored by a
    table: root 0's line scores 6, 4, 5, 1 (continues after 6, 4 < 5 stops it: the rule compares
    with the root, not the parent, so after 6 the 4 ends it); root 1's line scores 3, 2, 0, -1
    (3 >= 0, 2 >= 0, 0 >= 0 go on, -1 stops)."""
    table = {(0,): 5.0, (1,): 6.0, (2,): 4.0, (3,): 5.0,
             (10,): 0.0, (11,): 3.0, (12,): 2.0, (13,): 0.0, (14,): -1.0, (15,): 7.0}

    def score(X):
        return np.array([table[tuple(row)] for row in X])

    def children_of(nodes):
        return nodes + 1, np.arange(len(nodes))

    children, scores = rollout(np.array([[0], [10]]), score, children_of, lambda: True)
    # step 1: 1 (6 >= 5 on), 11 (3 >= 0 on); step 2: 2 (4 < 5 stop), 12 (2 >= 0 on);
    # step 3: 13 (0 >= 0 on); step 4: 14 (-1 < 0 stop)
    np.testing.assert_array_equal(children.ravel(), [1, 11, 2, 12, 13, 14])
    np.testing.assert_array_equal(scores, [6, 3, 4, 2, 0, -1])


def test_a_rollout_stops_when_the_model_queries_run_out():
    calls = []

    def children_of(nodes):
        return nodes + 1, np.arange(len(nodes))

    children, _ = rollout(np.array([[0]]), lambda X: np.zeros(len(X)), children_of,
                          lambda: calls.append(1) or len(calls) <= 3)
    np.testing.assert_array_equal(children.ravel(), [1, 2, 3])


def test_a_node_without_a_new_child_leaves_the_rollout():
    """Node 0 never gets a new child: its rollout ends; node 10's goes on (scores tie its root)
    until the queries run out after two steps."""
    steps = []

    def children_of(nodes):
        steps.append(len(nodes))
        got = nodes[:, 0] != 0
        return nodes[got] + 1, np.flatnonzero(got)

    children, _ = rollout(np.array([[0], [10]]), lambda X: np.zeros(len(X)), children_of,
                          lambda: len(steps) < 2)
    np.testing.assert_array_equal(children.ravel(), [11, 12])
    assert steps == [2, 1]


@pytest.fixture
def problem():
    start = np.array([[0, 1, 2, 3, 0, 1, 2, 3]])
    return Problem(num_states=4, dim=8, budget=1000, initial_solution=start)


def test_a_round_sends_the_best_new_sequences_by_the_model(problem, one_torch_thread):
    """Round 0 measures the start; round 1 sends batch_size sequences never measured, the best
    of the round's candidates by the surrogate, best first."""
    optimizer = AdaLead(batch_size=10, model_queries_per_round=200, preset="cpu")
    optimizer.setup(problem, np.random.SeedSequence(0))
    start = optimizer.ask(100)
    np.testing.assert_array_equal(start, problem.initial_solution)
    optimizer.tell(start, np.array([0.5]))
    batch = optimizer.ask(100)
    assert len(batch) == 10 and len(np.unique(batch, axis=0)) == 10
    assert not (batch == problem.initial_solution).all(axis=1).any()
    scores = optimizer.surrogate.score(batch)
    assert (np.diff(scores) <= 0).all()
    assert optimizer.model_queries >= 200  # the roots, then rollouts until the queries ran out
