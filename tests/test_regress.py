"""The quality regression gate."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.regression import run_suite
from leaderboard.regress import compare, score

ROOT = Path(__file__).parent.parent
SMALL = {"optimizers": ["ga"], "problems": ["f2", "smoke_ehrlich_small"], "seeds": list(range(8)),
         "budget": 5000, "count": "distinct", "params": {"ga": {"num_particles": 100}}}


def baseline_of(results, definition=SMALL):
    return {"suite": "test", "definition": definition, "alpha": 0.01, "results": results}


def regress_cli(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", "regress", *args],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.e2e
def test_committed_ci_baseline_passes_and_a_degraded_ga_fails():
    passed = regress_cli("--suite", "ci", "--baseline", "benchmarks/baselines/ci.json")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "no regression" in passed.stdout
    degraded = regress_cli("--suite", "ci", "--baseline", "benchmarks/baselines/ci.json",
                           "--set", "ga.mutation_prob=0.3")
    assert degraded.returncode == 1
    assert "REGRESSION ga on f2 seed 0 changed (worse): final regret" in degraded.stdout
    assert "random on" not in degraded.stdout  # only what changed is reported


def test_unchanged_runs_pass_exactly(tmp_path):
    results = run_suite(SMALL, tmp_path / "a")
    again = run_suite(SMALL, tmp_path / "b")
    assert compare(baseline_of(results), again) == []
    assert compare(baseline_of(results), again, statistical=True) == []


def test_degraded_mutation_rate_fails_the_one_sided_test(tmp_path):
    results = run_suite(SMALL, tmp_path / "a")
    degraded = run_suite(SMALL, tmp_path / "b", overrides={"ga": {"mutation_prob": 0.3}})
    lines = compare(baseline_of(results), degraded, statistical=True)
    assert any(line.startswith("ga on f2 got worse") and "Mann-Whitney" in line for line in lines)


def test_an_improvement_is_not_a_statistical_regression(tmp_path):
    worse = run_suite(SMALL, tmp_path / "a", overrides={"ga": {"mutation_prob": 0.3}})
    normal = run_suite(SMALL, tmp_path / "b")
    assert compare(baseline_of(worse), normal, statistical=True) == []
    assert compare(baseline_of(worse), normal)  # but an exact comparison reports the change


def test_nondeterministic_optimizers_are_compared_statistically():
    base = {"ga": {"f2": {"deterministic": False, "regret": [0.5] * 8, "evaluations": [5000] * 8}}}
    noisy = {"ga": {"f2": {"deterministic": False, "regret": [0.5, 0.25] * 4,
                           "evaluations": [5000] * 8}}}
    worse = {"ga": {"f2": {"deterministic": False, "regret": [0.9] * 8, "evaluations": [5000] * 8}}}
    assert compare(baseline_of(base), noisy) == []  # differs, but not worse
    assert compare(baseline_of(base), worse)[0].startswith("ga on f2 got worse")


def test_score_ranks_solving_sooner_above_solving_later_above_not_solving():
    s = score([0.0, 5.55e-17, 0.25, 1.0], [100, 900, 1000, 1000], 1000)
    assert list(np.argsort(s)) == [0, 1, 2, 3] and s[0] == -0.9 and np.isclose(s[1], -0.1)


@pytest.mark.e2e  # regress runs the whole ci suite before it reads the baseline's definition
def test_baseline_of_another_suite_definition_is_refused(tmp_path):
    baseline = json.loads((ROOT / "benchmarks/baselines/ci.json").read_text())
    baseline["definition"]["budget"] += 1
    path = tmp_path / "ci.json"
    path.write_text(json.dumps(baseline))
    result = regress_cli("--suite", "ci", "--baseline", str(path))
    assert result.returncode == 1 and "another definition of suite 'ci'" in result.stdout
