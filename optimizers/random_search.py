"""Uniform random search: the floor every optimizer should beat.

On constrained functions such as Ehrlich almost every uniform sequence is infeasible, so this
baseline mostly measures how rare feasibility is.
"""

from __future__ import annotations

import numpy as np

from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem


class RandomSearch(Optimizer):
    """Independent uniform sequences, ``batch_size`` (``>= 1``) per ask; ignores what it is told."""

    name = "random"

    def __init__(self, batch_size: int = 1000):
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)

    def setup(self, problem: Problem, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._num_states = problem.num_states
        self._dim = problem.dim

    def ask(self, n: int) -> np.ndarray:
        shape = (min(n, self.batch_size), self._dim)
        return self._rng.integers(0, self._num_states, shape, dtype=token_dtype(self._num_states))

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        pass
