"""``load_runs``: the one reader of run folders, which every later consumer uses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from holo_bench.runner import MANIFEST, TRACE
from holo_bench.trace import read_trace

COLUMNS = ["optimizer", "problem", "seed", "status", "evaluation", "call", "index", "value",
           "feasible", "best_so_far", "regret"]


def best_so_far(records: np.ndarray, problem: dict) -> tuple[np.ndarray, np.ndarray]:
    """From trace records and a manifest's problem entry: the best feasible value after each
    evaluation (``-inf`` before any) and the regret it gives, ``optimal - max(worst, best)``."""
    best = np.maximum.accumulate(np.where(records["feasible"], records["value"], -np.inf))
    return best, problem["optimal_value"] - np.maximum(problem["worst_value"], best)


def run_folders(root: str | os.PathLike) -> list[Path]:
    """Every folder under ``root`` holding a run manifest, sorted."""
    return sorted(path.parent for path in Path(root).rglob(MANIFEST))


def load_runs(root: str | os.PathLike, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per evaluation of every run under ``root``.

    Columns: optimizer (the run's label), problem, seed, status, evaluation (1-based count),
    call and index (batch and position in it), value, feasible, best_so_far (best feasible value
    so far, ``-inf`` before any) and regret (``optimal - max(worst, best_so_far)``, from the
    optimal and worst values recorded in the manifest). Only finished runs, unless asked.
    """
    frames = []
    for folder in run_folders(root):
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest["status"] != "finished" and not include_unfinished:
            continue
        trace_path = folder / TRACE
        if not trace_path.exists():
            continue
        _, records = read_trace(trace_path)
        problem = manifest["problem"]
        best, regret = best_so_far(records, problem)
        frames.append(pd.DataFrame({
            "optimizer": manifest["label"],
            "problem": problem["name"],
            "seed": manifest["job"]["seed"],
            "status": manifest["status"],
            "evaluation": np.arange(1, len(records) + 1),
            "call": records["call"],
            "index": records["index"],
            "value": records["value"],
            "feasible": records["feasible"],
            "best_so_far": best,
            "regret": regret,
        }))
    if not frames:
        return pd.DataFrame({column: [] for column in COLUMNS})
    return pd.concat(frames, ignore_index=True)[COLUMNS]
