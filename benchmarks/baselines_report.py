"""The pre-registered comparisons of docs/baselines.md and docs/nevergrad.md: per arm and problem
the median final regret with its bootstrap interval, and the one-sided tests of "lower than the
reference" against each reference (``ga`` and ``ea-1p1`` by default) with Holm's correction over
all of them together.

Usage:
    python benchmarks/baselines_report.py SOURCE [--budget N] [--reference NAME ...]
        [--csv RUNS.csv] [--markdown OUT.md]

SOURCE is a results store (``holo-bench collect``: every run verified from its trace), an archive
folder (``holo-bench archive``: every record checked), or the per-run CSV this script writes from
either (``--csv``), so that anyone can recompute every number from the published CSV alone.
``--budget`` keeps the runs of that budget (an archive holds several experiments').
"""

from __future__ import annotations

import argparse
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

REFERENCES = ["ga", "ea-1p1"]
COLUMNS = ["optimizer", "problem", "seed", "budget", "count", "evaluations", "queries",
           "best_value", "final_regret", "evals_to_solve", "feasible_fraction",
           "distinct_fraction", "diversity", "seconds", "params", "trace_sha256"]


def read_runs(source: str | Path, budget: int | None = None) -> pd.DataFrame:
    """One row per run (``COLUMNS``), from a store, an archive or this script's CSV; only those
    of ``budget`` if given."""
    if str(source).endswith(".csv"):
        runs = pd.read_csv(source)
    else:
        from leaderboard.store import read_store, results_store

        with results_store(source) as db:
            runs = read_store(db)[0][COLUMNS]
    return runs if budget is None else runs[runs["budget"] == budget].reset_index(drop=True)


def compare(runs: pd.DataFrame, references: list[str] = REFERENCES) -> pd.DataFrame:
    """Per (problem, arm): seeds, median final regret and interval; per reference, the difference
    of medians with its interval and the Holm-adjusted p-value of "lower than the reference"
    (Holm over every test of the table, all references together)."""
    final = {key: group.sort_values("seed")["final_regret"].to_numpy(dtype=float)
             for key, group in runs.groupby(["problem", "optimizer"])}
    rows = []
    for (problem, optimizer), regret in sorted(final.items()):
        low, high = bootstrap_interval(regret, np.median)
        row = {"problem": problem, "optimizer": optimizer, "seeds": len(regret),
               "median": float(np.median(regret)), "low": low, "high": high}
        for reference in references:
            base = final.get((problem, reference))
            if base is None or optimizer == reference:
                row[f"p_{reference}"] = np.nan
                continue
            row[f"diff_{reference}"] = float(np.median(regret) - np.median(base))
            row[f"diff_{reference}_low"], row[f"diff_{reference}_high"] = \
                difference_interval(regret, base)
            row[f"p_{reference}"] = one_sided_p(regret, base)[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    names = [f"p_{reference}" for reference in references]
    adjusted = holm(table[names].to_numpy().T.ravel()).reshape(len(names), -1)
    for name, values in zip(names, adjusted):
        table[f"holm_{name[2:]}"] = values
    return table


def _cell(row: dict, reference: str) -> str:
    if row["optimizer"] == reference:
        return "(reference)"
    p = row[f"holm_{reference}"]
    if np.isnan(p):
        return ""
    d, low, high = (row[f"diff_{reference}{end}"] for end in ("", "_low", "_high"))
    mark = " **beats**" if p < ALPHA else ""
    return f"{d:+.4f} [{low:+.4f}, {high:+.4f}], p = {p:.3g}{mark}"


def markdown(table: pd.DataFrame, runs: pd.DataFrame, references: list[str] = REFERENCES) -> str:
    tests = int(table[[f"p_{reference}" for reference in references]].notna().sum().sum())
    lines = [f"{len(runs)} runs; {tests} one-sided tests, Holm-adjusted together at level "
             f"{ALPHA}. Final regret at the run's budget; intervals are 95% percentile bootstrap "
             f"intervals ({RESAMPLES:,} resamples, seed 0).", "",
             "| problem | optimizer | seeds | median final regret [95% CI] | "
             + " | ".join(f"difference to {r} [95% CI], Holm p (lower)" for r in references)
             + " |",
             "|---|---|---|---|" + "---|" * len(references)]
    for row in table.sort_values(["problem", "median", "optimizer"]).to_dict("records"):
        lines.append(f"| {row['problem']} | {row['optimizer']} | {row['seeds']} | "
                     f"{row['median']:.4f} [{row['low']:.4f}, {row['high']:.4f}] | "
                     + " | ".join(_cell(row, r) for r in references) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a results store (.sqlite), an archive folder, or this "
                        "script's per-run CSV")
    parser.add_argument("--budget", type=int, help="only the runs of this budget")
    parser.add_argument("--reference", action="append",
                        help=f"test against this arm, repeatable (default: {' '.join(REFERENCES)})")
    parser.add_argument("--csv", help="write the per-run CSV here")
    parser.add_argument("--markdown", help="write the table here (default: print it)")
    args = parser.parse_args(argv)
    references = args.reference or REFERENCES
    runs = read_runs(args.source, args.budget)
    if args.csv:
        runs.sort_values(["problem", "optimizer", "seed"]).to_csv(args.csv, index=False)
    text = markdown(compare(runs, references), runs, references)
    if args.markdown:
        Path(args.markdown).write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
