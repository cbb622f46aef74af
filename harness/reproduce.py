"""Rerun an archive record from its identity (``leaderboard.archive``) and compare digests."""

from __future__ import annotations

import os

import torch

from harness.runner import make_job, run_job
from leaderboard.archive import RecordError, query_digest, read_record
from leaderboard.verify import RunRejected, verify_run


def reproduce(path: str | os.PathLike, workdir: str | os.PathLike) -> tuple[str, str]:
    """Rerun a record's identity in ``workdir``, at one torch thread as the runner's workers run,
    and return (the record's digest, the rerun's). ``RunRejected`` if the rerun fails
    verification."""
    record, manifest = read_record(path)
    run = manifest.run
    job = make_job(run.optimizer, run.problem, run.seed, run.budget, workdir, params=run.params,
                   count=run.count, label=manifest.label)
    if job.run.identity != manifest.identity:
        raise RecordError(f"{path}: its run spec no longer builds the same identity (the "
                          "optimizer's parameters changed since it was recorded)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcome = run_job(job)
    finally:
        torch.set_num_threads(threads)
    if outcome.status != "finished":
        raise RunRejected("status", f"the rerun {outcome.status}: {outcome.error}")
    return record["digest"], query_digest(verify_run(job.folder).records)
