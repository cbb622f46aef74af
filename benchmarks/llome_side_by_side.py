"""One LLOME-MargE run of f2 at the head-to-head's settings, by two commits of this repository at
once: wall time, its split into training, generation and the rest, and whether both asked the
same queries.

The two runs start together, one torch thread each, so that they share the machine's conditions
(run it on a machine with at least two otherwise idle cores). The code of ``--before`` is checked
out into a git worktree under ``--out``; the other run uses this checkout. Prints a markdown table
and writes it as JSON to ``OUT/side-by-side.json``:

    .venv/bin/python benchmarks/llome_side_by_side.py --before d8aa1f0 --out runs/side-by-side
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from holo_bench.record import find_runs, read_manifest
from holo_bench.trace import read_trace
from leaderboard.archive import query_digest

REPO = Path(__file__).resolve().parent.parent
RUN = ["run", "--optimizer", "llome-marge", "--problem", "f2", "--seeds", "0", "--budget", "28000",
       "--set", "samples=2", "--set", "max_pairs=4096", "--quiet", "--no-page"]


def checkout(commit: str, folder: Path) -> Path:
    """The repository at ``commit`` in ``folder`` (a detached worktree, made once)."""
    if not folder.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), commit],
                       check=True, capture_output=True)
    return folder


def summary(out: Path) -> dict:
    """Wall time, phases and query digest of the one run under ``out``."""
    (folder,) = find_runs(out)
    manifest = read_manifest(folder)
    if manifest.status != "finished":
        raise RuntimeError(f"{folder}: {manifest.status} ({manifest.error})")
    rounds = [json.loads(line)
              for line in (folder / "optimizer" / "metrics.jsonl").read_text().splitlines()]
    train = sum(r["train_seconds"] for r in rounds)
    generate = sum(r["generate_seconds"] for r in rounds)
    return {"seconds": manifest.seconds, "train_seconds": train, "generate_seconds": generate,
            "other_seconds": manifest.seconds - train - generate,
            "first_round_train_seconds": rounds[0]["train_seconds"],
            "generated_tokens_per_second": sum(r["generated_tokens"] for r in rounds) / generate,
            "regret": manifest.regret, "rounds": len(rounds),
            "digest": query_digest(read_trace(folder / "trace.bin")[1])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="d8aa1f0", help="the commit to compare with")
    parser.add_argument("--out", type=Path, default=Path("runs/side-by-side"))
    args = parser.parse_args(argv)
    out = args.out.resolve()
    code = {"before": checkout(args.before, out / "before-code"), "after": REPO}
    runs = {name: subprocess.Popen(
                [sys.executable, "-m", "harness.cli", *RUN, "--out", str(out / name)], cwd=root,
                env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)})
            for name, root in code.items()}
    for name, process in runs.items():
        if process.wait():
            raise SystemExit(f"the {name} run failed (exit {process.returncode})")
    results = {name: summary(out / name) for name in runs}
    results["same_queries"] = results["before"]["digest"] == results["after"]["digest"]
    (out / "side-by-side.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| code | run s | training s (round 1) | generation s | other s | generated tokens/s |")
    print("|---|---|---|---|---|---|")
    for name in code:
        r = results[name]
        print(f"| {name} | {r['seconds']:.1f} | {r['train_seconds']:.1f} "
              f"({r['first_round_train_seconds']:.1f}) | {r['generate_seconds']:.1f} | "
              f"{r['other_seconds']:.1f} | {r['generated_tokens_per_second']:,.0f} |")
    print(f"same queries (trace digests): {results['same_queries']}")


if __name__ == "__main__":
    main()
