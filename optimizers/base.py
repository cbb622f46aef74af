"""The ask/tell interface every optimizer implements, and what a black-box optimizer may know.

The runner owns the loop and the oracle: it calls ``setup`` once, then alternates ``ask`` (the
optimizer proposes) and ``tell`` (the oracle's values come back) until the budget is spent, the
optimum is found, or the optimizer returns nothing. An optimizer never sees the function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Problem:
    """Everything a black-box optimizer is told about a problem.

    ``initial_solution`` is ``(m, dim)`` int64: feasible starting point(s) from the problem.
    """

    num_states: int
    dim: int
    budget: int
    initial_solution: np.ndarray


class Optimizer:
    """Base class: subclasses set ``name``, take their parameters as keyword arguments (with
    defaults, so ``--set name=value`` can override them) and implement ``setup``, ``ask``, ``tell``.

    Randomness must come only from ``seed``: the same seed gives the same asks, bit for bit.
    """

    name: str = ""
    # Whether the same seed gives the same results, so regression checks can compare exactly.
    # Set False for optimizers that are not (e.g. nondeterministic GPU kernels).
    deterministic: bool = True
    # Set by the runner before ``setup``: a folder of the run's own for state and diagnostics
    # (checkpoints, per-round metrics); None outside the runner.
    workdir = None
    # Set in ``setup`` by an optimizer that restored its own state from ``workdir``: how many of
    # the run's oracle calls that state already accounts for (the runner skips replaying them).
    resumed_calls: int = 0

    def setup(self, problem: Problem, seed: int) -> None:
        """Start a fresh run on ``problem``."""
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
        """The optimizer's full configuration, recorded in every run's manifest."""
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}
