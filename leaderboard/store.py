"""The results store: verified runs and their regret curves in one SQLite file.

``collect`` indexes run folders: every run is verified before it enters (see
``leaderboard.verify``), then stored with its best-so-far regret on a fixed grid of evaluation
counts and the evaluations it took to reach each fixed target, and the per-round diagnostics an optimizer
wrote in its ``optimizer/metrics.jsonl`` (LLOME does; these are the optimizer's own reports, shown
as such, never used for scores). Collecting again is idempotent:
a run whose trace is unchanged is skipped, a changed one is verified again and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from holo_bench.functions import Ehrlich
from holo_bench.runner import MANIFEST, TRACE
from holo_bench.suite import make_function
from leaderboard.runs import best_so_far, run_folders
from leaderboard.verify import RunRejected, verify_run

# Evaluation counts at which curves are stored: 20 per decade, 1 to 1e8, plus each run's budget.
GRID = np.unique(np.round(np.logspace(0, 8, 161)).astype(np.int64))

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY, optimizer TEXT NOT NULL, problem TEXT NOT NULL, spec TEXT NOT NULL,
    seed INTEGER NOT NULL, budget INTEGER NOT NULL, evaluations INTEGER NOT NULL,
    best_value REAL, final_regret REAL NOT NULL, evals_to_solve INTEGER, folder TEXT NOT NULL,
    trace_sha256 TEXT NOT NULL, manifest TEXT NOT NULL, collected REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS curves (
    run_key TEXT NOT NULL, evaluations INTEGER NOT NULL, regret REAL NOT NULL,
    PRIMARY KEY (run_key, evaluations)
);
CREATE TABLE IF NOT EXISTS round_metrics (
    run_key TEXT NOT NULL, round INTEGER NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (run_key, round)
);
CREATE TABLE IF NOT EXISTS targets (
    run_key TEXT NOT NULL, target REAL NOT NULL, evaluations INTEGER,
    PRIMARY KEY (run_key, target)
);
"""


@dataclass
class CollectReport:
    """What one ``collect`` did: run keys added or replaced, unchanged, and rejected (with why)."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unfinished runs, not yet collectable
    rejected: dict[str, str] = field(default_factory=dict)


def connect(db: str | os.PathLike) -> sqlite3.Connection:
    connection = sqlite3.connect(db)
    connection.executescript(SCHEMA)
    return connection


def targets_for(spec: str) -> np.ndarray:
    """Fixed targets (values) of a problem for the ECDF: on an Ehrlich function with ``c`` motifs
    quantized to ``q`` levels, ``(j/q)^c`` for ``j = 1..q``: every motif at least at level ``j/q``.
    Other functions have none."""
    function = make_function(spec)
    if not isinstance(function, Ehrlich):
        return np.empty(0)
    q = function.quantization
    return (np.arange(1, q + 1) / q) ** function.num_motifs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def collect(root: str | os.PathLike, db: str | os.PathLike) -> CollectReport:
    """Verify and index every finished run folder under ``root`` into ``db``."""
    report = CollectReport()
    with connect(db) as connection:
        for folder in run_folders(root):
            manifest = json.loads((folder / MANIFEST).read_text())
            key = f"{manifest.get('label')}/{manifest.get('problem', {}).get('name')}/{manifest.get('job', {}).get('seed')}"
            if manifest.get("status") in ("running", "failed"):
                report.skipped.append(key)
                continue
            digest = _sha256(folder / TRACE) if (folder / TRACE).exists() else ""
            row = connection.execute("SELECT trace_sha256, manifest FROM runs WHERE run_key = ?", (key,)).fetchone()
            if row is not None and row[0] == digest and json.loads(row[1]) == manifest:
                report.unchanged.append(key)
                continue
            try:
                verified = verify_run(folder)
            except RunRejected as err:
                report.rejected[str(folder)] = str(err)
                _delete(connection, key)
                continue
            _insert(connection, key, folder, digest, verified)
            report.added.append(key)
    return report


def _delete(connection: sqlite3.Connection, key: str) -> None:
    for table in ("runs", "curves", "targets", "round_metrics"):
        connection.execute(f"DELETE FROM {table} WHERE run_key = ?", (key,))


def _insert(connection: sqlite3.Connection, key: str, folder: Path, digest: str, verified: dict) -> None:
    manifest, records = verified.manifest, verified.records
    problem, job = manifest["problem"], manifest["job"]
    best, regret = best_so_far(records, problem)
    solved = np.flatnonzero(regret <= 0)  # before the start value is prepended below
    grid = np.union1d(GRID[GRID <= job["budget"]], [job["budget"]])
    # Regret after e evaluations; a run that stopped early keeps its last regret.
    start_regret = problem["optimal_value"] - problem["worst_value"]
    regret = np.append(start_regret, regret)  # regret[e] is the regret after e evaluations
    curve = regret[np.minimum(grid, len(regret) - 1)]
    reached = [
        (key, float(t), int(np.argmax(best >= t)) + 1 if len(best) and best[-1] >= t else None)
        for t in targets_for(problem["spec"])
    ]
    _delete(connection, key)
    connection.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (key, manifest["label"], problem["name"], problem["spec"], job["seed"], job["budget"], len(records),
         float(best[-1]) if len(best) else None, float(regret[-1]),
         int(solved[0]) + 1 if len(solved) else None, str(folder), digest,
         json.dumps(manifest, sort_keys=True), time.time()),
    )
    connection.executemany("INSERT INTO curves VALUES (?, ?, ?)",
                           [(key, int(e), float(r)) for e, r in zip(grid, curve)])
    connection.executemany("INSERT INTO targets VALUES (?, ?, ?)", reached)
    metrics = folder / "optimizer" / "metrics.jsonl"
    if metrics.exists():
        rounds = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        connection.executemany("INSERT OR REPLACE INTO round_metrics VALUES (?, ?, ?)",
                               [(key, int(r["round"]), json.dumps(r)) for r in rounds if "round" in r])


def read_store(db: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The store's tables as frames: runs, curves, targets, round metrics (joined to their run)."""
    if not Path(db).exists():
        raise FileNotFoundError(f"no results store at {db}; run `holo-bench collect` first")
    with connect(db) as connection:
        runs = pd.read_sql_query("SELECT * FROM runs ORDER BY problem, optimizer, seed", connection)
        curves = pd.read_sql_query(
            "SELECT r.problem, r.optimizer, r.seed, c.evaluations, c.regret FROM curves c "
            "JOIN runs r USING (run_key) ORDER BY r.problem, r.optimizer, r.seed, c.evaluations",
            connection,
        )
        targets = pd.read_sql_query(
            "SELECT r.problem, r.optimizer, r.seed, r.budget, t.target, t.evaluations FROM targets t "
            "JOIN runs r USING (run_key)",
            connection,
        )
        rows = connection.execute(
            "SELECT r.problem, r.optimizer, r.seed, m.round, m.metrics FROM round_metrics m "
            "JOIN runs r USING (run_key) ORDER BY r.problem, r.optimizer, r.seed, m.round").fetchall()
    rounds = pd.DataFrame([{"problem": p, "optimizer": o, "seed": s, "round": n, **json.loads(m)}
                           for p, o, s, n, m in rows])
    return runs, curves, targets, rounds
