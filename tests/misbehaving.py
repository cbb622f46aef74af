"""Optimizers for the runner's fault and resumption tests."""

import time

import numpy as np

from optimizers.base import Optimizer
from optimizers.ga import GeneticAlgorithm


class Scripted(Optimizer):
    """Asks random sequences, then misbehaves in the way ``fault`` names at call ``at``."""

    name = "scripted"

    def __init__(self, fault="none", at=2, batch=10):
        self.fault, self.at, self.batch = fault, at, batch

    def setup(self, problem, seed):
        self._problem, self._rng, self._calls = problem, np.random.default_rng(seed), 0

    def ask(self, n):
        self._calls += 1
        p = self._problem
        X = self._rng.integers(0, p.num_states, (min(n, self.batch), p.dim))
        if self._calls < self.at or self.fault == "none":
            return X
        if self.fault == "raise":
            raise RuntimeError("optimizer blew up")
        if self.fault == "shape":
            return X[:, :-1]
        if self.fault == "dtype":
            return X.astype(np.float64)
        if self.fault == "list":
            return X.tolist()
        if self.fault == "range":
            X[0, 0] = p.num_states
            return X
        if self.fault == "too-many":
            return self._rng.integers(0, p.num_states, (n + 1, p.dim))
        if self.fault == "empty":
            return X[:0]
        raise AssertionError(self.fault)

    def tell(self, X, values):
        X[:] = 0  # tampering with what it was told must not touch the log
        values[:] = np.nan


class ThrottledGA(GeneticAlgorithm):
    """The GA, sleeping after each tell so that a test can kill it mid-run."""

    def tell(self, X, values):
        super().tell(X, values)
        time.sleep(0.01)
