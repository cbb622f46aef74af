"""``verify_run``: re-derive a run's result from its trace before the leaderboard counts it.

Nothing an optimizer or a submitter reports is trusted. The problem is rebuilt from its spec, every
logged sequence is scored again, and the manifest's counts, best value, regret and stop reason are
recomputed from the trace. The first failed check raises ``RunRejected``, naming the check and the
trace row concerned. Checks run in order: manifest, problem, trace, budget, values, best, status.

Values are compared exactly: Ehrlich values are float32 products of quantized levels, the same
bits on every machine. Float-valued landscapes (Rough Mount Fuji) sum with BLAS, whose summation
order may differ between machines and batch layouts, so they are compared within
``TOLERANCE`` (absolute); best values are always exact, since the manifest takes them from the
logged values themselves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from holo_bench.functions.base import TestFunction
from holo_bench.runner import MANIFEST, SCHEMA, TRACE
from holo_bench.sequences import token_dtype
from holo_bench.suite import make_function
from holo_bench.trace import FORMAT, VERSION, TraceError, read_trace

# Absolute tolerance on values, optimal/worst values and regret, by spec name; exact otherwise.
TOLERANCE = {"rmf": 1e-12}

STOP_REASONS = ("budget", "solved", "optimizer-done")


class RunRejected(ValueError):
    """A run folder failed verification.

    Attributes: ``check`` (``manifest``, ``problem``, ``trace``, ``budget``, ``values``, ``best``
    or ``status``) and ``row`` (the 0-based trace record concerned, or ``None``).
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
        super().__init__(f"rejected ({check}): {where}{detail}")


@dataclass(frozen=True)
class VerifiedRun:
    """A run that passed every check: its manifest as stored and its trace records."""

    manifest: dict
    records: np.ndarray


def verify_run(folder: str | os.PathLike) -> VerifiedRun:
    """Verify the run in ``folder``; raise ``RunRejected`` at the first failed check."""
    folder = Path(folder)
    manifest = _check_manifest(folder)
    function = _check_problem(manifest)
    tolerance = TOLERANCE.get(function.spec_name, 0.0)
    records = _check_trace(folder, manifest, function)
    _check_budget(manifest, records)
    _check_values(function, records, tolerance)
    regret = _check_best(manifest, function, records, tolerance)
    _check_status(manifest, function, records, regret, tolerance)
    return VerifiedRun(manifest, records)


# -- 1. manifest -----------------------------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_text(value) -> bool:
    return isinstance(value, str) and value != ""


# field -> (test, what it must be); nested dicts are checked field by field.
_FIELDS = {
    "schema": (_is_int, "an integer"),
    "job": {
        "optimizer": (_is_text, "a non-empty string"),
        "params": (lambda v: isinstance(v, dict), "an object"),
        "problem": (_is_text, "a non-empty string"),
        # Seed 0 is a seed like any other (the runner's own tests use it); the budget must be > 0.
        "seed": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
        "budget": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    },
    "label": (_is_text, "a non-empty string"),
    "status": (lambda v: isinstance(v, str), "a string"),
    "problem": {
        "name": (_is_text, "a non-empty string"),
        "spec": (_is_text, "a non-empty string"),
        "optimal_value": (_is_number, "a number"),
        "worst_value": (_is_number, "a number"),
    },
    "versions": (lambda v: isinstance(v, dict), "an object"),
    "optimizer": {
        "name": (_is_text, "a non-empty string"),
        "class": (_is_text, "a non-empty string"),
        "module": (_is_text, "a non-empty string"),
        "config": (lambda v: isinstance(v, dict), "an object"),
    },
    "stop_reason": (lambda v: v in STOP_REASONS, "one of " + ", ".join(STOP_REASONS)),
    "error": (lambda v: v is None, "null for a finished run"),
    "started": (_is_number, "a number"),
    "finished": (_is_number, "a number"),
    "seconds": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "evaluations": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "calls": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "best_value": (_is_number, "a number"),
    "regret": (_is_number, "a number"),
}


def _check_fields(data: dict, fields: dict, prefix: str) -> None:
    for name, rule in fields.items():
        path = prefix + name
        if name not in data:
            raise RunRejected("manifest", f"missing field {path!r}")
        value = data[name]
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                raise RunRejected("manifest", f"field {path!r} must be an object, got {value!r}")
            _check_fields(value, rule, path + ".")
        elif not rule[0](value):
            raise RunRejected("manifest", f"field {path!r} must be {rule[1]}, got {value!r}")


def _check_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise RunRejected("manifest", f"{path} does not exist")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunRejected("manifest", f"{path} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict):
        raise RunRejected("manifest", f"{path} holds {type(manifest).__name__}, not an object")
    if manifest.get("schema") != SCHEMA or not _is_int(manifest.get("schema")):
        raise RunRejected("manifest", f"schema {manifest.get('schema')!r}, expected {SCHEMA}")
    if manifest.get("status") != "finished":
        raise RunRejected(
            "manifest", f"status {manifest.get('status')!r}: only finished runs count"
        )
    _check_fields(manifest, _FIELDS, "")
    if manifest["optimizer"]["name"] != manifest["job"]["optimizer"]:
        raise RunRejected(
            "manifest", f"optimizer.name {manifest['optimizer']['name']!r} differs from "
            f"job.optimizer {manifest['job']['optimizer']!r}"
        )
    return manifest


# -- 2. problem ------------------------------------------------------------------------------

def _check_problem(manifest: dict) -> TestFunction:
    problem = manifest["problem"]
    spec = problem["spec"]
    if manifest["job"]["problem"] != problem["name"]:
        raise RunRejected(
            "problem", f"job.problem {manifest['job']['problem']!r} differs from problem.name "
            f"{problem['name']!r}"
        )
    try:
        function = make_function(spec)
        named = make_function(problem["name"])
    except ValueError as err:
        raise RunRejected("problem", f"cannot rebuild the problem: {err}") from None
    if function.spec != spec:
        raise RunRejected(
            "problem", f"spec {spec!r} is not canonical: it rebuilds as {function.spec!r}"
        )
    if named.spec != spec:
        raise RunRejected(
            "problem",
            f"problem {problem['name']!r} is {named.spec!r}, but the manifest says {spec!r}",
        )
    if function.noise_std > 0 or function.negate:
        raise RunRejected(
            "problem", f"spec {spec!r} is noisy or negated: its values cannot be re-scored"
        )
    tolerance = TOLERANCE.get(function.spec_name, 0.0)
    for name in ("optimal_value", "worst_value"):
        claimed, actual = problem[name], getattr(function, name)
        if not _close(claimed, actual, tolerance):
            raise RunRejected(
                "problem", f"problem.{name} {claimed!r} but {spec!r} has {name} {actual!r}"
            )
    return function


def _close(a, b, tolerance: float) -> bool:
    """Equal, or within ``tolerance``; equal infinities are equal, NaN never is."""
    return bool(a == b or abs(a - b) <= tolerance)


# -- 3. trace --------------------------------------------------------------------------------

def _check_trace(folder: Path, manifest: dict, function: TestFunction) -> np.ndarray:
    path = folder / TRACE
    if not path.is_file():
        raise RunRejected("trace", f"{path} does not exist")
    try:
        header, records = read_trace(path, strict=True)
    except TraceError as err:
        raise RunRejected("trace", str(err), row=err.row) from None
    # The header the oracle would write for this problem, token dtype included.
    tokens = token_dtype(function.num_states)
    expected = {"format": FORMAT, "version": VERSION, "spec": manifest["problem"]["spec"],
                "dim": function.dim, "token_dtype": tokens.str}
    if header != expected:
        differ = sorted(k for k in expected.keys() | header.keys() if header.get(k) != expected.get(k))
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


# -- 4. budget -------------------------------------------------------------------------------

def _check_budget(manifest: dict, records: np.ndarray) -> None:
    n, budget = len(records), manifest["job"]["budget"]
    if n > budget:
        raise RunRejected(
            "budget", f"the trace logs {n} evaluations, past the budget of {budget}; the first "
            "over budget is here", row=budget, records=records,
        )
    if n != manifest["evaluations"]:
        raise RunRejected(
            "budget",
            f"the trace logs {n} evaluations, the manifest claims {manifest['evaluations']}",
        )
    calls = int(records["call"][-1]) + 1 if n else 0
    if calls != manifest["calls"]:
        raise RunRejected(
            "budget", f"the trace logs {calls} calls, the manifest claims {manifest['calls']}"
        )


# -- 5. values -------------------------------------------------------------------------------

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
        detail = f"logged value {logged[row].item()!r} but the sequence scores {scored[row].item()!r}"
    else:
        detail = (f"logged feasible flag {flag_bytes[row]} but the sequence is "
                  + ("feasible" if flag_bytes[row] == 0 else "infeasible"))
    raise RunRejected("values", detail, row=row, records=records)


# -- 6. best ---------------------------------------------------------------------------------

def _check_best(manifest: dict, function: TestFunction, records: np.ndarray,
                tolerance: float) -> float:
    """The manifest's best value and regret, recomputed from the trace; returns the regret."""
    values = np.where(records["feasible"], records["value"], -np.inf)
    row = int(np.argmax(values)) if len(values) else None
    best = float(values[row]) if row is not None else -np.inf
    if not manifest["best_value"] == best:
        if best == -np.inf:
            raise RunRejected(
                "best", f"manifest best_value {manifest['best_value']!r} but the trace holds no "
                "feasible evaluation"
            )
        raise RunRejected(
            "best", f"manifest best_value {manifest['best_value']!r} but the best feasible value "
            f"in the trace is {best!r}, here", row=row, records=records,
        )
    regret = function.optimal_value - max(function.worst_value, best)
    if not _close(manifest["regret"], regret, tolerance):
        raise RunRejected(
            "best", f"manifest regret {manifest['regret']!r} but the trace gives {regret!r}"
        )
    return regret


# -- 7. status -------------------------------------------------------------------------------

def _check_status(manifest: dict, function: TestFunction, records: np.ndarray, regret: float,
                  tolerance: float) -> None:
    """The stop reason is the one the runner's loop would give: it stops when solved, else when
    the budget is spent, else when the optimizer asks for nothing."""
    reason, budget, n = manifest["stop_reason"], manifest["job"]["budget"], len(records)
    solved = regret <= tolerance
    if reason == "solved":
        if not solved:
            raise RunRejected("status", f"stop_reason 'solved' but the regret is {regret!r}")
        reached = records["feasible"] & (
            function.optimal_value - np.maximum(function.worst_value, records["value"]) <= tolerance
        )
        first = int(np.argmax(reached))
        if records["call"][first] != records["call"][-1]:
            raise RunRejected(
                "status", f"the optimum was first reached in call {records['call'][first]}, but "
                f"the run went on to call {records['call'][-1]} instead of stopping",
                row=first, records=records,
            )
    elif solved:
        raise RunRejected(
            "status", f"stop_reason {reason!r} but the run reached the optimum: 'solved'"
        )
    elif reason == "budget" and n != budget:
        raise RunRejected(
            "status", f"stop_reason 'budget' but only {n} of {budget} evaluations were used"
        )
    elif reason == "optimizer-done" and n >= budget:
        raise RunRejected(
            "status", f"stop_reason 'optimizer-done' but the budget of {budget} was spent"
        )
