"""The pre-registered LLOME head-to-head (docs/llome-f2.md): its metrics per arm with bootstrap
intervals, its one-sided tests with Holm's correction, and LLOME's per-round diagnostics.

Usage: python benchmarks/llome_f2_report.py RUNS_DIR [--markdown OUT.md]

Every run is read through its manifest and trace (label, problem, seed, charged evaluations);
the measures are ``holo_bench.measures``'. Only finished runs count; the report says how many
each arm has, so a missing run is visible rather than silently dropped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, mannwhitneyu

from holo_bench.measures import best_so_far, charged_count, mean_regret, regret
from holo_bench.record import OPTIMIZER_DIR, find_runs, read_manifest
from holo_bench.trace import read_trace
from leaderboard.stats import holm

BUDGET = 28_000
THRESHOLD = 0.578  # regret at or below which a run counts as a success (the GA's lucky seeds)
LLOME = ["llome-marge", "llome-sft", "llome-marge-onpolicy"]
BASELINES = ["ga", "ga-seed", "llome-nolm"]
DESCRIPTIVE = ["ga-all"]  # the GA charged for every query: another accounting, not tested
# Comparisons beyond "each LLOME arm against each baseline": (better?, than).
BETWEEN = [("llome-marge", "llome-sft"), ("llome-marge-onpolicy", "llome-marge")]
METRICS = {"final_regret": "regret at 28,000", "mean_regret": "mean regret over 28,000",
           "success": f"regret <= {THRESHOLD}"}
BOOTSTRAP = 10_000
ALPHA = 0.05
DIAGNOSTICS = ["pairs", "parse_rate", "feasible_rate", "edit_distance", "diversity",
               "calibration_spearman", "ranking_accuracy", "train_reward_share", "train_ess",
               "train_max_weight", "train_clipped", "best_value", "train_seconds",
               "generate_seconds"]


def run_table(root) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per finished run (arm, problem, seed, the metrics, wall time), and one row per
    LLOME round it reported."""
    rows, rounds = [], []
    for folder in find_runs(root):
        manifest = read_manifest(folder)
        if manifest.status != "finished":
            continue
        _, records = read_trace(folder / "trace.bin")
        problem = manifest.problem
        curve = regret(best_so_far(records["value"], records["feasible"]),
                       problem.optimal_value, problem.worst_value)
        evaluations = charged_count(records["charged"])
        final = float(curve[evaluations <= BUDGET][-1])
        run = {"arm": manifest.label, "problem": manifest.run.problem, "seed": manifest.run.seed,
               "count": manifest.run.count}
        rows.append({**run, "final_regret": final, "success": final <= THRESHOLD + 1e-12,
                     "mean_regret": mean_regret(evaluations, curve, BUDGET,
                                                problem.optimal_value - problem.worst_value),
                     "seconds": manifest.seconds, "evaluations": manifest.evaluations})
        metrics = folder / OPTIMIZER_DIR / "metrics.jsonl"
        if metrics.exists():
            rounds += [{**run, **json.loads(line)} for line in metrics.read_text().splitlines()]
    return pd.DataFrame(rows), pd.DataFrame(rounds)


def bootstrap_interval(values: np.ndarray, statistic, rng: np.random.Generator,
                       other: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile 95% interval of ``statistic`` (of one sample, or of the difference between two
    samples resampled independently)."""
    draws = statistic(rng.choice(values, (BOOTSTRAP, len(values))), axis=1)
    if other is not None:
        draws = draws - statistic(rng.choice(other, (BOOTSTRAP, len(other))), axis=1)
    return tuple(np.quantile(draws, [0.025, 0.975]))


def statistic_of(metric: str):
    return np.mean if metric == "success" else np.median


def arm_summary(runs: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for arm, group in runs.groupby("arm", sort=False):
        row = {"arm": arm, "runs": len(group),
               "per problem": " / ".join(str(n) for n in group.groupby("problem").size())}
        for metric in METRICS:
            values = group[metric].to_numpy(dtype=float)
            low, high = bootstrap_interval(values, statistic_of(metric), rng)
            row[metric] = f"{statistic_of(metric)(values):.3f} [{low:.3f}, {high:.3f}]"
        row["median seconds"] = f"{group['seconds'].median():.0f}"
        rows.append(row)
    return pd.DataFrame(rows)


def tests(runs: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Every pre-registered comparison: H1 "the first arm is better" (lower regret, lower mean
    regret: one-sided Mann-Whitney U; more successes: one-sided Fisher exact), Holm-adjusted
    over the whole table, with a bootstrap interval of the difference (median, or fraction)."""
    pairs = [(a, b) for a in LLOME for b in BASELINES] + BETWEEN
    rows = []
    for better, than in pairs:
        x = runs[runs["arm"] == better]
        y = runs[runs["arm"] == than]
        if len(x) == 0 or len(y) == 0:
            continue
        for metric in METRICS:
            a, b = x[metric].to_numpy(dtype=float), y[metric].to_numpy(dtype=float)
            if metric == "success":
                table = [[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]]
                p = fisher_exact(table, alternative="greater").pvalue
            else:
                p = mannwhitneyu(a, b, alternative="less").pvalue
            low, high = bootstrap_interval(a, statistic_of(metric), rng, other=b)
            rows.append({"arm": better, "against": than, "metric": METRICS[metric],
                         "difference": statistic_of(metric)(a) - statistic_of(metric)(b),
                         "95% interval": f"[{low:.3f}, {high:.3f}]", "p": p})
    table = pd.DataFrame(rows)
    if len(table):
        table["p (Holm)"] = holm(table["p"].to_numpy())
        table["better at 0.05"] = table["p (Holm)"] < ALPHA
    return table


def markdown(frame: pd.DataFrame, number: str) -> str:
    """A markdown table; floats formatted with ``number``."""
    def cell(value):
        return number.format(value) if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--markdown", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    runs, rounds = run_table(args.root)
    rng = np.random.default_rng(0)
    order = [arm for arm in LLOME + BASELINES + DESCRIPTIVE if arm in set(runs["arm"])]
    runs = runs.set_index("arm").loc[order].reset_index()
    summary = arm_summary(runs, rng)
    comparisons = tests(runs[~runs["arm"].isin(DESCRIPTIVE)], rng)
    diagnostics = (rounds.groupby(["arm", "round"])[[c for c in DIAGNOSTICS if c in rounds]]
                   .median() if len(rounds) else pd.DataFrame())
    sections = [
        ("Per arm: median (success: fraction) and bootstrap 95% interval", summary, "{:}"),
        ("One-sided tests, Holm-adjusted over the table", comparisons, "{:.4g}"),
        ("LLOME per round (median over runs)", diagnostics.reset_index(), "{:.3f}"),
    ]
    text = []
    for title, frame, number in sections:
        text += [f"## {title}\n", markdown(frame, number) if len(frame) else "(none)", ""]
    print("\n".join(text))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(text))


if __name__ == "__main__":
    main()
