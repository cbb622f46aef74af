"""The oracle: the only door to a test function during a benchmark.

It validates every batch, charges every sequence against a budget (duplicates and infeasible ones
included), logs every query, and tracks the best value and the regret. Nothing is charged for a
batch it refuses.
"""

from __future__ import annotations

import os
import time

import numpy as np

from holo_bench.functions.base import TestFunction
from holo_bench.sequences import token_dtype
from holo_bench.trace import TraceWriter, read_trace, record_dtype


class BudgetExhausted(RuntimeError):
    """A batch asked for more evaluations than the oracle has left; nothing was charged."""


class ReplayMismatch(RuntimeError):
    """A resumed run asked for sequences other than those its log recorded for that call."""


class Oracle:
    """Budgeted, logged access to ``function``.

    Args:
        function: a noise-free, maximized ``TestFunction``.
        budget: the number of sequence evaluations allowed, ``> 0``.
        log_path: optional query-log file, written through batch by batch. If it already holds
            records, the oracle resumes: the calls it recorded are served again from the log, in
            order and without charging twice, to an optimizer that asks for them again (as a
            deterministic optimizer rerun with its seed does); new calls continue after them.

    Attributes: ``budget``, ``used``, ``remaining``, ``calls`` (batches evaluated),
    ``best_value`` (best feasible value, ``-inf`` before any), ``best_sequence``, ``regret``.
    """

    def __init__(self, function: TestFunction, budget: int, log_path: str | os.PathLike | None = None):
        if isinstance(budget, bool) or int(budget) != budget or budget <= 0:
            raise ValueError(f"budget must be a positive integer, got {budget!r}")
        if function.noise_std > 0 or function.negate:
            raise ValueError(
                "the oracle needs a noise-free function that is maximized "
                f"(got noise_std={function.noise_std}, negate={function.negate}): "
                "regret is only defined on true values"
            )
        self.function = function
        self.budget = int(budget)
        self.used = 0
        self.calls = 0
        self.best_value = -np.inf
        self.best_sequence: np.ndarray | None = None
        tokens = token_dtype(function.num_states)
        self._dtype = record_dtype(function.dim, tokens)
        self._records: list[np.ndarray] = []
        self._replay: list[np.ndarray] = []
        self._writer = None
        if log_path is not None:
            if os.path.exists(log_path) and os.path.getsize(log_path) > 0:
                _, logged = read_trace(log_path)
                if len(logged) > self.budget:
                    raise ValueError(f"{log_path} logs {len(logged)} evaluations, over the budget {budget}")
                calls = np.unique(logged["call"])
                self._replay = [logged[logged["call"] == call] for call in calls]
            self._writer = TraceWriter(log_path, function.dim, tokens, function.spec)

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    @property
    def regret(self) -> float:
        """``optimal_value - max(worst_value, best feasible value)``; for Ehrlich ``1 - max(0, best)``."""
        return self.function.optimal_value - max(self.function.worst_value, self.best_value)

    @property
    def replaying(self) -> bool:
        """Whether logged calls from an earlier process are still waiting to be asked again."""
        return bool(self._replay)

    def evaluate(self, X) -> np.ndarray:
        """Values of a batch ``(n, dim)`` as float64 ``(n,)`` (a scalar for one ``(dim,)`` sequence).

        Raises ``ValueError``/``TypeError`` for malformed input and ``BudgetExhausted`` when the
        batch is larger than ``remaining``; in both cases nothing is charged or logged.
        """
        X, single = self.function.check(X)
        n = len(X)
        if n > self.remaining:
            raise BudgetExhausted(
                f"batch of {n} sequences exceeds the remaining budget of {self.remaining} "
                f"(budget {self.budget}, used {self.used}); nothing was charged"
            )
        if n == 0:
            return np.empty(0)
        if self._replay:
            records = self._replay[0]
            if len(records) != n or not np.array_equal(records["sequence"], X):
                raise ReplayMismatch(
                    f"call {self.calls} asked for {n} sequences that differ from the {len(records)} "
                    "logged for it: is the optimizer deterministic under its seed?"
                )
            self._replay.pop(0)
        else:
            records = np.zeros(n, dtype=self._dtype)
            records["call"] = self.calls
            records["size"] = n
            records["index"] = np.arange(n)
            records["value"] = self.function._evaluate(X)
            records["feasible"] = records["value"] > -np.inf
            records["time"] = time.time()
            records["sequence"] = X
            if self._writer is not None:
                self._writer.append(records)
        self._charge(records)
        values = records["value"].copy()
        return values[0] if single else values

    def skip_replay(self, calls: int) -> None:
        """Count the first ``calls`` logged calls as served, for an optimizer that restored its
        own state (which already holds their results) instead of asking them again."""
        if calls > len(self._replay):
            raise ReplayMismatch(
                f"the optimizer resumed after {calls} calls but the log holds {len(self._replay)}"
            )
        for _ in range(calls):
            self._charge(self._replay.pop(0))

    def _charge(self, records: np.ndarray) -> None:
        self._records.append(records)
        self.used += len(records)
        self.calls += 1
        feasible = records["value"][records["feasible"]]
        if len(feasible) and feasible.max() > self.best_value:
            best = np.flatnonzero(records["feasible"])[np.argmax(feasible)]
            self.best_value = float(records["value"][best])
            self.best_sequence = records["sequence"][best].astype(np.int64)

    @property
    def records(self) -> np.ndarray:
        """Every charged evaluation, in order, as a structured array (see ``holo_bench.trace``)."""
        return np.concatenate(self._records) if self._records else np.zeros(0, dtype=self._dtype)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
