"""The baselines comparison's report (benchmarks/baselines_report.py): its tests against direct
computations, and the published CSV recomputing the store's numbers."""

import numpy as np
import pandas as pd
import pytest
from report_scripts import ROOT, load_report
from scipy.stats import mannwhitneyu

from harness.runner import make_job, run_job
from leaderboard.store import collect

report = load_report("baselines_report")


def runs_of(finals: dict) -> pd.DataFrame:
    return pd.DataFrame([{"problem": problem, "optimizer": optimizer, "seed": seed,
                          "final_regret": value}
                         for (problem, optimizer), values in finals.items()
                         for seed, value in enumerate(values)])


def test_tests_are_one_sided_against_both_references_with_holm_over_all():
    """Two problems; ``x`` only on the first. The raw p-values are scipy's "less" side; Holm
    multiplies the i-th smallest of the m tests by m - i + 1, in one family of both references."""
    rng = np.random.default_rng(0)
    finals = {("p", "ga"): rng.random(8) + 0.5, ("p", "ea-1p1"): rng.random(8) + 0.2,
              ("p", "x"): rng.random(8), ("q", "ga"): rng.random(8),
              ("q", "ea-1p1"): rng.random(8)}
    table = report.compare(runs_of(finals)).set_index(["problem", "optimizer"])
    tested = [("p", "x", "ga"), ("p", "x", "ea-1p1"), ("p", "ea-1p1", "ga"),
              ("p", "ga", "ea-1p1"), ("q", "ea-1p1", "ga"), ("q", "ga", "ea-1p1")]
    p = {(problem, optimizer, reference): mannwhitneyu(
        finals[(problem, optimizer)], finals[(problem, reference)], alternative="less").pvalue
        for problem, optimizer, reference in tested}
    order = sorted(p, key=p.get)
    expected, running = {}, 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * p[key]))
        expected[key] = running
    for (problem, optimizer, reference), value in expected.items():
        assert table.loc[(problem, optimizer), f"holm_{reference}"] == pytest.approx(value)
    assert np.isnan(table.loc[("p", "ga"), "holm_ga"])
    assert table.loc[("p", "x"), "diff_ga"] == pytest.approx(
        np.median(finals[("p", "x")]) - np.median(finals[("p", "ga")]))
    low, high = table.loc[("p", "x"), ["diff_ga_low", "diff_ga_high"]]
    assert low <= table.loc[("p", "x"), "diff_ga"] <= high


def test_the_published_csv_recomputes_the_stores_report(tmp_path):
    for optimizer in ("ga", "ea-1p1", "random"):
        for seed in range(3):
            job = make_job(optimizer, "smoke_ehrlich_tiny", seed, 60, tmp_path / "runs",
                           params={"num_particles": 20} if optimizer == "ga" else {})
            assert run_job(job).status == "finished"
    db = tmp_path / "store.sqlite"
    collect(tmp_path / "runs", db)
    csv = tmp_path / "runs.csv"
    report.main([str(db), "--csv", str(csv), "--markdown", str(tmp_path / "store.md")])
    report.main([str(csv), "--markdown", str(tmp_path / "csv.md")])
    text = (tmp_path / "store.md").read_text()
    assert text == (tmp_path / "csv.md").read_text()
    assert text.startswith("9 runs; 4 one-sided tests")
    published = pd.read_csv(csv)
    assert list(published.columns) == report.COLUMNS and len(published) == 9


@pytest.mark.parametrize("document, csv, options", [
    ("baselines.md", "baselines-runs.csv", []),
    ("nevergrad.md", "nevergrad-1000-runs.csv", ["--reference", "ga"]),
    ("nevergrad.md", "nevergrad-10000-runs.csv", ["--reference", "ga"]),
])
def test_the_committed_results_are_what_the_published_csv_gives(document, csv, options, tmp_path):
    """A comparison's results table is the report of its published per-run CSV, as is."""
    out = tmp_path / "report.md"
    report.main([str(ROOT / "docs" / csv), *options, "--markdown", str(out)])
    assert out.read_text().strip() in (ROOT / "docs" / document).read_text()


def test_an_archive_gives_the_stores_report_and_a_budget_picks_one_experiment(tmp_path):
    """The same runs read from their archive records: the same table; runs of another budget
    (another experiment in the same archive) are left out by ``--budget``; one reference alone."""
    from leaderboard.archive import archive

    for optimizer in ("ga", "random"):
        for seed in range(3):
            for budget in (60, 80):
                job = make_job(optimizer, "smoke_ehrlich_tiny", seed, budget, tmp_path / "runs",
                               params={"num_particles": 20} if optimizer == "ga" else {})
                assert run_job(job).status == "finished"
    db = tmp_path / "store.sqlite"
    collect(tmp_path / "runs", db)
    archive(tmp_path / "runs", tmp_path / "results")
    texts = []
    for source in (db, tmp_path / "results"):
        out = tmp_path / f"{source.name}.md"
        report.main([str(source), "--budget", "60", "--reference", "ga", "--markdown", str(out)])
        texts.append(out.read_text())
    assert texts[0] == texts[1]
    assert texts[0].startswith("6 runs; 1 one-sided tests")
    assert "difference to ea-1p1" not in texts[0]
