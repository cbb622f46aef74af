"""Rough Mount Fuji landscapes (Neidhart et al. 2014), the same instances as pytorch-holo 0.0.5.

    f(x) = -a * hamming(x, x0) + sum_t r_t x_t,    x in {0, 1}^L,

a smooth peak at the centroid ``x0`` (slope ``additive_term``) plus a random additive field
``r ~ N(0, random_term_std^2)``. Every sequence is feasible.
"""

from __future__ import annotations

import numpy as np
import torch

from holo_bench.functions.base import TestFunction


class RoughMtFuji(TestFunction):
    """Binary Rough Mount Fuji landscape; ``centroid`` and ``random_term`` drawn as holo draws
    them."""

    spec_name = "rmf"
    spec_keys = {
        "L": "dim",
        "a": "additive_term",
        "std": "random_term_std",
        "noise": "noise_std",
        "seed": "random_seed",
    }
    num_states = 2

    def __init__(
        self,
        dim: int = 2,
        additive_term: float = 0.25,
        random_term_std: float = 1.0,
        noise_std: float = 0.0,
        negate: bool = False,
        random_seed: int = 0,
    ):
        super().__init__(noise_std=noise_std, negate=negate, random_seed=random_seed)
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
        if random_term_std < 0:
            raise ValueError(f"random_term_std must be >= 0, got {random_term_std}")
        self.dim = int(dim)
        self.additive_term = float(additive_term)
        self.random_term_std = float(random_term_std)
        generator = torch.Generator().manual_seed(self.random_seed)
        self.centroid = torch.randint(0, 2, (dim,), generator=generator).numpy()
        self.random_term = (torch.randn(dim, generator=generator) * random_term_std).numpy()
        # Each position contributes independently: its best and worst choice give the extremes.
        # Both are the function's own value of those sequences, bit for bit, so reaching the
        # optimum gives regret exactly 0 (a per-position sum would differ in the last bits).
        worst = np.argmin(self._contributions(), axis=0)
        self.optimal_value = float(self._evaluate(self.optimal_solution()[None])[0])
        self.worst_value = float(self._evaluate(worst[None])[0])

    def _contributions(self) -> np.ndarray:
        """``(2, L)``: what each position adds to ``f`` when set to 0 or to 1."""
        tokens = np.arange(2)[:, None]
        distance = tokens != self.centroid[None, :]
        return -self.additive_term * distance + self.random_term.astype(np.float64) * tokens

    def _evaluate(self, X: np.ndarray) -> np.ndarray:
        distance = (X != self.centroid).sum(axis=1)
        return -self.additive_term * distance + X @ self.random_term.astype(np.float64)

    def initial_solution(self, n: int = 1) -> np.ndarray:
        """``n`` uniform random binary sequences from a generator seeded with ``random_seed``.

        Deterministic, unlike the reference, which draws these from torch's global RNG.
        """
        X = np.random.default_rng(self.random_seed).integers(0, 2, size=(n, self.dim))
        return X[0] if n == 1 else X

    def random_solution(self, n: int = 1,
                        rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` uniform random binary sequences; ``(dim,)`` when ``n == 1``."""
        X = np.random.default_rng(rng).integers(0, 2, size=(n, self.dim))
        return X[0] if n == 1 else X

    def optimal_solution(self) -> np.ndarray:
        """The maximizer: every position takes its better token (ties keep the centroid's)."""
        contributions = self._contributions()
        best = np.argmax(contributions, axis=0)
        tie = contributions[0] == contributions[1]
        return np.where(tie, self.centroid, best).astype(np.int64)
