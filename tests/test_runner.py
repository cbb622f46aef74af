"""The runner: run folders, determinism, faults, resumption after a kill, executors."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.executors import run_grid
from harness.runner import make_job, run_job
from holo_bench import make_function
from holo_bench.record import STALL_CALLS, find_runs, read_manifest
from holo_bench.trace import read_trace
from leaderboard import load_runs
from leaderboard.verify import verify_run

TESTS = str(Path(__file__).parent)
PROBLEM = "smoke_ehrlich_small"


def job(tmp_path, optimizer="random", seed=0, budget=300, problem=PROBLEM, count=None, **params):
    return make_job(optimizer, problem, seed, budget, tmp_path, params, count)


def trace_of(folder):
    _, records = read_trace(Path(folder) / "trace.bin")
    return records


def same_trace(a, b):
    """Bit-for-bit equal traces, wall-clock time aside."""
    fields = [name for name in a.dtype.names if name != "time"]
    return all(np.array_equal(a[name], b[name]) for name in fields)


def test_run_folder_holds_manifest_and_complete_trace(tmp_path):
    the_job = job(tmp_path, batch_size=64)
    manifest = run_job(the_job)
    folder = tmp_path / "random" / PROBLEM / f"seed-0-{manifest.identity[:10]}"
    assert the_job.folder == folder and find_runs(tmp_path) == [folder]
    assert read_manifest(folder) == manifest
    assert manifest.status == "finished" and manifest.error is None
    assert manifest.run.params == {"batch_size": 64} and manifest.run.count == "distinct"
    assert manifest.problem.spec == make_function(PROBLEM).spec
    assert {"numpy", "torch", "python", "holo_bench", "git_commit"} <= set(manifest.versions)
    assert {"machine", "cpus", "gpu", "torch_threads"} <= set(manifest.hardware)
    records = trace_of(folder)
    assert (len(records) == manifest.queries
            and records["charged"].sum() == manifest.evaluations <= 300)
    f = make_function(PROBLEM)
    np.testing.assert_array_equal(records["value"], f(records["sequence"]))
    if manifest.stop_reason == "solved":
        assert manifest.regret == 0.0 and records["value"].max() == 1.0
    else:
        assert manifest.stop_reason == "budget" and manifest.evaluations == 300


def test_same_seed_same_trace_bit_for_bit(tmp_path):
    for optimizer in ("ga", "random"):
        a, b, c = (job(tmp_path / name, optimizer, seed=seed, budget=2000)
                   for name, seed in (("a", 3), ("b", 3), ("c", 4)))
        assert run_job(a).regret == run_job(b).regret
        run_job(c)
        assert same_trace(trace_of(a.folder), trace_of(b.folder))
        assert not same_trace(trace_of(a.folder), trace_of(c.folder))


@pytest.mark.parametrize("count", ["distinct", "all"])
def test_stops_when_the_optimum_is_found(tmp_path, count):
    the_job = job(tmp_path, problem="smoke_ehrlich_tiny", budget=100_000, count=count, batch_size=1)
    manifest = run_job(the_job)
    assert manifest.stop_reason == "solved" and 1 < manifest.evaluations < 100_000
    values = trace_of(the_job.folder)["value"]
    assert values[-1] == 1.0 and values[:-1].max() < 1.0


def test_rough_mount_fuji_run_ends_solved_at_its_optimum_and_verifies(tmp_path):
    """Random search on an 8-bit landscape with 3000 evaluations finds the optimum; the run must
    stop there, as solved, and pass verification (its regret is exactly 0, not 5.55e-17)."""
    the_job = job(tmp_path, problem="rmf:L=8,a=0.1,seed=1", budget=3000, count="all")
    manifest = run_job(the_job)
    assert manifest.stop_reason == "solved" and manifest.regret == 0.0
    assert manifest.evaluations < 3000
    verify_run(the_job.folder)


def test_distinct_count_charges_each_distinct_sequence_once(tmp_path):
    """The GA re-asks many sequences; under ``distinct`` its charges are its distinct sequences."""
    the_job = job(tmp_path, "ga", problem="f2", budget=5000, num_particles=200)
    manifest = run_job(the_job)
    records = trace_of(the_job.folder)
    distinct = len(np.unique(records["sequence"], axis=0))
    assert manifest.evaluations == records["charged"].sum() == distinct == 5000
    assert manifest.queries == len(records) > distinct  # the repeats were answered, free


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
    the_job = job(tmp_path, "misbehaving:Scripted", fault=fault, at=3)
    manifest = run_job(the_job)
    assert manifest.status == "failed"
    assert manifest.error["message"] and re.search(message, manifest.error["message"])
    records = trace_of(the_job.folder)
    assert len(records) == manifest.evaluations == 20  # two good calls, kept and untampered
    f = make_function(PROBLEM)
    np.testing.assert_array_equal(records["value"], f(records["sequence"]))


def test_optimizer_with_nothing_to_ask_ends_the_run(tmp_path):
    manifest = run_job(job(tmp_path, "misbehaving:Scripted", fault="empty", at=2))
    assert manifest.status == "finished" and manifest.stop_reason == "optimizer-done"
    assert manifest.evaluations == 10


def test_optimizer_asking_only_known_sequences_stalls_and_verifies(tmp_path):
    """Under ``distinct`` a repeat is free, so an optimizer that only repeats would never spend
    its budget: after STALL_CALLS such calls in a row the run ends as ``stalled``."""
    the_job = job(tmp_path, "misbehaving:Scripted", fault="repeat", at=3)
    manifest = run_job(the_job)
    assert manifest.stop_reason == "stalled" and manifest.evaluations == 20
    assert manifest.calls == 2 + STALL_CALLS
    verify_run(the_job.folder)


def test_optimizer_of_the_old_protocol_is_refused_before_it_runs(tmp_path):
    with pytest.raises(ValueError, match="since holo-bench 0.2"):
        job(tmp_path, "misbehaving:OldStyle")


def test_setup_that_returns_nothing_fails_the_run_with_what_changed(tmp_path):
    manifest = run_job(job(tmp_path, "misbehaving:NoneFromSetup"))
    assert manifest.status == "failed" and "since holo-bench 0.2" in manifest.error["message"]


def test_failed_run_does_not_stop_the_grid(tmp_path):
    jobs = [job(tmp_path, "misbehaving:Scripted", fault="raise", at=1), job(tmp_path, "random")]
    manifests = run_grid(jobs, workers=1, progress=False)
    assert [m.status for m in manifests] == ["failed", "finished"]


@settings(max_examples=40, deadline=None)
@given(fault=st.sampled_from(["none", "shape", "dtype", "range", "too-many", "raise", "repeat"]),
       at=st.integers(1, 6), batch=st.integers(1, 40), budget=st.integers(1, 120),
       count=st.sampled_from(["distinct", "all"]))
def test_no_optimizer_makes_the_oracle_charge_past_its_budget(tmp_path_factory, fault, at, batch,
                                                              budget, count):
    the_job = job(tmp_path_factory.mktemp("runs"), "misbehaving:Scripted", budget=budget,
                  count=count, fault=fault, at=at, batch=batch)
    manifest = run_job(the_job)
    records = trace_of(the_job.folder)
    assert records["charged"].sum() == manifest.evaluations <= budget
    if manifest.status == "finished":
        verify_run(the_job.folder)


def test_rerun_skips_finished_runs(tmp_path):
    first = run_job(job(tmp_path, budget=200))
    trace = job(tmp_path, budget=200).folder / "trace.bin"
    mtime = os.stat(trace).st_mtime_ns
    assert run_job(job(tmp_path, budget=200)) == first
    assert os.stat(trace).st_mtime_ns == mtime


def test_runs_that_differ_in_budget_or_count_get_folders_of_their_own(tmp_path):
    jobs = [job(tmp_path, budget=200), job(tmp_path, budget=300),
            job(tmp_path, budget=200, count="all")]
    manifests = [run_job(j) for j in jobs]
    assert len({j.folder for j in jobs}) == 3 and len(find_runs(tmp_path)) == 3
    assert [m.run.budget for m in manifests] == [200, 300, 200]


def cli(*args):
    return [sys.executable, "-m", "harness.cli", "run", *args]


def test_killed_run_resumes_without_losing_or_repeating_evaluations(tmp_path):
    """SIGKILL a GA run mid-way, run the same command again: the trace equals an unkilled run's."""
    args = ["--optimizer", "misbehaving:ThrottledGA", "--problem", "f2", "--seeds", "0", "--budget",
            "20000", "--set", "num_particles=100", "--quiet", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": TESTS}
    killed = tmp_path / "killed"
    folder = make_job("misbehaving:ThrottledGA", "f2", 0, 20000, killed,
                      {"num_particles": 100}).folder
    process = subprocess.Popen(cli(*args, "--out", str(killed)), env=env)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (folder / "trace.bin").exists() and trace_of(folder)["charged"].sum() >= 5000:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = trace_of(folder)
    assert read_manifest(folder).status == "running"
    assert 5000 <= partial["charged"].sum() < 20_000

    subprocess.run(cli(*args, "--out", str(killed)), check=True, env=env)
    subprocess.run(cli(*args, "--out", str(tmp_path / "whole")), check=True, env=env)
    resumed = trace_of(folder)
    whole = trace_of(tmp_path / "whole" / folder.relative_to(killed))
    assert resumed["charged"].sum() == 20_000 and same_trace(resumed, whole)
    assert same_trace(resumed[: len(partial)], partial)  # the killed run's evaluations were kept
    np.testing.assert_array_equal(resumed["time"][: len(partial)], partial["time"])  # not redone
    assert read_manifest(folder).status == "finished"


def test_process_pool_gives_the_same_results_as_one_process(tmp_path):
    jobs = lambda out: [job(out, o, seed=s, budget=1500) for o in ("ga", "random") for s in (0, 1)]  # noqa: E731
    inline = run_grid(jobs(tmp_path / "inline"), workers=1, progress=False)
    pooled = run_grid(jobs(tmp_path / "pool"), workers=2, progress=False)
    assert [a.status for a in inline] == ["finished"] * 4
    for a, b in zip(inline, pooled):
        assert (a.status, a.manifest.identity, a.manifest.regret) == (
            b.status, b.manifest.identity, b.manifest.regret)
    for inline_job, pool_job in zip(jobs(tmp_path / "inline"), jobs(tmp_path / "pool")):
        assert same_trace(trace_of(inline_job.folder), trace_of(pool_job.folder))


def test_ray_gives_the_same_results_as_the_local_executor(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra; CI installs it")
    jobs = lambda out: [job(out, o, seed=s, budget=1500) for o in ("ga", "random") for s in (0, 1)]  # noqa: E731
    local = run_grid(jobs(tmp_path / "local"), workers=1, progress=False)
    on_ray = run_grid(jobs(tmp_path / "ray"), executor="ray", workers=2, progress=False)
    assert [r.status for r in on_ray] == ["finished"] * 4
    assert [r.manifest.regret for r in local] == [r.manifest.regret for r in on_ray]
    for local_job, ray_job in zip(jobs(tmp_path / "local"), jobs(tmp_path / "ray")):
        assert same_trace(trace_of(local_job.folder), trace_of(ray_job.folder))


def test_load_runs_gives_one_row_per_query_with_charged_count_best_so_far_and_regret(tmp_path):
    run_grid([job(tmp_path, "ga", seed=s, budget=500, num_particles=50) for s in (0, 1)],
             workers=1, progress=False)
    frame = load_runs(tmp_path)
    assert set(frame["seed"]) == {0, 1} and set(frame["optimizer"]) == {"ga"}
    for seed, rows in frame.groupby("seed"):
        values = rows["value"].to_numpy()
        best = [max([v for v in values[: i + 1] if v > -np.inf], default=-np.inf)
                for i in range(len(values))]
        np.testing.assert_array_equal(rows["best_so_far"], best)
        np.testing.assert_array_equal(rows["regret"], 1 - np.maximum(0, best))
        charged, seen = [], set()  # by hand: a query is charged the first time its sequence appears
        for sequence in trace_of(job(tmp_path, "ga", seed=seed, budget=500,
                                     num_particles=50).folder)["sequence"]:
            charged.append(sequence.tobytes() not in seen)
            seen.add(sequence.tobytes())
        np.testing.assert_array_equal(rows["charged"], charged)
        np.testing.assert_array_equal(rows["evaluation"], np.cumsum(charged))
        assert not all(charged)  # the GA does repeat itself, so the two counts differ
