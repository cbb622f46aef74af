"""Optimizers by name, by module:Class, and from a third-party package's entry point."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from optimizers.closure import ClosureAdapter, HoloDiscreteEvolution
from optimizers.ga import GeneticAlgorithm
from optimizers.registry import available, make_optimizer, optimizer_class, parse_params


def test_builtins_resolve():
    assert optimizer_class("ga") is GeneticAlgorithm
    assert optimizer_class("holo-ga") is HoloDiscreteEvolution
    assert {"ga", "random", "holo-ga"} <= set(available())


def test_module_class_paths_resolve():
    assert optimizer_class("optimizers.ga:GeneticAlgorithm") is GeneticAlgorithm


@pytest.mark.parametrize(
    "name,message",
    [("nope", "unknown optimizer 'nope'"), ("no.such.module:X", "cannot load"),
     ("numpy:ndarray", "not a subclass")],
)
def test_bad_names_say_what_is_wrong(name, message):
    with pytest.raises(ValueError, match=message):
        optimizer_class(name)


def test_bad_parameters_name_the_optimizer():
    with pytest.raises(ValueError, match="bad parameters for optimizer 'ga'"):
        make_optimizer("ga", {"no_such_parameter": 1})


def test_parse_params_types_values():
    assert parse_params(["a=3", "b=0.5", "c=none", "d=true", "e=text"]) == {
        "a": 3, "b": 0.5, "c": None, "d": True, "e": "text"}
    with pytest.raises(ValueError, match="name=value"):
        parse_params(["oops"])


def test_third_party_optimizer_runs_through_its_entry_point(tmp_path):
    """A package outside this repo declares an optimizer; `holo-bench run` finds and runs it."""
    package = tmp_path / "site" / "greedy_walk"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent("""
        import numpy as np
        from optimizers.base import Optimizer

        class GreedyWalk(Optimizer):
            name = "greedy-walk"
            def __init__(self, batch=20):
                self.batch = batch
            def setup(self, problem, seed):
                self.rng = np.random.default_rng(seed)
                self.best, self.best_value, self.p = problem.initial_solution[0], -np.inf, problem
            def ask(self, n):
                X = np.tile(self.best, (min(n, self.batch), 1))
                pos = self.rng.integers(0, self.p.dim, len(X))
                X[np.arange(len(X)), pos] = self.rng.integers(0, self.p.num_states, len(X))
                return X
            def tell(self, X, values):
                if values.max() > self.best_value:
                    self.best, self.best_value = X[values.argmax()], values.max()
    """))
    dist = tmp_path / "site" / "greedy_walk-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: greedy-walk\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[holo_bench.optimizers]\ngreedy-walk = greedy_walk:GreedyWalk\n")
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": ""}
    out = tmp_path / "runs"
    run = subprocess.run(
        [sys.executable, "-m", "holo_bench.cli", "run", "--optimizer", "greedy-walk", "--problem",
         "smoke_ehrlich_small", "--seeds", "0", "--budget", "200", "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "1 of 1 runs finished" in run.stdout
    assert (out / "greedy-walk" / "smoke_ehrlich_small" / "seed-0" / "trace.bin").exists()


def test_closure_adapter_runs_holo_discrete_evolution_unchanged():
    """holo's GA through the adapter: N evaluations per step, starting from copies of x0."""
    from holo_bench import make_function
    from optimizers.base import Problem

    f = make_function("f2")
    problem = Problem(32, 32, 1000, f.initial_solution()[None])
    optimizer = HoloDiscreteEvolution(num_particles=50)
    optimizer.setup(problem, 0)
    X = optimizer.ask(1000)
    assert X.shape == (50, 32) and (X == f.initial_solution()).all()
    optimizer.tell(X, f(X))
    Y = optimizer.ask(30)  # budget tail: only part of the batch may be asked
    assert Y.shape == (30, 32) and (Y != f.initial_solution()).any()
    optimizer.tell(Y, f(Y))
    optimizer.close()


def test_closure_adapter_reports_the_wrapped_optimizers_errors():
    class Broken:
        def step(self, closure):
            raise RuntimeError("inner failure")

    from optimizers.base import Problem

    adapter = ClosureAdapter(lambda params, problem, seed: Broken())
    adapter.setup(Problem(4, 3, 10, np.zeros((1, 3), dtype=np.int64)), 0)
    with pytest.raises(RuntimeError, match="inner failure"):
        adapter.ask(5)
    adapter.close()
