"""The seed phase LLOME and LaMBO-2 share: the published LLOME pipeline's genetic algorithm,
asked through the oracle until it has been charged its evaluations, whose labels are the first
round's training data."""

from __future__ import annotations

import numpy as np

from optimizers.base import Problem
from optimizers.ga import GAParams, GeneticAlgorithm


def seed_ga(params) -> GAParams:
    """The GA's parameters from ``params``' ``seed_particles``, ``seed_mutation_prob``,
    ``seed_recombine_prob`` and ``seed_survival_quantile`` (``ValueError`` if out of range)."""
    return GAParams(params.seed_particles, params.seed_mutation_prob, params.seed_recombine_prob,
                    params.seed_survival_quantile)


class SeedPhase:
    """``seed_ga(params)`` run until ``params.seed_particles * params.seed_generations``
    evaluations are charged under the run's counting rule (under ``distinct``, that many
    distinct sequences), seeded with ``seed``."""

    def __init__(self, params, problem: Problem, seed):
        self.ga = GeneticAlgorithm(seed_ga(params))
        self.ga.setup(problem, seed)
        self.evaluations = params.seed_particles * params.seed_generations
        self.count = problem.count
        self.charged = 0  # saved with the optimizer's state

    @property
    def running(self) -> bool:
        return self.charged < self.evaluations

    def ask(self, n: int) -> np.ndarray:
        return self.ga.ask(n)

    def tell(self, X: np.ndarray, values: np.ndarray, new: int) -> None:
        """``new``: how many distinct rows of ``X`` had not been measured before, which is what
        the oracle charges under ``distinct`` (under ``all``, every row)."""
        self.charged += len(X) if self.count == "all" else new
        self.ga.tell(X, values)
