"""One benchmark run: an optimizer against a problem's oracle, recorded in a run folder.

The runner owns the loop (ask, evaluate, tell) and the oracle, so no optimizer can overspend or
grade itself. The run folder (``holo_bench.record``) is named by the run's identity, so runs
that differ in configuration, budget or counting rule never share one. Rerunning a job skips it
when its manifest says finished, and otherwise reruns it from the start while the oracle serves
the calls already in the trace from disk: no evaluation is lost or charged twice.

One process writes a run folder at a time (``holo_bench.run_lock``): a job whose folder another
process holds is skipped, never waited for. A run counts as finished only once its folder passes
the verification that ``holo-bench collect`` applies (``run_and_verify``).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from holo_bench.oracle import Oracle, check_count, default_count
from holo_bench.protocol import Optimizer, Problem
from holo_bench.record import (
    OPTIMIZER_DIR,
    TRACE,
    Manifest,
    RunSpec,
    ended_manifest,
    failure,
    previous_manifest,
    run_folder,
    running_manifest,
    stop_rule,
    write_manifest,
)
from holo_bench.run_lock import RunLocked, lock_run_folder
from holo_bench.suite import make_function
from leaderboard.verify import RunRejected, verify_run
from optimizers.registry import make_optimizer

# (label, problem, seed, evaluations used, best value, regret), at most every PROGRESS_SECONDS.
Progress = Callable[[str, str, int, int, float, float], None]
PROGRESS_SECONDS = 0.5
# Errors of the storage itself, not of the optimizer: they end the grid, not the run, whose
# folder stays resumable.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


class OptimizerError(RuntimeError):
    """The optimizer broke the ask/tell contract."""


@dataclass(frozen=True)
class Job:
    """One run of a grid: what runs (``run``), where (``out``) and under which display label."""

    run: RunSpec
    out: str
    label: str

    @property
    def folder(self) -> Path:
        return run_folder(self.out, self.label, self.run)


def make_job(optimizer: str, problem: str, seed: int, budget: int, out: str | os.PathLike,
             params: dict | None = None, count: str | None = None, label: str | None = None) -> Job:
    """A validated job: raises ``ValueError`` naming the problem (unknown optimizer or problem,
    bad parameter, seed or budget, counting rule) before anything runs."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    function = make_function(problem)
    count = check_count(default_count(function) if count is None else count, function)
    config = make_optimizer(optimizer, params).config()
    run = RunSpec(problem=problem, spec=function.spec, optimizer=optimizer, params=config,
                  seed=int(seed), budget=int(budget), count=count)
    return Job(run=run, out=str(out), label=label or optimizer)


def check_ask(X, n: int, problem: Problem) -> np.ndarray:
    """Enforce the ask contract: an integer ``(m, dim)`` array, ``m <= n``, tokens in range."""
    if not isinstance(X, np.ndarray):
        raise OptimizerError(
            f"ask({n}) returned {type(X).__name__}, expected a numpy integer array")
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


def run_job(job: Job, progress: Progress | None = None) -> Manifest:
    """Run (or resume, or skip) one job; returns its final manifest.

    Never raises for a failing optimizer: the run ends as ``failed`` with the error recorded.
    Raises ``RunLocked`` if another process holds the run folder (nothing there is touched), and
    ``OSError`` if the folder cannot be written (a full disk, a read-only folder): the run is
    then left as a killed run is, resumable.
    """
    with lock_run_folder(job.folder):
        return _run_locked(job, progress)


def _run_locked(job: Job, progress: Progress | None) -> Manifest:
    run, folder = job.run, job.folder
    previous = previous_manifest(folder, run)
    if previous is not None and previous.status == "finished":
        return previous

    function = make_function(run.spec)
    oracle = Oracle(function, run.budget, count=run.count, log_path=folder / TRACE)
    manifest = running_manifest(run, job.label, function)
    optimizer = None
    outcome: dict = {"status": "finished", "error": None}
    started = time.perf_counter()
    try:
        optimizer = make_optimizer(run.optimizer, run.params)
        if optimizer.config() != run.params:
            raise OptimizerError(f"config() gives {optimizer.config()}, not the parameters it was "
                                 f"built with, {run.params}")
        manifest = dataclasses.replace(
            manifest,
            optimizer_class=f"{type(optimizer).__module__}:{type(optimizer).__qualname__}")
        write_manifest(folder, manifest)
        initial = np.atleast_2d(function.initial_solution()).astype(np.int64)
        problem = Problem(function.num_states, function.dim, run.budget, initial, run.count)
        resumed = optimizer.setup(problem, np.random.SeedSequence(run.seed),
                                  workdir=folder / OPTIMIZER_DIR)
        if isinstance(resumed, bool) or not isinstance(resumed, int) or resumed < 0:
            raise OptimizerError(
                f"setup returned {resumed!r}; since holo-bench 0.2, setup(problem, seed, workdir) "
                "returns how many oracle calls a restored state accounts for (0 for a fresh start)")
        oracle.skip_replay(resumed)
        outcome["stop_reason"] = _loop(job, oracle, optimizer, problem, progress)
        if oracle.replaying:
            raise OptimizerError("the run ended before replaying every logged call")
    except OSError as err:
        if err.errno in STORAGE_ERRNOS:
            raise
        outcome = failure(err)
    except Exception as err:
        outcome = failure(err)
    finally:
        if optimizer is not None:
            optimizer.close()
        oracle.close()
    manifest = ended_manifest(manifest, oracle, outcome, started)
    write_manifest(folder, manifest)
    if progress is not None:
        progress(job.label, run.problem, run.seed, oracle.used, oracle.best_value, oracle.regret)
    return manifest


@dataclass(frozen=True)
class JobResult:
    """How a job of a grid ended, as a report may count it.

    ``status``: ``finished`` (its folder verified; ``manifest`` is the verified one), ``failed``
    (the optimizer broke the run; its error is in ``manifest``), ``rejected`` (the folder says
    finished but fails verification: ``reason`` names the check and row) or ``skipped`` (another
    process holds the folder: ``reason`` names it; ``manifest`` is None).
    """

    job: Job
    status: str
    manifest: Manifest | None
    reason: str | None = None


def run_and_verify(job: Job, progress: Progress | None = None) -> JobResult:
    """``run_job``, then the verification ``collect`` applies: only a run that passes counts as
    finished."""
    try:
        manifest = run_job(job, progress)
    except RunLocked as err:
        return JobResult(job, "skipped", None, str(err))
    if manifest.status != "finished":
        return JobResult(job, "failed", manifest, (manifest.error or {}).get("message"))
    try:
        return JobResult(job, "finished", verify_run(job.folder).manifest)
    except RunRejected as err:
        return JobResult(job, "rejected", manifest, str(err))


def _loop(job: Job, oracle: Oracle, optimizer: Optimizer, problem: Problem,
          progress: Progress | None) -> str:
    """Ask, evaluate, tell until a stop rule holds (``holo_bench.record.stop_rule``, checked
    before every call); returns the stop reason."""
    last_report = time.monotonic()
    free_calls = 0  # consecutive calls that charged nothing
    while True:
        reason = stop_rule(oracle, free_calls)
        if reason is not None:
            return reason
        X = check_ask(optimizer.ask(oracle.remaining), oracle.remaining, problem)
        if len(X) == 0:
            return "optimizer-done"
        used = oracle.used
        values = oracle.evaluate(X)
        free_calls = 0 if oracle.used > used else free_calls + 1
        optimizer.tell(X.copy(), values.copy())
        if progress is not None and time.monotonic() - last_report > PROGRESS_SECONDS:
            progress(job.label, job.run.problem, job.run.seed, oracle.used, oracle.best_value,
                     oracle.regret)
            last_report = time.monotonic()


def job_summary(result: JobResult) -> dict:
    """The fields of a job's result worth one line in a report."""
    run, manifest = result.job.run, result.manifest
    return {"optimizer": result.job.label, "problem": run.problem, "seed": run.seed,
            "count": run.count, "status": result.status,
            "evaluations": manifest.evaluations if manifest else None,
            "best_value": manifest.best_value if manifest else None,
            "regret": manifest.regret if manifest else None,
            "folder": str(result.job.folder), "reason": result.reason}
