"""The oracle charges under its counting rule, never past its budget, and logs every query it
answered."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holo_bench import BudgetExhausted, Ehrlich, Oracle, ReplayMismatch
from holo_bench.trace import read_trace

F = Ehrlich(8, 12, 2, 3, 3, random_seed=4)


def test_count_all_charges_duplicates_and_infeasible_sequences():
    oracle = Oracle(F, budget=100, count="all")
    infeasible = F.random_solution(50, rng=0)
    infeasible = infeasible[~F.is_feasible(infeasible)][:3]
    X = np.concatenate([np.tile(F.initial_solution(), (4, 1)), infeasible])
    values = oracle.evaluate(X)
    assert oracle.used == 7 and oracle.remaining == 93 and oracle.calls == 1
    np.testing.assert_array_equal(values, F(X))
    assert np.all(values[4:] == -np.inf)
    np.testing.assert_array_equal(oracle.records["feasible"], values > -np.inf)
    assert oracle.records["charged"].all()


def test_count_distinct_charges_each_sequence_once_and_answers_repeats_from_the_log():
    oracle = Oracle(F, budget=100)
    assert oracle.count == "distinct"  # the default on a noise-free function
    infeasible = F.random_solution(50, rng=0)
    infeasible = infeasible[~F.is_feasible(infeasible)][:2]
    x0 = F.initial_solution()
    X = np.concatenate([np.tile(x0, (3, 1)), infeasible, infeasible[:1]])
    values = oracle.evaluate(X)
    np.testing.assert_array_equal(values, F(X))
    np.testing.assert_array_equal(oracle.records["charged"], [1, 0, 0, 1, 1, 0])
    assert oracle.used == 3 and oracle.queries == 6
    again = oracle.evaluate(np.stack([infeasible[1], x0, F.initial_solution(2)[1]]))
    assert again[0] == -np.inf and again[1] == F(x0)
    np.testing.assert_array_equal(oracle.records["charged"][6:], [0, 0, 1])
    assert oracle.used == 4 and oracle.queries == 9 and oracle.calls == 2


@pytest.mark.parametrize("count", ["distinct", "all"])
def test_batch_past_the_budget_raises_and_charges_nothing(count):
    oracle = Oracle(F, budget=5, count=count)
    first = F.initial_solution(3)
    oracle.evaluate(first)
    fresh = F.random_solution(40, rng=1)
    fresh = fresh[F.is_feasible(fresh)]
    with pytest.raises(BudgetExhausted,
                       match="batch of 3 sequences .*exceeds the remaining budget of 2"):
        oracle.evaluate(fresh[:3])
    assert oracle.used == 3 and len(oracle.records) == 3
    if count == "distinct":  # repeats are free, so two new ones among five fit exactly
        oracle.evaluate(np.concatenate([first, fresh[:2]]))
        assert oracle.queries == 8
    else:
        oracle.evaluate(fresh[:2])
    assert oracle.used == 5 and oracle.remaining == 0
    with pytest.raises(BudgetExhausted, match="spent"):  # once spent, even a repeat is refused
        oracle.evaluate(first[:1])
    assert oracle.used == 5


def test_distinct_count_is_refused_on_a_noisy_function():
    noisy = Ehrlich(8, 12, 2, 3, noise_std=0.1)
    with pytest.raises(ValueError, match="count 'distinct' on a noisy function"):
        Oracle(noisy, budget=10, count="distinct")
    with pytest.raises(ValueError, match="count must be one of distinct, all"):
        Oracle(F, budget=10, count="some")


def test_resumed_oracle_remembers_what_the_log_charged(tmp_path):
    log = tmp_path / "trace.bin"
    X = F.initial_solution(4)
    with Oracle(F, budget=10, log_path=log) as oracle:
        oracle.evaluate(X)
    with Oracle(F, budget=10, log_path=log) as resumed:
        resumed.evaluate(X)  # the logged call, replayed
        resumed.evaluate(X[:2])  # a new call of known sequences: free
        assert resumed.used == 4 and resumed.queries == 6 and resumed.remaining == 6


def test_empty_batch_is_free():
    oracle = Oracle(F, budget=1)
    assert oracle.evaluate(np.zeros((0, 12), dtype=int)).shape == (0,)
    assert oracle.used == 0 and oracle.calls == 0


def test_best_value_and_regret_follow_the_best_feasible_value():
    oracle = Oracle(F, budget=10)
    assert oracle.best_value == -np.inf and oracle.regret == 1.0
    infeasible = F.random_solution(100, rng=1)
    oracle.evaluate(infeasible[~F.is_feasible(infeasible)][:2])
    assert oracle.regret == 1.0 and oracle.best_sequence is None
    x = F.initial_solution()
    oracle.evaluate(x)
    assert oracle.best_value == F(x) and oracle.regret == 1.0 - F(x)
    np.testing.assert_array_equal(oracle.best_sequence, x)
    oracle.evaluate(F.optimal_solution())
    assert oracle.regret == 0.0


def test_log_is_written_through_and_read_back(tmp_path):
    path = tmp_path / "trace.bin"
    oracle = Oracle(F, budget=20, log_path=path)
    first = oracle.evaluate(F.initial_solution(4))
    header, records = read_trace(path)  # visible before close: flushed per batch
    assert header["spec"] == F.spec and len(records) == 4
    oracle.evaluate(F.optimal_solution())
    _, records = read_trace(path)
    np.testing.assert_array_equal(records["call"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(records["index"], [0, 1, 2, 3, 0])
    np.testing.assert_array_equal(records["value"][:4], first)
    np.testing.assert_array_equal(records["sequence"][4], F.optimal_solution())
    assert np.all(np.diff(records["time"]) >= 0)


def test_killed_process_loses_nothing_it_charged(tmp_path):
    """A child process evaluates batches and is SIGKILLed; every batch it returned is on disk."""
    path = tmp_path / "trace.bin"
    script = f"""
import os, signal, numpy as np
from holo_bench import Ehrlich, Oracle
f = Ehrlich(8, 12, 2, 3, 3, random_seed=4)
o = Oracle(f, budget=1000, log_path={str(path)!r})
for i in range(3):
    o.evaluate(f.initial_solution(10 + i))
print(o.used, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == -9
    _, records = read_trace(path)
    assert len(records) == int(run.stdout) == 33


def test_resume_serves_logged_calls_without_charging_twice(tmp_path):
    path = tmp_path / "trace.bin"
    with Oracle(F, budget=30, log_path=path) as oracle:
        a = oracle.evaluate(F.initial_solution(5))
        b = oracle.evaluate(F.optimal_solution())
    with Oracle(F, budget=30, log_path=path) as resumed:
        assert resumed.replaying
        np.testing.assert_array_equal(resumed.evaluate(F.initial_solution(5)), a)
        assert resumed.evaluate(F.optimal_solution()) == b
        assert not resumed.replaying and resumed.used == 6 and resumed.regret == 0.0
        resumed.evaluate(F.initial_solution(2))
    _, records = read_trace(path)
    assert len(records) == 8 and records["call"].tolist() == [0] * 5 + [1] + [2] * 2


def test_resume_refuses_a_different_ask(tmp_path):
    path = tmp_path / "trace.bin"
    with Oracle(F, budget=30, log_path=path) as oracle:
        oracle.evaluate(F.initial_solution(5))
    with Oracle(F, budget=30, log_path=path) as resumed:
        with pytest.raises(ReplayMismatch, match="deterministic"):
            resumed.evaluate(F.initial_solution(4))
        assert resumed.used == 0


def test_torn_last_batch_is_dropped_and_overwritten(tmp_path):
    path = tmp_path / "trace.bin"
    with Oracle(F, budget=30, log_path=path) as oracle:
        oracle.evaluate(F.initial_solution(3))
        oracle.evaluate(F.initial_solution(4))
    with open(path, "r+b") as file:  # as if killed in the middle of writing the second batch
        file.truncate(path.stat().st_size - 100)
    _, records = read_trace(path)
    assert len(records) == 3
    with Oracle(F, budget=30, log_path=path) as resumed:
        resumed.evaluate(F.initial_solution(3))
        resumed.evaluate(F.optimal_solution())
    _, records = read_trace(path)
    assert records["call"].tolist() == [0, 0, 0, 1] and records["value"][-1] == 1.0


def test_log_of_another_problem_is_refused(tmp_path):
    path = tmp_path / "trace.bin"
    with Oracle(F, budget=10, log_path=path) as oracle:
        oracle.evaluate(F.initial_solution())
    other = Ehrlich(8, 12, 2, 3, 3, random_seed=5)
    with pytest.raises(ValueError, match="holds a trace of"):
        Oracle(other, budget=10, log_path=path)


batches = st.lists(
    st.one_of(
        st.integers(min_value=0, max_value=12).map(lambda n: ("ok", n)),
        st.just(("bad", 1)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(min_value=1, max_value=40), plan=batches, seed=st.integers(0, 2**16),
       count=st.sampled_from(["distinct", "all"]))
def test_never_charges_past_the_budget_and_logs_exactly_what_it_charged(budget, plan, seed, count):
    """Sequences come from a pool of 12, so repeats (within and across batches) are common; the
    expected charges are counted by hand with a set of the sequences seen."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 8, (12, 12))
    oracle = Oracle(F, budget=budget, count=count)
    answered, seen = [], set()
    for kind, n in plan:
        X = pool[rng.integers(0, len(pool), n)]
        if kind == "bad":
            X[0, 0] = 8
        flags = []
        for x in X:
            flags.append(count == "all" or (x.tobytes() not in seen and x.tobytes() not in
                                            {y.tobytes() for y in X[: len(flags)]}))
        before = oracle.used
        try:
            values = oracle.evaluate(X)
        except (BudgetExhausted, ValueError):
            assert oracle.used == before
            assert kind == "bad" or sum(flags) > budget - before or before == budget
            continue
        assert kind == "ok" and sum(flags) <= budget - before
        answered.append((X, values, flags))
        seen.update(x.tobytes() for x in X)
        assert oracle.used == before + sum(flags) <= budget
    records = oracle.records
    expected_X = np.concatenate([X for X, _, _ in answered]) if answered else np.zeros((0, 12))
    expected_charged = [flag for _, _, flags in answered for flag in flags]
    assert len(records) == oracle.queries == len(expected_X)
    assert records["charged"].sum() == oracle.used == sum(expected_charged)
    np.testing.assert_array_equal(records["charged"], expected_charged)
    np.testing.assert_array_equal(records["sequence"], expected_X)
    np.testing.assert_array_equal(records["value"], F(expected_X) if len(expected_X) else [])
    charged = answered
    if charged:
        feasible = records["value"][records["feasible"]]
        best = feasible.max() if len(feasible) else -np.inf
        assert oracle.best_value == best and oracle.regret == 1.0 - max(0.0, best)
