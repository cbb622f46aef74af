"""Fuzzing submitted run folders: whatever a submitter does to a genuine run (byte flips and cuts
in the trace, edits, deletions and type changes in the manifest), collecting it either accepts it
with the genuine run's scores or rejects it with a one-line reason; it never raises, and it never
changes the run the store already accepted."""

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.runner import make_job, run_job
from leaderboard.store import collect
from leaderboard.verify import RunRejected, verify_run

CASES = {"tried": 0, "accepted": 0, "rejected": 0}

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
    st.text(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """Two genuine runs (one per counting rule), collected into a reference store."""
    out = tmp_path_factory.mktemp("runs")
    jobs = [make_job("ga", "smoke_ehrlich_small", 1, 600, out, {"num_particles": 50}, count=count)
            for count in ("distinct", "all")]
    for job in jobs:
        assert run_job(job).status == "finished"
    db = out.parent / "reference.sqlite"
    assert len(collect(out, db).added) == 2
    yield [job.folder for job in jobs], db
    print(f"\nsubmission fuzz: {CASES['tried']} cases, {CASES['accepted']} accepted with the "
          f"genuine scores, {CASES['rejected']} rejected")


def paths(data, prefix=()):
    """Every (nested) field path of a JSON object."""
    for key, value in data.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from paths(value, prefix + (key,))


def tamper(folder, data):
    kind = data.draw(st.sampled_from(["flip", "cut", "append", "delete", "replace", "nudge",
                                      "manifest-bytes"]))
    trace, manifest_path = folder / "trace.bin", folder / "manifest.json"
    if kind in ("flip", "cut", "append", "manifest-bytes"):
        path = manifest_path if kind == "manifest-bytes" else trace
        raw = bytearray(path.read_bytes())
        if kind == "cut":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif kind == "append":
            raw += data.draw(st.binary(min_size=1, max_size=64))
        else:
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        path.write_bytes(bytes(raw))
        return
    manifest = json.loads(manifest_path.read_text())
    where = data.draw(st.sampled_from(sorted(paths(manifest))))
    parent = manifest
    for key in where[:-1]:
        parent = parent[key]
    if kind == "delete":
        del parent[where[-1]]
    elif kind == "replace":
        parent[where[-1]] = data.draw(VALUES)
    else:  # nudge a number, or mangle a string
        old = parent[where[-1]]
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[where[-1]] = old + data.draw(st.sampled_from([-1, 1, 0.5, 1e-12]))
        elif isinstance(old, str):
            parent[where[-1]] = old + data.draw(st.text(min_size=1, max_size=3))
        else:
            parent[where[-1]] = data.draw(VALUES)
    manifest_path.write_text(json.dumps(manifest))


def rows(db):
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT * FROM runs ORDER BY identity").fetchall()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tampered_submissions_are_rejected_in_one_line_or_score_as_the_genuine_run(
    genuine, tmp_path, data
):
    folders, reference = genuine
    source = folders[data.draw(st.integers(0, len(folders) - 1))]
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    folder = shutil.copytree(source, case / "run")
    db = shutil.copy(reference, case / "store.sqlite")
    before = rows(db)
    tamper(folder, data)
    CASES["tried"] += 1

    report = collect(case, db)  # must not raise, whatever the folder holds
    assert rows(db) == before  # the accepted runs are untouched; nothing new is a new run
    if report.rejected:
        [reason] = report.rejected.values()
        assert "\n" not in reason and reason.startswith("rejected (")
        CASES["rejected"] += 1
        with pytest.raises(RunRejected):
            verify_run(folder)
    elif report.skipped:  # the status was edited to running/failed: not collectable, not scored
        CASES["rejected"] += 1
    else:
        genuine_run, tampered_run = verify_run(source).manifest, verify_run(folder).manifest
        assert (tampered_run.identity, tampered_run.best_value, tampered_run.regret,
                tampered_run.evaluations) == (genuine_run.identity, genuine_run.best_value,
                                               genuine_run.regret, genuine_run.evaluations)
        np.testing.assert_array_equal(verify_run(folder).records["value"],
                                      verify_run(source).records["value"])
        CASES["accepted"] += 1
