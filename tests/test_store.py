"""The results store and the aggregated leaderboard numbers, against independent computations."""

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.executors import run_grid
from harness.runner import make_job
from leaderboard import load_runs
from leaderboard.aggregate import summarize_store
from leaderboard.store import StoreError, collect, read_store, targets_for

BUDGET = 3000


def grid_jobs(out, budget=BUDGET):
    return [make_job(o, p, s, budget, out,
                     {"num_particles": 100} if o == "ga" else {"batch_size": 100})
            for o in ("ga", "random") for p in ("smoke_ehrlich_small", "smoke_ehrlich_tiny")
            for s in range(3)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_grid(grid_jobs(out), workers=1, progress=False)
    return out


def stored_runs(db):
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT * FROM runs ORDER BY identity").fetchall()


def test_collect_is_idempotent_and_picks_up_new_runs(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    first = collect(runs, db)
    assert len(first.added) == 12 and not first.rejected
    again = collect(runs, db)
    assert not again.added and len(again.unchanged) == 12
    extra = make_job("random", "smoke_ehrlich_small", 9, 500, tmp_path / "more")
    run_grid([extra], workers=1, progress=False)
    shutil.copytree(extra.folder, runs / "extra")
    try:
        third = collect(runs, db)
    finally:
        shutil.rmtree(runs / "extra")  # keep the fixture intact
    assert third.added == [extra.run.identity] and len(third.unchanged) == 12
    assert len(stored_runs(db)) == 13


def test_a_tampered_copy_never_removes_or_alters_the_genuine_run(runs, tmp_path):
    """The reproduction: collect a genuine run, then a copy with an edited best value."""
    genuine = grid_jobs(runs)[0].folder
    db = tmp_path / "store.sqlite"
    collect(genuine, db)
    before = stored_runs(db)
    copy = tmp_path / "b"
    shutil.copytree(genuine, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["best_value"] -= 0.125
    (copy / "manifest.json").write_text(json.dumps(manifest))
    report = collect(copy, db)
    assert list(report.rejected.values())[0].startswith("rejected (best)")
    assert stored_runs(db) == before and len(before) == 1


def test_a_tampered_copy_collected_first_does_not_block_the_genuine_run(runs, tmp_path):
    genuine = grid_jobs(runs)[0].folder
    copy = tmp_path / "b"
    shutil.copytree(genuine, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["evaluations"] -= 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    db = tmp_path / "store.sqlite"
    assert list(collect(copy, db).rejected.values())[0].startswith("rejected (budget)")
    assert collect(genuine, db).added == [manifest["identity"]]


def test_two_budgets_of_one_job_are_two_entries_and_two_rows(runs, tmp_path):
    small = make_job("random", "smoke_ehrlich_small", 0, 1000, tmp_path / "small",
                     {"batch_size": 100})
    run_grid([small], workers=1, progress=False)
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    collect(tmp_path / "small", db)
    table, _, _, _ = read_store(db)
    chosen = table[(table.optimizer == "random") & (table.problem == "smoke_ehrlich_small")
                   & (table.seed == 0)]
    assert sorted(chosen["budget"]) == [1000, BUDGET]
    summary = summarize_store(db)
    names = set(summary.table[summary.table.problem == "smoke_ehrlich_small"]["optimizer"])
    assert names == {"ga", "random [budget=1000]", f"random [budget={BUDGET}]"}
    assert set(summary.configurations["entry"]) == names | {"ga"}


def test_a_copy_of_a_stored_run_elsewhere_is_unchanged_and_a_rerun_is_a_duplicate(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    copy = tmp_path / "copy"
    shutil.copytree(grid_jobs(runs)[0].folder, copy)
    assert len(collect(copy, db).unchanged) == 1
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["seconds"] += 1.0  # the same run made again: another wall time
    (copy / "manifest.json").write_text(json.dumps(manifest))
    report = collect(copy, db)
    assert list(report.duplicates) == [str(copy)] and not report.added
    assert len(stored_runs(db)) == 12


def curve_by_hand(rows, grid):
    """Regret after e charged evaluations, by a plain scan of the queries."""
    start = 1.0  # Ehrlich: optimal 1, worst 0
    out = []
    for e in grid:
        seen = rows[rows["evaluation"] <= e]
        out.append(seen["regret"].iloc[-1] if len(seen) else start)
    return np.array(out)


def grid_by_hand(budget):
    points = {int(round(10 ** (i / 20))) for i in range(int(np.ceil(np.log10(budget) * 20)) + 1)}
    return np.array(sorted({p for p in points if p <= budget} | {budget}))


def test_curves_and_final_regret_agree_with_the_queries(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    runs_table, curves, _, _ = read_store(db)
    frame = load_runs(runs)
    for (optimizer, problem, seed), rows in frame.groupby(["optimizer", "problem", "seed"]):
        run = runs_table[(runs_table.optimizer == optimizer) & (runs_table.problem == problem)
                         & (runs_table.seed == seed)]
        assert run["final_regret"].item() == rows["regret"].iloc[-1]
        solved = rows[rows["regret"] == 0]
        expected = int(solved["evaluation"].iloc[0]) if len(solved) else None
        stored = run["evals_to_solve"].item()
        assert (None if np.isnan(stored) else stored) == expected
        curve = curves[(curves.optimizer == optimizer) & (curves.problem == problem)
                       & (curves.seed == seed)]
        np.testing.assert_array_equal(curve["evaluations"], grid_by_hand(BUDGET))
        np.testing.assert_array_equal(curve["regret"], curve_by_hand(rows, grid_by_hand(BUDGET)))


def test_summary_table_by_hand(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    summary = summarize_store(db)
    frame = load_runs(runs)
    mine = frame[(frame.problem == "smoke_ehrlich_small") & (frame.optimizer == "ga")]
    row = summary.table[(summary.table.problem == "smoke_ehrlich_small")
                        & (summary.table.optimizer == "ga")].iloc[0]
    final = sorted(rows["regret"].iloc[-1] for _, rows in mine.groupby("seed"))
    assert row["seeds"] == 3 and row["median_regret"] == final[1]
    assert row["q25_regret"] == final[0] + 0.5 * (final[1] - final[0])
    # AUC by hand, from the queries (not the store's curves): trapezoids on log10(evaluations).
    grid = grid_by_hand(BUDGET)
    x = np.log10(grid)
    aucs = []
    for _, rows in mine.groupby("seed"):
        y = curve_by_hand(rows, grid)
        aucs.append(sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1))
                    / (x[-1] - x[0]))
    assert 0 < np.mean(aucs) < 1 and np.isclose(row["auc"], np.mean(aucs), rtol=0, atol=1e-12)


def test_verdicts_against_the_reference_by_hand(runs, tmp_path):
    """Every p-value of the table: one-sided Mann-Whitney U of each entry's final regrets and
    AUCs against the reference's on the same problem, then Holm over the whole table."""
    from scipy.stats import mannwhitneyu

    db = tmp_path / "store.sqlite"
    collect(runs, db)
    summary = summarize_store(db, reference="random")
    table = summary.table.set_index(["problem", "optimizer"])
    by_seed = {}
    for (problem, optimizer, seed), rows in load_runs(runs).groupby(["problem", "optimizer",
                                                                      "seed"]):
        by_seed.setdefault((problem, optimizer), []).append(rows["regret"].iloc[-1])
    raw = {}
    for problem in ("smoke_ehrlich_small", "smoke_ehrlich_tiny"):
        ga, random = by_seed[(problem, "ga")], by_seed[(problem, "random")]
        raw[(problem, "regret", "lower")] = mannwhitneyu(ga, random, alternative="less").pvalue
        raw[(problem, "regret", "higher")] = mannwhitneyu(ga, random,
                                                          alternative="greater").pvalue
    aucs = summary_aucs(db)
    for problem in ("smoke_ehrlich_small", "smoke_ehrlich_tiny"):
        ga, random = aucs[(problem, "ga")], aucs[(problem, "random")]
        raw[(problem, "auc", "lower")] = mannwhitneyu(ga, random, alternative="less").pvalue
        raw[(problem, "auc", "higher")] = mannwhitneyu(ga, random, alternative="greater").pvalue
    keys = sorted(raw, key=raw.get)
    running = 0.0
    for rank, key in enumerate(keys):  # Holm by hand over the 8 tests
        running = max(running, min(1.0, (len(keys) - rank) * raw[key]))
        problem, metric, side = key
        assert table.loc[(problem, "ga"), f"p_{metric}_{side}"] == pytest.approx(running)
    for problem in ("smoke_ehrlich_small", "smoke_ehrlich_tiny"):
        assert table.loc[(problem, "random"), "verdict_regret"] == "reference"
        assert np.isnan(table.loc[(problem, "random"), "p_regret_lower"])
        row = table.loc[(problem, "ga")]
        expected = ("better" if row["p_regret_lower"] < 0.05 else
                    "worse" if row["p_regret_higher"] < 0.05 else "no evidence")
        assert row["verdict_regret"] == expected
        low, high = row["regret_ci_low"], row["regret_ci_high"]
        assert min(by_seed[(problem, "ga")]) <= low <= row["median_regret"] <= high
    unknown = summarize_store(db, reference="nobody").table
    assert set(unknown["verdict_regret"]) == {""} and unknown["p_auc_lower"].isna().all()


def test_normalized_scores_and_ranks_across_problems_by_hand(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    summary = summarize_store(db)
    finals = {}
    for (problem, optimizer, _), rows in load_runs(runs).groupby(["problem", "optimizer", "seed"]):
        finals.setdefault((problem, optimizer), []).append(rows["regret"].iloc[-1])
    problems = ("smoke_ehrlich_small", "smoke_ehrlich_tiny")
    across = summary.across.set_index("optimizer")
    scored = [p for p in problems if np.median(finals[(p, "random")]) > 0]
    assert scored == ["smoke_ehrlich_small"]  # random search solves the tiny one: not scored
    for optimizer in ("ga", "random"):
        score = np.mean([np.median(finals[(p, optimizer)]) / np.median(finals[(p, "random")])
                         for p in scored])
        row = across.loc[optimizer]
        assert row["scored_problems"] == len(scored) and row["problems"] == 2
        assert row["runs"] == sum(len(finals[(p, optimizer)]) for p in problems)
        assert row["normalized_score"] == pytest.approx(score)
        assert row["score_ci_low"] <= row["score_ci_high"]
        ranks = [1.0 if np.median(finals[(p, optimizer)]) < np.median(finals[(p, other)])
                 else 2.0 if np.median(finals[(p, optimizer)]) > np.median(finals[(p, other)])
                 else 1.5 for p in problems for other in {"ga", "random"} - {optimizer}]
        assert row["average_rank"] == pytest.approx(np.mean(ranks))
    assert summary.ranking["entries"] == 2 and np.isnan(summary.ranking["friedman_p"])


def test_an_entrys_score_interval_does_not_move_when_another_entry_joins():
    """Each entry resamples from its own generator: a new optimizer on the page (the published
    archive grows) leaves every other entry's interval as it was."""
    from leaderboard.aggregate import _across

    rng = np.random.default_rng(1)
    finals = {(problem, optimizer): rng.random(10) for problem in ("p", "q")
              for optimizer in ("b", "random", "z")}
    runs = pd.DataFrame([{"problem": problem, "optimizer": optimizer, "final_regret": value}
                         for (problem, optimizer), values in finals.items() for value in values])
    table = (runs.groupby(["problem", "optimizer"])["final_regret"].agg(["median", "size"])
             .rename(columns={"median": "median_regret", "size": "seeds"}).reset_index())
    before = _across(table[table["optimizer"] != "b"], runs[runs["optimizer"] != "b"])[0]
    after = _across(table, runs)[0]
    columns = ["normalized_score", "score_ci_low", "score_ci_high"]
    assert (after.set_index("optimizer").loc[["random", "z"], columns].to_numpy()
            == before.set_index("optimizer").loc[["random", "z"], columns].to_numpy()).all()


def test_verified_measures_of_the_queries_by_hand(runs, tmp_path):
    """Feasible and distinct fractions and diversity, from each trace, never from a report."""
    from holo_bench.trace import read_trace

    db = tmp_path / "store.sqlite"
    collect(runs, db)
    table, _, _, _ = read_store(db)
    for row in table.itertuples():
        records = read_trace(Path(row.folder) / "trace.bin")[1]
        X = records["sequence"].astype(int)
        assert row.feasible_fraction == pytest.approx(np.mean(records["feasible"]))
        assert row.distinct_fraction == pytest.approx(len({x.tobytes() for x in X}) / len(X))
        sample = X[np.random.default_rng(0).choice(len(X), 500, replace=False)] if len(X) > 500 \
            else X
        pairs = [(sample[i + 1:] != sample[i]).mean(axis=1) for i in range(len(sample) - 1)]
        assert row.diversity == pytest.approx(np.concatenate(pairs).mean())
    summary = summarize_store(db)
    shown = summary.table.set_index(["problem", "optimizer"]).loc[("smoke_ehrlich_small", "ga")]
    mine = table[(table.problem == "smoke_ehrlich_small") & (table.optimizer == "ga")]
    assert shown["diversity"] == pytest.approx(mine["diversity"].median())
    assert shown["median_seconds"] == pytest.approx(mine["seconds"].median())
    assert "CPUs, " in shown["hardware"] and "torch thread" in shown["hardware"]


def summary_aucs(db):
    """Each run's AUC as the summary computes it (its curves are checked by hand above)."""
    from leaderboard.aggregate import _auc

    _, curves, _, _ = read_store(db)
    aucs = {}
    for (problem, optimizer, _), curve in curves.groupby(["problem", "optimizer", "seed"]):
        aucs.setdefault((problem, optimizer), []).append(
            _auc(curve["evaluations"].to_numpy(), curve["regret"].to_numpy()))
    return aucs


def test_ecdf_ends_at_the_budget_with_the_fraction_of_targets_reached(runs, tmp_path):
    db = tmp_path / "store.sqlite"
    collect(runs, db)
    summary = summarize_store(db)
    _, _, targets, _ = read_store(db)
    for optimizer, ecdf in summary.ecdf.groupby("optimizer"):
        assert ecdf["evaluations"].iloc[-1] == BUDGET
        reached = targets[targets.optimizer == optimizer]["evaluations"].notna().mean()
        assert ecdf["fraction"].iloc[-1] == reached


def test_targets_are_quantized_ehrlich_levels():
    np.testing.assert_allclose(targets_for("ehrlich:v=32,L=32,c=4,k=4,q=4,seed=0"),
                               [(j / 4) ** 4 for j in range(1, 5)])
    assert len(targets_for("rmf:L=12,seed=3")) == 0


def test_a_file_that_is_not_a_store_gets_a_clear_error(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text " * 20)
    with pytest.raises(StoreError, match="is not a holo-bench results store"):
        read_store(junk)
    with pytest.raises(StoreError, match="no results store at"):
        read_store(tmp_path / "missing.sqlite")
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as connection:
        connection.execute("CREATE TABLE runs (run_key TEXT PRIMARY KEY)")
    with pytest.raises(StoreError, match="holo-bench 0.1"):
        read_store(old)


def test_reading_an_empty_file_or_collecting_no_runs_writes_no_store(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(StoreError, match="is empty, not a results store"):
        read_store(empty)
    assert empty.stat().st_size == 0
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="holds no run folders"):
        collect(tmp_path / "nothing", tmp_path / "new.sqlite")
    assert not (tmp_path / "new.sqlite").exists()


def test_a_family_pools_its_instances_and_runs_and_compares_only_like_with_like(tmp_path):
    """Two instances of one parameter set (seeds 2 and 3 of the tiny Ehrlich), ga and random on
    both, and a ga configuration on one only: one row per entry for the family, holding both
    instances' runs, whose numbers are recomputed here from the runs pooled by hand."""
    from scipy.stats import mannwhitneyu

    family = "ehrlich:v=4,L=8,c=2,k=2,q=2"
    instances = [f"{family},seed=2", f"{family},seed=3"]
    params = {"ga": {"num_particles": 20}, "random": {"batch_size": 20}}
    jobs = [make_job(o, p, s, 400, tmp_path / "runs", params[o])
            for o in ("ga", "random") for p in instances for s in range(3)]
    jobs += [make_job("ga", instances[0], s, 400, tmp_path / "runs", {"num_particles": 30},
                      label="ga-one") for s in range(3)]
    run_grid(jobs, workers=1, progress=False)
    collect(tmp_path / "runs", tmp_path / "store.sqlite")
    summary = summarize_store(tmp_path / "store.sqlite")
    table = summary.table.set_index("optimizer")
    assert set(table["problem"]) == {family}  # an unnamed family is labelled by its spec
    assert table.loc["ga", "instances"] == 2 and table.loc["ga", "seeds"] == 6
    assert table.loc["ga-one", "instances"] == 1 and table.loc["ga-one", "seeds"] == 3
    finals = {}
    for (optimizer, _, _), rows in load_runs(tmp_path / "runs").groupby(
            ["optimizer", "problem", "seed"]):
        finals.setdefault(optimizer, []).append(rows["regret"].iloc[-1])
    assert table.loc["random", "median_regret"] == np.median(finals["random"])
    aucs = {}
    for (_, optimizer), values in summary_aucs(tmp_path / "store.sqlite").items():
        aucs.setdefault(optimizer, []).extend(values)
    assert table.loc["random", "auc"] == pytest.approx(np.mean(aucs["random"]))
    raw = {(metric, side): mannwhitneyu(pooled["random"], pooled["ga"],
                                        alternative=alternative).pvalue
           for metric, pooled in (("regret", finals), ("auc", aucs))
           for side, alternative in (("lower", "less"), ("higher", "greater"))}
    running = 0.0
    for rank, (metric, side) in enumerate(sorted(raw, key=raw.get)):  # Holm over the 4 tests
        running = max(running, min(1.0, (len(raw) - rank) * raw[(metric, side)]))
        assert table.loc["random", f"p_{metric}_{side}"] == pytest.approx(running)
    # ga-one ran on one of the two instances: no verdict against ga
    assert table.loc["ga-one", "verdict_regret"] == "" and np.isnan(
        table.loc["ga-one", "p_regret_lower"])
    about = summary.problems.set_index("problem").loc[family, "about"]
    assert about == f"2 instances of {family}, instance seeds 2, 3"


def test_a_named_family_takes_its_name_and_a_lone_instance_keeps_its_own():
    from leaderboard.aggregate import problem_labels

    f2 = "ehrlich:v=32,L=32,c=4,k=4,q=4"
    assert problem_labels({"f2": f"{f2},seed=50494", "f2_seed1": f"{f2},seed=1",
                           "smoke_rmf": "rmf:L=12,seed=3"}) == {
        "f2": "f2_family", "f2_seed1": "f2_family", "smoke_rmf": "smoke_rmf"}
    assert problem_labels({"f2": f"{f2},seed=50494"}) == {"f2": "f2"}


def test_two_labels_may_share_a_configuration():
    """Each label names its own entry even when another label ran the very same configuration."""
    from leaderboard.aggregate import entry_names

    runs = pd.DataFrame([("ga", "c1", "ga", 100, "distinct", "{}"),
                         ("mine", "c1", "ga", 100, "distinct", "{}"),
                         ("mine", "c2", "ga", 200, "distinct", "{}")],
                        columns=["optimizer", "config", "optimizer_name", "budget", "count",
                                 "params"])
    assert entry_names(runs) == {("ga", "c1"): "ga", ("mine", "c1"): "mine [budget=100]",
                                 ("mine", "c2"): "mine [budget=200]"}
