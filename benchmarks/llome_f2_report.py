"""Summarize the LLOME f2 experiment (docs/llome-f2.md): regret at equal evaluations, wall
times, LLOME's per-round diagnostics. Usage: python benchmarks/llome_f2_report.py RUNS_DIR"""
import json
import sys
from pathlib import Path

import pandas as pd

from leaderboard import load_runs

root = Path(sys.argv[1])
frame = load_runs(root)
at = [10_000, 12_000, 16_000, 20_000, 24_000, 28_000]
rows = []
for (opt, seed), g in frame.groupby(["optimizer", "seed"]):
    regret = g["regret"].to_numpy()
    rows.append({"optimizer": opt, "seed": seed, **{f"@{e}": regret[min(e, len(regret)) - 1] for e in at}})
table = pd.DataFrame(rows)
print("best-so-far regret per seed at equal evaluations")
print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
print("\nmedian over seeds")
print(table.groupby("optimizer")[[f"@{e}" for e in at]].median().to_string(float_format=lambda x: f"{x:.4f}"))
print("\nwall time per run (s)")
for manifest in sorted(root.rglob("manifest.json")):
    m = json.loads(manifest.read_text())
    print(f"  {m['label']:12s} seed {m['job']['seed']}: {m.get('seconds', float('nan')):.0f} s, {m.get('evaluations')} evaluations, status {m['status']}")
print("\nLLOME per-round diagnostics (median over seeds)")
records = []
for path in root.rglob("metrics.jsonl"):
    opt = path.parts[-5]
    for line in path.read_text().splitlines():
        r = json.loads(line); r["optimizer"] = opt; records.append(r)
diag = pd.DataFrame(records)
cols = ["parse_rate", "feasible_rate", "edit_distance", "diversity", "calibration_spearman", "best_value"]
print(diag.groupby(["optimizer", "round"])[cols].median().to_string(float_format=lambda x: f"{x:.3f}"))
