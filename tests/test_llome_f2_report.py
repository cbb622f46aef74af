"""The LLOME head-to-head's report (benchmarks/llome_f2_report.py): the protocol's runs picked from
an archive, success at the exact quantized level, and the published CSVs recomputing the
archive's numbers."""

from fractions import Fraction

import pandas as pd
import pytest
from report_scripts import ROOT, load_report

from harness.runner import make_job, run_job
from leaderboard.archive import archive

report = load_report("llome_f2_report")
GA_SEED = {"num_particles": 1000, "mutation_prob": 0.005, "recombine_prob": 0.0882,
           "survival_quantile": 0.1}


def test_the_threshold_is_the_quantized_level_itself():
    """37/64 is a level of f2's quantized objective (1 - (3/4)^3); a rounded 0.578 would miss it."""
    assert report.THRESHOLD == Fraction(37, 64) == 0.578125
    assert 1 - (Fraction(3, 4)) ** 3 == report.THRESHOLD
    assert 0.578125 <= report.THRESHOLD and not 0.578125 <= 0.578


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("llome-f2")
    grid = [("ga", None, {}, "distinct", "f2", seed, 28_000) for seed in range(10)]
    grid += [("ga", "ga-seed", GA_SEED, "distinct", "f2_seed1", seed, 28_000) for seed in (0, 1)]
    grid += [("ga", "ga-all", {}, "all", "f2_seed2", 0, 28_000),
             ("ga", None, {}, "distinct", "f2", 0, 2_000),  # another budget
             ("ga", None, {}, "distinct", "f2", 10, 28_000),  # not a protocol seed
             ("ga", "ga-seed", {}, "distinct", "f2", 5, 28_000),  # the label, other parameters
             ("random", None, {}, "distinct", "f2", 0, 28_000)]  # not an arm
    for optimizer, label, params, count, problem, seed, budget in grid:
        job = make_job(optimizer, problem, seed, budget, root / "runs", params=params,
                       count=count, label=label)
        assert run_job(job).status == "finished"
    assert not archive(root / "runs", root / "results").rejected
    return root / "results"


def test_the_protocols_runs_are_picked_and_the_csvs_recompute_the_report(records, tmp_path):
    csv = tmp_path / "llome-f2-runs.csv"
    report.main([str(records), "--csv", str(csv), "--markdown", str(tmp_path / "archive.md")])
    report.main([str(csv), "--markdown", str(tmp_path / "csv.md")])
    text = (tmp_path / "archive.md").read_text()
    assert text == (tmp_path / "csv.md").read_text()
    runs = pd.read_csv(csv)
    assert list(runs.columns) == report.COLUMNS
    assert list(zip(runs["arm"], runs["instance"], runs["seed"])) == \
        [("ga", "f2", s) for s in range(10)] + [("ga-seed", "f2_seed1", 0),
                                                 ("ga-seed", "f2_seed1", 1),
                                                 ("ga-all", "f2_seed2", 0)]
    assert (tmp_path / "llome-f2-rounds.csv").exists()
    assert text.startswith("13 runs; missing from the protocol: llome-marge f2 seed 0, ")
    assert "ga f2_seed1 seed 0" in text and ", ga f2 seed" not in text
    # success is regret at or below 37/64, the level itself included
    assert (runs["success"] == (runs["final_regret"] <= 0.578125)).all()
    assert (runs["final_regret"] == 0.578125).any() and runs["success"].any()
    assert "regret <= 37/64" in text
    assert 0 <= runs["mean_regret"].min() and (runs["mean_regret"] >= runs["final_regret"]).all()
    assert (runs["solved_at"].notna() == (runs["final_regret"] == 0)).all()


def test_the_per_run_csv_must_say_it_holds_runs(tmp_path):
    with pytest.raises(ValueError, match="must end in runs.csv"):
        report.rounds_path(tmp_path / "table.csv")


def test_the_committed_results_are_what_the_published_csvs_give(tmp_path):
    """docs/llome-f2.md's results are the report of docs/llome-f2-runs.csv (and the per-round CSV
    beside it), as is; the corrections it states hold in the CSV."""
    csv = ROOT / "docs" / "llome-f2-runs.csv"
    out = tmp_path / "report.md"
    report.main([str(csv), "--markdown", str(out)])
    assert out.read_text().strip() in (ROOT / "docs" / "llome-f2.md").read_text()
    runs = pd.read_csv(csv)
    assert not report.missing(runs, report.PLANS)
    solved = runs[runs["final_regret"] == 0]
    assert ("ga", "f2_seed2", 1, 26_356) in set(zip(solved["arm"], solved["instance"],
                                                     solved["seed"], solved["solved_at"]))
    ga = runs[runs["arm"] == "ga"]
    assert (ga["success"].sum(), (ga["final_regret"] <= 0.578).sum()) == (11, 4)
