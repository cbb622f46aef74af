"""AdaLead (Sinai et al. 2020, "AdaLead: A simple and robust adaptive greedy search algorithm for
sequence design", arXiv:2010.02141), after FLEXS 0.2.8's ``Adalead.propose_sequences``
(``flexs/baselines/explorers/adalead.py``), with the shared CNN-ensemble surrogate
(``optimizers.surrogate``) as its model.

Each round: the parents are the measured sequences whose value is at least
``top * (1 - sign(top) * threshold)`` (``top``: the best measured value), in the order they were
measured, repeated or cut to ``batch_size``. Until the round's ``model_queries_per_round`` are
spent: recombine the parents ``rho`` times, then, ``eval_batch_size`` parents at a time, roll
out from each: mutate (each position redrawn uniformly with probability ``mu / L``) into a child
never measured nor generated this round, score it, and carry on from the child while its score is
at least its root's (the rollout's first parent). Every child is a candidate; the
``batch_size`` best by the model go to the oracle. Roots and children both count as model queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from optimizers.model_guided import ModelGuided, mutants
from optimizers.rounds import row_keys
from optimizers.surrogate import SurrogateParams

# Draws of a node's child before the rollout gives up on that node (every draw was a sequence
# already measured or generated; FLEXS would draw forever).
MAX_DRAWS = 100


def threshold_set(values: np.ndarray, threshold: float) -> np.ndarray:
    """Bool ``(n,)``: the values at least ``top * (1 - sign(top) * threshold)``, ``top`` their
    maximum (``-inf`` infeasible; when every value is, all of them)."""
    top = values.max()
    return values >= top * (1 - np.sign(top) * threshold)


def recombine(parents: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """FLEXS's recombination: shuffle, pair neighbours, and cross each pair over, switching which
    parent a child copies at each position with probability ``rate``; an odd one out is dropped,
    and a single parent is returned as is. ``(n, L)`` -> ``(2 * (n // 2), L)``."""
    if len(parents) == 1:
        return parents
    shuffled = parents[rng.permutation(len(parents))]
    pairs = len(parents) // 2
    first, second = shuffled[0:2 * pairs:2], shuffled[1:2 * pairs:2]
    switched = np.cumsum(rng.random(first.shape) < rate, axis=1) % 2 == 1
    children = np.empty((2 * pairs, parents.shape[1]), dtype=parents.dtype)
    children[0::2] = np.where(switched, first, second)
    children[1::2] = np.where(switched, second, first)
    return children


def rollout(roots: np.ndarray, score: Callable[[np.ndarray], np.ndarray],
            children_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
            may_continue: Callable[[], bool]) -> tuple[np.ndarray, np.ndarray]:
    """Roll out from ``roots`` ``(m, L)`` together: score the roots; then, while some rollout goes
    on and ``may_continue()``, give each live node one child (``children_of(nodes)`` returns the
    children and the indices of the nodes that got one), score them, and keep going from the
    children scoring at least their root. Returns every child ``(k, L)`` and its score ``(k,)``,
    in the order generated."""
    root_scores = score(roots)
    nodes, origin = roots, np.arange(len(roots))
    found, found_scores = [], []
    while len(nodes) and may_continue():
        children, parent = children_of(nodes)
        origin = origin[parent]
        scores = score(children)
        found.append(children)
        found_scores.append(scores)
        going_on = scores >= root_scores[origin]
        nodes, origin = children[going_on], origin[going_on]
    if not found:
        return np.empty((0, roots.shape[1]), dtype=roots.dtype), np.empty(0)
    return np.concatenate(found), np.concatenate(found_scores)


@dataclass(frozen=True)
class AdaLeadParams(SurrogateParams):
    """Parameters of AdaLead: the surrogate's (``SurrogateParams``) and FLEXS's.

    batch_size: sequences sent to the oracle per round (FLEXS's ``sequences_batch_size``; 100 as
    in FLEXS's experiments). model_queries_per_round: surrogate queries per round (FLEXS's
    ``model_queries_per_batch``, 2000 in its experiments). mu: expected mutations per child.
    recomb_rate: crossover switch probability per position. threshold: parents are within this
    fraction of the best value. rho: recombinations per pass over the parents.
    eval_batch_size: rollouts grown together (FLEXS's default 20).
    """

    batch_size: int = 100
    model_queries_per_round: int = 2000
    mu: int = 1
    recomb_rate: float = 0.0
    threshold: float = 0.05
    rho: int = 0
    eval_batch_size: int = 20

    def __post_init__(self):
        super().__post_init__()
        for name in ("batch_size", "model_queries_per_round", "mu", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.rho < 0:
            raise ValueError(f"rho must be an integer >= 0, got {self.rho!r}")
        if not 0.0 <= self.recomb_rate <= 1.0:
            raise ValueError(f"recomb_rate must be in [0, 1], got {self.recomb_rate!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")


class AdaLead(ModelGuided):
    """AdaLead: greedy rollouts from the best measured sequences, kept while the CNN-ensemble
    surrogate scores them at least as their root (parameters: ``AdaLeadParams``; the module's
    docstring says more)."""

    Params = AdaLeadParams

    def propose(self, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        parents = self.X[threshold_set(self.values, p.threshold)]
        parents = np.resize(parents, (p.batch_size, self.dim))  # cycled, in measured order
        taken = set(self.measured)  # measured, or generated this round
        rate = min(1.0, p.mu / self.dim)

        def children_of(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """One child per node that is neither measured nor generated, drawn again while it
            is (at most ``MAX_DRAWS`` times)."""
            children, got = nodes.copy(), np.zeros(len(nodes), dtype=bool)
            for _ in range(MAX_DRAWS):
                waiting = np.flatnonzero(~got)
                if len(waiting) == 0:
                    break
                drawn = mutants(nodes[waiting], rate, self.num_states, rng)
                for i, row, key in zip(waiting, drawn, row_keys(drawn)):
                    if key not in taken:
                        taken.add(key)
                        children[i], got[i] = row, True
            return children[got], np.flatnonzero(got)

        def may_continue() -> bool:
            return self.model_queries + p.eval_batch_size < p.model_queries_per_round

        found, found_scores = [], []
        while self.model_queries < p.model_queries_per_round:
            for _ in range(p.rho):
                parents = recombine(parents, p.recomb_rate, rng)
            for start in range(0, len(parents), p.eval_batch_size):
                children, scores = rollout(parents[start:start + p.eval_batch_size], self.score,
                                           children_of, may_continue)
                found.append(children)
                found_scores.append(scores)
        found, found_scores = np.concatenate(found), np.concatenate(found_scores)
        return found[np.argsort(-found_scores, kind="stable")[: p.batch_size]]
