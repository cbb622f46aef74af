"""LLOME's neighbour graph (``optimizers.llome.data.neighbour_pairs``) on a pool the size of the
published seed data: 10,000 sequences of length 32 over 32 states.

Two pools, one benchmark group:
- ``random``: uniform rows, no two within the distance threshold (every row spacious);
- ``clustered``: rows mutated from a few centres, as a GA population is, so that most rows have
  more than ``k`` neighbours within the threshold (the bisection for the ``k`` nearest runs).
Run:
    .venv/bin/pytest benchmarks/test_llome_data_speed.py --benchmark-only -q
"""

import numpy as np
import pytest
import torch

from optimizers.llome.data import neighbour_pairs

N, L, STATES = 10_000, 32, 32


def pool(kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "random":
        return rng.integers(0, STATES, (N, L))
    X = rng.integers(0, STATES, (4, L))[rng.integers(0, 4, N)]
    mutated = rng.random(X.shape) < 0.1
    X[mutated] = rng.integers(0, STATES, mutated.sum())
    return np.unique(X, axis=0)


@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_neighbour_pairs_ours(benchmark, kind):
    X = pool(kind)
    benchmark.group = f"LLOME neighbour graph, ({N}, {L}) pool"
    benchmark.extra_info.update(rows=len(X), pool=kind, threads=torch.get_num_threads())
    i, _ = benchmark.pedantic(neighbour_pairs, args=(X,), rounds=3, warmup_rounds=1)
    assert (len(i) == 0) == (kind == "random")
