"""The oracle's cost per batch under each counting rule, on GA-like batches (a converging population
with many repeats) of f2. ``distinct`` pays for finding repeats; ``all`` evaluates every query.
Run:
    .venv/bin/pytest benchmarks/test_oracle_speed.py --benchmark-only --benchmark-group-by=group
"""

import numpy as np
import pytest

from holo_bench import Oracle, make_function

BATCH = 1000
CALLS = 20


def ga_like_batches(f, rng):
    """``CALLS`` batches of ``BATCH``: copies of one parent with 0-2 random mutations, so that
    about a third of each batch repeats a sequence already asked."""
    parent = f.initial_solution()
    batches = []
    for _ in range(CALLS):
        X = np.tile(parent, (BATCH, 1))
        rows = rng.integers(0, BATCH, 2 * BATCH)
        X[rows, rng.integers(0, f.dim, len(rows))] = rng.integers(0, f.num_states, len(rows))
        batches.append(X)
    return batches


@pytest.mark.parametrize("count", ["distinct", "all"])
def test_ours_oracle_batches(benchmark, count):
    f = make_function("f2")
    batches = ga_like_batches(f, np.random.default_rng(0))

    def run():
        oracle = Oracle(f, budget=CALLS * BATCH, count=count)
        for X in batches:
            oracle.evaluate(X)
        return oracle

    benchmark.group = f"oracle, {CALLS} batches of {BATCH} on f2"
    oracle = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert oracle.queries == CALLS * BATCH and oracle.used <= oracle.queries
