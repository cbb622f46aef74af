"""Optimizers for the runner's fault, stall and resumption tests."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimizers.base import Optimizer
from optimizers.ga import GeneticAlgorithm


@dataclass(frozen=True)
class ScriptedParams:
    fault: str = "none"
    at: int = 2
    batch: int = 10


class Scripted(Optimizer):
    """Asks random sequences, then misbehaves in the way ``fault`` names at call ``at``
    (``repeat``: from then on asks only its first batch again)."""

    Params = ScriptedParams

    def setup(self, problem, seed, workdir=None):
        self._problem, self._rng, self._calls = problem, np.random.default_rng(seed), 0
        self._first = None
        return 0

    def ask(self, n):
        self._calls += 1
        p, fault = self._problem, self.params.fault
        X = self._rng.integers(0, p.num_states, (min(n, self.params.batch), p.dim))
        self._first = X if self._first is None else self._first
        if self._calls < self.params.at or fault == "none":
            return X
        if fault == "raise":
            raise RuntimeError("optimizer blew up")
        if fault == "shape":
            return X[:, :-1]
        if fault == "dtype":
            return X.astype(np.float64)
        if fault == "list":
            return X.tolist()
        if fault == "range":
            X[0, 0] = p.num_states
            return X
        if fault == "too-many":
            return self._rng.integers(0, p.num_states, (n + 1, p.dim))
        if fault == "empty":
            return X[:0]
        if fault == "repeat":
            return self._first[:n]
        raise AssertionError(fault)

    def tell(self, X, values):
        X[:] = 0  # tampering with what it was told must not touch the log
        values[:] = np.nan


class ThrottledGA(GeneticAlgorithm):
    """The GA, sleeping after each tell so that a test can kill it mid-run."""

    def tell(self, X, values):
        super().tell(X, values)
        time.sleep(0.01)


class DiesOnce(GeneticAlgorithm):
    """The GA, whose process dies at its 50th tell the first time it runs (it leaves the file
    ``died`` in its workdir), as a worker lost to a crash or a preempted node."""

    def setup(self, problem, seed, workdir=None):
        self._died, self._tells = Path(workdir) / "died", 0
        return super().setup(problem, seed, workdir)

    def tell(self, X, values):
        super().tell(X, values)
        self._tells += 1
        if self._tells == 50 and not self._died.exists():
            self._died.parent.mkdir(parents=True, exist_ok=True)
            self._died.touch()
            os._exit(1)


class OldStyle(Optimizer):
    """An optimizer written for the protocol before holo-bench 0.2: parameters in ``__init__``,
    ``setup(problem, seed)`` returning nothing."""

    def __init__(self, batch=10):
        self.batch = batch

    def setup(self, problem, seed):
        self._problem = problem

    def ask(self, n):
        return np.zeros((min(n, self.batch), self._problem.dim), dtype=np.int64)

    def tell(self, X, values):
        pass


class NoneFromSetup(Optimizer):
    """New-style parameters, but ``setup`` returns None instead of the resumed call count."""

    def setup(self, problem, seed, workdir=None):
        self._problem = problem

    def ask(self, n):
        return np.zeros((1, self._problem.dim), dtype=np.int64)

    def tell(self, X, values):
        pass
