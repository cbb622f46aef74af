"""``ng:NAME``: nevergrad's optimizers through the ask/tell protocol (``optimizers/nevergrad.py``).

``scripts/install.sh`` installs the ``nevergrad`` extra into ``.venv`` and ``.venv-numpy1``, so
there (and wherever ``HOLO_BENCH_REQUIRE_NEVERGRAD`` is set) a missing nevergrad fails this file;
anywhere else it is skipped.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
try:
    import nevergrad  # noqa: F401
except ImportError:
    if (os.environ.get("HOLO_BENCH_REQUIRE_NEVERGRAD")
            or Path(sys.prefix).resolve() in {REPO / ".venv", REPO / ".venv-numpy1"}):
        raise
    pytest.skip("nevergrad is not installed (pip install 'holo-bench[nevergrad]')",
                allow_module_level=True)

# The contract every registered optimizer keeps, run here on nevergrad's optimizers (the `name`
# fixture below replaces the contract module's).
from test_optimizer_contract import (  # noqa: E402, F401
    test_asks_are_integer_arrays_within_bounds_and_never_more_than_asked,
    test_configuration_is_its_parameters_and_rebuilds_the_same_optimizer,
    test_deterministic_under_a_seed,
    test_setup_starts_a_fresh_run,
    test_tolerates_every_value_being_infeasible,
)

from harness.cli import main  # noqa: E402
from harness.runner import make_job, run_job  # noqa: E402
from holo_bench import make_function  # noqa: E402
from holo_bench.sequences import token_dtype  # noqa: E402
from holo_bench.trace import read_trace  # noqa: E402
from leaderboard.aggregate import summarize_store  # noqa: E402
from leaderboard.store import collect  # noqa: E402
from leaderboard.verify import verify_run  # noqa: E402
from optimizers.base import Optimizer, Problem  # noqa: E402
from optimizers.nevergrad import NevergradOptimizer  # noqa: E402
from optimizers.registry import make_optimizer, optimizer_class  # noqa: E402

BENCHMARKED = ["ng:DiscreteOnePlusOne", "ng:DiscreteLenglerOnePlusOne",
               "ng:PortfolioDiscreteOnePlusOne", "ng:NGOpt"]


@pytest.fixture(params=BENCHMARKED)
def name(request):
    return request.param


def problem_of(spec="f2", budget=1000):
    f = make_function(spec)
    return f, Problem(f.num_states, f.dim, budget,
                      np.atleast_2d(f.initial_solution()).astype(np.int64))


def asks(name, seed, rounds=30, spec="f2", **params):
    """The asks of ``rounds`` ask/tell rounds, told the function's values."""
    f, problem = problem_of(spec)
    optimizer = make_optimizer(name, params)
    optimizer.setup(problem, np.random.SeedSequence(seed))
    asked = []
    for _ in range(rounds):
        X = optimizer.ask(100)
        asked.append(X)
        optimizer.tell(X, f(X))
    optimizer.close()
    return np.concatenate(asked)


def test_ng_name_is_one_optimizer_class_bound_to_nevergrads_name():
    cls = optimizer_class("ng:DiscreteOnePlusOne")
    assert cls is optimizer_class("ng:DiscreteOnePlusOne")
    assert issubclass(cls, NevergradOptimizer) and issubclass(cls, Optimizer)
    assert cls.ng_name == "DiscreteOnePlusOne" and optimizer_class("ng:NGOpt").ng_name == "NGOpt"


@pytest.mark.parametrize("name,suggested", [
    ("ng:DiscreteOnePlusOn", "ng:DiscreteOnePlusOne"),
    ("ng:discreteLenglerOnePlusOne", "ng:DiscreteLenglerOnePlusOne"),
    ("ng:NGOPT", "ng:NGOpt"),
])
def test_unknown_nevergrad_name_is_refused_with_close_matches(name, suggested):
    with pytest.raises(ValueError, match=f"unknown nevergrad optimizer '{name}'.*did you mean.*"
                                         f"{suggested}[,?]"):
        optimizer_class(name)


def test_unknown_nevergrad_name_is_a_one_line_error_before_any_run(tmp_path, capsys):
    assert main(["run", "--optimizer", "ng:DiscreteOnePlusOn", "--problem", "f2",
                 "--out", str(tmp_path), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "did you mean ng:DiscreteOnePlusOne" in error
    assert not any(tmp_path.iterdir())


def test_unknown_registry_name_mentions_ng_names():
    with pytest.raises(ValueError, match="ng:NAME for nevergrad's optimizer NAME"):
        optimizer_class("no-such-optimizer")


@pytest.mark.parametrize("params,message", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"infeasible_loss": float("inf")}, "infeasible_loss must be finite"),
    ({"batch": 4}, "did you mean batch_size"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer("ng:DiscreteOnePlusOne", params)


def test_asks_are_token_rows_at_most_the_batch_size_starting_from_the_initial_solution():
    f, problem = problem_of("ehr_v-32_l-128_m-4_c-4_q-4")
    optimizer = make_optimizer("ng:DiscreteOnePlusOne", {"batch_size": 3})
    optimizer.setup(problem, np.random.SeedSequence(0))
    for n, rows in [(100, 3), (2, 2), (1, 1), (3, 3)]:
        X = optimizer.ask(n)
        assert X.shape == (rows, 128) and X.dtype == token_dtype(32)
        assert X.min() >= 0 and X.max() < 32
        if n == 100:  # a (1+1) asks its starting point first
            np.testing.assert_array_equal(X[0], problem.initial_solution[0])
        optimizer.tell(X, f(X))


def test_a_discrete_mutation_always_changes_the_sequence():
    """The alphabet size reaches nevergrad through the parametrization: a mutated position moves to
    another token, so no ask after the first repeats the parent (the initial solution, while
    every child is worse)."""
    f, problem = problem_of()
    optimizer = make_optimizer("ng:DiscreteOnePlusOne")
    optimizer.setup(problem, np.random.SeedSequence(3))
    first = optimizer.ask(1)
    optimizer.tell(first, np.array([0.5]))
    for _ in range(50):
        X = optimizer.ask(1)
        assert not np.array_equal(X, first)
        optimizer.tell(X, np.array([-np.inf]))


def test_same_seed_same_asks_whatever_numpys_global_generator_holds(name):
    np.random.seed(1)
    first = asks(name, seed=7, rounds=20)
    np.random.seed(2)
    caller = np.random.get_state()[1].copy()
    again = asks(name, seed=7, rounds=20)
    assert np.array_equal(np.random.get_state()[1], caller)  # the caller's state is put back
    other = asks(name, seed=8, rounds=20)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_values_are_told_as_losses_with_infeasible_as_the_finite_infeasible_loss():
    f, problem = problem_of()
    optimizer = make_optimizer("ng:DiscreteOnePlusOne", {"batch_size": 3, "infeasible_loss": 7.0})
    optimizer.setup(problem, np.random.SeedSequence(0))
    told = []
    tell = optimizer._optimizer.tell
    optimizer._optimizer.tell = lambda candidate, loss: (told.append(loss), tell(candidate, loss))
    X = optimizer.ask(3)
    optimizer.tell(X, np.array([0.25, -np.inf, 0.0]))
    assert told == [-0.25, 7.0, -0.0]
    with pytest.raises(ValueError, match="NaN"):
        optimizer.tell(optimizer.ask(3), np.array([0.1, np.nan, 0.2]))


@pytest.mark.parametrize("count", ["distinct", "all"])
def test_run_verifies_and_appears_on_the_leaderboard_under_its_ng_name(tmp_path, count):
    """A small alphabet and batches of 4 make repeats common: under distinct they are free, under
    all charged, and the trace verifies either way."""
    job = make_job("ng:DiscreteOnePlusOne", "smoke_ehrlich_small", 0, 400, tmp_path,
                   {"batch_size": 4}, count)
    manifest = run_job(job)
    assert manifest.status == "finished", manifest.error
    assert manifest.run.optimizer == manifest.label == "ng:DiscreteOnePlusOne"
    assert manifest.optimizer_class == "optimizers.nevergrad:Nevergrad_DiscreteOnePlusOne"
    verify_run(job.folder)
    _, records = read_trace(job.folder / "trace.bin")
    distinct = len({row.tobytes() for row in records["sequence"]})
    if count == "all":
        assert records["charged"].all() and manifest.evaluations == manifest.queries
    else:
        assert manifest.evaluations == distinct
    report = collect(tmp_path, tmp_path / "store.sqlite")
    assert len(report.added) == 1 and not report.rejected
    table = summarize_store(tmp_path / "store.sqlite").table
    assert list(table["optimizer"]) == ["ng:DiscreteOnePlusOne"]
    assert list(table["count"]) == [count]


def test_command_line_runs_nevergrad_with_its_parameters(tmp_path, capsys):
    assert main(["run", "--optimizer", "ng:DiscreteLenglerOnePlusOne", "--problem",
                 "smoke_ehrlich_small", "--seeds", "0", "--budget", "200", "--set",
                 "batch_size=2", "--out", str(tmp_path), "--quiet", "--workers", "1"]) == 0
    output = capsys.readouterr().out
    assert "ng:DiscreteLenglerOnePlusOne" in output
    assert "1 of 1 runs finished and verified" in output
