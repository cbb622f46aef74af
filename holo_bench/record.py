"""The run record: a run folder's layout, its typed manifest, and the run's identity.

A run folder holds ``manifest.json`` (a ``Manifest``: what ran, with which versions, how it
ended) and ``trace.bin`` (every query, see ``holo_bench.trace``), plus ``optimizer/`` for the
optimizer's own state and diagnostics. The runner (and ``holo_bench.interop.poli``, for a solver
that owns its loop) writes it, with the same stop rules (``stop_rule``) and the same manifest
from start to end (``previous_manifest``, ``running_manifest``, ``failure``, ``ended_manifest``);
the verifier, the store and ``load_runs`` read it, always through ``read_manifest``, which
validates every field.

A run's identity is a hash of what makes it unique: the problem's canonical spec, the optimizer
and its full configuration, the seed, the budget and the counting rule. Display labels and
problem names are not part of it: two names for one instance are one problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import time
import traceback
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

import holo_bench
from holo_bench.measures import is_solved
from holo_bench.oracle import COUNT_RULES, Oracle
from holo_bench.params import accepts, describe

MANIFEST = "manifest.json"
TRACE = "trace.bin"
OPTIMIZER_DIR = "optimizer"
SCHEMA = 2

STATUSES = ("running", "finished", "failed")
# Why a finished run stopped: the optimum was reached, the budget was spent, the optimizer asked
# for nothing, or it asked STALL_CALLS calls in a row only for sequences already evaluated (under
# count "distinct" those are free, so such a run would never end).
STOP_REASONS = ("solved", "budget", "optimizer-done", "stalled")
STALL_CALLS = 100


def stop_rule(oracle: Oracle, free_calls: int) -> str | None:
    """The rule that ends a run before its next call, checked in this order (``solved``,
    ``budget``, ``stalled`` after ``free_calls`` consecutive calls that charged nothing), or None
    while the run may go on. ``leaderboard.verify`` recomputes it from the trace."""
    if is_solved(oracle.regret):
        return "solved"
    if oracle.remaining == 0:
        return "budget"
    if free_calls >= STALL_CALLS:
        return "stalled"
    return None


class ManifestError(ValueError):
    """A manifest that is missing, unreadable or invalid; the message is one line."""


@dataclass(frozen=True)
class RunSpec:
    """One (problem, optimizer with its configuration, seed, budget, counting rule) run.

    ``problem`` is the name it was asked by (an instance name or a spec string), ``spec`` the
    canonical spec it builds; ``params`` is the optimizer's full, validated configuration.
    """

    problem: str
    spec: str
    optimizer: str
    params: dict
    seed: int
    budget: int
    count: str

    def __post_init__(self):
        if self.seed < 0:
            raise ManifestError(f"seed must be >= 0, got {self.seed}")
        if self.budget <= 0:
            raise ManifestError(f"budget must be > 0, got {self.budget}")
        if self.count not in COUNT_RULES:
            raise ManifestError(
                f"count must be one of {', '.join(COUNT_RULES)}, got {self.count!r}")

    @property
    def identity(self) -> str:
        """SHA-256 (hex) of the canonical JSON of everything that makes the run unique."""
        return _digest({"spec": self.spec, "optimizer": self.optimizer, "params": self.params,
                        "seed": self.seed, "budget": self.budget, "count": self.count})

    @property
    def configuration(self) -> str:
        """The identity without the problem and the seed: one optimizer configuration, as a
        leaderboard row aggregates it over seeds on one problem."""
        return _digest({"optimizer": self.optimizer, "params": self.params, "budget": self.budget,
                        "count": self.count})


def _digest(key: dict) -> str:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ProblemRecord:
    """The problem as the run saw it: its name, canonical spec, and the values regret uses."""

    name: str
    spec: str
    optimal_value: float
    worst_value: float


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``. While ``running`` (or after ``failed``) the outcome fields may be None;
    a ``finished`` run has them all: ``evaluations`` (charged), ``queries`` (logged), ``calls``,
    ``best_value``, ``regret`` and ``stop_reason``."""

    schema: int
    identity: str
    run: RunSpec
    label: str
    problem: ProblemRecord
    optimizer_class: str
    versions: dict
    hardware: dict
    status: str
    started: float
    finished: float | None = None
    seconds: float | None = None
    evaluations: int | None = None
    queries: int | None = None
    calls: int | None = None
    best_value: float | None = None
    regret: float | None = None
    stop_reason: str | None = None
    error: dict | None = None

    def __post_init__(self):
        if self.schema != SCHEMA:
            raise ManifestError(f"schema {self.schema}, expected {SCHEMA}")
        try:
            identity = self.run.identity
        except ValueError as err:  # NaN or infinity in the parameters: not a canonical JSON key
            raise ManifestError(f"run cannot be identified: {err}") from None
        if self.identity != identity:
            raise ManifestError(f"identity {self.identity!r} is not the hash of run ({identity!r})")
        if not self.label:
            raise ManifestError("label must not be empty")
        if self.problem.name != self.run.problem or self.problem.spec != self.run.spec:
            raise ManifestError(f"problem {self.problem.name!r} ({self.problem.spec!r}) differs "
                                f"from run.problem {self.run.problem!r} ({self.run.spec!r})")
        if self.status not in STATUSES:
            raise ManifestError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        for name in ("started", "finished", "seconds", "best_value", "regret"):
            value = getattr(self, name)
            if value is not None and math.isnan(value):
                raise ManifestError(f"{name} is NaN")
        if self.status != "finished":
            return
        missing = [name for name in ("finished", "seconds", "evaluations", "queries", "calls",
                                     "best_value", "regret", "stop_reason")
                   if getattr(self, name) is None]
        if missing:
            raise ManifestError(f"a finished run needs {', '.join(missing)}")
        if self.stop_reason not in STOP_REASONS:
            raise ManifestError(f"stop_reason must be one of {', '.join(STOP_REASONS)}, "
                                f"got {self.stop_reason!r}")
        if self.error is not None:
            raise ManifestError("a finished run has no error")
        if min(self.seconds, self.evaluations, self.queries, self.calls) < 0:
            raise ManifestError("seconds, evaluations, queries and calls must be >= 0")

    @classmethod
    def from_json(cls, data) -> Manifest:
        """Validate a manifest's JSON object field by field; ``ManifestError`` names the first
        problem."""
        if not isinstance(data, dict):
            raise ManifestError(f"a manifest is a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise ManifestError(_schema_message(data.get("schema")))
        return _build(cls, data, "")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _schema_message(schema) -> str:
    if schema == 1:
        return ("schema 1 (written by holo-bench 0.1, which charged every repeated query and "
                "recorded neither the counting rule nor the run identity): rerun the job with "
                f"this holo-bench, which writes schema {SCHEMA} into a new run folder")
    return f"schema {schema!r}, this holo-bench reads schema {SCHEMA}"


def _build(cls, data: dict, prefix: str):
    """``cls(**data)`` with every field present (or defaulted) and of its annotated type."""
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ManifestError(f"unknown field {prefix + unknown[0]!r}")
    values = {}
    for name, field in fields.items():
        path = prefix + name
        if name not in data:
            if field.default is dataclasses.MISSING:
                raise ManifestError(f"missing field {path!r}")
            continue
        value, kind = data[name], hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ManifestError(f"field {path!r} must be an object, got {value!r:.80}")
            value = _build(kind, value, path + ".")
        elif not accepts(kind, value):
            raise ManifestError(f"field {path!r} must be {describe(kind)}, got {value!r:.80}")
        values[name] = value
    try:
        return cls(**values)
    except ManifestError as err:
        raise ManifestError(f"{prefix}{err}" if prefix else str(err)) from None


def read_manifest(folder: str | os.PathLike) -> Manifest | None:
    """The validated manifest of the run in ``folder``; None if it has none."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:  # JSON and Unicode errors are ValueErrors
        raise ManifestError(f"{path} is not valid JSON: {err}") from None
    try:
        return Manifest.from_json(data)
    except ManifestError as err:
        raise ManifestError(f"{path}: {err}") from None


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> None:
    """Write atomically: a reader never sees half a manifest."""
    path = Path(folder) / MANIFEST
    tmp = path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True))
    os.replace(tmp, path)


def run_folder(out: str | os.PathLike, label: str, run: RunSpec) -> Path:
    """``out/<label>/<problem>/seed-<seed>-<identity[:10]>``: readable, and distinct for runs
    that differ in anything but their label."""
    return Path(out) / _safe(label) / _safe(run.problem) / f"seed-{run.seed}-{run.identity[:10]}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", text)


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Every folder under ``root`` holding a run manifest, sorted."""
    return sorted(path.parent for path in Path(root).rglob(MANIFEST))


def previous_manifest(folder: Path, run: RunSpec) -> Manifest | None:
    """The manifest of ``run`` already in ``folder`` (a killed, failed or finished attempt), or
    None; ``ValueError`` if the folder holds another run."""
    previous = read_manifest(folder)
    if previous is not None and previous.identity != run.identity:
        raise ValueError(f"{folder} holds run {previous.identity}, not {run.identity}: "
                         "move it away")
    return previous


def running_manifest(run: RunSpec, label: str, function, optimizer_class: str = "") -> Manifest:
    """The manifest of ``run`` as it starts on ``function`` (its test function): status
    ``running``, with this machine's versions and hardware."""
    return Manifest(
        schema=SCHEMA, identity=run.identity, run=run, label=label,
        problem=ProblemRecord(run.problem, function.spec, function.optimal_value,
                              function.worst_value),
        optimizer_class=optimizer_class, versions=versions(), hardware=hardware(),
        status="running", started=time.time())


def failure(err: BaseException) -> dict:
    """The outcome fields of a run that ended with ``err`` (call it while handling ``err``)."""
    return {"status": "failed", "stop_reason": None, "error": {
        "type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}}


def ended_manifest(manifest: Manifest, oracle: Oracle, outcome: dict,
                   started: float) -> Manifest:
    """``manifest`` with the run's ``outcome`` (status, stop reason, error), its times
    (``started`` from ``time.perf_counter``) and the oracle's final counts."""
    return dataclasses.replace(
        manifest, **outcome, finished=time.time(), seconds=time.perf_counter() - started,
        evaluations=oracle.used, queries=oracle.queries, calls=oracle.calls,
        best_value=oracle.best_value, regret=oracle.regret)


@cache
def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    """A manifest's ``versions``: holo-bench, numpy, torch, Python and the git commit."""
    import torch

    return {"holo_bench": holo_bench.__version__, "numpy": np.__version__,
            "torch": torch.__version__, "python": platform.python_version(),
            "git_commit": _git_commit()}


def hardware() -> dict:
    """A manifest's ``hardware``: this machine, its CPUs and GPU, and torch's thread count."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    # torch's CPU threads: with more than one, its kernels may split work differently from one
    # process to the next, so a torch-based optimizer repeats bit for bit only at one thread.
    return {"machine": platform.machine(), "processor": platform.processor() or None,
            "system": platform.system(), "cpus": os.cpu_count(), "gpu": gpu,
            "torch_threads": torch.get_num_threads()}
