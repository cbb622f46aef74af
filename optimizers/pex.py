"""PEX, proximal exploration (Ren et al. 2022, "Proximal Exploration for Model-guided Protein
Sequence Design", ICML), after ``ProximalExploration`` in HeliXonProtein/proximal-exploration
(``pex/algorithm/pex.py``, defaults from ``run.py``), with the shared CNN-ensemble surrogate
(``optimizers.surrogate``) as its model in place of the paper's MuFacNet.

Distances are Hamming distances to the wild type, here the problem's (first) initial solution.
The first round, while only the start is measured, sends random mutants of it (``num_mutations``
random position-and-token draws each). Later rounds:

1. the frontier neighbours: going out from the wild type one distance at a time, the best
   ``frontier_neighbor_size`` measured sequences at that distance that beat every value measured
   closer in;
2. the candidate pool: ``model_queries_per_round`` distinct unmeasured mutants of frontier
   neighbours drawn uniformly, ``num_mutations`` draws each, scored by the model;
3. the batch: repeatedly take the proximal frontier of the pool in the plane (distance, best
   score at that distance): the upper convex hull (Andrew's monotone chain) cut where the score
   stops rising; send the best candidate at each of its distances and remove it from the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizers.model_guided import ModelGuided
from optimizers.rounds import row_keys
from optimizers.surrogate import SurrogateParams

# Blocks of mutants drawn before the pool is declared complete though short (every mutant of the
# frontier is measured or drawn already; the reference would draw forever).
MAX_BLOCKS = 100


def hamming(X: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hamming distances ``(n,)`` of the rows of ``X`` to ``reference`` ``(L,)``."""
    return (X != reference).sum(axis=1)


def frontier_neighbours(distance: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Indices of the measured sequences near the proximal frontier: at each distance, in
    increasing order, the ``size`` best (ties in measured order) whose value exceeds the best
    value at every smaller distance."""
    chosen, height = [], -np.inf
    for d in np.unique(distance):
        at = np.flatnonzero(distance == d)
        at = at[np.argsort(-values[at], kind="stable")]
        chosen.extend(i for i in at[:size] if values[i] > height)
        height = max(height, values[at[0]])
    return np.array(chosen, dtype=np.int64)


def proximal_frontier(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The proximal frontier of ``points`` (distance, score), sorted by distance with one point
    per distance: the upper convex hull by Andrew's monotone chain (a middle point stays when the
    turn is clockwise or straight), then the trailing points lower than their predecessor
    dropped."""
    stack: list[tuple[int, float]] = []
    for point in points:
        while len(stack) > 1 and _cross(stack[-2], stack[-1], point) > 0:
            stack.pop()
        stack.append(point)
    while len(stack) >= 2 and stack[-1][1] < stack[-2][1]:
        stack.pop()
    return stack


def _cross(o, a, b) -> float:
    """The z component of ``(a - o) x (b - o)``."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def frontier_batch(distance: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    """Indices of at most ``size`` candidates, taken by peeling the proximal frontier of
    (distance, score): each peel takes the best remaining candidate at each distance on the
    frontier, nearest first."""
    queues = {}  # distance -> candidate indices, best score first (ties in pool order)
    for d in np.unique(distance):
        at = np.flatnonzero(distance == d)
        queues[int(d)] = list(at[np.argsort(-scores[at], kind="stable")])
    batch: list[int] = []
    while len(batch) < size and any(queues.values()):
        points = [(d, float(scores[queue[0]])) for d, queue in sorted(queues.items()) if queue]
        for d, _ in proximal_frontier(points):
            if len(batch) < size:
                batch.append(queues[d].pop(0))
    return np.array(batch, dtype=np.int64)


def random_mutations(parents: np.ndarray, count: int, num_states: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Each row with ``count`` successive (position, token) draws, uniform and independent (the
    reference's ``random_mutation``: a position may be drawn twice, a token may not change)."""
    mutated = parents.copy()
    rows = np.arange(len(parents))
    for _ in range(count):
        mutated[rows, rng.integers(0, parents.shape[1], len(rows))] = rng.integers(
            0, num_states, len(rows))
    return mutated


@dataclass(frozen=True)
class PEXParams(SurrogateParams):
    """Parameters of PEX: the surrogate's (``SurrogateParams``, trained as the reference trains
    its models: until 10 epochs bring no improvement) and the reference's ``run.py`` defaults.

    batch_size: sequences sent to the oracle per round (``num_queries_per_round``, 100).
    model_queries_per_round: candidates scored per round (``num_model_queries_per_round``, 2000).
    num_mutations: mutation draws per candidate (``num_random_mutations``, 2).
    frontier_neighbor_size: best sequences per distance kept near the frontier (5).
    """

    epochs: int | None = None
    patience: int | None = 10
    batch_size: int = 100
    model_queries_per_round: int = 2000
    num_mutations: int = 2
    frontier_neighbor_size: int = 5

    def __post_init__(self):
        super().__post_init__()
        for name in ("batch_size", "model_queries_per_round", "num_mutations",
                     "frontier_neighbor_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")


class PEX(ModelGuided):
    """PEX, proximal exploration: mutants of the frontier near the wild type, chosen by the
    CNN-ensemble surrogate along the proximal frontier of distance and score (parameters:
    ``PEXParams``; the module's docstring says more)."""

    Params = PEXParams

    def propose(self, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        wild_type = self.start[0]
        start_keys = set(row_keys(self.start))
        if self.measured <= start_keys:  # nothing but the start measured: its random mutants
            return self._new_mutants(self.start[:1], p.batch_size, rng)
        X, first = np.unique(self.X, axis=0, return_index=True)
        order = np.argsort(first)  # measured order
        X, values = X[order], self.values[first[order]]
        near = frontier_neighbours(hamming(X, wild_type), values, p.frontier_neighbor_size)
        parents = X[near] if len(near) else self.start  # none when every value is infeasible
        pool = self._new_mutants(parents, p.model_queries_per_round, rng)
        if len(pool) == 0:
            return pool
        chosen = frontier_batch(hamming(pool, wild_type), self.score(pool), p.batch_size)
        return pool[chosen]

    def _new_mutants(self, parents: np.ndarray, count: int,
                     rng: np.random.Generator) -> np.ndarray:
        """Up to ``count`` distinct unmeasured mutants of parents drawn uniformly, in the order
        drawn."""
        taken, pool = set(self.measured), []
        for _ in range(MAX_BLOCKS):
            need = count - len(pool)
            if need == 0:
                break
            drawn = random_mutations(parents[rng.integers(0, len(parents), need)],
                                     self.params.num_mutations, self.num_states, rng)
            for row, key in zip(drawn, row_keys(drawn)):
                if key not in taken:
                    taken.add(key)
                    pool.append(row)
        return np.array(pool, dtype=np.int64).reshape(-1, self.dim)
