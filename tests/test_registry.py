"""Optimizers by name, by module:Class, and from a third-party package's entry point."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from holo_bench.record import find_runs, read_manifest
from optimizers.closure import ClosureAdapter, HoloDiscreteEvolution
from optimizers.ga import GeneticAlgorithm
from optimizers.registry import available, make_optimizer, optimizer_class

# A third-party optimizer, as docs/submitting-an-optimizer.md has users write it.
GREEDY_WALK = textwrap.dedent("""
    from dataclasses import dataclass

    import numpy as np
    from optimizers.base import Optimizer

    @dataclass(frozen=True)
    class GreedyWalkParams:
        batch: int = 20

    class GreedyWalk(Optimizer):
        Params = GreedyWalkParams
        def setup(self, problem, seed, workdir=None):
            self.rng = np.random.default_rng(seed)
            self.best, self.best_value, self.p = problem.initial_solution[0], -np.inf, problem
            return 0
        def ask(self, n):
            X = np.tile(self.best, (min(n, self.params.batch), 1))
            pos = self.rng.integers(0, self.p.dim, len(X))
            X[np.arange(len(X)), pos] = self.rng.integers(0, self.p.num_states, len(X))
            return X
        def tell(self, X, values):
            if values.max() > self.best_value:
                self.best, self.best_value = X[values.argmax()], values.max()
""")


def test_builtins_resolve():
    assert optimizer_class("ga") is GeneticAlgorithm
    assert optimizer_class("holo-ga") is HoloDiscreteEvolution
    assert {"ga", "random", "holo-ga"} <= set(available())


def test_module_class_paths_resolve():
    assert optimizer_class("optimizers.ga:GeneticAlgorithm") is GeneticAlgorithm


def test_a_module_class_path_is_found_in_the_working_folder(tmp_path, monkeypatch):
    """As `python -m` would: a console script's sys.path does not hold the working folder."""
    (tmp_path / "walk_in_cwd").mkdir()
    (tmp_path / "walk_in_cwd" / "module.py").write_text(GREEDY_WALK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path
                                      if entry not in ("", str(tmp_path))])
    try:
        cls = optimizer_class("walk_in_cwd.module:GreedyWalk")
        assert cls.__name__ == "GreedyWalk"
        assert Path(sys.modules[cls.__module__].__file__) == tmp_path / "walk_in_cwd" / "module.py"
        assert sys.path[0] == str(tmp_path)
    finally:
        sys.modules.pop("walk_in_cwd.module", None)
        sys.modules.pop("walk_in_cwd", None)


def test_registered_names_leave_the_import_path_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    optimizer_class("ga")
    assert sys.path == path


def test_a_missing_module_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ValueError, match=re.escape(
            f"No module named 'my_package' (searched the working folder {tmp_path} and the "
            "installed packages)")):
        optimizer_class("my_package.module:GreedyWalk")


def test_holo_bench_runs_a_module_class_path_from_its_folder_with_its_parameters(tmp_path):
    """The console script, from the folder holding the package, on a pool of two workers;
    ``--set`` names the optimizer by its whole ``module:Class`` path."""
    (tmp_path / "walk_in_cwd").mkdir()
    (tmp_path / "walk_in_cwd" / "module.py").write_text(GREEDY_WALK)
    name = "walk_in_cwd.module:GreedyWalk"
    run = subprocess.run(
        [str(Path(sys.executable).parent / "holo-bench"), "run", "--optimizer", name, "--problem",
         "smoke_ehrlich_small", "--seeds", "0-1", "--budget", "200", "--out", "runs", "--quiet",
         "--no-page", "--workers", "2", "--set", f"{name}.batch=10"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    manifests = [read_manifest(folder) for folder in find_runs(tmp_path / "runs")]
    assert [(m.run.optimizer, m.run.seed, m.status, m.run.params) for m in manifests] == [
        (name, 0, "finished", {"batch": 10}), (name, 1, "finished", {"batch": 10})]


@pytest.mark.parametrize(
    "name,message",
    [("nope", "unknown optimizer 'nope'"), ("gaa", r"did you mean ga\?"),
     ("no.such.module:X", "cannot load"), ("numpy:ndarray", "not a subclass")],
)
def test_bad_names_say_what_is_wrong(name, message):
    with pytest.raises(ValueError, match=message):
        optimizer_class(name)


@pytest.mark.parametrize(
    "params,message",
    [({"no_such_parameter": 1}, "optimizer ga has no parameter 'no_such_parameter'"),
     ({"num_particle": 10}, "did you mean num_particles"),
     ({"num_particles": "many"}, "parameter num_particles must be an integer, got 'many'"),
     ({"mutation_prob": True}, "parameter mutation_prob must be a number or none"),
     ({"num_particles": 0}, "num_particles must be an integer >= 1")],
)
def test_bad_parameters_name_the_optimizer_and_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer("ga", params)


def test_parameters_from_text_and_from_values_are_one_configuration():
    from_text = make_optimizer("ga", {"num_particles": "200", "mutation_prob": "none",
                                      "recombine_prob": "1e-1"})
    from_values = make_optimizer("ga", {"num_particles": 200, "mutation_prob": None,
                                        "recombine_prob": 0.1})
    assert from_text.params == from_values.params
    assert from_text.config() == {"num_particles": 200, "mutation_prob": None,
                                  "recombine_prob": 0.1, "survival_quantile": 0.1}
    zero = make_optimizer("ga", {"recombine_prob": 0}).params.recombine_prob
    assert zero == 0.0 and isinstance(zero, float)  # 0 and 0.0 record as one value


def test_third_party_optimizer_runs_through_its_entry_point(tmp_path):
    """A package outside this repo declares an optimizer; `holo-bench run` finds and runs it."""
    package = tmp_path / "site" / "greedy_walk"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(GREEDY_WALK)
    dist = tmp_path / "site" / "greedy_walk-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: greedy-walk\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[holo_bench.optimizers]\n"
                                           "greedy-walk = greedy_walk:GreedyWalk\n")
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": ""}
    out = tmp_path / "runs"
    run = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--optimizer", "greedy-walk", "--problem",
         "smoke_ehrlich_small", "--seeds", "0", "--budget", "200", "--out", str(out), "--quiet",
         "--set", "batch=10"],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 0, run.stderr
    [folder] = find_runs(out)
    assert (folder.parent == out / "greedy-walk" / "smoke_ehrlich_small"
            and (folder / "trace.bin").exists())
    assert read_manifest(folder).status == "finished"
    assert read_manifest(folder).run.params == {"batch": 10}


def test_closure_adapter_runs_holo_discrete_evolution_unchanged():
    """holo's GA through the adapter: N evaluations per step, starting from copies of x0."""
    from holo_bench import make_function
    from optimizers.base import Problem

    f = make_function("f2")
    problem = Problem(32, 32, 1000, f.initial_solution()[None])
    optimizer = HoloDiscreteEvolution(num_particles=50)
    assert optimizer.setup(problem, np.random.SeedSequence(0)) == 0
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

    class BrokenAdapter(ClosureAdapter):
        def build(self, params, problem):
            return Broken()

    adapter = BrokenAdapter()
    adapter.setup(Problem(4, 3, 10, np.zeros((1, 3), dtype=np.int64)), np.random.SeedSequence(0))
    with pytest.raises(RuntimeError, match="inner failure"):
        adapter.ask(5)
    adapter.close()


def test_closure_adapter_leaves_torchs_global_generator_as_it_was():
    from holo_bench import make_function
    from optimizers.base import Problem

    f = make_function("f2")
    state = torch.random.get_rng_state()
    optimizer = HoloDiscreteEvolution(num_particles=20)
    optimizer.setup(Problem(32, 32, 1000, f.initial_solution()[None]), np.random.SeedSequence(3))
    X = optimizer.ask(1000)
    optimizer.tell(X, f(X))
    optimizer.ask(1000)
    optimizer.close()
    assert torch.equal(torch.random.get_rng_state(), state)
