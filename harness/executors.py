"""Running a grid of jobs: in this process, on a local process pool, or on Ray.

Every executor runs the same ``run_and_verify``; results depend only on the job, never on where
it ran, with one exception: a torch-based optimizer on a CPU repeats bit for bit only at one torch
thread, which pool workers pin (as Ray does for its one-CPU tasks) and the in-process executor
leaves at every core.

Stopping: SIGINT (Ctrl-C) or SIGTERM stops the grid with ``KeyboardInterrupt``, after stopping
the workers; a run stopped mid-way is left as a killed run is, and resumes when its job is run
again. A storage error (``OSError``: a full disk, a read-only folder) stops the grid the same way
and is raised: every later job would meet it too.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager

from harness.runner import Job, JobResult, run_and_verify

_worker_updates = None  # in a pool worker: the queue its progress goes to
_worker_busy = False  # in a pool worker: whether it is running a job


def _init_worker(updates) -> None:
    """Pin one thread per worker (the pool already uses every core); keep the progress queue.
    A terminal's Ctrl-C reaches the whole process group: workers leave it to the parent, which
    stops them with SIGTERM, and SIGTERM unwinds a run as Ctrl-C would (its trace closed whole,
    its lock released)."""
    global _worker_updates
    _worker_updates = updates
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _report(*update) -> None:
    _worker_updates.put(update)


def _run_in_worker(job: Job) -> JobResult:
    global _worker_busy
    try:
        _worker_busy = True
        return run_and_verify(job, _report)
    except KeyboardInterrupt:  # SIGTERM: the run has unwound; end the worker, quietly
        os._exit(128 + signal.SIGTERM)
    finally:
        _worker_busy = False


def _stop_worker(signum, frame):
    """A pool worker's SIGTERM: unwind the running job, or, when idle, exit at once."""
    if _worker_busy:
        raise KeyboardInterrupt("SIGTERM")
    os._exit(128 + signum)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _sigterm_interrupts():
    """In the main thread, SIGTERM raises ``KeyboardInterrupt``, as SIGINT does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _ProgressBar:
    """One bar over the whole grid: evaluations done (of all budgets), jobs done, best regret."""

    def __init__(self, jobs: list[Job], enabled: bool):
        from tqdm import tqdm

        self._used: dict[tuple, int] = {}
        self._regret: dict[tuple, float] = {}
        self._best: dict[tuple, float] = {}
        self._done = 0
        self._jobs = len(jobs)
        self._bar = tqdm(total=sum(job.run.budget for job in jobs), unit="eval",
                         disable=not enabled, dynamic_ncols=True, smoothing=0.1)

    def update(self, label, problem, seed, used, best, regret) -> None:
        key = (label, problem, seed)
        self._bar.update(used - self._used.get(key, 0))
        self._used[key] = used
        self._regret[key] = regret
        self._best[key] = best
        self._bar.set_postfix_str(
            f"jobs {self._done}/{self._jobs}, best value {max(self._best.values()):.4g}, "
            f"lowest regret {min(self._regret.values()):.4g}"
        )

    def job_done(self, result: JobResult) -> None:
        self._done += 1
        job, manifest = result.job, result.manifest
        # A job that ended early (solved, failed, skipped) counts its whole budget as done.
        best = manifest.best_value if manifest and manifest.best_value is not None else -math.inf
        regret = manifest.regret if manifest and manifest.regret is not None else math.inf
        self.update(job.label, job.run.problem, job.run.seed, job.run.budget, best, regret)

    def close(self) -> None:
        self._bar.close()


def run_grid(jobs: list[Job], executor: str = "local", workers: int | None = None,
             ray_address: str | None = None, progress: bool = True) -> list[JobResult]:
    """Run every job and return their results, in the order of ``jobs``.

    ``local`` uses a process pool with ``workers`` processes (default: one per core; one worker
    runs in this process); ``ray`` connects to ``ray_address`` or starts a local Ray.
    """
    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    bar = _ProgressBar(jobs, progress)
    try:
        with _sigterm_interrupts():
            if executor == "ray":
                return _run_on_ray(jobs, ray_address, workers, bar)
            workers = min(workers or os.cpu_count() or 1, len(jobs))
            if workers <= 1:
                results = []
                for job in jobs:
                    results.append(run_and_verify(job, bar.update))
                    bar.job_done(results[-1])
                return results
            return _run_on_pool(jobs, workers, bar)
    finally:
        bar.close()


def _run_on_pool(jobs: list[Job], workers: int, bar: _ProgressBar) -> list[JobResult]:
    # forkserver: workers fork from a clean server that imported the runner once, which is safe
    # with torch's thread pools (plain fork is not) and much faster to start than spawn.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["harness.runner", "optimizers.registry"])
    updates = context.Queue()
    results: list[JobResult | None] = [None] * len(jobs)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(updates,))
    try:
        futures = {pool.submit(_run_in_worker, job): i for i, job in enumerate(jobs)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(updates, bar)
            for future in done:
                results[futures[future]] = future.result()
                bar.job_done(results[futures[future]])
    except BaseException:  # an interruption, or a storage error: stop every worker first
        _stop_workers(pool)
        raise
    pool.shutdown()
    _drain(updates, bar)
    return results


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the jobs not started and SIGTERM the workers, which unwind their runs. (Python
    3.14's ``ProcessPoolExecutor.terminate_workers`` does this; 3.11 needs the private list.)"""
    processes = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join()


def _drain(updates, bar: _ProgressBar) -> None:
    while True:
        try:
            bar.update(*updates.get_nowait())
        except queue.Empty:
            return


def _run_on_ray(jobs: list[Job], address: str | None, workers: int | None,
                bar: _ProgressBar) -> list[JobResult]:
    try:
        import ray
    except ImportError as err:
        raise ValueError("--executor ray needs Ray: pip install 'holo-bench[ray]'") from err
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": workers or os.cpu_count()}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        # A task whose worker dies is retried by Ray (max_retries); the dead worker's lock is
        # released with it, so the retry resumes the run as a rerun would.
        remote = ray.remote(num_cpus=1)(run_and_verify)
        refs = [remote.remote(job) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[JobResult | None] = [None] * len(jobs)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                results[index[done[0]]] = ray.get(done[0])
                bar.job_done(results[index[done[0]]])
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return results
    finally:
        if started_here:
            ray.shutdown()
