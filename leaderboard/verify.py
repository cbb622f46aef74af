"""``verify_run``: re-derive a run's result from its trace before the leaderboard counts it.

Nothing an optimizer or a submitter reports is trusted. The manifest is read through its typed
record (``holo_bench.record.Manifest``), the problem is rebuilt from its spec, the charges are
recomputed from the counting rule, every logged sequence is scored again, and the manifest's counts,
best value, regret and stop reason are recomputed from the trace with the measures of
``holo_bench.measures``. The first failed check raises ``RunRejected``, naming the check and the
trace row concerned. Checks run in order: manifest, problem, trace, charges, budget, values, best,
status.

Values are compared exactly: Ehrlich values are float32 products of quantized levels, the same
bits on every machine. Float-valued landscapes (Rough Mount Fuji) sum with BLAS, whose summation
order may differ between machines and batch layouts, so they are compared within
``TOLERANCE`` (absolute); best values are always exact, since the manifest takes them from the
logged values themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holo_bench.functions.base import TestFunction
from holo_bench.measures import best_so_far, is_solved, regret
from holo_bench.oracle import first_occurrences, row_keys
from holo_bench.record import STALL_CALLS, TRACE, Manifest, ManifestError, read_manifest
from holo_bench.sequences import token_dtype
from holo_bench.suite import make_function
from holo_bench.trace import TraceError, read_trace, trace_header

# Absolute tolerance on logged values, by spec name; exact otherwise.
TOLERANCE = {"rmf": 1e-12}


class RunRejected(ValueError):
    """A run folder failed verification.

    Attributes: ``check`` (``manifest``, ``problem``, ``trace``, ``charges``, ``budget``,
    ``values``, ``best`` or ``status``) and ``row`` (the 0-based trace record concerned, or
    ``None``).
    """

    def __init__(self, check: str, detail: str, row: int | None = None,
                 records: np.ndarray | None = None):
        self.check = check
        self.row = row
        where = ""
        if row is not None:
            where = f"row {row}"
            if records is not None and row < len(records):
                where += f" (call {records['call'][row]}, index {records['index'][row]})"
            where += ": "
        # One line, whatever the detail holds (a manifest may carry any text).
        super().__init__(" ".join(f"rejected ({check}): {where}{detail}".split()))


@dataclass(frozen=True)
class VerifiedRun:
    """A run that passed every check: its manifest and its trace records."""

    manifest: Manifest
    records: np.ndarray


def verify_run(folder: str | os.PathLike) -> VerifiedRun:
    """Verify the run in ``folder``; raise ``RunRejected`` at the first failed check."""
    folder = Path(folder)
    manifest = _check_manifest(folder)
    function = _check_problem(manifest)
    records = _check_trace(folder, manifest, function)
    _check_charges(manifest, records)
    _check_budget(manifest, records)
    _check_values(function, records, TOLERANCE.get(function.spec_name, 0.0))
    _check_best(manifest, function, records)
    _check_status(manifest, function, records)
    return VerifiedRun(manifest, records)


# -- 1. manifest -----------------------------------------------------------------------------

def _check_manifest(folder: Path) -> Manifest:
    try:
        manifest = read_manifest(folder)
    except ManifestError as err:
        raise RunRejected("manifest", str(err)) from None
    if manifest is None:
        raise RunRejected("manifest", f"{folder} holds no manifest.json")
    if manifest.status != "finished":
        raise RunRejected("manifest", f"status {manifest.status!r}: only finished runs count")
    return manifest


# -- 2. problem ------------------------------------------------------------------------------

def _check_problem(manifest: Manifest) -> TestFunction:
    problem = manifest.problem
    spec = problem.spec
    try:
        function = make_function(spec)
        named = make_function(problem.name)
    except Exception as err:  # a submitted spec is untrusted text: any failure to build rejects
        raise RunRejected(
            "problem", f"cannot rebuild the problem: {type(err).__name__}: {err}") from None
    if function.spec != spec:
        raise RunRejected(
            "problem", f"spec {spec!r} is not canonical: it rebuilds as {function.spec!r}"
        )
    if named.spec != spec:
        raise RunRejected(
            "problem",
            f"problem {problem.name!r} is {named.spec!r}, but the manifest says {spec!r}",
        )
    if function.noise_std > 0 or function.negate:
        raise RunRejected(
            "problem", f"spec {spec!r} is noisy or negated: its values cannot be re-scored"
        )
    for name in ("optimal_value", "worst_value"):
        claimed, actual = getattr(problem, name), getattr(function, name)
        if claimed != actual:
            raise RunRejected(
                "problem", f"problem.{name} {claimed!r} but {spec!r} has {name} {actual!r}"
            )
    return function


# -- 3. trace --------------------------------------------------------------------------------

def _check_trace(folder: Path, manifest: Manifest, function: TestFunction) -> np.ndarray:
    path = folder / TRACE
    if not path.is_file():
        raise RunRejected("trace", f"{path} does not exist")
    try:
        header, records = read_trace(path, strict=True)
    except TraceError as err:
        raise RunRejected("trace", str(err), row=err.row) from None
    except (OSError, ValueError, MemoryError) as err:
        raise RunRejected("trace", f"{path} cannot be read: {err}") from None
    # The header the oracle would write for this problem and counting rule.
    expected = trace_header(manifest.problem.spec, function.dim,
                            token_dtype(function.num_states), manifest.run.count)
    if header != expected:
        differ = sorted(k for k in expected.keys() | header.keys()
                        if header.get(k) != expected.get(k))
        raise RunRejected(
            "trace", "header differs from the problem's in "
            + ", ".join(f"{k} ({header.get(k)!r}, expected {expected.get(k)!r})" for k in differ)
        )
    _check_calls(records)
    return records


def _check_calls(records: np.ndarray) -> None:
    """Calls numbered 0, 1, ... in order, each a whole batch: indices 0..size-1, one size."""
    n = len(records)
    if n == 0:
        return
    call = records["call"]
    starts_call = np.ones(n, dtype=bool)
    starts_call[1:] = call[1:] != call[:-1]
    starts = np.flatnonzero(starts_call)
    lengths = np.diff(starts, append=n)
    ordinal = np.cumsum(starts_call) - 1
    expected_index = np.arange(n) - np.repeat(starts, lengths)
    length = np.repeat(lengths, lengths)
    bad_call = call != ordinal
    bad_index = records["index"] != expected_index
    bad_size = records["size"] != length
    bad = np.flatnonzero(bad_call | bad_index | bad_size)
    if not len(bad):
        return
    row = int(bad[0])
    if bad_call[row]:
        detail = (f"call number {call[row]} where call {ordinal[row]} was expected: calls must "
                  "run 0, 1, 2, ... in order")
    elif bad_index[row]:
        detail = f"index {records['index'][row]} where {expected_index[row]} was expected"
    elif ordinal[row] == ordinal[-1] and length[row] < records["size"][row]:
        detail = (f"the last call logs {length[row]} of its {records['size'][row]} records: "
                  "a torn batch")
    else:
        detail = f"size {records['size'][row]} but call {call[row]} logs {length[row]} records"
    raise RunRejected("trace", detail, row=row, records=records)


# -- 4. charges ------------------------------------------------------------------------------

def expected_charges(records: np.ndarray, count: str) -> np.ndarray:
    """Which queries the counting rule charges: all of them, or under ``distinct`` the first
    query of each sequence in the run."""
    if count == "all" or not len(records):
        return np.ones(len(records), dtype=bool)
    return first_occurrences(row_keys(records["sequence"])) == np.arange(len(records))


def _check_charges(manifest: Manifest, records: np.ndarray) -> None:
    flags = records["charged"].view(np.uint8)  # any byte but 0 or 1 is a forged flag
    expected = expected_charges(records, manifest.run.count)
    bad = np.flatnonzero(flags != expected)
    if not len(bad):
        return
    row = int(bad[0])
    if flags[row] == 1:
        detail = ("logged as charged, but under count 'distinct' a repeat of a sequence already "
                  "evaluated is free")
    elif flags[row] == 0:
        detail = (f"logged as a free repeat, but under count {manifest.run.count!r} "
                  + ("every query is charged" if manifest.run.count == "all"
                     else "its sequence was never evaluated before"))
    else:
        detail = f"charged flag byte {flags[row]}, neither 0 nor 1"
    raise RunRejected("charges", detail, row=row, records=records)


# -- 5. budget -------------------------------------------------------------------------------

def _check_budget(manifest: Manifest, records: np.ndarray) -> None:
    budget = manifest.run.budget
    used = np.cumsum(records["charged"], dtype=np.int64)
    if len(used) and used[-1] > budget:
        row = int(np.argmax(used > budget))
        raise RunRejected(
            "budget", f"the trace charges {used[-1]} evaluations, past the budget of {budget}; the "
            "first over budget is here", row=row, records=records,
        )
    charged = int(used[-1]) if len(used) else 0
    if charged != manifest.evaluations:
        raise RunRejected(
            "budget",
            f"the trace charges {charged} evaluations, the manifest claims {manifest.evaluations}"
        )
    if len(records) != manifest.queries:
        raise RunRejected(
            "budget",
            f"the trace logs {len(records)} queries, the manifest claims {manifest.queries}"
        )
    calls = int(records["call"][-1]) + 1 if len(records) else 0
    if calls != manifest.calls:
        raise RunRejected(
            "budget", f"the trace logs {calls} calls, the manifest claims {manifest.calls}"
        )


# -- 6. values -------------------------------------------------------------------------------

def _check_values(function: TestFunction, records: np.ndarray, tolerance: float) -> None:
    """Every logged value and feasible flag is what the rebuilt function gives its sequence."""
    if not len(records):
        return
    sequences = np.ascontiguousarray(records["sequence"])
    out_of_range = (sequences >= function.num_states).any(axis=1)
    if sequences.dtype.kind == "i":
        out_of_range |= (sequences < 0).any(axis=1)
    if out_of_range.any():
        row = int(np.argmax(out_of_range))
        raise RunRejected(
            "values", f"a token of the sequence is outside [0, {function.num_states})", row=row,
            records=records,
        )
    logged = records["value"]
    scored = function.evaluate_true(sequences)
    if tolerance:
        wrong_value = ~np.isclose(logged, scored, rtol=0.0, atol=tolerance)
    else:
        wrong_value = ~(logged == scored)  # -inf == -inf; NaN never matches
    flag_bytes = records["feasible"].view(np.uint8)  # any byte but 0 or 1 is a forged flag
    wrong_flag = flag_bytes != function.is_feasible(sequences)
    bad = np.flatnonzero(wrong_value | wrong_flag)
    if not len(bad):
        return
    row = int(bad[0])
    if wrong_value[row]:
        detail = (f"logged value {logged[row].item()!r} but the sequence scores "
                  f"{scored[row].item()!r}")
    else:
        detail = (f"logged feasible flag {flag_bytes[row]} but the sequence is "
                  + ("feasible" if flag_bytes[row] == 0 else "infeasible"))
    raise RunRejected("values", detail, row=row, records=records)


# -- 7. best ---------------------------------------------------------------------------------

def _check_best(manifest: Manifest, function: TestFunction, records: np.ndarray) -> None:
    """The manifest's best value and regret, recomputed from the trace."""
    values = np.where(records["feasible"], records["value"], -np.inf)
    row = int(np.argmax(values)) if len(values) else None
    best = float(values[row]) if row is not None else -np.inf
    if not manifest.best_value == best:
        if best == -np.inf:
            raise RunRejected(
                "best", f"manifest best_value {manifest.best_value!r} but the trace holds no "
                "feasible evaluation"
            )
        raise RunRejected(
            "best", f"manifest best_value {manifest.best_value!r} but the best feasible value "
            f"in the trace is {best!r}, here", row=row, records=records,
        )
    expected = regret(best, function.optimal_value, function.worst_value)
    if manifest.regret != expected:
        raise RunRejected(
            "best", f"manifest regret {manifest.regret!r} but the trace gives {expected!r}"
        )


# -- 8. status -------------------------------------------------------------------------------

def stop_reason(records: np.ndarray, budget: int, optimal_value: float, worst_value: float
                ) -> tuple[str | None, int]:
    """The stop rule the runner's loop applies after each call (solved, then budget, then
    stalled): the first call after which one holds, and which; ``(None, -1)`` if none ever does
    (the run can then only have ended with the optimizer asking for nothing)."""
    if not len(records):
        return None, -1
    ends = np.flatnonzero(np.diff(records["call"], append=records["call"][-1] + 1))
    best = best_so_far(records["value"], records["feasible"])[ends]
    used = np.cumsum(records["charged"], dtype=np.int64)[ends]
    charged_in_call = np.diff(used, prepend=0)
    calls = np.arange(len(ends))
    last_charging = np.maximum.accumulate(np.where(charged_in_call > 0, calls, -1))
    rules = {"solved": is_solved(regret(best, optimal_value, worst_value)),
             "budget": used >= budget, "stalled": calls - last_charging >= STALL_CALLS}
    stops = np.logical_or.reduce(list(rules.values()))
    if not stops.any():
        return None, -1
    call = int(np.argmax(stops))
    return next(name for name, holds in rules.items() if holds[call]), call


def _check_status(manifest: Manifest, function: TestFunction, records: np.ndarray) -> None:
    """The stop reason is the one the runner's loop would give, at the call it would give it."""
    reason, call = stop_reason(records, manifest.run.budget, function.optimal_value,
                               function.worst_value)
    last = int(records["call"][-1]) if len(records) else -1
    claimed = manifest.stop_reason
    if reason is not None and call < last:
        row = int(np.searchsorted(records["call"], call + 1))
        raise RunRejected(
            "status", f"the run should have stopped ({reason}) after call {call}, but went on to "
            f"call {last}", row=row, records=records,
        )
    expected = reason or "optimizer-done"
    if claimed != expected:
        raise RunRejected("status", f"stop_reason {claimed!r}, but the trace ends {expected!r}")
