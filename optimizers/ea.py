"""The (1+1) evolutionary algorithm with three mutation-rate rules, and the (mu + lambda) EA.

One class runs them all (``MuPlusLambda``). Each child is a parent put through ``mutate``: every
position is chosen independently with probability ``intensity / L`` (drawn again until at least
one position is chosen) and moves to a token drawn uniformly among the ``v - 1`` others. The
variants differ only in the intensity of each child (``intensities``):

- ``ea-1p1`` (``OnePlusOne``): 1, the standard rate 1/L (Droste, Jansen and Wegener 2002,
  "On the analysis of the (1+1) evolutionary algorithm", Theor. Comput. Sci. 276);
- ``ea-lengler`` (``LenglerOnePlusOne``): ``max(1, floor(L * alpha * ln(k) / k))`` at the
  ``k``-th ask, ``alpha = 1.54468``, nevergrad's ``mutation="lengler"``;
- ``ea-fast`` (``FastOnePlusOne``): ``u`` with ``P(u) ∝ u ** -beta`` on ``1 .. max(2, L // 2) - 1``,
  ``beta = 1.5`` (Doerr, Le, Makhmara and Nguyen 2017, "Fast genetic algorithms", GECCO),
  nevergrad's ``mutation="fastga"``;
- ``ea-mu-lambda`` (``MuPlusLambda``): 1, with ``mu`` parents and ``lambda`` children per ask.

The (1+1) family reproduces nevergrad 1.0.12's ``DiscreteOnePlusOne``,
``DiscreteLenglerOnePlusOne`` and ``FastGADiscreteOnePlusOne`` (``ParametrizedOnePlusOne`` in
``nevergrad/optimization/optimizerlib.py``, mutations in ``nevergrad/optimization/mutations.py``)
on the search space of ``optimizers.nevergrad``, including how nevergrad picks the parent
(``selection="nevergrad"``, see ``MuPlusLambda``). ``docs/baselines.md`` says what was taken
from where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from holo_bench.sequences import token_dtype
from optimizers.base import Optimizer, Problem

LENGLER_ALPHA = 1.54468  # nevergrad's constant for mutation="lengler"
FAST_BETA = 1.5  # Doerr et al. 2017's recommended exponent, nevergrad's for "fastga"
SELECTIONS = ("nevergrad", "elitist")


def mutate(rng: np.random.Generator, parents: np.ndarray, intensity: np.ndarray,
           num_states: int) -> np.ndarray:
    """Children ``(n, L)`` of ``parents`` ``(n, L)`` (tokens in ``[0, num_states)``), given the
    expected number of changed positions ``intensity`` ``(n,)`` of each.

    Row ``i`` chooses each position with probability ``min(1, intensity[i] / L)``; a row that
    chose none draws its choice again, so the number of changed positions is
    ``Binomial(L, intensity / L)`` conditioned on being ``>= 1``. A chosen position moves to
    ``(token + U{1, ..., v - 1}) mod v``: uniform among the other ``v - 1`` tokens.
    """
    if len(parents) == 1:  # a (1+1)'s every ask: Python scalars beat numpy's per-call overhead
        return _mutate_one(rng, parents, min(float(intensity[0]) / parents.shape[1], 1.0),
                           num_states)
    return _mutate_rows(rng, parents, intensity, num_states)


def _mutate_rows(rng: np.random.Generator, parents: np.ndarray, intensity: np.ndarray,
                 num_states: int) -> np.ndarray:
    """``mutate``, all rows at once."""
    n, dim = parents.shape
    rate = np.minimum(intensity * (1.0 / dim), 1.0)[:, None]  # (n, 1)
    chosen = rng.random((n, dim)) < rate
    any_chosen = chosen.any(axis=1)
    if not any_chosen.all():  # (1 - 1/L)^L, about 37% of the rows, at the standard rate
        empty = np.flatnonzero(~any_chosen)
        while len(empty):
            chosen[empty] = rng.random((len(empty), dim)) < rate[empty]
            empty = empty[~chosen[empty].any(axis=1)]
    children = parents.copy()
    tokens = children.reshape(-1)
    where = chosen.reshape(-1).nonzero()[0]
    shift = (rng.random(len(where)) * (num_states - 1)).astype(np.intp) + 1  # U{1, ..., v - 1}
    tokens[where] = (tokens[where] + shift) % num_states
    return children


def _mutate_one(rng: np.random.Generator, parent: np.ndarray, rate: float,
                num_states: int) -> np.ndarray:
    """``mutate`` of one parent ``(1, L)`` at ``rate``, position by position: the same draws, in
    the same order, as ``_mutate_rows`` on that row, so the same children."""
    dim = parent.shape[1]
    where = (rng.random(dim) < rate).nonzero()[0]
    while not len(where):
        where = (rng.random(dim) < rate).nonzero()[0]
    child = parent.copy()
    row = child[0]
    for position, uniform in zip(where.tolist(), rng.random(len(where)).tolist()):
        row[position] = (int(row[position]) + 1 + int(uniform * (num_states - 1))) % num_states
    return child


def told_values(X: np.ndarray, values, asked: int) -> np.ndarray:
    """``values`` as float64 ``(asked,)``, checked against the ``asked`` sequences of the last
    ask: ``ValueError`` for another count or shape, or for NaN (infeasible is ``-inf``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (asked,) or len(X) != asked:
        raise ValueError(
            f"tell expects the {asked} sequences of the last ask and their values, got {len(X)} "
            f"sequences and values of shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("values must not be NaN; mark infeasible sequences with -inf")
    return values


def lengler_intensity(asks: np.ndarray, dim: int, alpha: float = LENGLER_ALPHA) -> np.ndarray:
    """``max(1, floor(dim * alpha * ln(k) / k))`` for each ask index ``k >= 1`` in ``asks``
    ``(n,)``: the expected number of mutated positions of nevergrad's ``mutation="lengler"``,
    largest at ``k = 3`` (about ``0.37 * alpha * dim``), and 1 at ``k = 1`` and once
    ``dim * alpha * ln(k) / k < 2``."""
    k = np.asarray(asks, dtype=np.float64)
    return np.maximum(1, np.floor(dim * alpha * np.log(k) / k)).astype(np.int64)


def fast_intensity_law(dim: int, beta: float = FAST_BETA) -> np.ndarray:
    """Probabilities ``(U,)`` of the intensities ``u = 1 .. U`` of the fast mutation:
    ``P(u) = u ** -beta / sum_j j ** -beta`` with ``U = max(2, floor(dim / 2)) - 1``, as nevergrad's
    ``doerr_discrete_mutation`` draws it; nevergrad uses the standard rate (``U = 1``) below
    5 positions."""
    upper = 1 if dim < 5 else max(2, dim // 2) - 1
    weights = np.arange(1, upper + 1, dtype=np.float64) ** -beta
    return weights / weights.sum()


def plus_selection(population: np.ndarray, values: np.ndarray, children: np.ndarray,
                   child_values: np.ndarray, mu: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``mu`` best of ``children`` ``(m, L)`` and ``population`` ``(p, L)`` by value (``(m,)``
    and ``(p,)``, ``-inf`` last), ties going to the children, in order: the new population and
    its values, best first."""
    if mu == 1 and len(population):  # the same rule without a sort
        best = int(np.argmax(child_values))  # the first of the best children
        if child_values[best] >= values[0]:
            return children[best: best + 1], child_values[best: best + 1].copy()
        return population, values
    pool = np.concatenate([children, population])
    pool_values = np.concatenate([child_values, values])
    keep = np.argsort(-pool_values, kind="stable")[:mu]
    return pool[keep], pool_values[keep]


class RevisitParent:
    """The parent of nevergrad's (1+1) optimizers, told one sequence at a time.

    nevergrad keeps every sequence told in an archive (keyed by the sequence: its discrete
    parameter snaps the data to the token's bin) and mutates the one of least "pessimistic" loss
    ``mean + 0.1 * sqrt(variance / (1 + count))``, which each tell compares with the parent's
    (``<=``: ties go to the newest). A sequence told once has the prior variance 1e6 (``+70.7``);
    one told twice or more has the variance of its losses, 0 for a noise-free function. So once a
    sequence comes back (a child equal to an earlier sequence, answered again under either
    counting rule), the best of the sequences told at least twice becomes the parent, worse or
    not, and a new child replaces it only once it comes back too. Here: told at least twice
    ranks first, then the value (``-inf`` last, as the adapter's infeasible loss 1 is worse than
    every Ehrlich loss); exact for losses within 70 of each other, such as Ehrlich's in [-1, 1].
    """

    def __init__(self):
        self.sequence: np.ndarray | None = None  # (L,)
        self.value = -np.inf
        self._parent_told = 0
        self._told: dict[bytes, int] = {}  # every sequence told: how many times

    def tell(self, sequence: np.ndarray, value: float) -> None:
        """Record one told ``sequence`` ``(L,)`` and its ``value``; it may become the parent."""
        told = self._told[sequence.tobytes()] = self._told.get(sequence.tobytes(), 0) + 1
        if self.sequence is None or (told >= 2, value) >= (self._parent_told >= 2, self.value):
            self.sequence, self.value, self._parent_told = sequence, value, told


@dataclass(frozen=True)
class MuPlusLambdaParams:
    """Parameters of ``ea-mu-lambda``.

    mu: parents kept, ``>= 1``.
    lam: children per ask (lambda), ``>= 1``.
    """

    mu: int = 10
    lam: int = 100

    def __post_init__(self):
        if self.mu < 1:
            raise ValueError(f"mu must be an integer >= 1, got {self.mu!r}")
        if self.lam < 1:
            raise ValueError(f"lam must be an integer >= 1, got {self.lam!r}")


@dataclass(frozen=True)
class OnePlusOneParams:
    """Parameters of ``ea-1p1`` (one parent, one child per ask, rate 1/L).

    selection: how the parent is chosen. ``"nevergrad"``: as nevergrad's (1+1) chooses it, which
        prefers sequences told twice (``RevisitParent``); ``"elitist"``: the textbook (1+1) EA,
        the child replaces the parent when it is not worse.
    """

    mu: ClassVar[int] = 1
    lam: ClassVar[int] = 1
    selection: Literal["nevergrad", "elitist"] = "nevergrad"

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, "
                             f"got {self.selection!r}")


@dataclass(frozen=True)
class LenglerParams(OnePlusOneParams):
    """Parameters of ``ea-lengler``: ``selection`` as in ``OnePlusOneParams``, and
    alpha: the schedule's constant (``lengler_intensity``), ``> 0``; nevergrad's by default."""

    alpha: float = LENGLER_ALPHA

    def __post_init__(self):
        super().__post_init__()
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")


@dataclass(frozen=True)
class FastParams(OnePlusOneParams):
    """Parameters of ``ea-fast``: ``selection`` as in ``OnePlusOneParams``, and
    beta: the power law's exponent (``fast_intensity_law``), ``> 1`` (Doerr et al. 2017)."""

    beta: float = FAST_BETA

    def __post_init__(self):
        super().__post_init__()
        if not self.beta > 1:
            raise ValueError(f"beta must be > 1, got {self.beta!r}")


class MuPlusLambda(Optimizer):
    """The (mu + lambda) EA; its subclasses set ``Params`` and ``intensities``.

    The first ask is the problem's first initial solution. Each later ask is up to ``lam``
    children, each of a parent drawn uniformly from the population; each tell keeps the ``mu``
    best of the population and the children (``plus_selection``), ties going to the children
    (in the order asked), so a (1+1) replaces its parent by a child that is not worse
    (``selection="elitist"``).

    ``selection="nevergrad"`` (the (1+1) family's default) chooses the parent as nevergrad does
    (``RevisitParent``): a sequence told twice outranks every sequence told once. The (mu +
    lambda) EA's parameters have no ``selection``: plus selection.
    """

    Params = MuPlusLambdaParams

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        if problem.num_states < 2:
            raise ValueError(f"a mutation needs num_states >= 2, got {problem.num_states}")
        self._rng = np.random.default_rng(seed)
        self._dim, self._num_states = problem.dim, problem.num_states
        dtype = token_dtype(problem.num_states)
        self._initial = np.asarray(problem.initial_solution[0]).astype(dtype)[None]  # (1, L)
        self._population = np.empty((0, problem.dim), dtype=dtype)  # (<= mu, L), best first
        self._values = np.empty(0)  # (<= mu,)
        nevergrad = getattr(self.params, "selection", "elitist") == "nevergrad"
        self._revisits = RevisitParent() if nevergrad else None
        self._pending = self._population
        self._asks = 0  # sequences asked so far: the start is ask 0, the first child ask 1
        return 0

    def intensities(self, asks: np.ndarray) -> np.ndarray:
        """Expected mutated positions ``(n,)`` of the children of the asks numbered ``asks``."""
        return np.ones(len(asks))

    def ask(self, n: int) -> np.ndarray:
        if n < 1:
            batch = self._population[:0]
        elif not len(self._population):  # nothing told yet: the start
            batch = self._initial
        else:
            m = min(n, self.params.lam)
            if len(self._population) == 1:  # mutate copies its parents
                parents = self._population if m == 1 else self._population.repeat(m, axis=0)
            else:
                parents = self._population[self._rng.integers(0, len(self._population), m)]
            asks = np.arange(self._asks, self._asks + m)
            batch = mutate(self._rng, parents, self.intensities(asks), self._num_states)
        self._pending = batch
        self._asks += len(batch)
        return batch.copy()

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        values = told_values(X, values, len(self._pending))
        children, self._pending = self._pending, self._pending[:0]  # ours, not the caller's X
        if not len(children):
            return
        if self._revisits is None:
            self._population, self._values = plus_selection(
                self._population, self._values, children, values, self.params.mu)
            return
        for child, value in zip(children, values.tolist()):
            self._revisits.tell(child, value)
        self._population = self._revisits.sequence[None]
        self._values = np.array([self._revisits.value])


class OnePlusOne(MuPlusLambda):
    """nevergrad's ``DiscreteOnePlusOne``: the (1+1) EA at rate 1/L (``ea-1p1``)."""

    Params = OnePlusOneParams


class LenglerOnePlusOne(MuPlusLambda):
    """nevergrad's ``DiscreteLenglerOnePlusOne``: intensity ``lengler_intensity``
    (``ea-lengler``)."""

    Params = LenglerParams

    def intensities(self, asks: np.ndarray) -> np.ndarray:
        return lengler_intensity(asks, self._dim, self.params.alpha)


class FastOnePlusOne(MuPlusLambda):
    """nevergrad's ``FastGADiscreteOnePlusOne``: intensity drawn from ``fast_intensity_law``
    (``ea-fast``)."""

    Params = FastParams

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        resumed = super().setup(problem, seed, workdir)
        self._law = np.cumsum(fast_intensity_law(problem.dim, self.params.beta))
        return resumed

    def intensities(self, asks: np.ndarray) -> np.ndarray:
        u = np.searchsorted(self._law, self._rng.random(len(asks)) * self._law[-1], side="right")
        return np.minimum(u, len(self._law) - 1) + 1

