"""The ask/tell protocol every optimizer implements, and what a black-box optimizer may know.

The runner owns the loop and the oracle: it calls ``setup`` once, then alternates ``ask`` (the
optimizer proposes) and ``tell`` (the oracle's values come back) until the budget is spent, the
optimum is found, the optimizer returns nothing, or it keeps asking only for sequences already
evaluated. An optimizer never sees the function.

An optimizer's parameters are a frozen dataclass, ``Params``, with types and defaults; its
instance, ``optimizer.params``, is the optimizer's whole configuration and is recorded verbatim in
every run's manifest and identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from holo_bench.params import build_params, params_dict


@dataclass(frozen=True)
class Problem:
    """Everything a black-box optimizer is told about a problem.

    ``initial_solution`` is ``(m, dim)`` int64: feasible starting point(s) from the problem.
    ``count`` is the oracle's rule for repeated queries: ``"distinct"`` (a sequence already
    evaluated in this run is answered again for free) or ``"all"`` (every query is charged).
    """

    num_states: int
    dim: int
    budget: int
    initial_solution: np.ndarray
    count: str = "distinct"


@dataclass(frozen=True)
class NoParams:
    """The parameters of an optimizer that has none."""


class Optimizer:
    """Base class: subclasses declare ``Params`` and implement ``setup``, ``ask`` and ``tell``.

    Build one with keyword parameters (``GeneticAlgorithm(num_particles=500)``) or a ready
    ``Params`` record (``GeneticAlgorithm(params)``); either way ``self.params`` holds the
    validated record. Randomness must come only from the ``seed`` given to ``setup``: the same
    seed gives the same asks, bit for bit.
    """

    Params: ClassVar[type] = NoParams
    # Whether the same seed gives the same results, so regression checks can compare exactly.
    # Set False (or make it a property) for optimizers that are not, e.g. nondeterministic GPU
    # kernels.
    deterministic: bool = True

    def __init__(self, params=None, /, **values):
        if params is not None and values:
            raise TypeError("give either a Params record or keyword parameters, not both")
        if params is None:
            params = build_params(self.Params, values, owner=f"optimizer {type(self).__name__}")
        elif not isinstance(params, self.Params):
            raise TypeError(f"{type(self).__name__} takes {self.Params.__qualname__}, "
                            f"got {type(params).__name__}")
        self.params = params

    def setup(self, problem: Problem, seed: np.random.SeedSequence,
              workdir: str | os.PathLike | None = None) -> int:
        """Start a run on ``problem`` with the root of the run's seed tree (see
        ``holo_bench.seeding``). ``workdir`` is a folder of the run's own for state and
        diagnostics (checkpoints, per-round metrics), or None. An optimizer that restores a saved
        state from ``workdir`` returns how many of the run's oracle calls that state already
        accounts for (the runner serves them from the log without asking again); otherwise 0."""
        raise NotImplementedError

    def ask(self, n: int) -> np.ndarray:
        """At most ``n`` sequences to evaluate next: int array ``(m, dim)``, ``m <= n``."""
        raise NotImplementedError

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        """The values ``(m,)`` of the sequences ``X`` just asked for; ``-inf`` marks infeasible."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the run held (threads, engines); called once the run ends."""

    def config(self) -> dict:
        """The optimizer's full configuration, as recorded in every run's manifest."""
        return params_dict(self.params)

