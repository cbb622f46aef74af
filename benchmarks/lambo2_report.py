"""The pre-registered comparison of docs/lambo2.md: LaMBO-2 (``cpu`` preset) against ``ga``,
``llome-marge`` and ``llome-nolm`` on f2's family, with LaMBO-2's seconds per round.

Usage:
    python benchmarks/lambo2_report.py SOURCE [--csv RUNS.csv] [--markdown OUT.md]

SOURCE is a results store (``holo-bench collect``: every run verified from its trace) or an
archive (``holo-bench archive``: every record checked), from which the protocol's runs are picked
by optimizer, parameters, instance, seed, budget and counting rule (it may hold other runs), or
the per-run CSV this script writes from either (``--csv``), so that anyone can recompute every
number from the published CSV alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from leaderboard.stats import (
    ALPHA,
    RESAMPLES,
    bootstrap_interval,
    difference_interval,
    holm,
    one_sided_p,
)
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

# arm: (the parameters set, every other at its default; the (instance, seeds) of its runs)
ARMS = {"lambo2": ({"preset": "cpu"}, EIGHT), "llome-marge": (LLOME_SETTINGS, EIGHT),
        "llome-nolm": (LLOME_SETTINGS, THIRTY), "ga": ({}, THIRTY)}
PLANS = {arm: seeds for arm, (_, seeds) in ARMS.items()}
SUBJECT = "lambo2"
COLUMNS = ["arm", "instance", "seed", "evaluations", "best_value", "final_regret", "seconds",
           "rounds", "train_seconds_per_round", "generate_seconds_per_round", "trace_sha256"]


def select(source: str | Path) -> pd.DataFrame:
    """The protocol's runs in a store or an archive, one row per run (``COLUMNS``), with the
    per-round seconds from each run's ``metrics.jsonl`` (mean over its rounds). Runs of other
    parameters, budgets, counting rules, instances or seeds are left out."""
    from leaderboard.store import read_store, results_store

    with results_store(source) as db:
        runs, _, _, rounds = read_store(db)
    runs = runs.assign(instance=runs["spec"].map(instance_names()))
    runs = runs[runs["instance"].notna() & (runs["budget"] == BUDGET) & (runs["count"] == COUNT)]
    picked = []
    for arm, (params, seeds) in ARMS.items():
        config = make_optimizer(arm, params).config()
        mine = runs[runs["optimizer"] == arm]
        keep = np.array([json.loads(p) == config and seed in seeds[instance]
                         for p, instance, seed in zip(mine["params"], mine["instance"],
                                                      mine["seed"])], dtype=bool)
        picked.append(mine.loc[keep].assign(arm=arm))
    table = pd.concat(picked, ignore_index=True)
    if len(rounds):
        seconds = (rounds.groupby(["optimizer", "config", "seed", "problem"])
                   .agg(rounds=("round", "size"), train_seconds_per_round=("train_seconds", "mean"),
                        generate_seconds_per_round=("generate_seconds", "mean")).reset_index())
        table = table.merge(seconds, how="left", on=["optimizer", "config", "seed", "problem"])
    else:
        table = table.assign(rounds=np.nan, train_seconds_per_round=np.nan,
                             generate_seconds_per_round=np.nan)
    return table[COLUMNS].sort_values(["arm", "instance", "seed"]).reset_index(drop=True)


def read_runs(source: str | Path) -> pd.DataFrame:
    return pd.read_csv(source) if str(source).endswith(".csv") else select(source)


def arms(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: runs (per instance), median final regret and its bootstrap interval."""
    rows = []
    for arm in ARMS:
        group = runs[runs["arm"] == arm]
        regret = group.sort_values(["instance", "seed"])["final_regret"].to_numpy(dtype=float)
        low, high = bootstrap_interval(regret, np.median)
        per = " / ".join(str((group["instance"] == i).sum()) for i in INSTANCES)
        rows.append({"arm": arm, "runs": len(group), "per instance": per,
                     "median": float(np.median(regret)) if len(regret) else np.nan,
                     "low": low, "high": high, "solved": int((regret == 0).sum())})
    return pd.DataFrame(rows)


def tests(runs: pd.DataFrame) -> pd.DataFrame:
    """Against each other arm, "LaMBO-2 lower" and "LaMBO-2 higher" (one-sided Mann-Whitney U),
    all six Holm-adjusted together; the difference of medians with its bootstrap interval."""
    def regret(arm):
        group = runs[runs["arm"] == arm].sort_values(["instance", "seed"])
        return group["final_regret"].to_numpy(dtype=float)

    x, rows = regret(SUBJECT), []
    for other in (arm for arm in ARMS if arm != SUBJECT):
        y = regret(other)
        lower, higher = one_sided_p(x, y)
        low, high = difference_interval(x, y) if len(x) and len(y) else (np.nan, np.nan)
        difference = np.median(x) - np.median(y) if len(x) and len(y) else np.nan
        rows.append({"against": other, "difference": float(difference),
                     "low": low, "high": high, "p_lower": lower, "p_higher": higher})
    table = pd.DataFrame(rows)
    adjusted = holm(table[["p_lower", "p_higher"]].to_numpy().ravel()).reshape(-1, 2)
    table["holm_lower"], table["holm_higher"] = adjusted[:, 0], adjusted[:, 1]
    table["ordering"] = np.where(table["holm_lower"] < ALPHA, f"{SUBJECT} lower",
                                 np.where(table["holm_higher"] < ALPHA, f"{SUBJECT} higher",
                                          "no evidence"))
    return table


def cost(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm with per-round seconds: the median over runs of each run's mean seconds a round."""
    timed = runs[runs["rounds"].notna()]
    return (timed.groupby("arm", sort=False)
            .agg(runs=("seed", "size"), rounds=("rounds", "median"),
                 train=("train_seconds_per_round", "median"),
                 generate=("generate_seconds_per_round", "median"),
                 run_seconds=("seconds", "median"))
            .reset_index())


def markdown(runs: pd.DataFrame) -> str:
    gaps = missing(runs, PLANS)
    lines = [f"{len(runs)} runs; missing from the protocol: {', '.join(gaps) or 'none'}. Final "
             f"regret at {BUDGET:,} charged evaluations ({COUNT}); intervals are 95% percentile "
             f"bootstrap intervals ({RESAMPLES:,} resamples, seed 0).", "",
             "| arm | runs (f2 / f2_seed1 / f2_seed2) | median final regret [95% CI] | solved |",
             "|---|---|---|---|"]
    for row in arms(runs).to_dict("records"):
        lines.append(f"| {row['arm']} | {row['runs']} ({row['per instance']}) | "
                     f"{row['median']:.4f} [{row['low']:.4f}, {row['high']:.4f}] | "
                     f"{row['solved']} |")
    lines += ["", f"Six one-sided Mann-Whitney U tests, Holm-adjusted together at level {ALPHA}:",
              "", f"| {SUBJECT} against | difference of medians [95% CI] | Holm p ({SUBJECT} "
              f"lower) | Holm p ({SUBJECT} higher) | ordering |", "|---|---|---|---|---|"]
    for row in tests(runs).to_dict("records"):
        lines.append(f"| {row['against']} | {row['difference']:+.4f} [{row['low']:+.4f}, "
                     f"{row['high']:+.4f}] | {row['holm_lower']:.3g} | {row['holm_higher']:.3g} "
                     f"| {row['ordering']} |")
    lines += ["", "Seconds per round after the seed phase (median over runs of each run's mean; "
              "one torch thread, runs two at a time on 2 cores):", "",
              "| arm | runs | rounds | training s | generation s | whole run s |",
              "|---|---|---|---|---|---|"]
    for row in cost(runs).to_dict("records"):
        lines.append(f"| {row['arm']} | {row['runs']} | {row['rounds']:.0f} | {row['train']:.1f} "
                     f"| {row['generate']:.1f} | {row['run_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a results store (.sqlite) or this script's per-run CSV")
    parser.add_argument("--csv", help="write the per-run CSV here (from a store)")
    parser.add_argument("--markdown", help="write the tables here (default: print them)")
    args = parser.parse_args(argv)
    runs = read_runs(args.source)
    if args.csv:
        runs.to_csv(args.csv, index=False)
    text = markdown(runs)
    if args.markdown:
        Path(args.markdown).write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
