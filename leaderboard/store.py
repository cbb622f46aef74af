"""The results store: verified runs and their regret curves in one SQLite file.

``collect`` indexes run folders. Every run is verified before it enters (see
``leaderboard.verify``) and is keyed by its run identity (``holo_bench.record``), so:

- collecting the same folder again changes nothing;
- a rejected folder never removes or alters an accepted run, whatever it claims to be;
- runs that differ in budget, parameters or counting rule are separate entries;
- a second folder holding a run already stored (a copy, or another problem name for the same
  instance) leaves the first entry as it is, and is reported as a duplicate.

Each run is stored with its best-so-far regret on ``evaluation_grid(budget)`` (charged
evaluations), the charged evaluations it took to reach each fixed target, measures of its
queries computed from the trace (``measures``: the feasible fraction, the distinct fraction, and
the diversity, ``holo_bench.measures.mean_pairwise_hamming`` on a sample of 500 queries drawn
with ``default_rng(0)``), and the per-round
diagnostics an optimizer wrote in its ``optimizer/metrics.jsonl`` (LLOME does; these are the
optimizer's own reports, shown as such, never used for scores). Each run enters in its own
transaction: a crash leaves every earlier run in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from holo_bench.functions import Ehrlich
from holo_bench.measures import (
    best_so_far,
    charged_count,
    curve_at,
    evaluation_grid,
    evaluations_to_reach,
    is_solved,
    regret,
)
from holo_bench.record import (
    TRACE,
    Manifest,
    ManifestError,
    find_runs,
    read_manifest,
)
from holo_bench.suite import make_function
from leaderboard.archive import (
    MEASURES,
    RecordError,
    find_records,
    query_measures,
    read_record,
    read_rounds,
)
from leaderboard.verify import RunRejected, verify_run

STORE_SCHEMA = 3  # 3: the measures table
BUSY_SECONDS = 60.0  # how long a connection waits for another process's write

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    identity TEXT PRIMARY KEY, config TEXT NOT NULL, optimizer TEXT NOT NULL,
    optimizer_name TEXT NOT NULL, params TEXT NOT NULL, problem TEXT NOT NULL, spec TEXT NOT NULL,
    seed INTEGER NOT NULL, budget INTEGER NOT NULL, count TEXT NOT NULL,
    evaluations INTEGER NOT NULL, queries INTEGER NOT NULL, best_value REAL,
    final_regret REAL NOT NULL, evals_to_solve INTEGER, seconds REAL NOT NULL,
    hardware TEXT NOT NULL, folder TEXT NOT NULL, trace_sha256 TEXT NOT NULL,
    manifest TEXT NOT NULL, collected REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS curves (
    identity TEXT NOT NULL, evaluations INTEGER NOT NULL, regret REAL NOT NULL,
    PRIMARY KEY (identity, evaluations)
);
CREATE TABLE IF NOT EXISTS round_metrics (
    identity TEXT NOT NULL, round INTEGER NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (identity, round)
);
CREATE TABLE IF NOT EXISTS measures (
    identity TEXT PRIMARY KEY, feasible_fraction REAL, distinct_fraction REAL, diversity REAL
);
CREATE TABLE IF NOT EXISTS targets (
    identity TEXT NOT NULL, target REAL NOT NULL, evaluations INTEGER,
    PRIMARY KEY (identity, target)
);
"""


class StoreError(ValueError):
    """A file that is not a results store of this version; the message says what to do."""


@dataclass
class CollectReport:
    """What one ``collect`` did, by run identity (folders for rejected ones, with why)."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # folder -> the stored run's folder
    skipped: list[str] = field(default_factory=list)  # unfinished runs, not yet collectable
    rejected: dict[str, str] = field(default_factory=dict)


def connect(db: str | os.PathLike, create: bool = True) -> sqlite3.Connection:
    """Open (or, with ``create``, make) a store; ``StoreError`` for anything that is not one.

    Several processes may use one store at once: the connection waits up to ``BUSY_SECONDS`` for
    another's write, and every write is one ``BEGIN IMMEDIATE`` transaction (``_writing``), so a
    reader sees a run whole or not at all. Without ``create`` nothing is written, not even to an
    empty file.
    """
    path = Path(db)
    if not create and not path.is_file():
        raise StoreError(f"no results store at {db}; run `holo-bench collect RUNS --db {db}` first")
    connection = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    try:
        tables = {row[0] for row in
                  connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"{db} is a results store of holo-bench 0.1 (keyed by label, problem "
                             "and seed); collect the runs again into a new store file")
        if not tables and not create:
            raise StoreError(f"{db} is empty, not a results store; run `holo-bench collect RUNS "
                             f"--db {db}` first")
        if create:
            with _writing(connection):
                for statement in filter(str.strip, TABLES.split(";")):
                    connection.execute(statement)
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                                   (str(STORE_SCHEMA),))
        schema = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if schema is None or schema[0] != str(STORE_SCHEMA):
            raise StoreError(f"{db} is a results store of schema {schema and schema[0]}, this "
                             f"holo-bench reads {STORE_SCHEMA}; collect the runs again into a new "
                             "store file")
    except sqlite3.DatabaseError as err:
        connection.close()
        raise StoreError(f"{db} is not a holo-bench results store (SQLite says: {err})") from None
    except StoreError:
        connection.close()
        raise
    return connection


@contextmanager
def _writing(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the store's write lock from its start (``IMMEDIATE``), so
    what it reads inside cannot change before it writes."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def targets_for(spec: str) -> np.ndarray:
    """Fixed targets (values) of a problem for the ECDF: on an Ehrlich function with ``c`` motifs
    quantized to ``q`` levels, ``(j/q)^c`` for ``j = 1..q``: every motif at least at level ``j/q``.
    Other functions have none."""
    return np.array(_targets(spec))


@cache
def _targets(spec: str) -> tuple[float, ...]:
    """``targets_for``, built once per spec (an archive's records share a few instances)."""
    function = make_function(spec)
    if not isinstance(function, Ehrlich):
        return ()
    q = function.quantization
    return tuple((np.arange(1, q + 1) / q) ** function.num_motifs)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def collect(root: str | os.PathLike, db: str | os.PathLike,
            progress: bool | None = False) -> CollectReport:
    """Verify and index every finished run folder under ``root`` (or ``root`` itself) into
    ``db``; ``progress`` shows a bar on stderr (None: only on a terminal)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder of run folders")
    folders = find_runs(root)
    if not folders:  # refused before the store is made
        raise ValueError(f"{root} holds no run folders (none has a manifest.json)")
    report = CollectReport()
    connection = connect(db)
    try:
        for folder in tqdm(folders, desc="verifying and storing", unit="run",
                           disable=None if progress is None else not progress, leave=False):
            _collect_one(connection, folder, report)
    finally:
        connection.close()
    return report


def load_archive(root: str | os.PathLike, db: str | os.PathLike,
                 keep: Callable[[Manifest], bool] | None = None) -> CollectReport:
    """Index every record of a published archive (``leaderboard.archive``) into ``db``, keyed by
    run identity as ``collect`` keys run folders: a run already stored (the user's own rerun of an
    archived configuration, or the record itself) stays as it is. A record that does not agree
    with itself is rejected, naming the problem. ``keep``: index only the records whose manifest
    it accepts (a track's runs); the others are still checked."""
    paths = find_records(root)
    if not paths:
        raise ValueError(f"{root} holds no archive records (*.json)")
    report = CollectReport()
    connection = connect(db)
    try:
        with _writing(connection):  # one transaction: a record at a time, it took minutes
            _load_records(connection, paths, keep, report)
    finally:
        connection.close()
    return report


def _load_records(connection: sqlite3.Connection, paths: list[Path],
                  keep: Callable[[Manifest], bool] | None, report: CollectReport) -> None:
    for path in paths:
        try:
            record, manifest = read_record(path)
        except RecordError as err:
            report.rejected[str(path)] = str(err)
            continue
        if keep is not None and not keep(manifest):
            continue
        curve = record["improvements"]
        stored = _stored(connection, manifest.identity)
        if stored is None:
            _insert(connection, str(path), record["digest"], manifest,
                    np.asarray(curve["evaluations"], dtype=np.int64),
                    np.asarray(curve["values"], dtype=np.float64),
                    record["measures"], record["rounds"])
            report.added.append(manifest.identity)
        elif stored[0] == record["digest"]:
            report.unchanged.append(manifest.identity)
        else:
            report.duplicates[str(path)] = stored[2]


@contextmanager
def store_with_archive(db: str | os.PathLike | None, archive: str | os.PathLike | None,
                       keep: Callable[[Manifest], bool] | None = None) -> Iterator[str]:
    """The store at ``db``, or with ``archive``, a temporary copy of it (of no store, for None)
    with the archive's records loaded: those ``keep`` accepts, by default (with a store) those
    comparable with its runs, on one of their instances at their budget and counting rule. The
    user's store is never changed. A missing store, or a record that does not check, is an
    error, never a silent gap."""
    if archive is None:
        yield str(db)
        return
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "store.sqlite"
        if db is not None:
            source, target = connect(db, create=False), sqlite3.connect(copy)
            try:
                source.backup(target)
                settings = set(source.execute("SELECT DISTINCT spec, budget, count FROM runs"))
            finally:
                source.close()
                target.close()
            if keep is None:
                keep = _comparable(settings)
        report = load_archive(archive, copy, keep)
        if report.rejected:
            raise ValueError("archive records rejected: " + "; ".join(report.rejected.values()))
        yield str(copy)


def _comparable(settings: set[tuple[str, int, str]]) -> Callable[[Manifest], bool]:
    """Whether a record's run is comparable with a store's: same instance (a family pools its
    members, so another member would change what a row means), budget and counting rule. Final
    regrets at other budgets are not comparable, and a reference at two budgets is two entries."""
    def keep(manifest: Manifest) -> bool:
        run = manifest.run
        return (manifest.problem.spec, run.budget, run.count) in settings

    return keep


@contextmanager
def results_store(source: str | os.PathLike) -> Iterator[str]:
    """A store to read results from: ``source`` itself, or, for an archive folder, a temporary
    store of its records (``store_with_archive``)."""
    if not Path(source).is_dir():
        yield str(source)
        return
    with store_with_archive(None, source) as db:
        yield db


def _collect_one(connection: sqlite3.Connection, folder: Path, report: CollectReport) -> None:
    try:
        manifest = read_manifest(folder)
    except ManifestError as err:
        report.rejected[str(folder)] = str(RunRejected("manifest", str(err)))
        return
    if manifest is None:  # removed since the folder was listed
        report.rejected[str(folder)] = str(RunRejected("manifest",
                                                       f"{folder} holds no manifest.json"))
        return
    if manifest.status != "finished":
        report.skipped.append(str(folder))
        return
    digest = _sha256(folder / TRACE) if (folder / TRACE).is_file() else ""
    manifest_text = json.dumps(manifest.to_json(), sort_keys=True)
    stored = _stored(connection, manifest.identity)
    if stored is not None and stored[:2] == (digest, manifest_text):
        report.unchanged.append(manifest.identity)
        return
    try:
        verified = verify_run(folder)
    except RunRejected as err:
        report.rejected[str(folder)] = str(err)
        return
    with _writing(connection):  # one transaction per run
        # Read again under the write lock: another process may have stored the run meanwhile.
        stored = _stored(connection, manifest.identity)
        if stored is None:
            records = verified.records
            _insert(connection, str(folder), digest, verified.manifest,
                    charged_count(records["charged"]),
                    best_so_far(records["value"], records["feasible"]),
                    query_measures(records), read_rounds(folder))
    if stored is None:
        report.added.append(manifest.identity)
    elif stored[:2] == (digest, manifest_text):
        report.unchanged.append(manifest.identity)
    else:
        report.duplicates[str(folder)] = stored[2]


def _stored(connection: sqlite3.Connection, identity: str) -> tuple[str, str, str] | None:
    """The stored run's trace digest, manifest text and folder, or None."""
    return connection.execute("SELECT trace_sha256, manifest, folder FROM runs WHERE identity = ?",
                              (identity,)).fetchone()


def _insert(connection: sqlite3.Connection, source: str, digest: str, manifest: Manifest,
            evaluations: np.ndarray, best: np.ndarray, measures: dict, rounds: list[dict]) -> None:
    """Store one run from its best-so-far step curve: ``best[i]`` is the best feasible value once
    ``evaluations[i]`` evaluations were charged (per query from a trace, or per improvement from
    an archive record: the rows are the same)."""
    run, problem, key = manifest.run, manifest.problem, manifest.identity
    curve = regret(best, problem.optimal_value, problem.worst_value)
    grid = evaluation_grid(run.budget)
    start = regret(-np.inf, problem.optimal_value, problem.worst_value)
    connection.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (key, run.configuration, manifest.label, run.optimizer,
         json.dumps(run.params, sort_keys=True), problem.name, problem.spec, run.seed, run.budget,
         run.count, manifest.evaluations, manifest.queries,
         manifest.best_value if np.isfinite(manifest.best_value) else None, manifest.regret,
         evaluations_to_reach(evaluations, is_solved(curve)), manifest.seconds,
         json.dumps(manifest.hardware, sort_keys=True), source, digest,
         json.dumps(manifest.to_json(), sort_keys=True), time.time()),
    )
    connection.executemany("INSERT INTO curves VALUES (?, ?, ?)",
                           zip([key] * len(grid), grid.tolist(),
                               curve_at(grid, evaluations, curve, start).tolist()))
    connection.execute("INSERT INTO measures VALUES (?, ?, ?, ?)",
                       (key, *(measures[name] for name in MEASURES)))
    connection.executemany("INSERT INTO targets VALUES (?, ?, ?)", [
        (key, float(target), evaluations_to_reach(evaluations, best >= target))
        for target in targets_for(problem.spec)
    ])
    connection.executemany("INSERT OR REPLACE INTO round_metrics VALUES (?, ?, ?)",
                           [(key, entry["round"], json.dumps(entry, sort_keys=True))
                            for entry in rounds])


def read_store(
    db: str | os.PathLike,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The store's tables as frames: runs, curves, targets, round metrics (joined to their run).

    Curves, targets and round metrics carry their run's problem, optimizer (label), config
    (``RunSpec.configuration``) and seed."""
    connection = connect(db, create=False)
    try:
        connection.execute("BEGIN")  # one snapshot for every table, whatever collect writes
        runs = pd.read_sql_query(
            "SELECT r.*, m.feasible_fraction, m.distinct_fraction, m.diversity FROM runs r "
            "LEFT JOIN measures m USING (identity) ORDER BY problem, optimizer, config, seed",
            connection)
        curves = pd.read_sql_query(
            "SELECT r.problem, r.optimizer, r.config, r.seed, c.evaluations, c.regret "
            "FROM curves c JOIN runs r USING (identity) "
            "ORDER BY r.problem, r.optimizer, r.config, r.seed, c.evaluations", connection,
        )
        targets = pd.read_sql_query(
            "SELECT r.problem, r.optimizer, r.config, r.seed, r.budget, r.evaluations AS used, "
            "t.target, t.evaluations FROM targets t JOIN runs r USING (identity)", connection,
        )
        rows = connection.execute(
            "SELECT r.problem, r.optimizer, r.config, r.seed, m.round, m.metrics "
            "FROM round_metrics m JOIN runs r USING (identity) "
            "ORDER BY r.problem, r.optimizer, r.config, r.seed, m.round"
        ).fetchall()
    finally:
        connection.close()
    rounds = pd.DataFrame([{"problem": p, "optimizer": o, "config": c, "seed": s, "round": n,
                            **json.loads(m)} for p, o, c, s, n, m in rows])
    return runs, curves, targets, rounds
