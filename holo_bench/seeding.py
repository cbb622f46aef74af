"""Every run's randomness comes from one ``numpy.random.SeedSequence(seed)`` tree.

The runner hands an optimizer the root ``SeedSequence`` of its run. A consumer that needs its own
stream takes a child by a fixed path (``child(root, GA)``, ``child(root, TRAIN, round)``): the
path, not the order of calls, names the stream, so a resumed run derives the very streams the
killed one used. Nothing here, or anywhere in holo-bench, seeds a global generator.
"""

from __future__ import annotations

import numpy as np


def child(seed: np.random.SeedSequence, *path: int) -> np.random.SeedSequence:
    """The descendant of ``seed`` at ``path`` (non-negative ints): the same as ``spawn`` would
    give as child ``path[0]``, then its child ``path[1]``, ..., without spawn's hidden counter."""
    if any(int(key) != key or key < 0 for key in path):
        raise ValueError(f"a seed path holds non-negative integers, got {path!r}")
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, *map(int, path)),
                                  pool_size=seed.pool_size)


def integer_seed(seed: np.random.SeedSequence) -> int:
    """A 63-bit integer drawn from ``seed``, for APIs that take an int (``torch.Generator``,
    vLLM's per-request seeds)."""
    return int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1))


def as_seed_sequence(seed) -> np.random.SeedSequence:
    """``seed`` as a ``SeedSequence``: an int becomes the root of its tree."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or a SeedSequence, got {seed!r}")
    return np.random.SeedSequence(int(seed))
