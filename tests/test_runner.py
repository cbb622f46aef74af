"""The runner: run folders, determinism, faults, resumption after a kill, executors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holo_bench import make_function
from holo_bench.executors import run_grid
from holo_bench.runner import Job, run_job
from holo_bench.trace import read_trace
from leaderboard import load_runs

TESTS = str(Path(__file__).parent)
PROBLEM = "smoke_ehrlich_small"


def job(tmp_path, optimizer="random", seed=0, budget=300, **params):
    return Job(optimizer=optimizer, problem=PROBLEM, seed=seed, budget=budget, out=str(tmp_path), params=params)


def trace_of(folder):
    _, records = read_trace(Path(folder) / "trace.bin")
    return records


def same_trace(a, b):
    """Bit-for-bit equal traces, wall-clock time aside."""
    fields = [name for name in a.dtype.names if name != "time"]
    return all(np.array_equal(a[name], b[name]) for name in fields)


def test_run_folder_holds_manifest_and_complete_trace(tmp_path):
    manifest = run_job(job(tmp_path, batch_size=64))
    folder = tmp_path / "random" / PROBLEM / "seed-0"
    assert json.loads((folder / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    assert manifest["status"] == "finished" and manifest["error"] is None
    assert manifest["optimizer"]["config"] == {"batch_size": 64}
    assert manifest["problem"]["spec"] == make_function(PROBLEM).spec
    assert {"numpy", "torch", "python", "holo_bench", "git_commit"} <= set(manifest["versions"])
    records = trace_of(folder)
    assert len(records) == manifest["evaluations"] <= 300
    f = make_function(PROBLEM)
    np.testing.assert_array_equal(records["value"], f(records["sequence"]))
    if manifest["stop_reason"] == "solved":
        assert manifest["regret"] == 0.0 and records["value"].max() == 1.0
    else:
        assert manifest["stop_reason"] == "budget" and len(records) == 300


def test_same_seed_same_trace_bit_for_bit(tmp_path):
    for optimizer in ("ga", "random"):
        a = run_job(job(tmp_path / "a", optimizer, seed=3, budget=2000))
        b = run_job(job(tmp_path / "b", optimizer, seed=3, budget=2000))
        c = run_job(job(tmp_path / "c", optimizer, seed=4, budget=2000))
        folder = Path(optimizer) / PROBLEM
        assert same_trace(trace_of(tmp_path / "a" / folder / "seed-3"), trace_of(tmp_path / "b" / folder / "seed-3"))
        assert not same_trace(trace_of(tmp_path / "a" / folder / "seed-3"), trace_of(tmp_path / "c" / folder / "seed-4"))
        assert a["regret"] == b["regret"]


def test_stops_when_the_optimum_is_found(tmp_path):
    manifest = run_job(Job("random", "smoke_ehrlich_tiny", 0, 100_000, str(tmp_path), {"batch_size": 1}))
    assert manifest["stop_reason"] == "solved" and 1 < manifest["evaluations"] < 100_000
    values = trace_of(tmp_path / "random" / "smoke_ehrlich_tiny" / "seed-0")["value"]
    assert values[-1] == 1.0 and values[:-1].max() < 1.0


@pytest.mark.parametrize(
    "fault,message",
    [
        ("raise", "optimizer blew up"),
        ("shape", r"returned shape \(10, 15\), expected \(m, 16\)"),
        ("dtype", "returned dtype float64, expected an integer dtype"),
        ("list", "returned list, expected a numpy integer array"),
        ("range", r"outside \[0, 8\)"),
        ("too-many", "more than it was asked for"),
    ],
)
def test_broken_optimizer_ends_as_a_failed_run_with_its_error(tmp_path, fault, message):
    manifest = run_job(job(tmp_path, "misbehaving:Scripted", fault=fault, at=3))
    assert manifest["status"] == "failed"
    assert manifest["error"]["message"] and __import__("re").search(message, manifest["error"]["message"])
    records = trace_of(tmp_path / "misbehaving_Scripted" / PROBLEM / "seed-0")
    assert len(records) == manifest["evaluations"] == 20  # two good calls, kept and untampered
    f = make_function(PROBLEM)
    np.testing.assert_array_equal(records["value"], f(records["sequence"]))


def test_optimizer_with_nothing_to_ask_ends_the_run(tmp_path):
    manifest = run_job(job(tmp_path, "misbehaving:Scripted", fault="empty", at=2))
    assert manifest["status"] == "finished" and manifest["stop_reason"] == "optimizer-done"
    assert manifest["evaluations"] == 10


def test_failed_run_does_not_stop_the_grid(tmp_path):
    jobs = [job(tmp_path, "misbehaving:Scripted", fault="raise", at=1), job(tmp_path, "random")]
    manifests = run_grid(jobs, workers=1, progress=False)
    assert [m["status"] for m in manifests] == ["failed", "finished"]


@settings(max_examples=40, deadline=None)
@given(fault=st.sampled_from(["none", "shape", "dtype", "range", "too-many", "raise"]),
       at=st.integers(1, 6), batch=st.integers(1, 40), budget=st.integers(1, 120))
def test_no_optimizer_makes_the_oracle_charge_past_its_budget(tmp_path_factory, fault, at, batch, budget):
    out = tmp_path_factory.mktemp("runs")
    manifest = run_job(Job("misbehaving:Scripted", PROBLEM, 0, budget, str(out),
                           params=dict(fault=fault, at=at, batch=batch)))
    records = trace_of(out / "misbehaving_Scripted" / PROBLEM / "seed-0")
    assert len(records) == manifest["evaluations"] <= budget


def test_rerun_skips_finished_runs(tmp_path):
    first = run_job(job(tmp_path, budget=200))
    mtime = os.stat(tmp_path / "random" / PROBLEM / "seed-0" / "trace.bin").st_mtime_ns
    assert run_job(job(tmp_path, budget=200)) == first
    assert os.stat(tmp_path / "random" / PROBLEM / "seed-0" / "trace.bin").st_mtime_ns == mtime


def test_rerun_with_another_configuration_in_the_same_folder_is_refused(tmp_path):
    run_job(job(tmp_path, budget=200))
    with pytest.raises(ValueError, match="holds a run of"):
        run_job(job(tmp_path, budget=300))


def cli(*args):
    return [sys.executable, "-m", "holo_bench.cli", "run", *args]


def test_killed_run_resumes_without_losing_or_repeating_evaluations(tmp_path):
    """SIGKILL a GA run mid-way, run the same command again: the trace equals an unkilled run's."""
    args = ["--optimizer", "misbehaving:ThrottledGA", "--problem", "f2", "--seeds", "0", "--budget",
            "20000", "--set", "num_particles=100", "--quiet", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": TESTS}
    killed = tmp_path / "killed"
    folder = killed / "misbehaving_ThrottledGA" / "f2" / "seed-0"
    process = subprocess.Popen(cli(*args, "--out", str(killed)), env=env)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (folder / "trace.bin").exists() and len(trace_of(folder)) >= 5000:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = trace_of(folder)
    assert json.loads((folder / "manifest.json").read_text())["status"] == "running"
    assert 5000 <= len(partial) < 20_000

    subprocess.run(cli(*args, "--out", str(killed)), check=True, env=env)
    subprocess.run(cli(*args, "--out", str(tmp_path / "whole")), check=True, env=env)
    resumed = trace_of(folder)
    whole = trace_of(tmp_path / "whole" / "misbehaving_ThrottledGA" / "f2" / "seed-0")
    assert len(resumed) == 20_000 and same_trace(resumed, whole)
    assert same_trace(resumed[: len(partial)], partial)  # the killed run's evaluations were kept
    np.testing.assert_array_equal(resumed["time"][: len(partial)], partial["time"])  # not redone
    assert json.loads((folder / "manifest.json").read_text())["status"] == "finished"


def test_process_pool_gives_the_same_results_as_one_process(tmp_path):
    jobs = lambda out: [job(out, o, seed=s, budget=1500) for o in ("ga", "random") for s in (0, 1)]  # noqa: E731
    inline = run_grid(jobs(tmp_path / "inline"), workers=1, progress=False)
    pooled = run_grid(jobs(tmp_path / "pool"), workers=2, progress=False)
    for a, b in zip(inline, pooled):
        assert (a["label"], a["job"]["seed"], a["status"], a["regret"]) == (b["label"], b["job"]["seed"], b["status"], b["regret"])
    for j in jobs("."):
        assert same_trace(trace_of(tmp_path / "inline" / j.folder), trace_of(tmp_path / "pool" / j.folder))


def test_ray_gives_the_same_results_as_the_local_executor(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra; CI installs it")
    jobs = lambda out: [job(out, o, seed=s, budget=1500) for o in ("ga", "random") for s in (0, 1)]  # noqa: E731
    local = run_grid(jobs(tmp_path / "local"), workers=1, progress=False)
    on_ray = run_grid(jobs(tmp_path / "ray"), executor="ray", workers=2, progress=False)
    assert [m["regret"] for m in local] == [m["regret"] for m in on_ray]
    for j in jobs("."):
        assert same_trace(trace_of(tmp_path / "local" / j.folder), trace_of(tmp_path / "ray" / j.folder))


def test_load_runs_gives_one_row_per_evaluation_with_best_so_far_and_regret(tmp_path):
    run_grid([job(tmp_path, "random", seed=s, budget=250, batch_size=50) for s in (0, 1)], workers=1, progress=False)
    frame = load_runs(tmp_path)
    assert set(frame["seed"]) == {0, 1} and set(frame["optimizer"]) == {"random"}
    for seed, rows in frame.groupby("seed"):
        values = rows["value"].to_numpy()
        best = [max([v for v in values[: i + 1] if v > -np.inf], default=-np.inf) for i in range(len(values))]
        np.testing.assert_array_equal(rows["best_so_far"], best)
        np.testing.assert_array_equal(rows["regret"], 1 - np.maximum(0, best))
        np.testing.assert_array_equal(rows["evaluation"], np.arange(1, len(rows) + 1))
