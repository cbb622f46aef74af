"""What the model-based optimizers share (AdaLead, PEX, CbAS/DbAS, LaMBO-2): every label told so
far, one round of proposals at a time, and the state saved with each round's proposals.

A round's proposals (``_next_round``, in the order they are sent) are saved to the run's
``workdir`` with the state before any is asked (``state.pkl``, replaced atomically), and the
round's metrics line is appended to ``metrics.jsonl`` first. ``ask(n)`` sends the first ``n`` (a
budget-cut round sends its first) and drops the rest. A killed run resumes from its last save and
asks exactly the proposals saved there, so its trace is the uninterrupted run's, whatever the
thread count. Subclasses add their own state (``_extra_state``, ``_load_extra_state``) and may
answer an ask before any round (``_before_rounds``: a seed phase, or the end of the run).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np

from holo_bench.seeding import as_seed_sequence
from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem

STATE = "state.pkl"
METRICS = "metrics.jsonl"


def row_keys(X: np.ndarray) -> list[bytes]:
    """One hashable key per row of an int64 ``(n, dim)`` array."""
    X = np.ascontiguousarray(X, dtype=np.int64)
    return [row.tobytes() for row in X]


class RoundBased(Optimizer):
    """Labels, rounds of proposals and their saved state; see the module's docstring."""

    def _setup_rounds(self, problem: Problem, seed, workdir) -> None:
        """The empty state; call first in ``setup``, then ``_restore`` last."""
        self._seed = as_seed_sequence(seed)
        self.num_states, self.dim = problem.num_states, problem.dim
        self.X = np.empty((0, problem.dim), dtype=np.int64)  # every label, in order
        self.values = np.empty(0)
        self.rounds = np.empty(0, dtype=np.int64)  # the round each label came from
        self.measured: set[bytes] = set()
        self.round = 0
        self._calls = 0
        self._pending: np.ndarray | None = None
        self._asked = 0
        self._metrics: dict | None = None
        self._workdir = None if workdir is None else Path(workdir)

    def _next_round(self) -> np.ndarray:
        """The next round's proposals ``(m, dim)`` int64, in the order they are sent; sets
        ``self._metrics`` for rounds >= 1."""
        raise NotImplementedError

    def _before_rounds(self, n: int) -> np.ndarray | None:
        """An answer to ``ask(n)`` that is not a round's (None: ask the round's proposals)."""
        return None

    def _told(self, X: np.ndarray, values: np.ndarray) -> None:
        """Called by ``tell`` before ``X`` joins the labels."""

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    def is_new(self, X: np.ndarray) -> np.ndarray:
        """Bool ``(n,)``: which rows of ``X`` have not been measured."""
        return np.array([key not in self.measured for key in row_keys(X)], dtype=bool)

    # -- ask/tell -------------------------------------------------------------------------------

    def ask(self, n: int) -> np.ndarray:
        batch = self._before_rounds(n)
        if batch is None:
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
        self._told(X, values)
        self.X = np.concatenate([self.X, X])
        self.values = np.concatenate([self.values, values])
        self.rounds = np.concatenate([self.rounds, np.full(len(X), self.round)])
        self.measured.update(row_keys(X))

    # -- state ----------------------------------------------------------------------------------

    def _save(self) -> None:
        """Persist the state; a kill leaves the previous state whole (the new one replaces it
        atomically). A round's metrics line is written first: a line without its state is
        dropped by ``_restore``."""
        if not self._workdir:
            return
        self._workdir.mkdir(parents=True, exist_ok=True)
        if self._metrics is not None:
            with open(self._workdir / METRICS, "a") as file:
                file.write(json.dumps({**self._metrics, "calls": self._calls}) + "\n")
            self._metrics = None
        tokens = token_dtype(self.num_states)  # a compact copy: the state is saved every round
        state = {"round": self.round, "calls": self._calls, "X": self.X.astype(tokens),
                 "values": self.values, "rounds": self.rounds, "pending": self._pending,
                 **self._extra_state()}
        tmp = self._workdir / (STATE + ".tmp")
        tmp.write_bytes(pickle.dumps(state))
        os.replace(tmp, self._workdir / STATE)

    def _restore(self) -> int:
        """Load the last saved state, if any; returns the oracle calls it accounts for."""
        path = self._workdir / STATE
        if not path.exists():
            return 0
        state = pickle.loads(path.read_bytes())
        self.round, self._calls = state["round"], state["calls"]
        self.X, self.values = state["X"].astype(np.int64), state["values"]
        self.rounds, self._pending = state["rounds"], state["pending"]
        self.measured = set(row_keys(self.X))
        self._load_extra_state(state)
        metrics = self._workdir / METRICS
        if metrics.exists():  # rounds after the saved one never happened
            kept = [line for line in metrics.read_text().splitlines()
                    if json.loads(line)["round"] <= self.round]
            metrics.write_text("".join(line + "\n" for line in kept))
        return self._calls
