"""The quality regression gate: rerun a fixed, seeded grid and compare it with a baseline.

The grid (``[regression.<name>]`` in ``holo_bench/suites.toml``) runs through the same runner as
any benchmark; every run is verified before its numbers are used, and the verdict comes from
``leaderboard.regress.compare``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.executors import run_grid
from harness.runner import make_job
from holo_bench.suite import regression_suites
from leaderboard.regress import ALPHA, compare
from optimizers.registry import make_optimizer


def suite_definition(name: str) -> dict:
    suites = regression_suites()
    if name not in suites:
        raise ValueError(f"unknown regression suite {name!r}; known: {sorted(suites)}")
    return suites[name]


def run_suite(definition: dict, out: str | os.PathLike, overrides: dict | None = None,
              workers: int | None = None, progress: bool = False) -> dict:
    """Run the grid (``overrides``: extra parameters per optimizer) and return per optimizer and
    problem the per-seed final regrets and evaluations, from verified run folders."""
    overrides = overrides or {}
    jobs = [
        make_job(optimizer, problem, seed, definition["budget"], out,
                 params={**definition["params"].get(optimizer, {}), **overrides.get(optimizer, {})},
                 count=definition["count"])
        for optimizer in definition["optimizers"] for problem in definition["problems"]
        for seed in definition["seeds"]
    ]
    results: dict = {}
    for job, result in zip(jobs, run_grid(jobs, workers=workers, progress=progress)):
        run = job.run
        if result.status != "finished":
            raise RuntimeError(f"{run.optimizer} on {run.problem} seed {run.seed} {result.status}: "
                               f"{result.reason}")
        verified = result.manifest
        by_problem = results.setdefault(run.optimizer, {})
        if run.problem not in by_problem:  # the configured optimizer, built once, not per seed
            deterministic = bool(make_optimizer(run.optimizer, run.params).deterministic)
            by_problem[run.problem] = {"deterministic": deterministic, "regret": [],
                                       "evaluations": []}
        entry = by_problem[run.problem]
        entry["regret"].append(verified.regret)
        entry["evaluations"].append(verified.evaluations)
    return results


def regress(suite: str, baseline_path: str | os.PathLike, out: str | os.PathLike,
            update: bool = False, overrides: dict | None = None, statistical: bool = False,
            alpha: float = ALPHA, workers: int | None = None) -> tuple[bool, list[str]]:
    """Run ``suite`` and compare with the baseline (or write it, with ``update``).

    Returns (passed, report lines)."""
    definition = suite_definition(suite)
    results = run_suite(definition, out, overrides, workers)
    baseline_path = Path(baseline_path)
    if update:
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        baseline_path.write_text(json.dumps(
            {"suite": suite, "definition": definition, "alpha": alpha, "results": results},
            indent=1, sort_keys=True) + "\n")
        return True, [f"baseline written to {baseline_path}"]
    if not baseline_path.exists():
        raise ValueError(f"no baseline at {baseline_path}; create it with --update-baseline")
    baseline = json.loads(baseline_path.read_text())
    if baseline["definition"] != json.loads(json.dumps(definition)):
        return False, [f"the baseline was made for another definition of suite {suite!r}: "
                       f"{baseline['definition']} != {definition}; rerun with --update-baseline"]
    lines = compare(baseline, results, alpha=alpha, statistical=statistical)
    return not lines, lines
