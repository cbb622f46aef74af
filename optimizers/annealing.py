"""Simulated annealing (Kirkpatrick, Gelatt and Vecchi 1983, "Optimization by simulated
annealing", Science 220) with Metropolis acceptance (Metropolis et al. 1953, J. Chem. Phys. 21)
and a geometric temperature schedule on the scale of the values (of the regret: ``1 - value``).

One state ``x`` with value ``f(x)``. Each ask proposes a neighbour ``y``: the standard mutation
of ``optimizers.ea.mutate`` (each position with probability ``1/L``, at least one, to another
token), so that, unlike single-position moves, every sequence can be proposed and a run under
``count="distinct"`` does not stall once a state's few neighbours are known. The tell moves to
``y`` with probability ``min(1, exp((f(y) - f(x)) / T_k))``, where the ``k``-th ask (the start is
ask 0) is at temperature

    T_k = initial_temperature * (final_temperature / initial_temperature) ** (k / budget).

Infeasible sequences (``-inf``): a move to one from a feasible state has probability
``exp(-inf) = 0``, so the state stays feasible once it is; from an infeasible state (possible only
when the start is) every proposal is accepted, a random walk until a feasible one turns up.

The defaults are the schedule of nevergrad 1.0.12's ``annealing="Exp0.9Auto"``
(``_OnePlusOne._internal_tell`` in ``nevergrad/optimization/optimizerlib.py``):
``0.33 * amplitude * (0.001 ** (1 / budget)) ** k``, with its amplitude (at least 1: the span of
losses seen) fixed at 1, the span of Ehrlich values. nevergrad compares a proposal with the best
loss so far; this is the textbook rule, against the current state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem
from optimizers.ea import mutate, told_values


def temperature(asks: np.ndarray | int, budget: int, initial: float, final: float) -> np.ndarray:
    """``initial * (final / initial) ** (asks / budget)``: geometric from ``initial`` at ask 0
    to ``final`` at ask ``budget`` (and colder after, for asks answered free under
    ``count="distinct"``)."""
    return initial * (final / initial) ** (np.asarray(asks, dtype=np.float64) / budget)


def metropolis_accepts(new: np.ndarray, current: np.ndarray, temperature: np.ndarray,
                       uniform: np.ndarray) -> np.ndarray:
    """Whether moves from values ``current`` to ``new`` are accepted, given uniforms in
    ``[0, 1)`` (all ``(n,)``): always when ``new >= current`` (``-inf`` to ``-inf`` included),
    else with probability ``exp((new - current) / temperature)`` (0 for ``new = -inf``)."""
    new, current = np.asarray(new, dtype=np.float64), np.asarray(current, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # -inf - -inf, where new >= current decides anyway
        worse = np.exp(np.minimum(new - current, 0.0) / temperature)
    return (new >= current) | (uniform < worse)


@dataclass(frozen=True)
class AnnealingParams:
    """Parameters of ``sa``.

    initial_temperature: the temperature at the start, on the value scale, ``> 0``.
    final_temperature: the temperature when the budget's worth of asks is spent,
        ``0 < final_temperature <= initial_temperature``.
    """

    initial_temperature: float = 0.33
    final_temperature: float = 0.00033

    def __post_init__(self):
        if not self.initial_temperature > 0:
            raise ValueError(
                f"initial_temperature must be > 0, got {self.initial_temperature!r}")
        if not 0 < self.final_temperature <= self.initial_temperature:
            raise ValueError(
                f"final_temperature must be in (0, initial_temperature = "
                f"{self.initial_temperature}], got {self.final_temperature!r}")


class SimulatedAnnealing(Optimizer):
    """Simulated annealing, one proposal per ask (parameters: ``AnnealingParams``).

    The first ask is the problem's first initial solution, which becomes the state. Its one
    random stream is ``default_rng(seed)``, the run's root seed.
    """

    Params = AnnealingParams

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        if problem.num_states < 2:
            raise ValueError(f"a mutation needs num_states >= 2, got {problem.num_states}")
        self._rng = np.random.default_rng(seed)
        self._num_states, self._budget = problem.num_states, problem.budget
        self._state = np.asarray(problem.initial_solution[0]).astype(
            token_dtype(problem.num_states))[None]  # (1, L)
        self._value = None  # the state's value, once told
        self._pending = self._state[:0]
        self._asks = 0  # sequences asked so far
        return 0

    def ask(self, n: int) -> np.ndarray:
        if n < 1:
            self._pending = self._state[:0]
        elif self._value is None:
            self._pending = self._state
        else:
            self._pending = mutate(self._rng, self._state, np.ones(1), self._num_states)
        self._asks += len(self._pending)
        return self._pending.copy()

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        values = told_values(X, values, len(self._pending))
        if not len(values):
            return
        proposal, self._pending = self._pending, self._pending[:0]
        if self._value is None:
            self._value = values[0]
            return
        k = self._asks - 1  # this proposal's ask number
        heat = temperature(k, self._budget, self.params.initial_temperature,
                           self.params.final_temperature)
        if metropolis_accepts(values[:1], self._value, heat, self._rng.random(1))[0]:
            self._state, self._value = proposal, values[0]
