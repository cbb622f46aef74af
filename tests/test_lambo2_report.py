"""LaMBO-2's comparison report (benchmarks/lambo2_report.py): the protocol's runs picked from a
shared store, its tests against direct computations, and the published CSV recomputing the
store's numbers."""


import numpy as np
import pandas as pd
import pytest
from report_scripts import ROOT, load_report
from scipy.stats import mannwhitneyu

from harness.runner import make_job, run_job
from leaderboard.archive import archive
from leaderboard.store import collect

report = load_report("lambo2_report")


def runs_of(finals: dict) -> pd.DataFrame:
    return pd.DataFrame([{"arm": arm, "instance": report.INSTANCES[seed % 3], "seed": seed,
                          "final_regret": value, "seconds": 1.0, "rounds": np.nan}
                         for arm, values in finals.items() for seed, value in enumerate(values)])


def test_six_one_sided_tests_holm_adjusted_together_give_the_ordering():
    rng = np.random.default_rng(1)
    finals = {"lambo2": rng.random(8) * 0.3, "llome-marge": rng.random(8) * 0.3 + 0.05,
              "llome-nolm": rng.random(30) + 0.4, "ga": rng.random(30) * 0.3 + 0.02}
    table = report.tests(runs_of(finals)).set_index("against")
    p = {(other, side): mannwhitneyu(finals["lambo2"], finals[other], alternative=side).pvalue
         for other in ("llome-marge", "llome-nolm", "ga") for side in ("less", "greater")}
    order, expected, running = sorted(p, key=p.get), {}, 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * p[key]))
        expected[key] = running
    for (other, side), value in expected.items():
        column = "holm_lower" if side == "less" else "holm_higher"
        assert table.loc[other, column] == pytest.approx(value)
    assert table.loc["llome-nolm", "ordering"] == "lambo2 lower"  # p ~ 1e-6, times 6
    assert table.loc["llome-marge", "ordering"] == "no evidence"
    assert table.loc["ga", "difference"] == pytest.approx(
        np.median(finals["lambo2"]) - np.median(finals["ga"]))
    assert table.loc["ga", "low"] <= table.loc["ga", "difference"] <= table.loc["ga", "high"]


def test_the_protocols_runs_are_picked_from_a_shared_store_and_the_csv_recomputes_them(
        tmp_path):
    """Only ga's default runs at 28,000 distinct evaluations on f2's instances, seeds 0-9, count;
    the protocol's other runs are named as missing."""
    grid = [("ga", "f2", 0, 28_000, {}), ("ga", "f2_seed2", 1, 28_000, {}),
            ("ga", "f2", 1, 28_000, {"num_particles": 500}),  # other parameters
            ("ga", "f2", 2, 2_000, {}),  # another budget
            ("ga", "f2", 10, 28_000, {}),  # not a protocol seed
            ("ga", "ehr_v-32_l-032_m-4_c-4_q-2", 0, 28_000, {}),  # another problem
            ("random", "f2", 0, 28_000, {})]  # another optimizer
    for optimizer, problem, seed, budget, params in grid:
        job = make_job(optimizer, problem, seed, budget, tmp_path / "runs", params=params)
        assert run_job(job).status == "finished"
    db = tmp_path / "store.sqlite"
    collect(tmp_path / "runs", db)
    csv = tmp_path / "runs.csv"
    report.main([str(db), "--csv", str(csv), "--markdown", str(tmp_path / "store.md")])
    report.main([str(csv), "--markdown", str(tmp_path / "csv.md")])
    archive(tmp_path / "runs", tmp_path / "results")
    report.main([str(tmp_path / "results"), "--markdown", str(tmp_path / "archive.md")])
    text = (tmp_path / "store.md").read_text()
    assert text == (tmp_path / "csv.md").read_text() == (tmp_path / "archive.md").read_text()
    published = pd.read_csv(csv)
    assert list(published.columns) == report.COLUMNS
    assert sorted(zip(published["arm"], published["instance"], published["seed"])) == \
        [("ga", "f2", 0), ("ga", "f2_seed2", 1)]
    assert text.startswith("2 runs; missing from the protocol: lambo2 f2 seed 0, ")
    assert "ga f2 seed 1," in text and "ga f2_seed2 seed 1," not in text
    assert "| ga | 2 (1 / 0 / 1) |" in text



def test_the_committed_results_are_what_the_published_csv_gives(tmp_path):
    """docs/lambo2.md's results are the report of docs/lambo2-runs.csv, as is."""
    out = tmp_path / "report.md"
    report.main([str(ROOT / "docs" / "lambo2-runs.csv"), "--markdown", str(out)])
    assert out.read_text().strip() in (ROOT / "docs" / "lambo2.md").read_text()
