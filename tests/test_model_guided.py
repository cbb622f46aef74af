"""AdaLead, PEX, CbAS and DbAS end to end through the runner: both counting rules, runs that
verify, repeatable per seed at one torch thread, and resumption after a kill
(optimizers/model_guided.py)."""

from pathlib import Path

import numpy as np
import pytest
from killing import assert_resumed_as_whole, kill_after_rounds, run_command

from harness.runner import make_job, run_job
from holo_bench.trace import read_trace
from leaderboard.verify import verify_run
from optimizers.model_guided import ModelGuided
from optimizers.rounds import METRICS, STATE

METHODS = ["adalead", "pex", "cbas", "dbas"]
PROBLEM = "smoke_ehrlich_small"
BUDGET = 200
# Ten rounds of 20 on the smoke instance, each well under a second.
SMALL = {"preset": "cpu", "batch_size": 20, "model_queries_per_round": 100}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trace(folder):
    return read_trace(Path(folder) / "trace.bin")[1]


def run(method, out, seed=0, count="distinct", budget=BUDGET):
    job = make_job(method, PROBLEM, seed, budget, out, params=SMALL, count=count)
    manifest = run_job(job)
    assert manifest.status == "finished", manifest.error
    return job.folder, manifest


@pytest.mark.parametrize("count", ["distinct", "all"])
@pytest.mark.parametrize("method", METHODS)
def test_runs_under_both_counting_rules_verify(method, count, tmp_path):
    folder, manifest = run(method, tmp_path, count=count)
    verified = verify_run(folder)
    records = trace(folder)
    assert verified.manifest.run.count == count
    assert manifest.evaluations == records["charged"].sum() <= BUDGET
    # never a sequence twice: both rules charge every query
    sequences = records["sequence"]
    assert len(np.unique(sequences, axis=0)) == len(sequences) == manifest.evaluations
    assert records["value"].max() > records["value"][0]  # improves on the start
    rounds = (folder / "optimizer" / METRICS).read_text().splitlines()
    assert len(rounds) == records["call"].max()  # one line per round after round 0


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_trace(method, tmp_path):
    """(The contract test checks that another seed asks otherwise.)"""
    first = trace(run(method, tmp_path / "a")[0])
    again = trace(run(method, tmp_path / "b")[0])
    np.testing.assert_array_equal(first["sequence"], again["sequence"])
    np.testing.assert_array_equal(first["value"], again["value"])


@pytest.mark.parametrize("method", METHODS)
def test_a_run_stopped_mid_round_resumes_from_its_saved_round(method, tmp_path, monkeypatch):
    """The process dies in the fifth call's tell (that call logged, its labels never told): the
    rerun restores the state saved with the fifth round's proposals, which accounts for four
    calls, asks the fifth call again from it and ends with the uninterrupted run's trace."""
    whole = trace(run(method, tmp_path / "whole")[0])
    told = ModelGuided.tell

    def dying_tell(self, X, values):
        if self._calls == 4:
            raise RuntimeError("killed")
        told(self, X, values)

    monkeypatch.setattr(ModelGuided, "tell", dying_tell)
    job = make_job(method, PROBLEM, 0, BUDGET, tmp_path / "killed", params=SMALL)
    assert run_job(job).status == "failed"
    partial = trace(job.folder)
    assert partial["call"].max() == 4  # calls 0-4 logged
    monkeypatch.setattr(ModelGuided, "tell", told)
    setup, restored = ModelGuided.setup, []

    def counted_setup(self, problem, seed, workdir=None):
        restored.append(setup(self, problem, seed, workdir))
        return restored[-1]

    monkeypatch.setattr(ModelGuided, "setup", counted_setup)
    assert run_job(job).status == "finished"
    assert restored == [4]
    resumed = trace(job.folder)
    np.testing.assert_array_equal(resumed["sequence"], whole["sequence"])
    np.testing.assert_array_equal(resumed["value"], whole["value"])
    np.testing.assert_array_equal(resumed["time"][: len(partial)], partial["time"])
    assert (job.folder / "optimizer" / STATE).exists()


@pytest.mark.e2e
@pytest.mark.parametrize("method", METHODS)
def test_killed_run_resumes_with_the_same_trace(method, tmp_path):
    """SIGKILL once a few rounds are saved; the rerun (one torch thread, as the uninterrupted
    run) ends with the same trace and keeps the calls made before the kill."""
    whole = trace(run(method, tmp_path / "whole", budget=400)[0])
    out = tmp_path / "killed"
    folder = make_job(method, PROBLEM, 0, 400, out, params=SMALL).folder
    partial, resumed = kill_after_rounds(run_command(method, PROBLEM, 400, out, SMALL), folder, 5)
    assert_resumed_as_whole(partial, resumed, whole)
