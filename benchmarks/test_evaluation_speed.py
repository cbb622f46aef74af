"""Evaluation throughput of our Ehrlich functions beside pytorch-holo's, on the same inputs.

Each (instance, batch) is one benchmark group holding both implementations, so the table's
relative column is the speed ratio. Run:
    .venv/bin/pytest benchmarks/test_evaluation_speed.py --benchmark-only --benchmark-group-by=group
"""

import numpy as np
import pytest
import torch
from holo.test_functions.closed_form import Ehrlich as HoloEhrlich

from holo_bench import Ehrlich

INSTANCES = {"Ehr(32,32,4,4,4)": (32, 32, 4, 4, 4), "Ehr(32,128,4,4,4)": (32, 128, 4, 4, 4),
             "Ehr(32,128,8,8,8)": (32, 128, 8, 8, 8)}
BATCHES = [1, 1000, 100_000]


def inputs(f: Ehrlich, n: int) -> np.ndarray:
    """Feasible chains with a tenth of positions resampled: a mix of feasible and infeasible."""
    X = f.initial_solution(n) if n > 1 else f.initial_solution()[None]
    rng = np.random.default_rng(0)
    mutate = rng.random(X.shape) < 0.1
    X[mutate] = rng.integers(0, f.num_states, mutate.sum())
    return X


def rounds_for(n: int, implementation: str) -> int:
    return max(2, {1: 2000, 1000: 50, 100_000: 5}[n] // (10 if implementation == "holo" else 1))


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("instance", INSTANCES)
@pytest.mark.parametrize("implementation", ["ours", "holo"])
def test_evaluation_throughput(benchmark, implementation, instance, n):
    params = INSTANCES[instance]
    ours = Ehrlich(*params, random_seed=0)
    X = inputs(ours, n)
    if implementation == "holo":
        holo = HoloEhrlich(*params, random_seed=0)
        Xt = torch.from_numpy(X)
        function = lambda: holo(Xt)  # noqa: E731
    else:
        function = lambda: ours(X)  # noqa: E731
    benchmark.group = f"{instance} batch {n}"
    benchmark.extra_info["sequences_per_call"] = n
    values = benchmark.pedantic(function, rounds=rounds_for(n, implementation), warmup_rounds=1)
    expected = HoloEhrlich(*params, random_seed=0)(torch.from_numpy(X)).numpy().astype(np.float64)
    np.testing.assert_array_equal(np.asarray(values, dtype=np.float64), expected)
