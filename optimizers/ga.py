"""The genetic algorithm of holo's ``DiscreteEvolution`` (Stanton et al. 2024), in numpy.

A population of ``N`` particles starts as copies of the initial solution. Each generation:
the particles whose loss (``-value``) is at most the ``survival_quantile`` quantile survive (ties
included; everybody when that quantile is ``+inf`` or NaN); every other slot gets a uniform
crossover child of two survivors drawn with replacement; then every position of every particle,
survivors included, is redrawn uniformly with probability ``mutation_prob``. There is no elitism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem


def survival_threshold(loss: np.ndarray, quantile: float) -> float:
    """``torch.quantile(loss, quantile)`` with linear interpolation, for a float64 ``(n,)`` loss
    without NaN, including its ``+inf``/NaN results when the interpolated order statistics are
    infinite (``inf - inf``), which is what lets everybody survive an all-infeasible generation.
    """
    rank = float(quantile) * (len(loss) - 1)
    below, above = int(rank), math.ceil(rank)
    ordered = np.partition(loss, (below, above))
    start, end, weight = float(ordered[below]), float(ordered[above]), rank - below
    # torch's CPU lerp: one fused multiply-add, from whichever end is nearer
    if weight < 0.5:
        return _fused_multiply_add(weight, end - start, start)
    return _fused_multiply_add(weight - 1.0, end - start, end)


def _fused_multiply_add(a: float, b: float, c: float) -> float:
    """``a * b + c`` rounded once, as a hardware FMA (``math.fma`` needs Python 3.13)."""
    if a and b and math.isfinite(a) and math.isfinite(b) and math.isfinite(c):
        return float(Fraction(a) * Fraction(b) + Fraction(c))
    return a * b + c  # the product is exact (zero) or infinite/NaN: one rounding or two agree


def survivors(loss: np.ndarray, quantile: float) -> np.ndarray:
    """Bool ``(n,)``: loss at most the survival threshold, or everybody when it is not finite."""
    threshold = survival_threshold(loss, quantile)
    if threshold < np.inf:
        return loss <= threshold
    return np.ones(len(loss), dtype=bool)


def bernoulli_mask(rng: np.random.Generator, shape: tuple[int, ...], prob: float) -> np.ndarray:
    """Independent Bernoulli(``prob``) draws as a 0/1 ``uint8`` array of ``shape``.

    A uniform ``u`` is below ``prob`` iff its first base-256 digit is below ``prob``'s, or equal
    to it (chance 1/256) and the rest of ``u`` is below the rest of ``prob``. So one random byte
    decides almost every draw, a float uniform only the ties: exact, and several times faster
    than comparing a float uniform per draw.
    """
    size = math.prod(shape)
    digits = rng.bit_generator.random_raw(-(-size // 8)).view(np.uint8)[:size]
    lead, rest = divmod(prob * 256, 1.0)
    below = digits < np.uint8(lead)
    if rest:  # otherwise a tie is never below
        ties = np.flatnonzero(digits == np.uint8(lead))
        below[ties] = rng.random(len(ties)) < rest
    return below.view(np.uint8).reshape(shape)


def bernoulli_positions(rng: np.random.Generator, size: int, prob: float) -> np.ndarray:
    """Sorted indices of the successes among ``size`` independent Bernoulli(``prob``) trials.

    Gaps between successes are geometric, so the cost is proportional to the number of
    successes (about ``size * prob``), not to ``size``.
    """
    mean = size * prob
    positions = np.cumsum(rng.geometric(prob, int(mean + 6 * np.sqrt(mean) + 16))) - 1
    while positions[-1] < size:  # a draw this far above the mean is very rare
        more = np.cumsum(rng.geometric(prob, len(positions))) + positions[-1]
        positions = np.concatenate([positions, more])
    return positions[: np.searchsorted(positions, size)]


@dataclass(frozen=True)
class GAParams:
    """Parameters of ``GeneticAlgorithm``.

    num_particles: population size ``N``, ``>= 1``.
    mutation_prob: per-position mutation probability in ``(0, 1)``; ``None`` means ``1/dim``.
    recombine_prob: probability that a child's position comes from its first parent, ``[0, 1)``.
    survival_quantile: loss quantile in ``(0, 1)`` below which particles survive; it must keep at
        least two particles (``survival_quantile * num_particles >= 2``).
    """

    num_particles: int = 1000
    mutation_prob: float | None = None
    recombine_prob: float = 0.5
    survival_quantile: float = 0.1

    def __post_init__(self):
        if self.num_particles < 1:
            raise ValueError(f"num_particles must be an integer >= 1, got {self.num_particles!r}")
        if self.mutation_prob is not None and not 0.0 < self.mutation_prob < 1.0:
            raise ValueError(
                f"mutation_prob must be in (0, 1), or None for 1/dim; got {self.mutation_prob!r}"
            )
        if not 0.0 <= self.recombine_prob < 1.0:
            raise ValueError(f"recombine_prob must be in [0, 1), got {self.recombine_prob!r}")
        if not 0.0 < self.survival_quantile < 1.0:
            raise ValueError(f"survival_quantile must be in (0, 1), got {self.survival_quantile!r}")
        if self.survival_quantile * self.num_particles < 2:
            raise ValueError(
                f"survival_quantile * num_particles must be >= 2 to keep two parents, got "
                f"{self.survival_quantile} * {self.num_particles} = "
                f"{self.survival_quantile * self.num_particles}"
            )


class GeneticAlgorithm(Optimizer):
    """holo's ``DiscreteEvolution`` as an ask/tell optimizer (parameters: ``GAParams``).

    ``ask(n)`` returns the first ``min(n, N)`` particles, as compact unsigned tokens. When it
    returns fewer than ``N`` (the budget's tail), the next ``tell`` ranks only those evaluated and
    treats the unevaluated ones as non-survivors, to be refilled by children of the survivors.
    Its one random stream is ``default_rng(seed)``, the run's root seed.
    """

    Params = GAParams

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        p = self.params
        self._mutation_prob = p.mutation_prob or 1.0 / problem.dim  # None means 1/dim
        if not 0.0 < self._mutation_prob < 1.0:
            raise ValueError(f"mutation_prob 1/dim must be in (0, 1), got dim={problem.dim}")
        self._num_states = problem.num_states
        self._rng = np.random.default_rng(seed)
        first = np.asarray(problem.initial_solution[0]).astype(token_dtype(problem.num_states))
        self._particles = np.tile(first, (p.num_particles, 1))  # (N, dim)
        self._asked = 0
        return 0

    def ask(self, n: int) -> np.ndarray:
        self._asked = min(n, self.params.num_particles)
        return self._particles[: self._asked].copy()

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self._asked,) or len(X) != self._asked:
            raise ValueError(
                f"tell expects the {self._asked} sequences of the last ask and their values, "
                f"got {len(X)} sequences and values of shape {values.shape}"
            )
        if np.isnan(values).any():
            raise ValueError("values must not be NaN; mark infeasible sequences with -inf")
        if self._asked:
            self._next_generation(-values)

    def _next_generation(self, loss: np.ndarray) -> None:
        """Replace the population in place from the loss ``(m,)`` of its first ``m`` particles."""
        alive = np.zeros(self.params.num_particles, dtype=bool)
        alive[: len(loss)] = survivors(loss, self.params.survival_quantile)
        parents, slots = np.flatnonzero(alive), np.flatnonzero(~alive)
        picks = parents[self._rng.integers(0, len(parents), (2, len(slots)))]
        first, second = np.take(self._particles, picks, axis=0)  # each (len(slots), dim)
        from_first = bernoulli_mask(self._rng, first.shape, self.params.recombine_prob)
        # second where the mask is 0, first where it is 1: np.where is slow on small ints
        self._particles[slots] = second ^ ((first ^ second) * from_first)

        flat = self._particles.reshape(-1)
        mutated = bernoulli_positions(self._rng, flat.size, self._mutation_prob)
        flat[mutated] = self._rng.integers(0, self._num_states, len(mutated), dtype=flat.dtype)
