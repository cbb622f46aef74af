"""The pre-registered LLOME head-to-head (docs/llome-f2.md): its metrics per arm with bootstrap
intervals, its one-sided tests with Holm's correction, and LLOME's per-round diagnostics.

Usage:
    python benchmarks/llome_f2_report.py SOURCE [--csv RUNS.csv] [--markdown OUT.md]

SOURCE is an archive (``holo-bench archive RUNS --into DIR``: every record verified), from which
the protocol's runs are picked by arm (label), parameters, instance, seed, budget and counting
rule (the archive may hold other runs), or the per-run CSV this script writes from one
(``--csv RUNS.csv``, which must end in ``runs.csv``; the per-round diagnostics go beside it, in
the same name ending in ``rounds.csv``), so that anyone can recompute every number from the
published CSVs alone. A protocol run missing from SOURCE is named, not silently dropped.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, mannwhitneyu

from holo_bench.measures import mean_regret, regret
from leaderboard.archive import find_records, read_record
from leaderboard.stats import bootstrap_interval, difference_interval, holm
from optimizers.registry import make_optimizer

from llome_f2_protocol import (
    BUDGET,
    COUNT,
    EIGHT,
    INSTANCES,
    LLOME_SETTINGS,
    THIRTY,
    instance_names,
    missing,
)

# A run succeeds at regret 37/64 or below: the quantized level the GA's luckiest third of seeds
# reaches (three motifs at 3 of 4 elements and one whole: 1 - (3/4)^3), compared exactly.
THRESHOLD = Fraction(37, 64)
# arm (its label): optimizer, parameters set (every other at its default), counting rule, runs
ARMS = {
    "llome-marge": ("llome-marge", LLOME_SETTINGS, COUNT, EIGHT),
    "llome-sft": ("llome-sft", LLOME_SETTINGS, COUNT, EIGHT),
    "llome-marge-onpolicy": ("llome-marge-onpolicy", LLOME_SETTINGS, COUNT, EIGHT),
    "ga": ("ga", {}, COUNT, THIRTY),
    "ga-seed": ("ga", {"num_particles": 1000, "mutation_prob": 0.005, "recombine_prob": 0.0882,
                       "survival_quantile": 0.1}, COUNT, THIRTY),
    "llome-nolm": ("llome-nolm", LLOME_SETTINGS, COUNT, THIRTY),
    "ga-all": ("ga", {}, "all", THIRTY),
}
PLANS = {arm: seeds for arm, (_, _, _, seeds) in ARMS.items()}
LLOME = ["llome-marge", "llome-sft", "llome-marge-onpolicy"]
BASELINES = ["ga", "ga-seed", "llome-nolm"]
DESCRIPTIVE = ["ga-all"]  # the GA charged for every query: another accounting, not tested
# Comparisons beyond "each LLOME arm against each baseline": (better?, than).
BETWEEN = [("llome-marge", "llome-sft"), ("llome-marge-onpolicy", "llome-marge")]
METRICS = {"final_regret": "regret at 28,000", "mean_regret": "mean regret over 28,000",
           "success": f"regret <= {THRESHOLD}"}
ALPHA = 0.05
DIAGNOSTICS = ["pairs", "parse_rate", "feasible_rate", "edit_distance", "diversity",
               "calibration_spearman", "ranking_accuracy", "train_reward_share", "train_ess",
               "train_max_weight", "train_clipped", "best_value", "train_seconds",
               "generate_seconds"]
COLUMNS = ["arm", "instance", "seed", "count", "evaluations", "final_regret", "mean_regret",
           "success", "solved_at", "seconds", "digest"]


def run_table(archive) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The protocol's runs in an archive: one row per run (``COLUMNS``), and one row per round
    its optimizer reported."""
    names = instance_names()
    configs = {arm: make_optimizer(name, params).config()
               for arm, (name, params, _, _) in ARMS.items()}
    rows, rounds = [], []
    for path in find_records(archive):
        record, manifest = read_record(path)
        arm, run = manifest.label, manifest.run
        instance = names.get(manifest.problem.spec)
        if (arm not in ARMS or instance is None or run.budget != BUDGET
                or (run.optimizer, run.params, run.count) != (ARMS[arm][0], configs[arm],
                                                              ARMS[arm][2])
                or run.seed not in ARMS[arm][3][instance]):
            continue
        problem = manifest.problem
        evaluations = np.asarray(record["improvements"]["evaluations"], dtype=np.int64)
        curve = regret(np.asarray(record["improvements"]["values"], dtype=float),
                       problem.optimal_value, problem.worst_value)
        start = problem.optimal_value - problem.worst_value
        reached = curve[evaluations <= BUDGET]
        final = float(reached[-1]) if len(reached) else start
        solved = evaluations[(evaluations <= BUDGET) & (curve == 0)]
        key = {"arm": arm, "instance": instance, "seed": run.seed}
        rows.append({**key, "count": run.count, "evaluations": manifest.evaluations,
                     "final_regret": final,
                     "mean_regret": mean_regret(evaluations, curve, BUDGET, start),
                     "success": final <= THRESHOLD,
                     "solved_at": int(solved[0]) if len(solved) else None,
                     "seconds": manifest.seconds,
                     "digest": record["digest"]})
        rounds += [{**key, **{name: entry.get(name) for name in ["round", *DIAGNOSTICS]}}
                   for entry in record["rounds"]]
    runs = pd.DataFrame(rows, columns=COLUMNS)
    rounds = pd.DataFrame(rounds, columns=["arm", "instance", "seed", "round", *DIAGNOSTICS])
    return in_order(runs, ["instance", "seed"]), in_order(rounds, ["instance", "seed", "round"])


def in_order(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows by arm in the protocol's order, then by ``keys``."""
    rank = frame["arm"].map({arm: i for i, arm in enumerate(ARMS)})
    return (frame.assign(rank=rank).sort_values(["rank", *keys]).drop(columns="rank")
            .reset_index(drop=True))


def read_tables(source) -> tuple[pd.DataFrame, pd.DataFrame]:
    if str(source).endswith(".csv"):
        return pd.read_csv(source), pd.read_csv(rounds_path(source))
    return run_table(source)


def rounds_path(runs_csv) -> Path:
    if not str(runs_csv).endswith("runs.csv"):
        raise ValueError(f"{runs_csv}: the per-run CSV's name must end in runs.csv (the per-round "
                         f"CSV beside it ends in rounds.csv)")
    return Path(str(runs_csv)[:-len("runs.csv")] + "rounds.csv")


def statistic_of(metric: str):
    return np.mean if metric == "success" else np.median


def arm_summary(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for arm, group in runs.groupby("arm", sort=False):
        row = {"arm": arm, "runs": len(group),
               "per instance": " / ".join(str((group["instance"] == i).sum()) for i in INSTANCES)}
        for metric in METRICS:
            values = group[metric].to_numpy(dtype=float)
            low, high = bootstrap_interval(values, statistic_of(metric))
            row[METRICS[metric]] = f"{statistic_of(metric)(values):.3f} [{low:.3f}, {high:.3f}]"
        row["median seconds"] = f"{group['seconds'].median():.0f}"
        rows.append(row)
    return pd.DataFrame(rows)


def per_instance(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm and instance: median regret at 28,000, successes, and runs that reached the
    optimum (regret 0), with the charged evaluations at which each did."""
    rows = []
    for (arm, instance), group in runs.groupby(["arm", "instance"], sort=False):
        regrets = group["final_regret"].to_numpy(dtype=float)
        at = ", ".join(f"{int(e):,}" for e in sorted(group["solved_at"].dropna()))
        rows.append({"arm": arm, "instance": instance, "runs": len(group),
                     "median regret": f"{np.median(regrets):.3f}",
                     "successes": f"{int(group['success'].sum())}/{len(group)}",
                     "solved": f"{int((regrets == 0).sum())}/{len(group)}"
                               + (f" (at {at})" if at else "")})
    return pd.DataFrame(rows)


def tests(runs: pd.DataFrame) -> pd.DataFrame:
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
            low, high = difference_interval(a, b, statistic_of(metric))
            rows.append({"arm": better, "against": than, "metric": METRICS[metric],
                         "difference": statistic_of(metric)(a) - statistic_of(metric)(b),
                         "95% interval": f"[{low:.3f}, {high:.3f}]", "p": p})
    table = pd.DataFrame(rows)
    if len(table):
        table["p (Holm)"] = holm(table["p"].to_numpy())
        table["better at 0.05"] = table["p (Holm)"] < ALPHA
    return table


def markdown(frame: pd.DataFrame, number: str) -> str:
    """A markdown table; floats formatted with ``number``, a missing value left blank."""
    def cell(value):
        if isinstance(value, float):
            return "" if np.isnan(value) else number.format(value)
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="an archive folder, or this script's per-run CSV")
    parser.add_argument("--csv", help="write the per-run CSV here (its name ending in runs.csv) "
                        "and the per-round one beside it")
    parser.add_argument("--markdown", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    runs, rounds = read_tables(args.source)
    if args.csv:
        runs.to_csv(args.csv, index=False)
        rounds.to_csv(rounds_path(args.csv), index=False)
    comparisons = tests(runs[~runs["arm"].isin(DESCRIPTIVE)])
    diagnostics = (rounds.groupby(["arm", "round"], sort=False)
                   [[c for c in DIAGNOSTICS if rounds[c].notna().any()]].median()
                   if len(rounds) else pd.DataFrame())
    gaps = missing(runs, PLANS)
    sections = [
        ("Per arm: median (success: fraction) and bootstrap 95% interval", arm_summary(runs),
         "{:}"),
        ("Per instance", per_instance(runs), "{:}"),
        ("One-sided tests, Holm-adjusted over the table", comparisons, "{:.4g}"),
        ("LLOME per round (median over runs)", diagnostics.reset_index(), "{:.3f}"),
    ]
    text = [f"{len(runs)} runs; missing from the protocol: {', '.join(gaps) or 'none'}.", ""]
    for title, frame, number in sections:
        text += [f"### {title}\n", markdown(frame, number) if len(frame) else "(none)", ""]
    print("\n".join(text))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(text))


if __name__ == "__main__":
    main()
