"""Uniform random search: the floor every optimizer should beat.

On constrained functions such as Ehrlich almost every uniform sequence is infeasible, so this
baseline mostly measures how rare feasibility is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem


@dataclass(frozen=True)
class RandomParams:
    """batch_size: sequences per ask, ``>= 1``."""

    batch_size: int = 1000

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")


class RandomSearch(Optimizer):
    """Independent uniform sequences, ``batch_size`` per ask; ignores what it is told."""

    Params = RandomParams

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        self._rng = np.random.default_rng(seed)
        self._num_states = problem.num_states
        self._dim = problem.dim
        return 0

    def ask(self, n: int) -> np.ndarray:
        shape = (min(n, self.params.batch_size), self._dim)
        return self._rng.integers(0, self._num_states, shape, dtype=token_dtype(self._num_states))

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        pass
