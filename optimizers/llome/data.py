"""A round's training data for LLOME: edit pairs (SFT, MargE), preference triples (DPO) and the
likelihood filter, built from a labelled pool (LLOME reference, section 4.2).

A pool is ``X`` ``(n, L)`` int tokens with ``values`` ``(n,)`` float64, higher is better and
``-inf`` infeasible. Everything returned is row indices into ``X``, so the caller keeps the
sequences, their values and their log-likelihoods in one place. Rows should be unique: the
reference deduplicates the pool before pairing, and a duplicate is a neighbour at distance 0
that only ever makes an equal-value pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holo_bench.sequences import token_dtype

# Cells of one block's (rows, n) distance matrix: bounds the working memory at a few times this
# many bytes, whatever n.
BLOCK_CELLS = 2**22


def neighbour_pairs(
    X: np.ndarray, k: int = 29, max_distance: float = 0.25, *, block_cells: int = BLOCK_CELLS
) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pairs ``(i, j)``, ``i < j``, of rows of ``X`` ``(n, L)`` joined in an exact
    ``k``-nearest-neighbour graph and at normalized Hamming distance at most ``max_distance``.

    Row ``i``'s neighbour list is its ``k`` nearest other rows by Hamming distance, ties to the
    lower index; a pair is kept when either row is in the other's list. This is the reference's
    30-NN graph (whose lists included the point itself) searched exactly instead of with
    PyNNDescent. Returns two int64 ``(m,)`` arrays sorted by ``(i, j)``. Drop duplicate rows
    first: a duplicate takes a place in its twin's list at distance 0.

    Only the distances up to the threshold matter: a row nearer than a within-threshold
    neighbour is itself within the threshold, so a row's list restricted to the threshold is its
    within-threshold rows when there are at most ``k`` of them, and their ``k`` nearest otherwise.
    """
    X = _check_tokens(X)
    k = _check_count(k, "k")
    n, L = X.shape
    if not max_distance >= 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    # Largest mismatch count d with d / L <= max_distance, decided by the same float division
    # that defines the normalized distance.
    max_mismatch = int(np.count_nonzero(np.arange(L + 1) / max(L, 1) <= max_distance)) - 1
    if n < 2 or k == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)

    if X.size and X.min() >= 0:  # compact tokens: the comparisons below run on bytes where they fit
        X = X.astype(token_dtype(int(X.max()) + 1), copy=False)
    count_dtype = np.min_scalar_type(L + 1)  # room for L and the self sentinel L + 1
    columns = np.ascontiguousarray(X.T)  # (L, n): one contiguous row per position
    rows_per_block = max(1, block_cells // n)
    heads, tails = [], []
    for start in range(0, n, rows_per_block):
        block = X[start : start + rows_per_block]
        b = len(block)
        mismatches = np.zeros((b, n), count_dtype)
        differ = np.empty((b, n), bool)
        for p in range(L):  # byte-wide SIMD passes, in place: ~10x faster than a one-hot matmul
            np.not_equal(block[:, p, None], columns[p], out=differ)
            np.add(mismatches, differ.view(np.uint8), out=mismatches)
        mismatches[np.arange(b), start + np.arange(b)] = L + 1  # never one's own neighbour
        local, j = _nearest_within(mismatches, k, max_mismatch)
        heads.append(start + local)
        tails.append(j)
    head, tail = np.concatenate(heads), np.concatenate(tails)
    key = np.unique(np.minimum(head, tail) * n + np.maximum(head, tail))
    return key // n, key % n


def _nearest_within(
    mismatches: np.ndarray, k: int, max_mismatch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges ``(row, column)`` of a ``(b, n)`` mismatch-count block: each row's ``k``
    nearest columns (ties to the lower column) among those within ``max_mismatch``.
    """
    near = mismatches <= max_mismatch
    crowded = _count_rows(near)[:, 0] > k
    if not crowded.any():  # the usual case away from a converged pool: keep every near column
        return _edges(near, np.arange(len(near)))
    spacious = np.flatnonzero(~crowded)
    crowded = np.flatnonzero(crowded)
    d = mismatches[crowded]
    # The k-th nearest distance of each crowded row: the least t with at least k distances
    # <= t, by a bisection run on all rows at once (at most max_mismatch, as the row is crowded).
    low = np.zeros((len(crowded), 1), d.dtype)
    high = np.full((len(crowded), 1), max_mismatch, d.dtype)
    while (low < high).any():
        middle = (low + high) // 2
        enough = _count_rows(d <= middle) >= k
        high = np.where(enough, middle, high)
        low = np.where(enough, low, middle + 1)
    cutoff = low
    below = d < cutoff
    quota = k - _count_rows(below)[:, 0]
    # the quota lowest columns at the cutoff distance complete each list
    tie_row, tie_column = np.nonzero(d == cutoff)
    first = np.searchsorted(tie_row, np.arange(len(crowded)))
    chosen = np.arange(len(tie_row)) - first[tie_row] < quota[tie_row]
    below_row, below_column = _edges(below, crowded)
    spacious_row, spacious_column = _edges(near[spacious], spacious)
    return (
        np.concatenate([spacious_row, below_row, crowded[tie_row[chosen]]]),
        np.concatenate([spacious_column, below_column, tie_column[chosen].astype(np.int64)]),
    )


def _count_rows(mask: np.ndarray) -> np.ndarray:
    """``(b, 1)`` int64: True cells per row of a bool ``(b, n)`` (bytes summed: faster)."""
    return mask.view(np.uint8).sum(axis=1, dtype=np.int64, keepdims=True)


def _edges(mask: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Int64 ``(row, column)`` of the True cells of ``mask``, its rows named by ``rows``."""
    row, column = np.nonzero(mask)
    return rows[row].astype(np.int64), column.astype(np.int64)


@dataclass(frozen=True)
class EditPairs:
    """Edit pairs for SFT and MargE: the model learns to rewrite ``X[prompt]`` into ``X[target]``.

    ``prompt``, ``target``: int64 ``(m,)`` row indices of the worse and the better member;
    ``reward``: float64 ``(m,)``, ``max(h(target) - h(prompt), 0)`` with ``h(-inf) := 0``.
    """

    prompt: np.ndarray
    target: np.ndarray
    reward: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt)


def edit_pairs(
    X: np.ndarray,
    values: np.ndarray,
    rng: np.random.Generator,
    k: int = 29,
    max_distance: float = 0.25,
    max_infeasible_fraction: float = 0.1,
) -> EditPairs:
    """Neighbour pairs of ``X`` ``(n, L)`` oriented worse -> better by ``values`` ``(n,)``, in a
    random order (``rng``).

    Equal-value pairs are dropped, two infeasible rows included, so the target is always
    feasible. Pairs with an infeasible prompt are capped: all pairs with a feasible prompt are
    kept, plus a random subset of at most ``round(n_feasible * f / (1 - f))`` of the others for
    ``f = max_infeasible_fraction``, so that they make that fraction of the result at most (give
    or take the rounding, under one pair; ``f = 1``: no cap).
    """
    X = _check_tokens(X)
    values = _check_values(values, len(X))
    if not 0 <= max_infeasible_fraction <= 1:
        raise ValueError(
            f"max_infeasible_fraction must be in [0, 1], got {max_infeasible_fraction}"
        )
    i, j = neighbour_pairs(X, k, max_distance)
    differ = values[i] != values[j]
    i, j = i[differ], j[differ]
    j_better = values[j] > values[i]
    prompt, target = np.where(j_better, i, j), np.where(j_better, j, i)

    infeasible = values[prompt] == -np.inf
    feasible_pairs, infeasible_pairs = np.flatnonzero(~infeasible), np.flatnonzero(infeasible)
    f = max_infeasible_fraction
    if f < 1:
        cap = round(len(feasible_pairs) * f / (1 - f))
        if len(infeasible_pairs) > cap:
            infeasible_pairs = infeasible_pairs[rng.permutation(len(infeasible_pairs))[:cap]]
    kept = np.concatenate([feasible_pairs, infeasible_pairs])
    kept = kept[rng.permutation(len(kept))]
    prompt, target = prompt[kept], target[kept]

    worth = np.where(values == -np.inf, 0.0, values)  # h, with h(infeasible) := 0
    reward = np.maximum(worth[target] - worth[prompt], 0.0)
    return EditPairs(prompt, target, reward)


@dataclass(frozen=True)
class PreferenceTriples:
    """DPO triples: for prompt ``X[prompt]``, ``X[chosen]`` is better and ``X[rejected]`` is not.

    All three are int64 ``(m,)`` row indices; ``rejected`` may equal ``prompt``.
    """

    prompt: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt)


def preference_triples(
    X: np.ndarray,
    values: np.ndarray,
    rng: np.random.Generator,
    k: int = 29,
    max_distance: float = 0.25,
    max_triples: int | None = None,
) -> PreferenceTriples:
    """Every triple ``(x, y_w, y_l)`` with ``h(y_w) > h(x) >= h(y_l)``, where ``y_w`` is a
    neighbour of the anchor ``x`` (undirected ``neighbour_pairs`` graph) and ``y_l`` a neighbour
    or ``x`` itself; in a random order (``rng``), at most ``max_triples`` of them drawn uniformly
    without replacement. ``X`` ``(n, L)``, ``values`` ``(n,)``.

    The reference pairs x's neighbours with each other and with x, and tests
    ``f(y_w) < f(x) <= f(y_l)`` on lower-is-better scores; x itself can only pass as ``y_l``.
    Its infeasible scores were NaN, which fail every comparison, so an infeasible row takes no
    part in any triple here, as anchor, chosen or rejected.
    """
    X = _check_tokens(X)
    values = _check_values(values, len(X))
    if max_triples is not None:
        max_triples = _check_count(max_triples, "max_triples")
    n = len(X)
    i, j = neighbour_pairs(X, k, max_distance)
    feasible = values > -np.inf
    kept = feasible[i] & feasible[j]
    i, j = i[kept], j[kept]
    own = np.flatnonzero(feasible)
    anchor = np.concatenate([i, j, own])  # directed edges, plus the anchor itself as a y_l
    other = np.concatenate([j, i, own])
    order = np.lexsort((other, anchor))
    anchor, other = anchor[order], other[order]
    better = values[other] > values[anchor]

    # Enumerate triples without building them: the better edges in order, each followed by its
    # anchor's not-better list, give triple t a chosen edge and an offset into that list.
    chosen_anchor, chosen = anchor[better], other[better]
    worse_anchor, worse = anchor[~better], other[~better]
    worse_count = np.bincount(worse_anchor, minlength=n)
    worse_start = np.concatenate([[0], np.cumsum(worse_count)[:-1]])
    per_chosen = worse_count[chosen_anchor]
    ends = np.cumsum(per_chosen)
    total = int(ends[-1]) if len(ends) else 0

    size = total if max_triples is None else min(total, max_triples)
    t = rng.choice(total, size=size, replace=False) if size < total else rng.permutation(total)
    edge = np.searchsorted(ends, t, side="right")
    offset = t - (ends[edge] - per_chosen[edge])
    rejected = worse[worse_start[chosen_anchor[edge]] + offset]
    return PreferenceTriples(chosen_anchor[edge], chosen[edge], rejected)


def top_fraction_by_likelihood(loglik: np.ndarray, fraction: float = 0.4) -> np.ndarray:
    """Bool ``(n,)``: rows whose log-likelihood is at least the linearly interpolated
    ``1 - fraction`` quantile of the non-NaN ones; NaN rows are dropped.

    The reference thresholds ``exp(loglik)`` at its 0.6 quantile. A linearly interpolated
    quantile lies between the same two order statistics in either space and exp is monotone, so
    the threshold is decided on the order statistics themselves: no exp, no rounding.
    """
    loglik = np.asarray(loglik, dtype=np.float64)
    if loglik.ndim != 1:
        raise ValueError(f"loglik must have shape (n,), got {loglik.shape}")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    valid = ~np.isnan(loglik)
    ordered = np.sort(loglik[valid])
    if len(ordered) == 0:
        return valid
    rank = (1 - fraction) * (len(ordered) - 1)
    below = int(np.floor(rank))
    threshold = ordered[below] if rank == below else ordered[below + 1]
    return valid & (loglik >= threshold)


def _check_tokens(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "iu":
        raise ValueError(f"X must be an (n, L) integer array, got {X.dtype} of shape {X.shape}")
    return X


def _check_values(values, n: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (n,):
        raise ValueError(f"values must have shape ({n},), got {values.shape}")
    if np.isnan(values).any() or (values == np.inf).any():
        raise ValueError("values must be finite or -inf (infeasible); got NaN or +inf")
    return values


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)
