"""Any optimizer in nevergrad's registry behind the ask/tell protocol: ``--optimizer ng:NAME``.

Each position is one categorical variable over the alphabet: the search space is
``ng.p.TransitionChoice(range(num_states), repetitions=dim, ordered=False)``, started at the
problem's initial solution. Unordered, because tokens have no order; a ``TransitionChoice``,
because that is the parameter from which nevergrad's discrete (1+1) family reads the alphabet
size (so a mutated position always moves to another token) and NGOpt recognizes a discrete space.
``docs/nevergrad.md`` says why, and what it costs.

nevergrad minimizes: the loss told is ``-value``, and ``infeasible_loss`` for a ``-inf`` value.
Seeds: the parametrization's generator is ``child(seed, 0)``. Some of nevergrad's code draws from
numpy's global generator instead; around every call into nevergrad the adapter swaps in a global
state of the run's own, ``child(seed, 1)``, and restores the caller's afterwards.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

import numpy as np

from holo_bench.params import close_matches
from holo_bench.seeding import child
from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem

PREFIX = "ng:"
INSTALL = "pip install 'holo-bench[nevergrad]' (scripts/install.sh installs it)"


def _nevergrad():
    try:
        import nevergrad
    except ImportError as err:
        raise ValueError(f"ng:NAME optimizers need nevergrad: {INSTALL} ({err})") from None
    return nevergrad


@dataclass(frozen=True)
class NevergradParams:
    """Parameters of every ``ng:NAME`` optimizer.

    batch_size: sequences per ask, ``>= 1``; also nevergrad's ``num_workers`` (how many asks may
        be pending before their tells), so 1 is nevergrad's sequential setting.
    infeasible_loss: the (finite) loss told for an infeasible sequence. It must exceed every
        feasible loss ``-value``; Ehrlich values are in ``[0, 1]``, so 1.0 ranks infeasible just
        below the worst feasible sequence.
    """

    batch_size: int = 1
    infeasible_loss: float = 1.0

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not math.isfinite(self.infeasible_loss):
            raise ValueError(f"infeasible_loss must be finite, got {self.infeasible_loss!r}")


class NevergradOptimizer(Optimizer):
    """nevergrad's optimizer ``ng_name`` (a subclass per name, from ``nevergrad_class``).

    ``ask(n)`` makes ``min(n, batch_size)`` nevergrad asks; ``tell`` tells each its loss.
    nevergrad's budget is the run's oracle budget.
    """

    Params = NevergradParams
    ng_name: ClassVar[str] = ""

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        ng = _nevergrad()
        self._global_state = np.random.RandomState(np.random.MT19937(child(seed, 1))).get_state()
        self._dtype = token_dtype(problem.num_states)
        self._dim = problem.dim
        self._pending: list = []
        self._asked = np.empty((0, problem.dim), dtype=self._dtype)
        with self._own_global_generator():  # building a parameter may draw from it too
            space = ng.p.TransitionChoice(range(problem.num_states), repetitions=problem.dim,
                                          ordered=False)
            space.random_state = np.random.RandomState(np.random.MT19937(child(seed, 0)))
            space.value = tuple(int(token) for token in problem.initial_solution[0])
            self._optimizer = ng.optimizers.registry[self.ng_name](
                parametrization=space, budget=problem.budget, num_workers=self.params.batch_size)
        return 0

    def ask(self, n: int) -> np.ndarray:
        with self._own_global_generator():
            self._pending = [self._optimizer.ask() for _ in range(min(n, self.params.batch_size))]
        # with choices range(num_states), a position's index is its token
        rows = [candidate.indices.value for candidate in self._pending]
        self._asked = np.array(rows, dtype=self._dtype).reshape(len(rows), self._dim)
        return self._asked.copy()

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(self._pending),) or not np.array_equal(X, self._asked):
            raise ValueError(f"tell expects the {len(self._pending)} sequences of the last ask and "
                             f"their values, got {len(X)} sequences, values of shape "
                             f"{values.shape}")
        if np.isnan(values).any():
            raise ValueError("values must not be NaN; mark infeasible sequences with -inf")
        losses = np.where(values == -np.inf, self.params.infeasible_loss, -values)
        with self._own_global_generator():
            for candidate, loss in zip(self._pending, losses):
                self._optimizer.tell(candidate, float(loss))
        self._pending = []

    def close(self) -> None:
        self._optimizer = None
        self._pending = []

    @contextlib.contextmanager
    def _own_global_generator(self):
        """Run nevergrad with numpy's global generator in this run's state, then put the
        caller's back."""
        caller = np.random.get_state()
        np.random.set_state(self._global_state)
        try:
            yield
        finally:
            self._global_state = np.random.get_state()
            np.random.set_state(caller)


@cache
def nevergrad_class(name: str) -> type[NevergradOptimizer]:
    """The optimizer class of ``ng:NAME`` (``name`` without the prefix), one class per name;
    ``ValueError`` with the closest registered names for a name nevergrad does not have."""
    registry = _nevergrad().optimizers.registry
    if name not in registry:
        known = [PREFIX + key for key in registry]
        raise ValueError(
            f"unknown nevergrad optimizer {PREFIX + name!r}{close_matches(PREFIX + name, known)}: "
            f"nevergrad's registry has {len(registry)} names (list them with `python -c 'import "
            f"nevergrad; print(sorted(nevergrad.optimizers.registry))'`)")
    qualname = f"Nevergrad_{''.join(c if c.isalnum() else '_' for c in name)}"
    return type(qualname, (NevergradOptimizer,), {
        "ng_name": name, "__module__": __name__, "__qualname__": qualname,
        "__doc__": f"nevergrad's {name} (``ng:{name}``); see ``NevergradOptimizer``."})
