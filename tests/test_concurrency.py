"""Several processes at once: one writer per run folder, a runner that counts only what
verifies, a store safe under concurrent collects and reads, and grids that stop without losing
work (Ctrl-C, SIGTERM, a full disk, a read-only folder)."""

import errno
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.executors import run_grid
from harness.runner import make_job, run_and_verify, run_job
from holo_bench.record import read_manifest
from holo_bench.run_lock import RunLocked, lock_run_folder
from holo_bench.trace import TraceError, TraceWriter, read_trace
from leaderboard.store import collect, read_store
from leaderboard.verify import verify_run

TESTS = str(Path(__file__).parent)
ENV = {**os.environ, "PYTHONPATH": TESTS}
THROTTLED = "misbehaving:ThrottledGA"  # the GA, slowed down so that processes overlap


def cli(*args):
    return [sys.executable, "-m", "harness.cli", *args]


def trace_of(folder):
    return read_trace(Path(folder) / "trace.bin")[1]


def same_trace(a, b):
    """Bit-for-bit equal traces, wall-clock time aside."""
    return all(np.array_equal(a[name], b[name]) for name in a.dtype.names if name != "time")


def reference_trace(problem, seed, budget, tmp_path, **params):
    """The trace of an uninterrupted, unthrottled GA run of the same job (ThrottledGA is the GA
    with pauses: same asks, same trace)."""
    job = make_job("ga", problem, seed, budget, tmp_path / "reference", params)
    run_job(job)
    return trace_of(job.folder)


def charged_so_far(folder) -> int:
    """Charged evaluations in a trace being written (0 before its header is whole)."""
    try:
        return int(trace_of(folder)["charged"].sum())
    except (FileNotFoundError, TraceError):
        return 0


# -- the lock --------------------------------------------------------------------------------

def test_a_held_run_folder_is_refused_at_once_naming_its_holder(tmp_path):
    with lock_run_folder(tmp_path / "run"):
        with pytest.raises(RunLocked) as refused:
            with lock_run_folder(tmp_path / "run"):
                pass
    assert refused.value.holder["pid"] == os.getpid()
    assert f"pid {os.getpid()}, since " in str(refused.value)
    with lock_run_folder(tmp_path / "run"):  # released at the end of the block
        pass


def test_the_lock_of_a_killed_holder_is_released_by_the_system(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from holo_bench.run_lock import lock_run_folder\n"
        f"with lock_run_folder({str(tmp_path)!r}):\n"
        "    print('held', flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
        with lock_run_folder(tmp_path):
            pass
    holder.kill()
    holder.wait()
    with lock_run_folder(tmp_path):
        pass


def test_a_job_whose_folder_is_held_is_skipped_and_its_folder_left_untouched(tmp_path):
    job = make_job("random", "smoke_ehrlich_small", 0, 300, tmp_path)
    with lock_run_folder(job.folder):
        before = sorted(path.name for path in job.folder.iterdir())
        with pytest.raises(RunLocked):
            run_job(job)
        result = run_and_verify(job)
        assert sorted(path.name for path in job.folder.iterdir()) == before == ["writer.lock"]
    assert result.status == "skipped" and result.manifest is None
    assert f"pid {os.getpid()}" in result.reason
    assert run_and_verify(job).status == "finished"


# -- two runners on one grid ------------------------------------------------------------------

GRID = ["--optimizer", THROTTLED, "--problem", "f2", "--seeds", "0-3", "--budget", "30000",
        "--set", "num_particles=100", "--workers", "1", "--quiet", "--no-page"]


def final_table(stdout: str) -> str:
    """The final-regret table a run prints, without the lines that name its folders."""
    return stdout.split(" of ")[0].rsplit("\n", 1)[0]


@pytest.mark.e2e
def test_two_runners_on_one_grid_write_each_run_once_and_a_third_finds_it_done(tmp_path, capsys):
    out = tmp_path / "r2"
    runners = [subprocess.Popen(cli("run", *GRID, "--out", str(out)), env=ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [runner.communicate(timeout=300) for runner in runners]
    skipped = []
    for runner, (stdout, stderr) in zip(runners, outputs):
        assert "Traceback" not in stderr
        # The holder is named once it has recorded itself; in the instant between taking the
        # lock and writing its name, it is "another process".
        seeds = {int(seed) for seed in re.findall(r"^SKIPPED \S+ on f2 seed (\d+): \S+ is being "
                                                  r"written by (?:host \S+, pid \d+, since |"
                                                  r"another process)", stderr, re.M)}
        assert runner.returncode == (1 if seeds else 0), stderr
        assert f"{4 - len(seeds)} of 4 runs finished and verified" in stdout, stderr
        skipped.append(seeds)
    assert skipped[0] or skipped[1]  # they did overlap
    assert not skipped[0] & skipped[1]  # a run skipped by one was written by the other

    for seed in range(4):
        job = make_job(THROTTLED, "f2", seed, 30000, out, {"num_particles": 100})
        verify_run(job.folder)
        assert same_trace(trace_of(job.folder),
                          reference_trace("f2", seed, 30000, tmp_path, num_particles=100))

    third = subprocess.run(cli("run", *GRID, "--out", str(out)), env=ENV, text=True,
                           capture_output=True)
    assert third.returncode == 0 and "4 of 4 runs finished and verified" in third.stdout
    # The table equals an uninterrupted run's: the plain GA, labelled as the throttled one.
    assert main(["run", *GRID[2:], "--optimizer", "ga", "--label", THROTTLED,
                 "--out", str(tmp_path / "whole")]) == 0
    assert final_table(third.stdout) == final_table(capsys.readouterr().out)


# -- the runner counts what verifies --------------------------------------------------------

def splice(folder: Path, other: Path) -> None:
    """Append another run's records to this run's trace, as a second writer would."""
    header_size = len((other / "trace.bin").read_bytes().split(b"\n", 1)[0]) + 1
    with open(folder / "trace.bin", "ab") as file:
        file.write((other / "trace.bin").read_bytes()[header_size:])


def truncate(folder: Path, _) -> None:
    trace = folder / "trace.bin"
    trace.write_bytes(trace.read_bytes()[: trace.stat().st_size // 2])


@pytest.mark.parametrize("damage, row", [
    (splice, r"row \d+ \(call 0, index 0\): call number 0 where call \d+ was expected"),
    (truncate, r"row \d+: \d+ trailing bytes after \d+ whole records"),
])
def test_a_finished_run_whose_folder_fails_verification_is_not_counted(tmp_path, capsys, damage,
                                                                       row):
    args = ["run", "--optimizer", "ga", "--problem", "smoke_ehrlich_small", "--seeds", "0-1",
            "--budget", "2000", "--workers", "1", "--quiet", "--no-page", "--out", str(tmp_path)]
    assert main(args) == 0
    seed0, seed1 = (make_job("ga", "smoke_ehrlich_small", seed, 2000, tmp_path).folder
                    for seed in (0, 1))
    damage(seed0, seed1)
    capsys.readouterr()

    assert main(args) == 1
    captured = capsys.readouterr()
    line, = [line for line in captured.err.splitlines() if line.startswith("NOT COUNTED")]
    assert line.startswith(f"NOT COUNTED ga on smoke_ehrlich_small seed 0: {seed0} rejected "
                           "(trace): ")
    assert re.search(row, line)
    assert "1 of 2 runs finished and verified; 1 rejected" in captured.out
    assert re.search(r"smoke_ehrlich_small\s+ga\s+distinct(\s+\S+){3}\s+1$", captured.out, re.M)

    recover = line.split("move it aside and run again: ")[1].split(" && holo-bench ")[0]
    subprocess.run(recover, shell=True, check=True)
    assert main(args) == 0  # the damaged run moved aside, the same command runs it again
    assert "2 of 2 runs finished and verified" in capsys.readouterr().out
    verify_run(seed0)


# -- the store under concurrent writers and readers -------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_grid([make_job("ga", "f2", seed, 20000, out) for seed in range(8)], workers=1,
             progress=False)
    return out


def test_collectors_at_once_add_each_run_exactly_once(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collectors = [subprocess.Popen(cli("collect", str(runs), "--db", str(db)), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                  for _ in range(4)]
    added = 0
    for collector in collectors:
        stdout, stderr = collector.communicate(timeout=300)
        assert collector.returncode == 0 and stderr == ""
        counts = re.match(r"(\d+) runs? added, (\d+) unchanged, 0 duplicates", stdout)
        assert int(counts[1]) + int(counts[2]) == 8
        added += int(counts[1])
    assert added == 8
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (8,)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def run_keys(frame):
    return set(map(tuple, frame[["problem", "optimizer", "config", "seed"]].values.tolist()))


def test_a_reader_during_collect_sees_every_run_whole(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(next((runs / "ga" / "f2").iterdir()), db)  # one run in, seven to come
    writer = subprocess.Popen(cli("collect", str(runs), "--db", str(db)),
                              stdout=subprocess.DEVNULL)
    sizes = set()
    while writer.poll() is None:
        stored, curves, targets, _ = read_store(db)
        assert run_keys(curves) == run_keys(targets) == run_keys(stored)
        sizes.add(len(stored))
    assert writer.wait() == 0 and len(read_store(db)[0]) == 8
    assert len(sizes) > 1  # the reads did see the store grow


# -- stopping a grid ----------------------------------------------------------------------------

STOPPED = ["--optimizer", THROTTLED, "--problem", "f2", "--seeds", "0-3", "--budget", "20000",
           "--set", "num_particles=100", "--workers", "2", "--quiet", "--no-page"]


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["Ctrl-C to the process group", "SIGTERM to the parent"])
def test_a_stopped_pool_grid_keeps_its_batches_and_resumes_to_the_uninterrupted_traces(tmp_path,
                                                                                      how):
    out = tmp_path / "stopped"
    folders = [make_job(THROTTLED, "f2", seed, 20000, out, {"num_particles": 100}).folder
               for seed in range(4)]
    grid = subprocess.Popen(cli("run", *STOPPED, "--out", str(out)), env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and charged_so_far(folders[0]) < 3000:
        time.sleep(0.02)
    if how == "SIGTERM to the parent":
        grid.send_signal(signal.SIGTERM)
    else:
        os.killpg(grid.pid, signal.SIGINT)
    stdout, stderr = grid.communicate(timeout=60)
    assert grid.returncode == 130 and "Traceback" not in stderr
    line, = stderr.strip().splitlines()
    assert re.fullmatch(r"holo-bench: stopped by SIG(INT|TERM): (\d) of 4 runs finished, (\d) "
                        r"stopped mid-run \(resumable\), (\d) not started; resume with: "
                        r"holo-bench run .*", line)
    partial = {folder: trace_of(folder) for folder in folders if (folder / "trace.bin").exists()}
    assert folders[0] in partial

    subprocess.run(cli("run", *STOPPED, "--out", str(out)), env=ENV, check=True,
                   capture_output=True)
    for seed, folder in enumerate(folders):
        resumed = trace_of(folder)
        assert same_trace(resumed, reference_trace("f2", seed, 20000, tmp_path,
                                                   num_particles=100))
        if folder in partial:  # every batch written before the stop was kept, not redone
            kept = partial[folder]
            np.testing.assert_array_equal(resumed["time"][: len(kept)], kept["time"])


class FullDisk:
    """A trace file whose ``after``-th write fails as on a full disk."""

    def __init__(self, file, after: int):
        self._file, self._after, self._writes = file, after, 0

    def write(self, data):
        self._writes += 1
        if self._writes == self._after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)


def test_a_full_disk_stops_the_grid_in_one_line_and_the_rerun_resumes(tmp_path, capsys,
                                                                      monkeypatch):
    args = ["run", "--optimizer", "ga", "--problem", "f2", "--seeds", "0", "--budget", "20000",
            "--set", "num_particles=100", "--workers", "1", "--quiet", "--no-page",
            "--out", str(tmp_path / "runs")]
    folder = make_job("ga", "f2", 0, 20000, tmp_path / "runs", {"num_particles": 100}).folder
    opened = TraceWriter.__init__

    def filling(self, path, header):
        opened(self, path, header)
        self._file = FullDisk(self._file, after=40)

    monkeypatch.setattr(TraceWriter, "__init__", filling)
    assert main(args) == 1
    line, = capsys.readouterr().err.strip().splitlines()
    assert line == (f"holo-bench: error: cannot write {folder / 'trace.bin'}: No space left on "
                    "device; nothing already written is lost (0 of 1 runs finished, 1 stopped "
                    f"mid-run (resumable), 0 not started); once fixed, resume with: holo-bench "
                    f"{' '.join(args)}")
    partial = trace_of(folder)
    assert read_manifest(folder).status == "running" and partial["call"].max() == 38

    monkeypatch.undo()
    assert main(args) == 0
    resumed = trace_of(folder)
    assert same_trace(resumed, reference_trace("f2", 0, 20000, tmp_path, num_particles=100))
    np.testing.assert_array_equal(resumed["time"][: len(partial)], partial["time"])


def test_a_read_only_out_folder_gets_one_line_naming_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "read-only"
    made = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.is_relative_to(out):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return made(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["run", "--optimizer", "random", "--problem", "smoke_ehrlich_small", "--seeds",
                 "0", "--budget", "100", "--workers", "1", "--quiet", "--out", str(out)]) == 1
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"holo-bench: error: cannot write {out}/random/smoke_ehrlich_small/"
                           "seed-0-")
    assert ": Read-only file system; nothing already written is lost (0 of 1 runs finished" in line


# -- Ray retries --------------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_ray_task_whose_worker_died_is_retried_and_resumes_the_run(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is an optional extra; CI installs it")
    monkeypatch.setenv("PYTHONPATH", TESTS)  # Ray's workers import the optimizer from here
    job = make_job("misbehaving:DiesOnce", "f2", 0, 20000, tmp_path, {"num_particles": 100})
    result, = run_grid([job], executor="ray", workers=1, progress=False)
    assert (job.folder / "optimizer" / "died").exists()  # its first worker did die mid-run
    assert result.status == "finished"
    assert same_trace(trace_of(job.folder),
                      reference_trace("f2", 0, 20000, tmp_path, num_particles=100))
