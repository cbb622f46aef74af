"""Rerun archive records from their identity (``leaderboard.archive``) and compare digests."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from harness.executors import run_grid
from harness.runner import make_job
from holo_bench.record import TRACE
from holo_bench.trace import read_trace
from leaderboard.archive import RecordError, query_digest, read_record


def reproduce(paths: list, workdir: str | os.PathLike, workers: int | None = None,
              progress: bool = False) -> tuple[list[str], list[str]]:
    """Rerun the records at ``paths`` in ``workdir`` (``workers`` processes, each at one torch
    thread, as the runner's workers run) and compare each rerun's digest with its record's.
    Returns the lines of the records reproduced and of those that were not, with the reason."""
    planned, failed = [], []
    for path in paths:
        try:
            record, manifest = read_record(path)
            run = manifest.run
            job = make_job(run.optimizer, run.problem, run.seed, run.budget, workdir,
                           params=run.params, count=run.count, label=manifest.label)
        except (RecordError, ValueError) as err:  # a record, or an optimizer, that changed
            failed.append(f"{path}: {err}")
            continue
        if job.run.identity != manifest.identity:
            failed.append(f"{path}: its run spec no longer builds the same identity (the "
                          "optimizer's parameters changed since it was recorded)")
            continue
        planned.append((path, record["digest"], job))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # for a grid run in this process
    try:
        results = run_grid([job for _, _, job in planned], workers=workers, progress=progress)
    finally:
        torch.set_num_threads(threads)
    reproduced = []
    for (path, expected, job), result in zip(planned, results):
        if result.status != "finished":
            reason = result.reason or (result.manifest.error if result.manifest else None)
            failed.append(f"{path}: the rerun {result.status}: {reason}")
            continue
        got = query_digest(read_trace(Path(job.folder) / TRACE)[1])
        if got == expected:
            reproduced.append(f"{path}: {got}")
        else:
            failed.append(f"{path}: the rerun's queries differ (digest {got}, recorded "
                          f"{expected})")
    return reproduced, failed
