"""LaMBO-2's seeds and acquisition function.

Seeds (poli-baselines' ``LaMBO2.get_candidate_points_from_history`` with bbo-bench's
``fft_expansion_factor: 2``): the ``2N`` best distinct labelled sequences, thinned to ``N`` by a
farthest-first traversal under Hamming distance that starts from the best and breaks ties by
value (beignet's ``farthest_first_traversal``). Fewer than ``N`` distinct sequences are repeated
to make ``N`` seeds, whose diffusions then differ by their random draws: as in the reference,
whose history holds a sequence once per query and whose traversal takes copies (distance 0) last.

Acquisition (cortex's ``GraphNEI`` with one objective, which calls botorch's
``qLogExpectedImprovement._sample_forward`` once per ensemble member): member ``e``'s predicted
value ``f_e(x)`` is one sample of the objective; its log-improvement over ``best_e``, that
member's highest prediction on the seeds, is ``log fatplus(f_e(x) - best_e)``, botorch's
smooth, fat-tailed ``log max(0, .)`` at temperature ``TAU``; the acquisition is the mean over
members. With ``use_feasibility`` each member's prediction is first multiplied by its
feasibility member's probability (what ``GraphNEI`` does when it is given constraints; bbo-bench
gives none).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# botorch's TAU_RELU: the temperature of the smoothed improvement.
TAU = 1e-6
# The weight of the Cauchy density in botorch's fat-tailed softplus.
CAUCHY_WEIGHT = 0.1


def log_improvement(values: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """``log fatplus(values - best)`` elementwise, where ``fatplus(z) = TAU * (softplus(z/TAU)
    + 0.1 / (1 + (z/TAU)^2))``; ``best`` broadcasts against ``values``."""
    z = (values - best) / TAU
    return torch.log(TAU * (F.softplus(z) + CAUCHY_WEIGHT / (1 + z.square())))


def predictions(model, features: torch.Tensor, use_feasibility: bool) -> torch.Tensor:
    """Each member's objective ``(E, B)`` for trunk features ``(B, D, L)``."""
    values = model.values(features)
    return values * model.feasibility(features) if use_feasibility else values


def acquisition(model, features: torch.Tensor, best: torch.Tensor,
                use_feasibility: bool) -> torch.Tensor:
    """The mean over members of each member's log-improvement over its ``best`` ``(E,)``:
    ``(B,)`` for trunk features ``(B, D, L)``."""
    return log_improvement(predictions(model, features, use_feasibility), best[:, None]).mean(0)


def farthest_first(X: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` rows of ``X`` ``(m, L)``: first the highest score, then repeatedly the row
    farthest (Hamming) from every row chosen so far, ties to the higher score, then to the lower
    index."""
    n = min(n, len(X))
    order = np.lexsort((np.arange(len(X)), -scores))  # best first, ties to the lower index
    rank = np.empty(len(X), dtype=np.int64)
    rank[order] = np.arange(len(X))
    chosen = [order[0]] if n else []
    nearest = np.full(len(X), np.iinfo(np.int64).max)
    for _ in range(1, n):
        nearest = np.minimum(nearest, (X != X[chosen[-1]]).sum(axis=1))
        nearest[chosen[-1]] = -1
        candidates = np.flatnonzero(nearest == nearest.max())
        chosen.append(candidates[np.argmin(rank[candidates])])
    return np.array(chosen, dtype=np.int64)


def select_seeds(X: np.ndarray, values: np.ndarray, n: int, expansion: int) -> np.ndarray:
    """``n`` seeds ``(n, L)``: the ``expansion * n`` best distinct rows of ``X`` by ``values``
    (``-inf`` last), thinned by ``farthest_first``, in the order chosen; with fewer than ``n``
    distinct rows, all of them, then copies of them, best first, cycled."""
    X, first = np.unique(X, axis=0, return_index=True)
    values = values[first]
    top = np.lexsort((first, -values))[: expansion * n]  # ties to the first labelled
    chosen = top[farthest_first(X[top], values[top], n)]
    copies = np.resize(top, n - len(chosen))  # top is best first
    return X[np.concatenate([chosen, copies])]
