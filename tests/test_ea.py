"""The (1+1) family and the (mu + lambda) EA (``optimizers/ea.py``).

Expected values come from the formulas, written out here again (the binomial conditioned on at
least one change, Lengler's schedule, the fast mutation's power law), from selections worked by
hand, from nevergrad's own choice of parent, and, in distribution, from nevergrad's optimizers
run on the same problem.
"""

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare, mannwhitneyu

from harness.runner import make_job, run_job
from holo_bench import Oracle, make_function
from holo_bench.record import read_manifest, stop_rule
from holo_bench.trace import read_trace
from leaderboard.verify import verify_run
from optimizers.base import Problem
from optimizers.ea import (
    FastOnePlusOne,
    RevisitParent,
    _mutate_rows,
    fast_intensity_law,
    lengler_intensity,
    mutate,
    plus_selection,
)
from optimizers.registry import make_optimizer

REPO = Path(__file__).resolve().parents[1]
ALPHA = 0.01


# --- the laws, written out independently ----------------------------------------------------------


def changed_law(dim, intensity):
    """P(k positions change), k = 0..dim: Binomial(dim, min(1, intensity/dim)) given k >= 1."""
    rate = min(1.0, intensity / dim)
    p = [math.comb(dim, k) * rate**k * (1 - rate) ** (dim - k) for k in range(dim + 1)]
    p[0] = 0.0
    return np.array(p) / sum(p)


def lengler(k, dim, alpha=1.54468):
    return max(1, math.floor(dim * alpha * math.log(k) / k))


def power_law(dim, beta=1.5):
    """P(u), u = 1..U: u^-beta normalized on 1..max(2, dim // 2) - 1 (1..1 below 5 positions)."""
    upper = max(2, dim // 2) - 1 if dim >= 5 else 1
    weights = [u**-beta for u in range(1, upper + 1)]
    return np.array(weights) / sum(weights)


def chi_square_p(counts, probs):
    """Pearson's test of ``counts`` against ``probs``, bins with fewer than 5 expected merged into
    their neighbour (from the right, so the tail pools into the last big bin)."""
    counts, expected = np.asarray(counts, float), np.asarray(probs, float) * np.sum(counts)
    merged_counts, merged_expected, c, e = [], [], 0.0, 0.0
    for count, exp in zip(counts[::-1], expected[::-1]):
        c, e = c + count, e + exp
        if e >= 5:
            merged_counts.append(c)
            merged_expected.append(e)
            c, e = 0.0, 0.0
    merged_counts[-1] += c  # the leftmost bins, if they came short of 5
    merged_expected[-1] += e
    return chisquare(merged_counts, merged_expected).pvalue


# --- the mutation ---------------------------------------------------------------------------------

BATCH = [False, True]  # one row per call (a (1+1)'s asks, mutate's scalar path) or all at once


def mutated(rng, parents, intensity, num_states, batch):
    if batch:
        return mutate(rng, parents, intensity, num_states)
    return np.concatenate([mutate(rng, parents[i: i + 1], intensity[i: i + 1], num_states)
                           for i in range(len(parents))])


@pytest.mark.parametrize("batch", BATCH)
def test_changed_positions_are_binomial_given_at_least_one_with_each_rows_intensity(batch):
    rng = np.random.default_rng(0)
    dim, intensities = 16, [1.0, 3.0, 7.5]
    parents = rng.integers(0, 8, (150_000 if batch else 30_000, dim)).astype(np.uint8)
    intensity = np.resize(intensities, len(parents))  # rows cycle through the intensities
    changed = (mutated(rng, parents, intensity, 8, batch) != parents).sum(axis=1)
    for i, value in enumerate(intensities):
        counts = np.bincount(changed[i::len(intensities)], minlength=dim + 1)
        assert counts[0] == 0
        assert chi_square_p(counts, changed_law(dim, value)) > ALPHA, value


@pytest.mark.parametrize("intensity", [1.0, 3.0, 40.0])
def test_one_row_at_a_time_is_the_batch_computation_draw_for_draw(intensity):
    parents = np.random.default_rng(0).integers(0, 8, (2000, 16)).astype(np.uint8)
    rows, one = np.random.default_rng(1), np.random.default_rng(1)
    for parent in parents:
        np.testing.assert_array_equal(
            _mutate_rows(rows, parent[None], np.array([intensity]), 8),
            mutate(one, parent[None], np.array([intensity]), 8))


@pytest.mark.parametrize("batch", BATCH)
def test_an_intensity_of_at_least_L_changes_every_position(batch):
    parents = np.zeros((100, 16), dtype=np.uint8)
    children = mutated(np.random.default_rng(0), parents, np.full(100, 16.0), 8, batch)
    assert (children != parents).all()


@pytest.mark.parametrize("batch", BATCH)
def test_a_changed_position_takes_every_other_token_equally_often_and_any_position_alike(batch):
    rng = np.random.default_rng(1)
    parents = np.full((100_000 if batch else 20_000, 16), 5, dtype=np.uint8)
    children = mutated(rng, parents, np.ones(len(parents)), 8, batch)
    changed = children != parents
    tokens = np.bincount(children[changed], minlength=8)
    assert tokens[5] == 0
    assert chi_square_p(np.delete(tokens, 5), np.full(7, 1 / 7)) > ALPHA
    assert chi_square_p(changed.sum(axis=0), np.full(16, 1 / 16)) > ALPHA


@pytest.mark.parametrize("rows", [1, 2])
def test_mutation_keeps_the_parents_dtype_and_leaves_them_untouched(rows):
    parents = np.arange(16 * rows, dtype=np.uint8).reshape(rows, 16) + 200
    before = parents.copy()
    children = mutate(np.random.default_rng(0), parents, np.full(rows, 8.0), 256)
    assert children.dtype == np.uint8 and children.shape == parents.shape
    np.testing.assert_array_equal(parents, before)


# --- the mutation-rate rules ----------------------------------------------------------------------


def test_lengler_schedule_by_hand_and_by_formula():
    # 32 * 1.54468 * ln(k) / k: k=2 17.13, k=3 18.10, k=4 17.13, k=10 11.38, k=100 2.28,
    # k=1000 0.34; k=1 gives 0; the floor, at least 1
    hand = {1: 1, 2: 17, 3: 18, 4: 17, 10: 11, 100: 2, 1000: 1}
    assert lengler_intensity(np.array(list(hand)), 32).tolist() == list(hand.values())
    for dim in (8, 16, 128):
        asks = np.arange(1, 5000)
        assert lengler_intensity(asks, dim).tolist() == [lengler(k, dim) for k in asks]


@pytest.mark.parametrize("dim", [3, 4, 5, 6, 7, 16, 32, 128])
def test_fast_intensity_law_is_the_power_law_up_to_half_L_exclusive(dim):
    np.testing.assert_allclose(fast_intensity_law(dim), power_law(dim), rtol=1e-12)


def test_fast_intensities_are_drawn_from_the_power_law():
    fast = FastOnePlusOne()
    fast.setup(Problem(32, 32, 1000, np.zeros((1, 32), dtype=np.int64)), 0)
    drawn = fast.intensities(np.arange(1, 200_001))
    assert drawn.min() >= 1 and drawn.max() <= 15  # 1..max(2, 16) - 1
    assert chi_square_p(np.bincount(drawn, minlength=16)[1:], power_law(32)) > ALPHA


def expected_changes(name, dim, asks):
    """The law of the changed positions of a child of ask ``k``, pooled over ``k`` in ``asks``."""
    if name == "ea-lengler":
        return np.mean([changed_law(dim, lengler(k, dim)) for k in asks], axis=0)
    if name == "ea-fast":
        return sum(p * changed_law(dim, u) for u, p in enumerate(power_law(dim), start=1))
    return changed_law(dim, 1.0)


@pytest.mark.parametrize("name,params,rounds", [
    ("ea-1p1", {"selection": "elitist"}, 40),
    ("ea-lengler", {"selection": "elitist"}, 40),
    ("ea-fast", {"selection": "elitist"}, 40),
    ("ea-mu-lambda", {"mu": 1, "lam": 50}, 2),
])
def test_each_childs_changed_positions_follow_its_rule(name, params, rounds):
    """The start is told 1 and every child 0, so the start stays the parent: a child's changed
    positions are its Hamming distance to the start. The law holds at each of the first asks
    (the start is ask 0, the first child ask 1) and over all of them."""
    dim, num_states, seeds = 16, 8, 300
    start = np.random.default_rng(7).integers(0, num_states, (1, dim))
    changed = []  # per seed: (asks,)
    for seed in range(seeds):
        optimizer = make_optimizer(name, params)
        optimizer.setup(Problem(num_states, dim, 10**6, start), np.random.SeedSequence(seed))
        np.testing.assert_array_equal(optimizer.ask(100), start)
        optimizer.tell(start, np.ones(1))
        run = []
        for _ in range(rounds):
            children = optimizer.ask(100)
            run.extend((children != start).sum(axis=1))
            optimizer.tell(children, np.zeros(len(children)))
        changed.append(run)
    changed = np.array(changed)
    for k in (1, 2, 3):
        counts = np.bincount(changed[:, k - 1], minlength=dim + 1)
        assert counts[0] == 0
        assert chi_square_p(counts, expected_changes(name, dim, [k])) > ALPHA, k
    asks = np.arange(1, changed.shape[1] + 1)
    assert chi_square_p(np.bincount(changed.ravel(), minlength=dim + 1),
                        expected_changes(name, dim, asks)) > ALPHA


# --- selection ------------------------------------------------------------------------------------


def rows(*tokens):
    return np.array(tokens, dtype=np.uint8)[:, None]


def test_plus_selection_keeps_the_mu_best_and_children_win_ties():
    population, values = rows(0, 1), np.array([0.5, 0.2])
    children, child_values = rows(2, 3, 4), np.array([0.5, 0.9, -np.inf])
    kept, kept_values = plus_selection(population, values, children, child_values, mu=2)
    assert kept.ravel().tolist() == [3, 2] and kept_values.tolist() == [0.9, 0.5]
    kept, _ = plus_selection(population, values, children, child_values, mu=5)
    assert kept.ravel().tolist() == [3, 2, 0, 1, 4]


@pytest.mark.parametrize("parent,child_values,kept", [
    (0.5, [0.5, 0.5], 1),  # a tie: the first child
    (0.5, [0.4, 0.6], 2),
    (0.5, [0.4, -np.inf], 0),  # worse: the parent stays
    (-np.inf, [-np.inf], 1),  # nothing feasible yet: the child, as a tie
])
def test_plus_selection_of_one_replaces_the_parent_by_the_best_child_not_worse(
        parent, child_values, kept):
    children = rows(*range(1, len(child_values) + 1))
    new, new_values = plus_selection(rows(0), np.array([parent]), children,
                                     np.array(child_values), mu=1)
    assert new.ravel().tolist() == [kept]
    assert new_values.tolist() == [parent if kept == 0 else child_values[kept - 1]]


def test_revisit_parent_prefers_a_sequence_told_twice_even_when_worse():
    a, b, c, d, e, f = rows(0, 1, 2, 3, 4, 5)
    parent = RevisitParent()
    steps = [  # (told, value, parent after)
        (a, 0.5, a), (b, 0.7, b),  # told once each: the better
        (c, 0.1, b), (c, 0.1, c),  # c comes back: told twice, it outranks b, told once
        (b, 0.7, b),  # b comes back: both told twice, b is better
        (d, 0.9, b),  # better, but told once
        (a, 0.5, b), (e, -np.inf, b), (e, -np.inf, b),
        (f, 0.7, b), (f, 0.7, f),  # a tie between sequences told twice: the newest
    ]
    for told, value, expected in steps:
        parent.tell(told, value)
        assert parent.sequence.tolist() == expected.tolist()


def asked_tokens(name, values, params=None):
    """Drive an optimizer on one position with two tokens (a child is always the other token);
    ``values[token]`` is told. Returns the tokens asked, one per ask."""
    optimizer = make_optimizer(name, params)
    optimizer.setup(Problem(2, 1, 100, np.zeros((1, 1), dtype=np.int64)), np.random.SeedSequence(0))
    asked = []
    for _ in range(5):
        X = optimizer.ask(1)
        asked.append(int(X[0, 0]))
        optimizer.tell(X, np.array([values[asked[-1]]]))
    return asked


def test_elitist_one_plus_one_keeps_a_parent_that_is_better_than_its_children():
    # start 0 (0.5); child 1 (0.4) is worse: the parent stays and asks 1 again
    assert asked_tokens("ea-1p1", {0: 0.5, 1: 0.4}, {"selection": "elitist"}) == [0, 1, 1, 1, 1]
    # a child as good as its parent replaces it
    assert asked_tokens("ea-1p1", {0: 0.5, 1: 0.5}, {"selection": "elitist"}) == [0, 1, 0, 1, 0]


def test_nevergrad_one_plus_one_moves_to_a_worse_sequence_once_it_comes_back():
    # 1 (0.4) is worse than the start 0 (0.5), but when asked twice it is the only sequence told
    # twice; then 0 comes back, told twice, and is better again
    assert asked_tokens("ea-1p1", {0: 0.5, 1: 0.4}) == [0, 1, 1, 0, 1]


def test_revisit_parent_is_nevergrads_parent():
    """nevergrad's DiscreteOnePlusOne on the adapter's space, with a value per sequence, all
    distinct: after every tell its parent (the pessimistic best) is RevisitParent's."""
    ng = pytest.importorskip("nevergrad")
    num_states, dim = 3, 4  # 81 sequences: children often come back
    table = np.random.default_rng(0).permutation(num_states**dim) / num_states**dim
    space = ng.p.TransitionChoice(range(num_states), repetitions=dim, ordered=False)
    space.random_state = np.random.RandomState(0)
    space.value = (0, 1, 2, 0)
    optimizer = ng.optimizers.registry["DiscreteOnePlusOne"](parametrization=space, budget=300)
    ours, seen, revisits = RevisitParent(), set(), 0
    for _ in range(300):
        candidate = optimizer.ask()
        sequence = np.array(candidate.value, dtype=np.uint8)
        value = table[int(np.ravel_multi_index(sequence, (num_states,) * dim))]
        revisits += sequence.tobytes() in seen
        seen.add(sequence.tobytes())
        optimizer.tell(candidate, -value)
        ours.tell(sequence, value)
        theirs = optimizer.current_bests["pessimistic"].parameter.value
        assert ours.sequence.tolist() == list(theirs)
    assert revisits > 100  # the rule was exercised


# --- asks and parameters --------------------------------------------------------------------------


def test_mu_lambda_starts_alone_then_asks_lambda_children_at_once():
    optimizer = make_optimizer("ea-mu-lambda", {"mu": 3, "lam": 20})
    start = np.zeros((1, 16), dtype=np.int64)
    optimizer.setup(Problem(8, 16, 1000, start), np.random.SeedSequence(0))
    sizes = []
    for n in (500, 500, 7, 500, 0):
        X = optimizer.ask(n)
        sizes.append(len(X))
        optimizer.tell(X, np.zeros(len(X)))
    assert sizes == [1, 20, 7, 20, 0]


@pytest.mark.parametrize("name,params,message", [
    ("ea-mu-lambda", {"mu": 0}, "mu must be"),
    ("ea-mu-lambda", {"lam": 0}, "lam must be"),
    ("ea-lengler", {"alpha": 0.0}, "alpha must be"),
    ("ea-fast", {"beta": 1.0}, "beta must be"),
    ("ea-1p1", {"selection": "greedy"}, "selection must be"),
])
def test_bad_parameters_are_rejected_by_name(name, params, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(name, params)


def test_defaults_are_the_published_ones():
    assert make_optimizer("ea-1p1").config() == {"selection": "nevergrad"}
    assert make_optimizer("ea-lengler").config() == {"selection": "nevergrad", "alpha": 1.54468}
    assert make_optimizer("ea-fast").config() == {"selection": "nevergrad", "beta": 1.5}
    assert make_optimizer("ea-mu-lambda").config() == {"mu": 10, "lam": 100}


def test_tell_rejects_values_that_do_not_match_the_ask():
    optimizer = make_optimizer("ea-mu-lambda", {"lam": 20})
    optimizer.setup(Problem(8, 16, 1000, np.zeros((1, 16), dtype=np.int64)), 0)
    optimizer.tell(optimizer.ask(5), np.zeros(1))
    X = optimizer.ask(5)
    with pytest.raises(ValueError, match="the 5 sequences of the last ask"):
        optimizer.tell(X, np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        optimizer.tell(X, np.full(5, np.nan))


# --- whole runs through the runner ----------------------------------------------------------------

EAS = ["ea-1p1", "ea-lengler", "ea-fast", "ea-mu-lambda"]


def trace_of(folder):
    return read_trace(Path(folder) / "trace.bin")[1]


def same_trace(a, b):
    """Bit-for-bit equal traces, wall-clock time aside."""
    return len(a) == len(b) and all(
        np.array_equal(a[name], b[name]) for name in a.dtype.names if name != "time")


def check_runs_verify_and_repeat(tmp_path, name, count):
    """Seeds 3, 3 and 4 through ``run_job``: every run spends its budget (or solves the problem)
    without stalling and verifies; the same seed gives the same trace, another seed another."""
    jobs = [make_job(name, "smoke_ehrlich_small", seed, 1000, tmp_path / label, count=count)
            for label, seed in (("a", 3), ("b", 3), ("c", 4))]
    for job in jobs:
        manifest = run_job(job)
        assert manifest.status == "finished" and manifest.run.count == count
        assert manifest.stop_reason in ("budget", "solved"), manifest.stop_reason
        verify_run(job.folder)
    a, b, c = (trace_of(job.folder) for job in jobs)
    assert same_trace(a, b) and not same_trace(a, c)


@pytest.mark.parametrize("count", ["distinct", "all"])
@pytest.mark.parametrize("name", EAS)
def test_runs_verify_and_repeat_under_both_counting_rules(tmp_path, name, count):
    check_runs_verify_and_repeat(tmp_path, name, count)


KILLED_RUN = """
import os, signal, sys
from harness.runner import make_job, run_job
from optimizers.registry import optimizer_class

name, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
cls, told = optimizer_class(name), 0
tell = cls.tell

def dying_tell(self, X, values):
    global told
    told += 1
    if told == kill_at:  # the oracle has logged this call; the optimizer never hears of it
        os.kill(os.getpid(), signal.SIGKILL)
    tell(self, X, values)

cls.tell = dying_tell
run_job(make_job(name, "f2", 0, 2000, out))
"""


def check_killed_run_resumes(tmp_path, name, kill_at):
    """SIGKILL a run at its ``kill_at``-th tell, run it again: its trace is an unkilled run's,
    and the killed run's calls were served from the log, not asked again."""
    killed = make_job(name, "f2", 0, 2000, tmp_path / "killed")
    died = subprocess.run([sys.executable, "-c", KILLED_RUN, name, str(tmp_path / "killed"),
                           str(kill_at)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert died.returncode == -signal.SIGKILL
    partial = trace_of(killed.folder)
    assert read_manifest(killed.folder).status == "running"
    assert len(np.unique(partial["call"])) == kill_at and partial["charged"].sum() < 2000

    assert run_job(killed).status == "finished"
    whole = make_job(name, "f2", 0, 2000, tmp_path / "whole")
    run_job(whole)
    resumed = trace_of(killed.folder)
    assert resumed["charged"].sum() == 2000 and same_trace(resumed, trace_of(whole.folder))
    np.testing.assert_array_equal(resumed[: len(partial)], partial)  # kept, times included
    verify_run(killed.folder)


@pytest.mark.parametrize("name,kill_at", [("ea-1p1", 700), ("ea-lengler", 700),
                                          ("ea-mu-lambda", 8)])
def test_killed_run_resumes_with_the_trace_of_an_unkilled_run(tmp_path, name, kill_at):
    check_killed_run_resumes(tmp_path, name, kill_at)


# --- in distribution, against nevergrad -----------------------------------------------------------

PROBLEM, BUDGET, SEEDS = "smoke_ehrlich_small", 500, range(30)  # about 17% solved, median 0.25
COUNTERPARTS = {"ea-1p1": "ng:DiscreteOnePlusOne",
                "ea-lengler": "ng:DiscreteLenglerOnePlusOne",
                "ea-fast": "ng:FastGADiscreteOnePlusOne"}


def final_regret(name, seed, params=None):
    """One run in the runner's loop (its stop rules) without the run folder, under the
    ``distinct`` counting rule."""
    f = make_function(PROBLEM)
    oracle = Oracle(f, BUDGET, count="distinct")
    optimizer = make_optimizer(name, params)
    initial = np.atleast_2d(f.initial_solution()).astype(np.int64)
    optimizer.setup(Problem(f.num_states, f.dim, BUDGET, initial, "distinct"),
                    np.random.SeedSequence(seed))
    free_calls = 0
    while stop_rule(oracle, free_calls) is None:
        X = optimizer.ask(oracle.remaining)
        used = oracle.used
        values = oracle.evaluate(X)
        free_calls = 0 if oracle.used > used else free_calls + 1
        optimizer.tell(X, values)
    optimizer.close()
    return oracle.regret


@pytest.fixture(scope="module")
def nevergrad_regrets():
    pytest.importorskip("nevergrad")
    cache = {}

    def regrets(name):
        if name not in cache:
            cache[name] = np.array([final_regret(name, seed) for seed in SEEDS])
        return cache[name]

    return regrets


@pytest.mark.e2e
@pytest.mark.parametrize("ours", list(COUNTERPARTS))
def test_final_regret_is_distributed_as_nevergrads(ours, nevergrad_regrets):
    theirs = nevergrad_regrets(COUNTERPARTS[ours])
    mine = np.array([final_regret(ours, seed) for seed in SEEDS])
    p = mannwhitneyu(mine, theirs).pvalue
    print(f"\n{ours} median {np.median(mine):.4f} vs {COUNTERPARTS[ours]} "
          f"{np.median(theirs):.4f}: Mann-Whitney p = {p:.3f}")
    for regrets in (mine, theirs):  # informative: progress from the start, not all solved
        assert 0.0 < np.median(regrets) < 0.875 and len(np.unique(regrets)) >= 3
    assert p > ALPHA


@pytest.mark.e2e
def test_the_comparison_tells_nevergrads_selection_from_the_textbook_one(nevergrad_regrets):
    """The control: the textbook (1+1) (``selection="elitist"``) differs from nevergrad's."""
    theirs = nevergrad_regrets("ng:DiscreteOnePlusOne")
    elitist = np.array([final_regret("ea-1p1", seed, {"selection": "elitist"}) for seed in SEEDS])
    p = mannwhitneyu(elitist, theirs).pvalue
    print(f"\nea-1p1 elitist median {np.median(elitist):.4f} vs ng:DiscreteOnePlusOne "
          f"{np.median(theirs):.4f}: Mann-Whitney p = {p:.2g}")
    assert p < ALPHA and np.median(elitist) < np.median(theirs)
