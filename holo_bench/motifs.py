"""Spaced motif search with quantization, the signal term of an Ehrlich function.

A motif ``a`` of length ``k`` with offsets ``o`` (``o[0] = 0``, increasing) is present at window
``l`` to the degree ``count(l) = sum_j [x[l + o_j] == a_j]``; the motif's score is the best window,
quantized to ``q`` levels.
"""

from __future__ import annotations

import math

import numpy as np


def spacing_offsets(spacings: np.ndarray) -> np.ndarray:
    """Offsets ``(..., k)`` of the motif elements from their ``(..., k-1)`` spacings (leading 0)."""
    spacings = np.asarray(spacings, dtype=np.int64)
    zeros = np.zeros(spacings.shape[:-1] + (1,), dtype=np.int64)
    return np.concatenate([zeros, np.cumsum(spacings, axis=-1)], axis=-1)


class SpacedMotifs:
    """A set of ``c`` motifs of length ``k`` at fixed offsets, searched in sequences of ``length``.

    ``max_matches`` gives, for each motif and sequence, the most motif elements matched by any
    single window. Two strategies compute the same counts: a fancy-indexed gather of every window
    at once (a handful of numpy calls, for the small batches where per-call overhead dominates),
    and one vectorized comparison per motif element over contiguous slabs (for throughput).
    """

    # Batches up to this size use the gather; its memory grows as n * c * windows * k.
    gather_max_batch = 8

    def __init__(self, motifs: np.ndarray, offsets: np.ndarray, length: int):
        self.motifs = np.asarray(motifs, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.length = int(length)
        windows = self.length - self.offsets[:, -1]
        # Every motif gets max(windows) rows; motifs with fewer windows repeat their last one,
        # which leaves the max unchanged.
        starts = np.minimum(np.arange(windows.max())[None, :], windows[:, None] - 1)
        self._window_index = starts[:, :, None] + self.offsets[:, None, :]  # (c, W, k)
        self._motif_column = self.motifs[:, None, :, None]  # (c, 1, k, 1)

    def max_matches(self, tokens: np.ndarray) -> np.ndarray:
        """Counts ``(c, n)`` uint8 in ``[0, k]`` for position-major tokens ``(length, n)``.

        Position-major layout makes each window slab of one motif element contiguous.
        """
        if tokens.shape[1] <= self.gather_max_batch:
            windows = tokens[self._window_index]  # (c, W, k, n)
            matched = np.equal(windows, self._motif_column).sum(axis=2, dtype=np.uint8)
            return matched.max(axis=1)
        return self._max_matches_by_slab(tokens)

    def _max_matches_by_slab(self, tokens: np.ndarray) -> np.ndarray:
        n = tokens.shape[1]
        counts = np.empty((len(self.motifs), n), dtype=np.uint8)
        match = np.empty((self.length, n), dtype=bool)
        for i, (motif, offset) in enumerate(zip(self.motifs.tolist(), self.offsets.tolist())):
            windows = self.length - offset[-1]
            total = np.zeros((windows, n), dtype=np.uint8)
            for state, first in zip(motif, offset):  # Python ints: no upcast of the uint8 slab
                np.equal(tokens[first : first + windows], state, out=match[:windows])
                total += match[:windows].view(np.uint8)
            total.max(axis=0, out=counts[i])
        return counts


def quantized_levels(motif_length: int, quantization: int | None) -> np.ndarray:
    """Float32 presence score for each match count ``0..k``: ``floor(count / r) / (k / r)``.

    ``r = ceil(k / q)``; when ``q`` divides ``k`` this is ``floor(count * q / k) / q``, so a motif
    scores one of ``0, 1/q, ..., 1``. Computed in float32 exactly as the reference does.
    """
    q = motif_length if quantization is None else quantization
    r = math.ceil(motif_length / q)
    counts = np.arange(motif_length + 1, dtype=np.float32)
    return (np.floor(counts / np.float32(r)) / np.float32(motif_length / r)).astype(np.float32)
