"""Spaced motif search and quantization against a brute-force definition on tiny instances."""

import itertools
import math

import numpy as np
import pytest

from holo_bench.motifs import SpacedMotifs, quantized_levels, spacing_offsets


def brute_force_presence(x, motif, offsets, q):
    """Best window's quantized score, straight from the definition (loops over windows)."""
    k = len(motif)
    r = math.ceil(k / q)
    best = 0.0
    for start in range(len(x) - offsets[-1]):
        count = sum(x[start + o] == a for o, a in zip(offsets, motif))
        best = max(best, (count // r) / (k / r))
    return best


def test_spacing_offsets_are_cumulative_with_a_leading_zero():
    np.testing.assert_array_equal(spacing_offsets([[2, 1, 3], [1, 1, 1]]),
                                  [[0, 2, 3, 6], [0, 1, 2, 3]])


@pytest.mark.parametrize("q", [1, 2, 4])
def test_quantized_presence_matches_brute_force_on_every_short_sequence(q):
    """Exhaustive over all 3^6 sequences: two motifs of length 4 on 3 states."""
    motifs = np.array([[0, 1, 1, 2], [2, 2, 0, 1]])
    offsets = np.array([[0, 1, 2, 3], [0, 1, 2, 3]])
    search = SpacedMotifs(motifs, offsets, 6)
    X = np.array(list(itertools.product(range(3), repeat=6)), dtype=np.uint8)
    levels = quantized_levels(4, q)
    for strategy_batch in (X[:5], X):  # gather path and slab path
        got = levels[search.max_matches(np.ascontiguousarray(strategy_batch.T))].T
        expected = [[brute_force_presence(x, m, o, q) for m, o in zip(motifs, offsets)]
                    for x in strategy_batch]
        np.testing.assert_array_equal(got, np.array(expected, dtype=np.float32))


def test_spaced_motifs_with_different_spans_match_brute_force():
    rng = np.random.default_rng(0)
    motifs = rng.integers(0, 4, (3, 3))
    offsets = np.array([[0, 1, 5], [0, 3, 4], [0, 1, 2]])
    search = SpacedMotifs(motifs, offsets, 11)
    X = rng.integers(0, 4, (300, 11)).astype(np.uint8)
    for batch in (X[:3], X):
        got = search.max_matches(np.ascontiguousarray(batch.T)).T
        expected = [[brute_force_presence(x, m, o, 3) * 3 for m, o in zip(motifs, offsets)]
                    for x in batch]
        np.testing.assert_array_equal(got, np.array(expected))


def test_quantization_levels():
    np.testing.assert_array_equal(quantized_levels(4, 4), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(quantized_levels(4, 2), [0, 0, 0.5, 0.5, 1])
    np.testing.assert_array_equal(quantized_levels(4, 1), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(quantized_levels(6, None), np.arange(7, dtype=np.float32) / 6)
