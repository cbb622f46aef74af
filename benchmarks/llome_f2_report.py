"""Summarize the LLOME f2 experiment (docs/llome-f2.md): regret at equal evaluations, wall
times, LLOME's per-round diagnostics. Usage: python benchmarks/llome_f2_report.py RUNS_DIR

Every run is read through its manifest (label, problem, seed), never from its folder's path.
"""

import json
import sys

import pandas as pd

from holo_bench.record import OPTIMIZER_DIR, find_runs, read_manifest
from leaderboard import load_runs

AT = [10_000, 12_000, 16_000, 20_000, 24_000, 28_000]  # charged evaluations
COLUMNS = [f"@{e}" for e in AT]
DIAGNOSTICS = ["parse_rate", "feasible_rate", "edit_distance", "diversity", "calibration_spearman",
               "best_value"]


def regret_at(frame: pd.DataFrame) -> pd.DataFrame:
    """Best-so-far regret of every run once it has been charged ``e`` evaluations, for ``e`` in
    ``AT`` (its final regret where it stopped earlier)."""
    keys = ["problem", "optimizer", "seed"]
    rows = [(*key, *(run.loc[run["evaluation"] <= e, "regret"].min() for e in AT))
            for key, run in frame.groupby(keys)]
    return pd.DataFrame(rows, columns=keys + COLUMNS)


def round_diagnostics(manifests: dict) -> pd.DataFrame:
    """One row per round an optimizer reported in its ``metrics.jsonl``, with its run's label
    (finished runs, as in the regret table)."""
    records = []
    for folder, manifest in manifests.items():
        metrics = folder / OPTIMIZER_DIR / "metrics.jsonl"
        if manifest.status == "finished" and metrics.exists():
            run = {"problem": manifest.run.problem, "optimizer": manifest.label}
            records += [{**json.loads(line), **run} for line in metrics.read_text().splitlines()]
    return pd.DataFrame(records)


def main(root: str) -> None:
    table = regret_at(load_runs(root))
    print("best-so-far regret per seed at equal evaluations")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print("\nmedian over seeds")
    print(table.groupby(["problem", "optimizer"])[COLUMNS].median()
          .to_string(float_format=lambda x: f"{x:.4f}"))
    manifests = {folder: read_manifest(folder) for folder in find_runs(root)}
    print("\nwall time per run (s)")
    for m in manifests.values():
        seconds = m.seconds if m.seconds is not None else float("nan")
        print(f"  {m.label:12s} {m.run.problem} seed {m.run.seed}: {seconds:.0f} s, "
              f"{m.evaluations} evaluations, status {m.status}")
    diagnostics = round_diagnostics(manifests)
    if len(diagnostics):
        print("\nLLOME per-round diagnostics (median over seeds)")
        print(diagnostics.groupby(["problem", "optimizer", "round"])[DIAGNOSTICS].median()
              .to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main(sys.argv[1])
