"""The quality regression gate's verdict: this run of a seeded grid against its baseline.

Each (optimizer, problem) is compared seed by seed with the committed baseline: exactly when the
configured optimizer is deterministic (``Optimizer.deterministic``), which is the default;
otherwise (or with ``statistical=True``) with a one-sided Mann-Whitney U test of "runs are now
worse" at level ``alpha`` (default 0.01). A run's score, lower is better, is its final regret, or
for a run that solved the problem ``evaluations / budget - 1`` (in [-1, 0): solving sooner is
better). Running the grid is the harness's job (``harness.regression``); this module only reads
numbers.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu

from holo_bench.measures import is_solved

ALPHA = 0.01


def score(regret: np.ndarray, evaluations: np.ndarray, budget: int) -> np.ndarray:
    """Lower is better: the final regret, or ``evaluations / budget - 1`` for a solved run."""
    regret, evaluations = np.asarray(regret, dtype=float), np.asarray(evaluations, dtype=float)
    return np.where(is_solved(regret), evaluations / budget - 1, regret)


def compare(baseline: dict, results: dict, alpha: float = ALPHA,
            statistical: bool = False) -> list[str]:
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
                        problems.append(f"{optimizer} on {problem} seed {seed} changed ({trend}): "
                                        f"final regret {rb:.6g} -> {ra:.6g}, evaluations {eb} -> "
                                        f"{ea}")
            else:
                p_value = mannwhitneyu(after, before, alternative="greater").pvalue
                if p_value < alpha:
                    problems.append(
                        f"{optimizer} on {problem} got worse: median final regret "
                        f"{np.median(base['regret']):.6g} -> {np.median(head['regret']):.6g}, "
                        f"median evaluations {np.median(base['evaluations']):.6g} -> "
                        f"{np.median(head['evaluations']):.6g} (one-sided Mann-Whitney on scores, "
                        f"p = {p_value:.2g} < {alpha})")
    return problems
