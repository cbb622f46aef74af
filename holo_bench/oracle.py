"""The oracle: the only door to a test function during a benchmark.

It validates every batch, charges queries against a budget under an explicit counting rule, logs
every query (charged or not), and tracks the best value and the regret. Nothing is charged or
logged for a batch it refuses.

Counting rules (``count``):

- ``"distinct"`` (the default on noise-free functions): a sequence already evaluated in this run,
  earlier or earlier in the same batch, is answered with its logged value at no charge. Budgets
  then count distinct sequences, so an optimizer is neither punished nor rewarded for
  re-asking what it knows.
- ``"all"``: every query is charged, repeats included, as holo's reference GA assumes. Required
  when observations are noisy, where a repeat is a new measurement.
"""

from __future__ import annotations

import os
import time

import numpy as np

from holo_bench.functions.base import TestFunction
from holo_bench.measures import regret
from holo_bench.sequences import token_dtype
from holo_bench.trace import TraceWriter, read_trace, record_dtype, trace_header

COUNT_RULES = ("distinct", "all")


def default_count(function: TestFunction) -> str:
    """The counting rule a run of ``function`` gets unless told: ``all`` if noisy, else
    ``distinct``."""
    return "all" if function.noise_std > 0 else "distinct"


def check_count(count: str, function: TestFunction) -> str:
    """Validate a counting rule for ``function``; returns it."""
    if count not in COUNT_RULES:
        raise ValueError(f"count must be one of {', '.join(COUNT_RULES)}, got {count!r}")
    if count == "distinct" and function.noise_std > 0:
        raise ValueError(f"count 'distinct' on a noisy function (noise_std={function.noise_std}): "
                         "a repeat is a new observation there; use count 'all'")
    return count


def row_keys(X: np.ndarray) -> list[bytes]:
    """Each row's bytes: a dict key for the sequence."""
    raw = np.ascontiguousarray(X).tobytes()
    width = len(raw) // len(X) if len(X) else 0
    return [raw[start:start + width] for start in range(0, len(raw), width)] if width else []


def first_occurrences(keys: list[bytes]) -> np.ndarray:
    """For each row key, the index of the first row with that key (its own index for the first
    of its kind): one dict pass, cheaper than sorting the rows."""
    first: dict[bytes, int] = {}
    return np.array([first.setdefault(key, i) for i, key in enumerate(keys)], dtype=np.int64)


class BudgetExhausted(RuntimeError):
    """A batch asked for more evaluations than the oracle has left; nothing was charged."""


class ReplayMismatch(RuntimeError):
    """A resumed run asked for sequences other than those its log recorded for that call."""


class Oracle:
    """Budgeted, logged access to ``function``.

    Args:
        function: a noise-free, maximized ``TestFunction``.
        budget: the number of charged evaluations allowed, ``> 0``.
        count: the rule for repeated queries, ``"distinct"`` or ``"all"`` (see above); ``None``
            takes ``default_count(function)``.
        log_path: optional query-log file, written through batch by batch. If it already holds
            records, the oracle resumes: the calls it recorded are served again from the log, in
            order and without charging twice, to an optimizer that asks for them again (as a
            deterministic optimizer rerun with its seed does); new calls continue after them.

    Attributes: ``budget``, ``count``, ``used`` (charged evaluations), ``queries`` (every query
    answered, charged or not), ``remaining``, ``calls`` (batches answered), ``best_value`` (best
    feasible value, ``-inf`` before any), ``best_sequence``, ``regret``.
    """

    def __init__(self, function: TestFunction, budget: int, count: str | None = None,
                 log_path: str | os.PathLike | None = None):
        if isinstance(budget, bool) or int(budget) != budget or budget <= 0:
            raise ValueError(f"budget must be a positive integer, got {budget!r}")
        self.function = function
        self.budget = int(budget)
        self.count = check_count(default_count(function) if count is None else count, function)
        if function.noise_std > 0 or function.negate:
            raise ValueError(
                "the oracle needs a noise-free function that is maximized "
                f"(got noise_std={function.noise_std}, negate={function.negate}): "
                "regret is only defined on true values"
            )
        self.used = 0
        self.queries = 0
        self.calls = 0
        self.best_value = -np.inf
        self.best_sequence: np.ndarray | None = None
        tokens = token_dtype(function.num_states)
        self._dtype = record_dtype(function.dim, tokens)
        self._records: list[np.ndarray] = []
        self._replay: list[np.ndarray] = []
        self._seen: dict[bytes, float] = {}  # under "distinct": every sequence evaluated, its value
        self._writer = None
        if log_path is not None:
            header = trace_header(function.spec, function.dim, tokens, self.count)
            self._writer = TraceWriter(log_path, header)  # refuses a trace of another run
            _, logged = read_trace(log_path)
            if logged["charged"].sum() > self.budget:
                raise ValueError(f"{log_path} logs {logged['charged'].sum()} charged evaluations, "
                                 f"over the budget {budget}")
            starts = np.flatnonzero(np.diff(logged["call"], prepend=-1))
            self._replay = np.split(logged, starts[1:]) if len(logged) else []

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    @property
    def regret(self) -> float:
        """``optimal_value - max(worst_value, best feasible value)`` (``holo_bench.measures``)."""
        return regret(self.best_value, self.function.optimal_value, self.function.worst_value)

    @property
    def replaying(self) -> bool:
        """Whether logged calls from an earlier process are still waiting to be asked again."""
        return bool(self._replay)

    def evaluate(self, X) -> np.ndarray:
        """Values of a batch ``(n, dim)`` as float64 ``(n,)`` (a scalar for one ``(dim,)``
        sequence).

        Raises ``ValueError``/``TypeError`` for malformed input and ``BudgetExhausted`` when the
        batch would charge more than ``remaining``; in both cases nothing is charged or logged.
        """
        X, single = self.function.check(X)
        n = len(X)
        if n == 0:
            return np.empty(0)
        if self.remaining == 0:
            raise BudgetExhausted(f"the budget of {self.budget} evaluations is spent; "
                                  "nothing was charged")
        charged, source = self._charges(X)
        if charged.sum() > self.remaining:
            raise BudgetExhausted(
                f"batch of {n} sequences ({charged.sum()} charged under count={self.count!r}) "
                f"exceeds the remaining budget of {self.remaining} (budget {self.budget}, used "
                f"{self.used}); nothing was charged"
            )
        if self._replay:
            records = self._replay[0]
            if len(records) != n or not np.array_equal(records["sequence"], X):
                raise ReplayMismatch(
                    f"call {self.calls} asked for {n} sequences that differ from the "
                    f"{len(records)} logged for it: either the optimizer is not deterministic "
                    "under its seed, or another process wrote to this trace"
                )
            self._replay.pop(0)
        else:
            records = np.zeros(n, dtype=self._dtype)
            records["call"] = self.calls
            records["size"] = n
            records["index"] = np.arange(n)
            values = np.empty(n)
            if charged.any():
                values[charged] = self.function._evaluate(X[charged])
            if not charged.all():  # free repeats: of this batch, or of earlier ones
                repeat = np.flatnonzero(~charged)
                logged = source[repeat] == repeat  # first in the batch, evaluated in an earlier one
                values[repeat[logged]] = [self._seen[key] for key in row_keys(X[repeat[logged]])]
                values[repeat[~logged]] = values[source[repeat[~logged]]]
            records["value"] = values
            records["feasible"] = records["value"] > -np.inf
            records["charged"] = charged
            records["time"] = time.time()
            records["sequence"] = X
            if self._writer is not None:
                self._writer.append(records)
        self._charge(records)
        values = records["value"].copy()
        return values[0] if single else values

    def _charges(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which queries of a batch are charged, and each one's source: its own index for the first
        in the batch of its kind (whose value then comes from the log when seen before), else the
        index of that first one."""
        if self.count == "all":
            return np.ones(len(X), dtype=bool), np.arange(len(X))
        keys = row_keys(X)
        source = first_occurrences(keys)
        charged = source == np.arange(len(X))
        charged[charged] = [keys[i] not in self._seen for i in np.flatnonzero(charged)]
        return charged, source

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
        self.used += int(records["charged"].sum())
        self.queries += len(records)
        self.calls += 1
        if self.count == "distinct":
            fresh = records[records["charged"]]
            self._seen.update(zip(row_keys(fresh["sequence"]), fresh["value"].tolist()))
        feasible = records["value"][records["feasible"]]
        if len(feasible) and feasible.max() > self.best_value:
            best = np.flatnonzero(records["feasible"])[np.argmax(feasible)]
            self.best_value = float(records["value"][best])
            self.best_sequence = records["sequence"][best].astype(np.int64)

    @property
    def records(self) -> np.ndarray:
        """Every query answered, in order, as a structured array (see ``holo_bench.trace``)."""
        return np.concatenate(self._records) if self._records else np.zeros(0, dtype=self._dtype)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
