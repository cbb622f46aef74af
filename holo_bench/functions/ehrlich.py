"""Ehrlich functions (Stanton et al. 2024), the same instances as pytorch-holo 0.0.5.

    f(x) = prod_i g(h_q(x, a_i, s_i))   if x is feasible under the banned-transition chain,
    f(x) = -inf                          otherwise,

with ``h_q`` the quantized presence of spaced motif ``a_i`` (see ``holo_bench.motifs``) and
``g(h) = h (1 + eps h (h - 1))`` the epistatic response. The optimum is 1.0.
"""

from __future__ import annotations

import numpy as np
import torch

from holo_bench import markov, motifs
from holo_bench.functions.base import TestFunction

# Sequences per block: a position-major block (L x 4096 tokens) stays in cache while every motif
# element and every transition is checked against it.
_BLOCK = 4096


class Ehrlich(TestFunction):
    """An Ehrlich function, built from ``random_seed`` exactly as pytorch-holo builds it.

    One ``torch.Generator`` seeded with ``random_seed`` draws, in order: the transition matrix,
    one chain of ``num_motifs * motif_length`` states cut into the motifs, and each motif's spacing
    weights. Attributes: ``transition_matrix`` ``(v, v)`` float32, ``initial_dist`` and
    ``stationary_dist`` ``(v,)``, ``motifs`` ``(c, k)`` int64, ``spacings`` ``(c, k-1)`` int64,
    ``offsets`` ``(c, k)`` int64.
    """

    spec_name = "ehrlich"
    spec_keys = {
        "v": "num_states",
        "L": "dim",
        "c": "num_motifs",
        "k": "motif_length",
        "q": "quantization",
        "eps": "epistasis_factor",
        "noise": "noise_std",
        "seed": "random_seed",
    }
    optimal_value = 1.0
    worst_value = 0.0

    def __init__(
        self,
        num_states: int,
        dim: int,
        num_motifs: int,
        motif_length: int,
        quantization: int | None = None,
        epistasis_factor: float = 0.0,
        noise_std: float = 0.0,
        negate: bool = False,
        random_seed: int = 0,
    ):
        super().__init__(noise_std=noise_std, negate=negate, random_seed=random_seed)
        quantization = motif_length if quantization is None else quantization
        _check_parameters(num_states, dim, num_motifs, motif_length, quantization)
        self.num_states = int(num_states)
        self.dim = int(dim)
        self.num_motifs = int(num_motifs)
        self.motif_length = int(motif_length)
        self.quantization = int(quantization)
        self.epistasis_factor = float(epistasis_factor)

        generator = torch.Generator().manual_seed(self.random_seed)
        transition = markov.sample_transition_matrix(num_states, int(0.4 * num_states), generator)
        stationary = markov.stationary_distribution(transition)
        chain = markov.sample_chains(stationary, transition, num_motifs * motif_length, 1,
                                     generator)
        slack_per_motif = (dim - num_motifs * motif_length) // num_motifs
        spacings = []
        for _ in range(num_motifs):
            weights = torch.rand(motif_length - 1, generator=generator)
            weights /= weights.sum()
            spacings.append(1 + (slack_per_motif * weights).floor().to(torch.int64))

        self._stationary_torch = stationary
        self._transition_torch = transition
        self.transition_matrix = transition.numpy()
        self.stationary_dist = stationary.numpy()
        self.initial_dist = np.full(num_states, 1.0 / num_states, dtype=np.float32)
        self.allowed = self.transition_matrix > 0
        self.motifs = chain.reshape(num_motifs, motif_length)
        self.spacings = torch.stack(spacings).numpy()
        self.offsets = motifs.spacing_offsets(self.spacings)
        self._search = motifs.SpacedMotifs(self.motifs, self.offsets, dim)
        levels = motifs.quantized_levels(motif_length, quantization)
        eps = np.float32(self.epistasis_factor)
        # g(h) per match count, in float32 as the reference computes it.
        self._response = (eps * levels * (levels - np.float32(1.0)) + np.float32(1.0)) * levels

    def _evaluate(self, X: np.ndarray) -> np.ndarray:
        blocks = [np.ascontiguousarray(X[i : i + _BLOCK].T) for i in range(0, len(X), _BLOCK)]
        return np.concatenate([self._evaluate_positions(tokens) for tokens in blocks])

    def _evaluate_positions(self, tokens: np.ndarray) -> np.ndarray:
        """Values ``(n,)`` float64 of position-major tokens ``(L, n)``."""
        response = self._response[self._search.max_matches(tokens)]
        value = response[0]
        for row in response[1:]:  # multiply in motif order, in float32, as the reference
            value *= row
        value[~markov.transitions_allowed(tokens, self.allowed)] = -np.inf
        return value.astype(np.float64)

    def is_feasible(self, X) -> np.ndarray:
        X, _ = self.check(X)
        return markov.transitions_allowed(np.ascontiguousarray(X.T), self.allowed)

    def motif_presence(self, X) -> np.ndarray:
        """Quantized presence ``h_q`` of each motif, ``(n, c)`` float32, ignoring feasibility."""
        X, _ = self.check(X)
        levels = motifs.quantized_levels(self.motif_length, self.quantization)
        return levels[self._search.max_matches(np.ascontiguousarray(X.T))].T

    def log_likelihood(self, X) -> np.ndarray:
        """Log-probability under the uniform-start chain, ``(n,)``; ``-inf`` marks infeasible."""
        X, _ = self.check(X)
        return markov.log_likelihood(X, self.initial_dist, self.transition_matrix)

    def initial_solution(self, n: int = 1) -> np.ndarray:
        """``n`` feasible chains from the stationary distribution, the same on every call.

        Drawn from a fresh generator seeded with ``random_seed``, as the reference does; shape
        ``(dim,)`` for ``n == 1`` (as the reference), else ``(n, dim)``.
        """
        generator = torch.Generator().manual_seed(self.random_seed)
        chains = markov.sample_chains(self._stationary_torch, self._transition_torch, self.dim, n,
                                      generator)
        return chains[0] if n == 1 else chains

    def random_solution(self, n: int = 1,
                        rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` uniformly random sequences (almost always infeasible); ``(dim,)`` when
        ``n == 1``."""
        X = np.random.default_rng(rng).integers(0, self.num_states, size=(n, self.dim))
        return X[0] if n == 1 else X

    def optimal_solution(self) -> np.ndarray:
        """A sequence scoring 1.0: motifs back to back, each element repeated up to the next offset.

        Repeats are always allowed and motif-to-motif steps are steps of the motif chain, so the
        result is feasible; the rest is filled with the last motif's last state.
        """
        pieces = []
        for motif, offset in zip(self.motifs, self.offsets):
            pieces.append(np.repeat(motif, np.diff(offset, append=offset[-1] + 1)))
        prefix = np.concatenate(pieces)
        solution = np.full(self.dim, prefix[-1], dtype=np.int64)
        solution[: len(prefix)] = prefix
        if self._evaluate(solution[None, :].astype(np.uint32))[0] != self.optimal_value:
            raise RuntimeError("optimal_solution does not reach the optimal value")
        return solution


def _check_parameters(num_states, dim, num_motifs, motif_length, quantization) -> None:
    """Reject parameters for which no instance exists, before drawing anything."""
    for name, value, low in [
        ("num_states", num_states, 2),
        ("dim", dim, 1),
        ("num_motifs", num_motifs, 1),
        ("motif_length", motif_length, 2),
        ("quantization", quantization, 1),
    ]:
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if num_motifs * motif_length > dim:
        raise ValueError(
            f"{num_motifs} motifs of length {motif_length} need {num_motifs * motif_length} "
            f"positions but dim is {dim}: cannot guarantee a solution satisfying all motifs exists"
        )
    if quantization > motif_length or motif_length % quantization:
        raise ValueError(
            f"quantization must divide motif_length ({motif_length}), got {quantization}: "
            "otherwise a fully present motif scores below 1 and the optimum is not 1.0"
        )
