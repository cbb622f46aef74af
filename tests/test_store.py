"""The results store and the aggregated leaderboard numbers, against independent computations."""

import json
import shutil
import sqlite3

import numpy as np
import pytest

from holo_bench.executors import run_grid
from holo_bench.runner import Job
from leaderboard import load_runs
from leaderboard.aggregate import summarize_store
from leaderboard.store import GRID, collect, read_store, targets_for


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    jobs = [Job(o, p, s, 3000, str(out), params={"num_particles": 100} if o == "ga" else {"batch_size": 100})
            for o in ("ga", "random") for p in ("smoke_ehrlich_small", "smoke_ehrlich_tiny") for s in range(3)]
    run_grid(jobs, workers=1, progress=False)
    return out


def test_collect_is_idempotent_and_picks_up_new_runs(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    first = collect(runs, db)
    assert len(first.added) == 12 and not first.rejected
    again = collect(runs, db)
    assert not again.added and len(again.unchanged) == 12
    run_grid([Job("random", "smoke_ehrlich_small", 9, 500, str(runs))], workers=1, progress=False)
    third = collect(runs, db)
    assert third.added == ["random/smoke_ehrlich_small/9"] and len(third.unchanged) == 12
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 13
    shutil.rmtree(runs / "random" / "smoke_ehrlich_small" / "seed-9")  # keep the fixture intact


def test_tampered_run_is_rejected_and_leaves_the_store(runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    db = tmp_path / "store.sqlite"
    collect(copy, db)
    manifest_path = copy / "ga" / "smoke_ehrlich_small" / "seed-1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["evaluations"] -= 1
    manifest_path.write_text(json.dumps(manifest))
    report = collect(copy, db)
    assert list(report.rejected.values())[0].startswith("rejected (budget)")
    runs_table, _, _, _ = read_store(db)
    assert len(runs_table) == 11


def test_curves_and_final_regret_agree_with_load_runs(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    runs_table, curves, _, _ = read_store(db)
    frame = load_runs(runs)
    for (optimizer, problem, seed), rows in frame.groupby(["optimizer", "problem", "seed"]):
        run = runs_table[(runs_table.optimizer == optimizer) & (runs_table.problem == problem) & (runs_table.seed == seed)]
        assert run["final_regret"].item() == rows["regret"].iloc[-1]
        solved = np.flatnonzero(rows["regret"].to_numpy() == 0)
        expected = solved[0] + 1 if len(solved) else None
        assert (run["evals_to_solve"].item() if not np.isnan(run["evals_to_solve"].item()) else None) == expected
        curve = curves[(curves.optimizer == optimizer) & (curves.problem == problem) & (curves.seed == seed)]
        regret = rows["regret"].to_numpy()
        for e, r in zip(curve["evaluations"], curve["regret"]):
            assert r == regret[min(e, len(regret)) - 1]  # regret after e evaluations
        assert curve["evaluations"].max() == 3000


def test_summary_table_by_hand(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    summary = summarize_store(db)
    runs_table, curves, targets, _ = read_store(db)
    row = summary.table[(summary.table.problem == "smoke_ehrlich_small") & (summary.table.optimizer == "ga")].iloc[0]
    final = sorted(runs_table[(runs_table.problem == "smoke_ehrlich_small") & (runs_table.optimizer == "ga")]["final_regret"])
    assert row["seeds"] == 3 and row["median_regret"] == final[1]
    assert row["q25_regret"] == final[0] + 0.5 * (final[1] - final[0])
    # AUC of one run by hand: trapezoids on log10(evaluations), normalized.
    one = curves[(curves.problem == "smoke_ehrlich_small") & (curves.optimizer == "ga") & (curves.seed == 0)]
    x, y = np.log10(one["evaluations"].to_numpy()), one["regret"].to_numpy()
    by_hand = sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1)) / (x[-1] - x[0])
    assert 0 <= by_hand <= 1
    aucs = []
    for seed in range(3):
        c = curves[(curves.problem == "smoke_ehrlich_small") & (curves.optimizer == "ga") & (curves.seed == seed)]
        xs, ys = np.log10(c["evaluations"].to_numpy()), c["regret"].to_numpy()
        aucs.append(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2) / (xs[-1] - xs[0]))
    assert np.isclose(row["auc"], np.mean(aucs)) and np.isclose(aucs[0], by_hand)
    # ECDF: fraction of (problem, seed, target) reached by the last grid point.
    ga_targets = targets[targets.optimizer == "ga"]
    last = summary.ecdf[summary.ecdf.optimizer == "ga"].iloc[-1]
    assert last["fraction"] == ga_targets["evaluations"].notna().mean()


def test_targets_are_quantized_ehrlich_levels():
    np.testing.assert_allclose(targets_for("ehrlich:v=32,L=32,c=4,k=4,q=4,seed=0"), [(j / 4) ** 4 for j in range(1, 5)])
    assert len(targets_for("rmf:L=12,seed=3")) == 0


def test_grid_is_log_spaced_and_starts_at_one():
    assert GRID[0] == 1 and np.all(np.diff(GRID) > 0) and 1000 in GRID and 10**6 in GRID
