"""The contract every registered optimizer must keep, third-party ones included."""

import json

import numpy as np
import pytest

from harness.runner import check_ask
from holo_bench import make_function
from optimizers.base import Problem
from optimizers.registry import available, make_optimizer

# Small settings so each optimizer runs a few rounds quickly; anything unlisted uses defaults.
LLOME = {"seed_particles": 32, "seed_generations": 2, "labels_per_round": 40, "num_seeds": 8,
         "steps": 1, "samples": 2, "first_epochs": 2, "epochs": 1, "hidden_size": 32, "layers": 1}
SURROGATE = {"preset": "cpu", "ensemble_size": 2, "model_queries_per_round": 200}
SMALL = {"ga": {"num_particles": 32}, "holo-ga": {"num_particles": 32},
         "random": {"batch_size": 32}, "llome-marge": LLOME, "llome-sft": LLOME,
         "llome-dpo": LLOME, "adalead": SURROGATE, "pex": SURROGATE,
         "cbas": {**SURROGATE, "vae_epochs": 1}, "dbas": {**SURROGATE, "vae_epochs": 1},
         "lambo2": {"preset": "cpu", "seed_particles": 20, "seed_generations": 2,
                    "seed_mutation_prob": 0.2, "num_samples": 32, "ensemble_size": 2,
                    "channels": 16, "epochs": 1}}


def problem_of(name="smoke_ehrlich_small", budget=500):
    f = make_function(name)
    return f, Problem(f.num_states, f.dim, budget,
                      np.atleast_2d(f.initial_solution()).astype(np.int64))


def drive(name, seed, rounds=6, ask_sizes=(500, 7, 500, 1, 500, 500), values_of=None):
    f, problem = problem_of()
    optimizer = make_optimizer(name, SMALL.get(name, {}))
    assert optimizer.setup(problem, np.random.SeedSequence(seed)) == 0  # a fresh start
    asked = []
    try:
        for n in ask_sizes[:rounds]:
            X = optimizer.ask(n)
            asked.append(X.copy())
            values = f(X) if values_of is None else values_of(X)
            optimizer.tell(X, values)
    finally:
        optimizer.close()
    return problem, asked


@pytest.fixture(params=sorted(available()))
def name(request):
    return request.param


def test_asks_are_integer_arrays_within_bounds_and_never_more_than_asked(name):
    problem, asked = drive(name, seed=0)
    for n, X in zip((500, 7, 500, 1, 500, 500), asked):
        assert isinstance(X, np.ndarray) and X.dtype.kind in "iu"
        assert X.ndim == 2 and X.shape[1] == problem.dim and len(X) <= n
        assert len(X) == 0 or (X.min() >= 0 and X.max() < problem.num_states)  # empty ends a run


def test_deterministic_under_a_seed(name):
    _, first = drive(name, seed=11)
    _, again = drive(name, seed=11)
    _, other = drive(name, seed=12)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_tolerates_every_value_being_infeasible(name):
    """Told only -inf, it keeps asking well-formed batches (the runner's own ask check)."""
    problem, asked = drive(name, seed=0, values_of=lambda X: np.full(len(X), -np.inf))
    for n, X in zip((500, 7, 500, 1, 500, 500), asked):
        check_ask(X, n, problem)
    assert len(asked[0]) > 0


def test_configuration_is_its_parameters_and_rebuilds_the_same_optimizer(name):
    optimizer = make_optimizer(name, SMALL.get(name, {}))
    config = optimizer.config()
    assert config == {**make_optimizer(name).config(), **SMALL.get(name, {})}
    assert make_optimizer(name, config).params == optimizer.params
    assert json.loads(json.dumps(config, allow_nan=False)) == config  # recorded verbatim


def test_setup_starts_a_fresh_run(name):
    f, problem = problem_of()
    optimizer = make_optimizer(name, SMALL.get(name, {}))
    runs = []
    for _ in range(2):
        optimizer.setup(problem, np.random.SeedSequence(5))
        X = optimizer.ask(100)
        optimizer.tell(X, f(X))
        runs.append(optimizer.ask(100))
    optimizer.close()
    np.testing.assert_array_equal(runs[0], runs[1])
