"""The quality regression gate: rerun a fixed, seeded grid and compare it with a baseline.

Each (optimizer, problem) is compared seed by seed with the committed baseline: exactly when the
configured optimizer is deterministic (``Optimizer.deterministic``), which is the default;
otherwise (or with ``statistical=True``) with a one-sided Mann-Whitney U test of "runs are now
worse" at level ``alpha`` (default 0.01). A run's score, lower is better, is its final regret, or
for a run that solved the problem ``evaluations / budget - 1`` (in [-1, 0): solving sooner is
better). Every run is verified before its numbers are used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from holo_bench.executors import run_grid
from holo_bench.runner import Job
from holo_bench.suite import regression_suites
from leaderboard.verify import verify_run
from optimizers.registry import make_optimizer

ALPHA = 0.01


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
        Job(optimizer=optimizer, problem=problem, seed=seed, budget=definition["budget"], out=str(out),
            params={**definition["params"].get(optimizer, {}), **overrides.get(optimizer, {})})
        for optimizer in definition["optimizers"] for problem in definition["problems"]
        for seed in definition["seeds"]
    ]
    manifests = run_grid(jobs, workers=workers, progress=progress)
    results: dict = {}
    for job, manifest in zip(jobs, manifests):
        if manifest["status"] != "finished":
            raise RuntimeError(f"{job.optimizer} on {job.problem} seed {job.seed} failed: {manifest['error']}")
        verified = verify_run(job.folder).manifest
        by_problem = results.setdefault(job.optimizer, {})
        if job.problem not in by_problem:  # the configured optimizer, built once, not per seed
            deterministic = bool(make_optimizer(job.optimizer, job.params).deterministic)
            by_problem[job.problem] = {"deterministic": deterministic, "regret": [], "evaluations": []}
        entry = by_problem[job.problem]
        entry["regret"].append(verified["regret"])
        entry["evaluations"].append(verified["evaluations"])
    return results


def score(regret: np.ndarray, evaluations: np.ndarray, budget: int) -> np.ndarray:
    """Lower is better: the final regret, or ``evaluations / budget - 1`` for a solved run."""
    regret, evaluations = np.asarray(regret, dtype=float), np.asarray(evaluations, dtype=float)
    return np.where(regret > 0, regret, evaluations / budget - 1)


def compare(baseline: dict, results: dict, alpha: float = ALPHA, statistical: bool = False) -> list[str]:
    """Readable lines, one per regression; empty when nothing got worse (or changed, when exact)."""
    problems = []
    for optimizer, per_problem in sorted(baseline["results"].items()):
        for problem, base in sorted(per_problem.items()):
            head = results.get(optimizer, {}).get(problem)
            if head is None:
                problems.append(f"{optimizer} on {problem}: missing from this run")
                continue
            budget = baseline["definition"]["budget"]
            before = score(base["regret"], base["evaluations"], budget)
            after = score(head["regret"], head["evaluations"], budget)
            if base["deterministic"] and head["deterministic"] and not statistical:
                for seed, b, a, rb, ra, eb, ea in zip(
                    baseline["definition"]["seeds"], before, after, base["regret"], head["regret"],
                    base["evaluations"], head["evaluations"],
                ):
                    if b != a:
                        trend = "worse" if a > b else "better"
                        problems.append(f"{optimizer} on {problem} seed {seed} changed ({trend}): final "
                                        f"regret {rb:.6g} -> {ra:.6g}, evaluations {eb} -> {ea}")
            else:
                p_value = mannwhitneyu(after, before, alternative="greater").pvalue
                if p_value < alpha:
                    problems.append(
                        f"{optimizer} on {problem} got worse: median final regret "
                        f"{np.median(base['regret']):.6g} -> {np.median(head['regret']):.6g}, median "
                        f"evaluations {np.median(base['evaluations']):.6g} -> "
                        f"{np.median(head['evaluations']):.6g} (one-sided Mann-Whitney on scores, "
                        f"p = {p_value:.2g} < {alpha})")
    return problems


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
