"""The thin base every test function shares: input validation, batching, noise and sign."""

from __future__ import annotations

import inspect

import numpy as np

from holo_bench.sequences import check_sequences


class TestFunction:
    """A function of ``dim`` tokens from an alphabet of ``num_states``, to be maximized.

    Subclasses implement only ``_evaluate`` (a validated ``(n, dim)`` token array to ``(n,)``
    float64 values, ``-inf`` where infeasible) and set ``optimal_value``. ``worst_value`` is what an
    infeasible or missing answer counts as in regret: ``regret = optimal_value - max(worst_value,
    best)``. ``spec_name`` and ``spec_keys`` (short key -> constructor argument) define the spec
    string that rebuilds the instance, e.g. ``ehrlich:v=32,L=32,c=4,k=4,q=4,seed=0``.
    """

    __test__ = False  # not a pytest test class, despite the name
    spec_name: str
    spec_keys: dict[str, str]
    num_states: int
    dim: int
    optimal_value: float
    worst_value: float

    def __init__(self, noise_std: float = 0.0, negate: bool = False, random_seed: int = 0):
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.negate = bool(negate)
        self.random_seed = int(random_seed)
        # Observation noise has its own stream, seeded from the instance: never the global RNG.
        self._noise_rng = np.random.default_rng(self.random_seed)

    def _evaluate(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check(self, X) -> tuple[np.ndarray, bool]:
        """Validate ``X``: returns an ``(n, dim)`` token array and whether one sequence was
        given."""
        return check_sequences(X, self.num_states, self.dim)

    def evaluate_true(self, X) -> np.ndarray:
        """Noise-free values of ``(n, dim)`` sequences, never negated: float64 ``(n,)``."""
        X, _ = self.check(X)
        return self._evaluate(X) if len(X) else np.empty(0)

    def __call__(self, X):
        """Observed values: noise added when ``noise_std > 0``, negated when ``negate``.

        ``X`` of shape ``(n, dim)`` gives ``(n,)`` float64; a single ``(dim,)`` sequence gives a
        float64 scalar.
        """
        X, single = self.check(X)
        values = self._evaluate(X) if len(X) else np.empty(0)
        if self.noise_std > 0:
            values = values + self.noise_std * self._noise_rng.standard_normal(len(values))
        if self.negate:
            values = -values
        return values[0] if single else values

    def is_feasible(self, X) -> np.ndarray:
        """Whether each sequence satisfies the function's constraints: bool ``(n,)``."""
        X, _ = self.check(X)
        return np.ones(len(X), dtype=bool)

    @property
    def spec(self) -> str:
        """The spec string that rebuilds this exact instance (see ``holo_bench.suite``)."""
        defaults = inspect.signature(type(self)).parameters
        params = []
        for key, attr in self.spec_keys.items():
            value = getattr(self, attr)
            default = defaults[attr].default
            if default is inspect.Parameter.empty or value != default or attr == "random_seed":
                params.append(f"{key}={value}")
        return f"{self.spec_name}:{','.join(params)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"
