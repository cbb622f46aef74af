"""The one definition of each measure: regret, solved, best so far, the evaluation grid, and
the mean regret over a budget (the area under a regret curve on a linear axis).

Every module that reports a number about a run (the runner, the verifier, the store, the
leaderboard, the regression gate) calls these; none restates them.

Regret after a run is ``optimal_value - max(worst_value, best feasible value)``: ``0`` at the
optimum, ``optimal_value - worst_value`` before any feasible evaluation. A run is *solved* when its
regret is at most ``SOLVED_TOLERANCE`` (absolute). Ehrlich values are exact quantized products, so
their optimum gives regret exactly 0; Rough Mount Fuji values are float sums whose last bits depend
on summation order, so an optimum reached by another token layout may miss ``optimal_value`` by an
ulp. The tolerance is far below any gap between two distinct values of either family.
"""

from __future__ import annotations

import numpy as np

SOLVED_TOLERANCE = 1e-9

# Points per decade of the evaluation grid on which regret curves are stored and compared.
GRID_PER_DECADE = 20


def regret(best, optimal_value: float, worst_value: float):
    """``optimal_value - max(worst_value, best)`` for a best value or an array of them."""
    result = optimal_value - np.maximum(worst_value, best)
    return float(result) if np.ndim(result) == 0 else result


def is_solved(regret_value):
    """Whether a regret (or each of an array of regrets) counts as the optimum reached."""
    solved = np.asarray(regret_value) <= SOLVED_TOLERANCE
    return bool(solved) if solved.ndim == 0 else solved


def best_so_far(values: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """Best feasible value after each evaluation, ``-inf`` before any: float64 ``(n,)``."""
    return (np.maximum.accumulate(np.where(feasible, values, -np.inf)) if len(values)
            else np.empty(0))


def evaluation_grid(budget: int) -> np.ndarray:
    """Charged-evaluation counts ``1 <= e <= budget`` at which curves are read: ``10^(i/20)``
    rounded (``GRID_PER_DECADE`` points per decade, the same points for every budget), always
    ending at ``budget`` itself."""
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    steps = np.arange(int(np.ceil(np.log10(budget) * GRID_PER_DECADE)) + 1)
    points = np.round(10.0 ** (steps / GRID_PER_DECADE)).astype(np.int64)
    return np.union1d(points[points <= budget], [budget])


def charged_count(charged: np.ndarray) -> np.ndarray:
    """Charged evaluations after each logged query: int64 ``(n,)``."""
    return np.cumsum(charged, dtype=np.int64)


def curve_at(grid: np.ndarray, evaluations: np.ndarray, curve: np.ndarray,
             start: float) -> np.ndarray:
    """A per-query curve (``curve[i]`` after query ``i``, which had spent ``evaluations[i]``
    charged evaluations) read at charged-evaluation counts ``grid``; ``start`` before any query.
    A run that stopped early keeps its last value."""
    last = np.searchsorted(evaluations, grid, side="right") - 1
    values = np.full(len(grid), float(start))
    values[last >= 0] = np.asarray(curve, dtype=np.float64)[last[last >= 0]]
    return values


def evaluations_to_reach(evaluations: np.ndarray, reached: np.ndarray) -> int | None:
    """Charged evaluations spent when ``reached`` (bool per query) first holds; ``None`` if
    never."""
    if not reached.any():
        return None
    return int(evaluations[int(np.argmax(reached))])


def mean_regret(evaluations: np.ndarray, regret: np.ndarray, budget: int, start: float) -> float:
    """Area under a best-so-far regret curve on a linear axis of charged evaluations, divided by
    the budget: the mean of the regret after each of evaluations ``1 .. budget`` (a run that
    stopped early keeps its last regret; ``start``, the regret with nothing found, ``optimal -
    worst``, until its first charged query). Unlike the leaderboard's area on a log axis, every
    evaluation weighs the same, so a method's late rounds count as much as its first ones."""
    curve = curve_at(np.arange(1, budget + 1), evaluations, regret, start)
    return float(curve.mean())


def mean_pairwise_hamming(X: np.ndarray, rng: np.random.Generator, most: int = 500) -> float | None:
    """Mean normalized Hamming distance over the pairs of rows of ``X`` (a diversity measure), on
    a sample of at most ``most`` rows drawn with ``rng``; None for fewer than two rows."""
    if len(X) < 2:
        return None
    if len(X) > most:
        X = X[rng.choice(len(X), most, replace=False)]
    distance = (X[:, None, :] != X[None, :, :]).mean(axis=2)
    return float(distance[np.triu_indices(len(X), 1)].mean())
