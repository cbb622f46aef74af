"""One benchmark run: an optimizer against a problem's oracle, recorded in a run folder.

The runner owns the loop (ask, evaluate, tell) and the oracle, so no optimizer can overspend or
grade itself. A run folder holds ``manifest.json`` (what ran, with which versions, how it ended)
and ``trace.bin`` (every evaluation, see ``holo_bench.trace``). Rerunning a job skips it when its
manifest says finished, and otherwise reruns it from the start while the oracle serves the calls
already in the trace from disk: no evaluation is lost or charged twice.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np

import holo_bench
from holo_bench.oracle import Oracle
from holo_bench.suite import make_function
from optimizers.base import Problem
from optimizers.registry import make_optimizer

MANIFEST = "manifest.json"
TRACE = "trace.bin"
SCHEMA = 1

# (label, problem, seed, evaluations used, best value, regret), at most every PROGRESS_SECONDS.
Progress = Callable[[str, str, int, int, float, float], None]
PROGRESS_SECONDS = 0.5


class OptimizerError(RuntimeError):
    """The optimizer broke the ask/tell contract."""


@dataclass(frozen=True)
class Job:
    """One (optimizer, problem, seed) run of a grid."""

    optimizer: str
    problem: str
    seed: int
    budget: int
    out: str
    params: dict = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.optimizer

    @property
    def folder(self) -> Path:
        return Path(self.out) / _safe(self.name) / _safe(self.problem) / f"seed-{self.seed}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", text)


@cache
def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict:
    import torch

    return {"holo_bench": holo_bench.__version__, "numpy": np.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "git_commit": _git_commit()}


def read_manifest(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def _write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default))
    os.replace(tmp, folder / MANIFEST)  # atomic: a reader never sees half a manifest


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def check_ask(X, n: int, problem: Problem) -> np.ndarray:
    """Enforce the ask contract: an integer ``(m, dim)`` array, ``m <= n``, tokens in range."""
    if not isinstance(X, np.ndarray):
        raise OptimizerError(f"ask({n}) returned {type(X).__name__}, expected a numpy integer array")
    if X.dtype.kind not in "iu":
        raise OptimizerError(f"ask({n}) returned dtype {X.dtype}, expected an integer dtype")
    if X.ndim != 2 or X.shape[1] != problem.dim:
        raise OptimizerError(f"ask({n}) returned shape {X.shape}, expected (m, {problem.dim})")
    if len(X) > n:
        raise OptimizerError(f"ask({n}) returned {len(X)} sequences, more than it was asked for")
    if len(X) and (X.min() < 0 or X.max() >= problem.num_states):
        raise OptimizerError(
            f"ask({n}) returned tokens in [{X.min()}, {X.max()}], outside [0, {problem.num_states})"
        )
    return X


def run_job(job: Job, progress: Progress | None = None) -> dict:
    """Run (or resume, or skip) one job; returns its final manifest. Never raises for a failing
    optimizer: the run ends as ``failed`` with the error recorded."""
    folder = job.folder
    folder.mkdir(parents=True, exist_ok=True)
    config = {"optimizer": job.optimizer, "params": job.params, "problem": job.problem,
              "seed": job.seed, "budget": job.budget}
    previous = read_manifest(folder)
    if previous is not None:
        if previous["job"] != json.loads(json.dumps(config, default=_json_default)):
            raise ValueError(f"{folder} holds a run of {previous['job']}, not of {config}")
        if previous["status"] == "finished":
            return previous

    function = make_function(job.problem)
    manifest = {
        "schema": SCHEMA, "job": config, "label": job.name, "status": "running",
        "problem": {"name": job.problem, "spec": function.spec, "optimal_value": function.optimal_value,
                    "worst_value": function.worst_value},
        "versions": _versions(), "started": time.time(), "error": None,
    }
    oracle = Oracle(function, job.budget, log_path=folder / TRACE)
    optimizer = None
    started = time.perf_counter()
    try:
        optimizer = make_optimizer(job.optimizer, job.params)
        manifest["optimizer"] = {"name": job.optimizer, "class": type(optimizer).__qualname__,
                                 "module": type(optimizer).__module__, "config": optimizer.config()}
        _write_manifest(folder, manifest)
        initial = np.atleast_2d(function.initial_solution()).astype(np.int64)
        problem = Problem(function.num_states, function.dim, job.budget, initial)
        optimizer.workdir = folder / "optimizer"
        optimizer.setup(problem, job.seed)
        oracle.skip_replay(optimizer.resumed_calls)
        manifest["stop_reason"] = _loop(job, oracle, optimizer, problem, progress)
        manifest["status"] = "finished"
        if oracle.replaying:
            raise OptimizerError("the run ended before replaying every logged call")
    except Exception as err:
        manifest["status"] = "failed"
        manifest["error"] = {"type": type(err).__name__, "message": str(err),
                             "traceback": traceback.format_exc()}
    finally:
        if optimizer is not None:
            optimizer.close()
        oracle.close()
    manifest.update(
        finished=time.time(), seconds=time.perf_counter() - started, evaluations=oracle.used,
        calls=oracle.calls, best_value=oracle.best_value, regret=oracle.regret,
    )
    _write_manifest(folder, manifest)
    if progress is not None:
        progress(job.name, job.problem, job.seed, oracle.used, oracle.best_value, oracle.regret)
    return manifest


def _loop(job: Job, oracle: Oracle, optimizer, problem: Problem, progress: Progress | None) -> str:
    last_report = time.monotonic()
    while True:
        if oracle.regret <= 0:
            return "solved"
        if oracle.remaining == 0:
            return "budget"
        X = check_ask(optimizer.ask(oracle.remaining), oracle.remaining, problem)
        if len(X) == 0:
            return "optimizer-done"
        values = oracle.evaluate(X)
        optimizer.tell(X.copy(), values.copy())
        if progress is not None and time.monotonic() - last_report > PROGRESS_SECONDS:
            progress(job.name, job.problem, job.seed, oracle.used, oracle.best_value, oracle.regret)
            last_report = time.monotonic()


def job_summary(manifest: dict) -> dict:
    """The fields of a manifest worth one line in a report."""
    return {"optimizer": manifest["label"], "problem": manifest["problem"]["name"],
            "seed": manifest["job"]["seed"], "status": manifest["status"],
            "evaluations": manifest.get("evaluations"), "best_value": manifest.get("best_value"),
            "regret": manifest.get("regret"), "error": (manifest.get("error") or {}).get("message")}

