"""The published archive: one small JSON record per verified run, so that results can be compared
against without rerunning them, and every number in it checked.

A record (``RECORD_FORMAT``, version ``RECORD_VERSION``) holds what the leaderboard needs of a
run and a fingerprint of everything else:

- ``manifest``: the run's manifest (its identity: optimizer, parameters, problem, seed, budget,
  counting rule; and its outcome);
- ``improvements``: the best-so-far curve as the charged evaluation counts at which the best
  feasible value rose, with the value reached. The leaderboard's curves, fixed targets and
  evaluations to solve are functions of this step curve alone, so a record yields the same store
  rows as its trace does;
- ``measures``: the feasible and distinct fractions and the diversity of the run's queries,
  computed from the verified trace;
- ``rounds``: the optimizer's per-round diagnostics (``optimizer/metrics.jsonl``), if any;
- ``digest``: ``query_digest`` of the trace: a SHA-256 of its queries and answers (every field
  but the wall times), which a rerun of the run's identity reproduces bit for bit wherever the
  optimizer is deterministic;
- ``trace`` (records of runs that took longer than ``TRACE_SECONDS``, which a check does not
  rerun, and whose optimizers, the model-based ones, run torch float kernels that may differ
  between CPUs): the queries themselves, packed (``pack_trace``). ``rescore`` rebuilds every
  answer from the function and the counting rule, and checks the digest, the curve and the
  measures against them, on any machine.

A record is written only from a run that passes ``verify_run``; ``check_record`` re-derives what
a record claims from itself (curve, best value, regret, budget), and ``harness.reproduce`` reruns
its identity and compares digests.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import lzma
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from holo_bench.measures import best_so_far, charged_count, mean_pairwise_hamming, regret
from holo_bench.record import (
    OPTIMIZER_DIR,
    Manifest,
    ManifestError,
    find_runs,
    read_manifest,
    run_folder,
)
from holo_bench.sequences import token_dtype
from holo_bench.suite import make_function
from holo_bench.trace import record_dtype
from leaderboard.verify import RunRejected, expected_charges, verify_run

RECORD_FORMAT = "holo-bench-record"
RECORD_VERSION = 1
# The measures of a run's queries a record carries.
MEASURES = ("feasible_fraction", "distinct_fraction", "diversity")
# Records of runs longer than this (seconds) carry their packed trace.
TRACE_SECONDS = 60.0
# The trace fields a digest covers: every one but the wall time.
DIGESTED = ("call", "size", "index", "value", "feasible", "charged", "sequence")


class RecordError(ValueError):
    """A record that is malformed or does not agree with itself; the message names the file and
    the problem."""


def query_digest(records: np.ndarray) -> str:
    """``sha256:<hex>`` of a trace's queries and answers: each ``DIGESTED`` field's little-endian
    bytes in turn (the trace's own fixed layout), so wall times do not count."""
    digest = hashlib.sha256()
    for name in DIGESTED:
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(records[name]).tobytes())
    return "sha256:" + digest.hexdigest()


def query_measures(records: np.ndarray) -> dict:
    """Feasible fraction, distinct fraction and diversity of a run's queries (None when it made
    none); diversity on a fixed sample, so the same trace gives the same number."""
    if len(records) == 0:
        return dict.fromkeys(MEASURES)
    sequences = records["sequence"]
    return {"feasible_fraction": float(records["feasible"].mean()),
            "distinct_fraction": len(np.unique(sequences, axis=0)) / len(records),
            "diversity": mean_pairwise_hamming(sequences, np.random.default_rng(0))}


def improvements(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best-so-far step curve of a trace: the charged evaluation counts at which the best
    feasible value rose, int64 ``(k,)``, and the values reached, float64 ``(k,)``."""
    evaluations = charged_count(records["charged"])
    best = best_so_far(records["value"], records["feasible"])
    rose = best > np.r_[-np.inf, best[:-1]]
    return evaluations[rose], best[rose]


def read_rounds(folder: Path) -> list[dict]:
    """The optimizer's per-round diagnostics: each well-formed line of ``metrics.jsonl`` that has
    an integer ``round`` (a line cut short by a kill is the optimizer's report, not a score)."""
    path = folder / OPTIMIZER_DIR / "metrics.jsonl"
    rounds = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("round"), int):
                rounds.append(entry)
    return rounds


def make_record(folder: str | os.PathLike, keep_trace: bool | None = None) -> dict:
    """The record of the finished run in ``folder``; ``RunRejected`` if it fails verification.
    ``keep_trace``: whether it carries its packed trace (default: when the run took longer than
    ``TRACE_SECONDS``)."""
    folder = Path(folder)
    verified = verify_run(folder)  # which also refuses a run that is not finished
    manifest = verified.manifest
    evaluations, values = improvements(verified.records)
    record = {"format": RECORD_FORMAT, "version": RECORD_VERSION,
              "manifest": manifest.to_json(),
              "improvements": {"evaluations": evaluations.tolist(), "values": values.tolist()},
              "measures": query_measures(verified.records),
              "rounds": read_rounds(folder),
              "digest": query_digest(verified.records)}
    if keep_trace if keep_trace is not None else manifest.seconds > TRACE_SECONDS:
        record["trace"] = pack_trace(verified.records)
    return record


def pack_trace(records: np.ndarray) -> dict:
    """A trace's queries without their answers: the batch size of each call, and the sequences'
    tokens (the trace's own little-endian dtype), LZMA-compressed and base64-encoded. Values,
    feasibility and charges are not kept: ``unpack_trace`` computes them again."""
    starts = np.flatnonzero(records["index"] == 0)
    return {"sizes": records["size"][starts].tolist(),
            "sequences": base64.b64encode(lzma.compress(
                np.ascontiguousarray(records["sequence"]).tobytes())).decode("ascii")}


def unpack_trace(packed: dict, manifest: Manifest) -> np.ndarray:
    """The trace records of a packed trace, its answers computed again: each sequence scored by
    the run's function, its charge by the run's counting rule (wall times are 0)."""
    function = make_function(manifest.problem.spec)
    sizes = np.asarray(packed["sizes"], dtype=np.int64)
    tokens = np.frombuffer(lzma.decompress(base64.b64decode(packed["sequences"])),
                           dtype=np.dtype(token_dtype(function.num_states)).newbyteorder("<"))
    n = int(sizes.sum())
    if (sizes < 1).any() or tokens.size != n * function.dim:
        raise ValueError(f"{tokens.size} tokens for {n} queries of {function.dim} positions")
    records = np.zeros(n, dtype=record_dtype(function.dim, token_dtype(function.num_states)))
    records["call"] = np.repeat(np.arange(len(sizes)), sizes)
    records["size"] = np.repeat(sizes, sizes)
    records["index"] = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    records["sequence"] = tokens.reshape(n, function.dim)
    if (records["sequence"] >= function.num_states).any():
        raise ValueError(f"a token is outside [0, {function.num_states})")
    records["value"] = function.evaluate_true(records["sequence"])
    records["feasible"] = function.is_feasible(records["sequence"])
    records["charged"] = expected_charges(records, manifest.run.count)
    return records


def rescore(record: dict, path: str | os.PathLike = "record") -> None:
    """Check a record that carries its trace against the trace's answers, computed again: its
    digest, curve, measures and counts; ``RecordError`` names the first disagreement."""
    manifest = check_record(record, path)
    try:
        records = unpack_trace(record["trace"], manifest)
    except (KeyError, TypeError, ValueError, lzma.LZMAError, binascii.Error) as err:
        raise RecordError(f"{path}: trace: cannot be unpacked ({err})") from None
    evaluations, values = improvements(records)
    claims = {"digest": (record["digest"], query_digest(records)),
              "improvements": (record["improvements"], {"evaluations": evaluations.tolist(),
                                                        "values": values.tolist()}),
              "measures": (record["measures"], query_measures(records)),
              "charged evaluations": (manifest.evaluations, int(records["charged"].sum())),
              "queries": (manifest.queries, len(records)),
              "calls": (manifest.calls, len(record["trace"]["sizes"]))}
    for name, (claimed, found) in claims.items():
        if claimed != found:
            raise RecordError(f"{path}: trace: its {name} rescored differ from the record's")


def record_path(root: str | os.PathLike, manifest: Manifest) -> Path:
    """Where a run's record lives in an archive: the run folder's layout under the instance's
    spec rather than the name it was run by, so that one run asked by two names (``f2``, or
    ``f2_family``'s first member) has one record."""
    folder = run_folder(root, manifest.label, dataclasses.replace(manifest.run,
                                                                  problem=manifest.run.spec))
    return folder.with_name(folder.name + ".json")


def read_record(path: str | os.PathLike) -> tuple[dict, Manifest]:
    """A record and its typed manifest, after ``check_record``."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RecordError(f"{path}: not a readable JSON record ({err})") from None
    return record, check_record(record, path)


def check_record(record, path: str | os.PathLike = "record") -> Manifest:
    """Check that a record is well formed and agrees with itself: a finished run's manifest, a
    rising curve within the budget whose last value is the manifest's best and whose regret is the
    manifest's, and a digest of the right form. Returns the manifest; ``RecordError`` otherwise."""
    def fail(problem: str):
        raise RecordError(f"{path}: {problem}")

    if not isinstance(record, dict):
        fail(f"a record is a JSON object, got {type(record).__name__}")
    if record.get("format") != RECORD_FORMAT or record.get("version") != RECORD_VERSION:
        fail(f"not a {RECORD_FORMAT} record of version {RECORD_VERSION} (format "
             f"{record.get('format')!r}, version {record.get('version')!r})")
    missing = [key for key in ("manifest", "improvements", "measures", "rounds", "digest")
               if key not in record]
    unknown = sorted(set(record) - {"format", "version", "manifest", "improvements", "measures",
                                    "rounds", "digest", "trace"})
    if unknown:
        fail(f"unknown field {', '.join(unknown)}")
    if missing:
        fail(f"missing {', '.join(missing)}")
    try:
        manifest = Manifest.from_json(record["manifest"])
    except ManifestError as err:
        fail(f"manifest: {err}")
    if manifest.status != "finished":
        fail(f"the run is {manifest.status}, not finished")
    curve = record["improvements"]
    try:
        evaluations = np.asarray(curve["evaluations"], dtype=np.int64)
        values = np.asarray(curve["values"], dtype=np.float64)
    except (TypeError, KeyError, ValueError) as err:
        fail(f"improvements: {err!r}; expected lists 'evaluations' (integers) and 'values'")
    if evaluations.shape != values.shape or evaluations.ndim != 1:
        fail("improvements: 'evaluations' and 'values' must be lists of one length")
    if len(evaluations) and (evaluations[0] < 1 or (np.diff(evaluations) <= 0).any()
                             or evaluations[-1] > manifest.evaluations):
        fail(f"improvements: evaluations must rise strictly within 1..{manifest.evaluations} "
             "(the run's charged evaluations)")
    if not np.isfinite(values).all() or (np.diff(values) <= 0).any():
        fail("improvements: values must be finite and rise strictly")
    best = float(values[-1]) if len(values) else -np.inf
    if best != manifest.best_value:
        fail(f"improvements end at {best}, but the manifest's best value is "
             f"{manifest.best_value}")
    problem = manifest.problem
    if float(regret(best, problem.optimal_value, problem.worst_value)) != manifest.regret:
        fail(f"the manifest's regret {manifest.regret} is not the regret of its best value")
    if manifest.evaluations > manifest.run.budget:
        fail(f"{manifest.evaluations} charged evaluations exceed the budget "
             f"{manifest.run.budget}")
    digest = record["digest"]
    if not (isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71):
        fail(f"digest must be 'sha256:' and 64 hex digits, got {digest!r}")
    measures = record["measures"]
    if not isinstance(measures, dict) or sorted(measures) != sorted(MEASURES):
        fail(f"measures must be an object of {', '.join(MEASURES)}")
    if not all(value is None or isinstance(value, (int, float)) for value in measures.values()):
        fail("measures must be numbers or null")
    rounds = record["rounds"]
    if not isinstance(rounds, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("round"), int) for entry in rounds):
        fail("rounds must be a list of objects, each with an integer 'round'")
    return manifest


@dataclass
class ArchiveReport:
    """What one ``archive`` did: records added, unchanged, conflicting (a different digest for
    the same identity: record path -> run folder), and run folders rejected or not finished."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def archive(runs: str | os.PathLike, into: str | os.PathLike,
            keep_traces: bool | None = None) -> ArchiveReport:
    """Verify every finished run folder under ``runs`` and write its record under ``into``. A
    record of the same identity already there is kept: unchanged if the digests agree (a rerun,
    or the run asked by another name; wall times may differ), a conflict otherwise (never
    overwritten: a published record changes only by a deliberate removal). ``keep_traces``:
    whether records carry their packed traces (default: those of runs longer than
    ``TRACE_SECONDS``)."""
    report = ArchiveReport()
    folders = find_runs(runs)
    if not folders:
        raise ValueError(f"{runs} holds no run folders (none has a manifest.json)")
    for folder in folders:
        try:
            manifest = read_manifest(folder)
        except ManifestError as err:
            report.rejected[str(folder)] = str(RunRejected("manifest", str(err)))
            continue
        if manifest is None or manifest.status != "finished":
            report.skipped.append(str(folder))
            continue
        try:
            record = make_record(folder, keep_traces)
        except RunRejected as err:
            report.rejected[str(folder)] = str(err)
            continue
        path = record_path(into, manifest)
        if add_record(path, record):
            report.added.append(str(path))
        elif read_record(path)[0]["digest"] == record["digest"]:  # a rerun: timings may differ
            report.unchanged.append(str(path))
        else:
            report.conflicts[str(path)] = str(folder)
    return report


def add_record(path: Path, record: dict) -> bool:
    """Write ``record`` at ``path`` as compact, stable JSON unless a file is there; whether it
    was written. Complete or absent, never overwritten: the file is written aside, then linked
    into place, which fails if ``path`` exists, so of two processes archiving one identity at
    once, exactly one adds its record and the other compares with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(record, file, sort_keys=True, separators=(",", ":"))
            file.write("\n")
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def find_records(root: str | os.PathLike) -> list[Path]:
    """Every record file under ``root``, sorted."""
    root = Path(root)
    return [root] if root.is_file() else sorted(root.rglob("*.json"))
