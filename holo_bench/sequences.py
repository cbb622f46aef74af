"""Validation of token sequences at the boundary of every test function and oracle.

A sequence is a vector of integer tokens in ``[0, num_states)`` of length ``dim``; a batch is an
``(n, dim)`` array. Everything past this module may assume a validated, compact integer array.
"""

from __future__ import annotations

import numpy as np


def token_dtype(num_states: int) -> np.dtype:
    """The smallest unsigned dtype holding every token of an alphabet of ``num_states``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if num_states - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def check_sequences(X, num_states: int, dim: int) -> tuple[np.ndarray, bool]:
    """Validate ``X`` and return it as an ``(n, dim)`` array of compact unsigned tokens.

    Accepts array-likes (lists, numpy arrays, torch tensors) of shape ``(n, dim)`` or ``(dim,)``;
    integer-valued floats are accepted because optimizers often keep particles as floats. The
    second return value says whether a single ``(dim,)`` sequence was given. ``[]`` is an empty
    batch. Raises ``TypeError`` for non-numeric tokens and ``ValueError`` naming the problem
    (shape, length, NaN, fractional or out-of-range token, with its position) otherwise.
    """
    if hasattr(X, "detach"):  # a torch tensor, possibly on an accelerator
        X = X.detach().cpu().numpy()
    try:
        X = np.asarray(X)
    except ValueError as err:
        raise ValueError(
            f"sequences must form a rectangular array (ragged input?): {err}") from None
    if X.dtype == object:
        raise TypeError(
            "sequences must be integer tokens; got an object array (ragged lists or mixed types)"
        )
    if X.dtype.kind not in "iuf":
        raise TypeError(f"sequences must be integer tokens, got dtype {X.dtype}")

    single = X.ndim == 1 and X.size > 0
    if X.ndim == 1 and X.size == 0:
        X = X.reshape(0, dim)
    elif single:
        X = X[None, :]
    if X.ndim != 2:
        raise ValueError(
            f"sequences must have shape (n, {dim}) or ({dim},), got an array of shape {X.shape}"
        )
    if X.shape[1] != dim:
        raise ValueError(f"sequences must have length {dim}, got length {X.shape[1]}")
    if X.shape[0] == 0:
        return np.empty((0, dim), dtype=token_dtype(num_states)), single

    if X.dtype.kind == "f":
        finite = np.isfinite(X)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise ValueError(
                f"token at sequence {row}, position {col} is {X[row, col].item()}, not an integer"
            )
        fractional = X != np.floor(X)
        if fractional.any():
            row, col = np.argwhere(fractional)[0]
            raise ValueError(
                f"token at sequence {row}, position {col} is {X[row, col].item()!r}, not an integer"
            )
    # Viewed as unsigned, negative integers become huge: one reduction checks both bounds.
    as_unsigned = X.view(f"u{X.dtype.itemsize}") if X.dtype.kind == "i" else X
    if as_unsigned.max() >= num_states or (X.dtype.kind == "f" and X.min() < 0):
        bad = (X < 0) | (X >= num_states)
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"token {X[row, col].item()!r} at sequence {row}, position {col} is out of range "
            f"[0, {num_states})"
        )
    return X.astype(token_dtype(num_states), copy=False), single
