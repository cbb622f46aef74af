"""``load_runs``: every query of every run under a folder, as one table."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from holo_bench.measures import best_so_far, charged_count, regret
from holo_bench.record import TRACE, Manifest, find_runs, read_manifest
from holo_bench.trace import read_trace

COLUMNS = ["optimizer", "problem", "seed", "budget", "count", "identity", "status", "evaluation",
           "charged", "call", "index", "value", "feasible", "best_so_far", "regret"]


def load_runs(root: str | os.PathLike, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per query of every run under ``root`` (finished runs only, unless asked).

    Columns: optimizer (the run's label), problem, seed, budget, count (the counting rule),
    identity (the run's), status, evaluation (charged evaluations so far, the x axis of regret
    curves), charged (whether this query was charged), call and index (batch and position in it),
    value, feasible, best_so_far (best feasible value so far, ``-inf`` before any) and regret
    (``holo_bench.measures.regret`` of best_so_far). Manifests are validated on read: a malformed
    one raises ``holo_bench.record.ManifestError`` naming the folder.
    """
    frames = []
    for folder in find_runs(root):
        manifest = read_manifest(folder)
        if manifest.status != "finished" and not include_unfinished:
            continue
        if not (folder / TRACE).exists():
            continue
        _, records = read_trace(folder / TRACE)
        frames.append(query_frame(manifest, records))
    if not frames:
        return pd.DataFrame({column: [] for column in COLUMNS})
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def query_frame(manifest: Manifest, records: np.ndarray) -> pd.DataFrame:
    """One run's queries (its trace's ``records``) as ``load_runs`` rows, in ``COLUMNS`` order."""
    best = best_so_far(records["value"], records["feasible"])
    run = manifest.run
    return pd.DataFrame({
        "optimizer": manifest.label, "problem": run.problem, "seed": run.seed,
        "budget": run.budget, "count": run.count, "identity": manifest.identity,
        "status": manifest.status,
        "evaluation": charged_count(records["charged"]),
        "charged": records["charged"],
        "call": records["call"],
        "index": records["index"],
        "value": records["value"],
        "feasible": records["feasible"],
        "best_so_far": best,
        "regret": regret(best, manifest.problem.optimal_value, manifest.problem.worst_value),
    }, columns=COLUMNS)
