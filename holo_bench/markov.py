"""Discrete Markov processes: the banned-transition chain that defines Ehrlich feasibility.

Sampling uses a seeded ``torch.Generator`` and the same sequence of torch calls as pytorch-holo,
because an instance is defined by that random stream: the same seed must give the same matrix and
the same chains, bit for bit. Scoring (likelihood, feasibility) is plain vectorized numpy.
"""

from __future__ import annotations

import numpy as np
import torch


def banded_mask(num_states: int, bandwidth: int) -> torch.Tensor:
    """Boolean ``(v, v)`` mask allowing the states within ``bandwidth`` of the diagonal,
    wrapping."""
    index = torch.arange(num_states)
    offset = (index[None, :] - index[:, None]) % num_states
    return (offset <= bandwidth) | (offset >= num_states - bandwidth)


def sample_transition_matrix(
    num_states: int, bandwidth: int, generator: torch.Generator, softmax_temp: float = 0.5
) -> torch.Tensor:
    """Sample a sparse, ergodic ``(v, v)`` float32 transition matrix with a self-loop on every
    state.

    Draws, in order: ``randn(v, v)`` logits (row softmax at ``softmax_temp``), then ``randperm(v)``
    shuffling the rows of a wrapped band mask. Entries outside the shuffled band (plus the diagonal)
    are exactly zero: those transitions are banned. Raises ``ValueError`` when the matrix is not
    primitive, i.e. the chain is not ergodic.
    """
    if softmax_temp <= 0:
        raise ValueError(f"softmax_temp must be > 0, got {softmax_temp}")
    logits = torch.randn(num_states, num_states, generator=generator)
    dense = (logits / softmax_temp).softmax(dim=-1)
    mask = banded_mask(num_states, bandwidth)[torch.randperm(num_states, generator=generator)]
    mask |= torch.eye(num_states, dtype=torch.bool)
    matrix = torch.where(mask, dense, torch.zeros_like(dense))
    matrix = matrix / matrix.sum(dim=-1, keepdim=True)

    if not is_primitive(matrix.numpy() > 0):
        raise ValueError(
            f"the sampled transition matrix on {num_states} states is not ergodic "
            "(Perron-Frobenius check failed); try another seed or more states"
        )
    return matrix


def is_primitive(support: np.ndarray) -> bool:
    """Whether a nonnegative matrix with boolean ``support`` ``(v, v)`` is primitive.

    Wielandt's bound: it is iff its ``(v-1)^2 + 1``-th power is strictly positive. Computed
    exactly on the support by repeated squaring, rather than with the reference's float32 powers;
    the two agree unless float32 underflows, which the stationary distribution rules out here.
    """
    v = len(support)
    exponent = (v - 1) ** 2 + 1
    power, base = np.eye(v, dtype=bool), support.astype(bool)
    while exponent:
        if exponent & 1:
            power = (power.astype(np.int64) @ base) > 0
        base = (base.astype(np.int64) @ base) > 0
        exponent >>= 1
    return bool(power.all())


def stationary_distribution(
    transition_matrix: torch.Tensor, tolerance: float = 1e-5
) -> torch.Tensor:
    """Stationary distribution ``pi = pi P``, ``sum(pi) = 1``, as a ``(v,)`` float32 tensor.

    Solved as the least-squares system ``[(I - P)^T; 1^T] pi = [0; 1]`` through a QR factorization,
    in float32, so the result (which seeds the motif chain) matches the reference bit for bit.
    """
    v = transition_matrix.shape[0]
    system = torch.cat([(torch.eye(v) - transition_matrix).T, torch.ones(1, v)], dim=0)
    target = torch.zeros(v + 1, 1)
    target[-1] = 1
    q, r = torch.linalg.qr(system)
    solution = torch.linalg.solve(r, q.T @ target)
    residual = torch.norm(system @ solution - target) / torch.norm(target)
    if not residual <= tolerance:
        raise ValueError(f"stationary distribution solve failed (relative residual {residual:.2e})")
    return solution.squeeze(-1)


def sample_chains(
    initial_dist: torch.Tensor,
    transition_matrix: torch.Tensor,
    length: int,
    num_samples: int,
    generator: torch.Generator,
) -> np.ndarray:
    """Sample ``num_samples`` chains of ``length`` states, as an ``(n, length)`` int64 array.

    One ``multinomial`` call for all first states, then one per time step: the loop over time is
    what reproduces the reference random stream, and sampling is never on a hot path.
    """
    samples = torch.zeros(num_samples, length, dtype=torch.int64)
    samples[:, 0] = torch.multinomial(initial_dist, num_samples, replacement=True,
                                      generator=generator)
    for t in range(1, length):
        rows = transition_matrix[samples[:, t - 1]]
        samples[:, t] = torch.multinomial(rows, 1, generator=generator).squeeze(-1)
    return samples.numpy()


def transitions_allowed(tokens: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Whether every adjacent pair of each sequence is an allowed transition.

    ``tokens`` is position-major, ``(L, n)`` (contiguous slabs for each step); ``allowed`` is a
    ``(v, v)`` boolean matrix. Returns ``(n,)`` bool.
    """
    v = allowed.shape[0]
    pair_dtype = np.result_type(tokens.dtype, np.uint16 if v <= 256 else np.int64)
    pairs = np.multiply(tokens[:-1], v, dtype=pair_dtype)
    pairs += tokens[1:]
    return np.logical_and.reduce(np.take(allowed.ravel(), pairs), axis=0)


def log_likelihood(
    X: np.ndarray, initial_dist: np.ndarray, transition_matrix: np.ndarray
) -> np.ndarray:
    """Log-probability of each ``(n, L)`` sequence under the chain; ``-inf`` if a transition is
    banned."""
    with np.errstate(divide="ignore"):
        log_p = np.log(np.asarray(transition_matrix, dtype=np.float64))
        log_init = np.log(np.asarray(initial_dist, dtype=np.float64))
    return log_init[X[:, 0]] + log_p[X[:, :-1], X[:, 1:]].sum(axis=1)
