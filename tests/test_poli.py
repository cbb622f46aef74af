"""holo-bench as a poli black box (``holo_bench.interop.poli``): poli's own
``EhrlichHoloBlackBox`` gives the same values on the same token sequences, and a solver written
in poli-baselines' step style runs through the wrapper into a run folder that verifies and enters
the leaderboard.

poli-core pins numpy<2, so these run in ``.venv-numpy1`` (``bash scripts/install.sh --numpy1``),
where ``.ci/run`` sets ``HOLO_BENCH_REQUIRE_POLI=1``: a missing poli fails there instead of
skipping.
"""

import json
import os
import random
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch

try:
    import poli  # noqa: F401
except ImportError:
    if os.environ.get("HOLO_BENCH_REQUIRE_POLI"):
        raise
    pytest.skip("poli-core pins numpy<2; runs in .venv-numpy1 (scripts/install.sh --numpy1)",
                allow_module_level=True)

from poli.core.exceptions import BudgetExhaustedException
from poli.core.util.proteins.defaults import AMINO_ACIDS
from poli.objective_repository import EhrlichHoloBlackBox
from test_layering import SCRIPT

import holo_bench
from harness.cli import main as holo_bench_cli
from holo_bench import Oracle, make_function
from holo_bench.interop.poli import (
    BudgetExhausted,
    OracleBlackBox,
    RunEnded,
    black_box,
    default_alphabet,
)
from holo_bench.record import find_runs, read_manifest
from holo_bench.run_lock import RunLocked
from holo_bench.trace import read_trace
from leaderboard.store import collect
from leaderboard.verify import verify_run

TINY = "smoke_ehrlich_tiny"  # ehrlich:v=4,L=8,c=2,k=2,q=2,seed=2


def box(problem: str, budget: int = 10**6, count: str = "all", **options) -> OracleBlackBox:
    """A black box over a fresh oracle, with no run folder."""
    return OracleBlackBox(Oracle(make_function(problem), budget, count=count), **options)


@contextmanager
def global_generators_kept():
    """poli's factory seeds Python's, numpy's and torch's global generators: restore them."""
    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(python)
    np.random.set_state(numpy)


def probes(f, rng: np.random.Generator) -> np.ndarray:
    """Random (mostly infeasible) sequences, feasible chains, the optimum and its mutants."""
    optimum = np.tile(f.optimal_solution(), (40, 1))
    mutate = rng.random(optimum.shape) < rng.uniform(0.0, 0.3, size=(40, 1))
    optimum[mutate] = rng.integers(0, f.num_states, mutate.sum())
    return np.concatenate([rng.integers(0, f.num_states, (40, f.dim)), f.initial_solution(40),
                           optimum])


def test_default_alphabet_is_polis_amino_acids_then_lowercase_letters():
    assert default_alphabet(20) == AMINO_ACIDS
    assert default_alphabet(4) == ["A", "R", "N", "D"]
    assert default_alphabet(32) == AMINO_ACIDS + list("abcdefghijkl")
    with pytest.raises(ValueError, match="pass an alphabet of 47 distinct tokens"):
        default_alphabet(47)
    with pytest.raises(ValueError, match="alphabet has 3 tokens, the function 4 states"):
        box(TINY, alphabet=["a", "b", "c"])
    with pytest.raises(ValueError, match="'b' appears more than once"):
        box(TINY, alphabet=["a", "b", "b", "c"])


# (v, L, c, k, q, seed, alphabet given to both sides; None: each side's default). At v=20 poli's
# default alphabet meets ours; below, poli gets our prefix of it, above, our extension.
CONFIGURATIONS = [(20, 32, 2, 4, 4, 7, None), (8, 16, 2, 4, 2, 1, default_alphabet(8)),
                  (32, 32, 4, 4, 4, 50494, default_alphabet(32)),
                  (6, 24, 3, 3, 3, 11, list("uvwxyz"))]


@pytest.mark.parametrize("config", CONFIGURATIONS, ids=lambda c: f"v={c[0]},L={c[1]},seed={c[5]}")
def test_same_values_as_polis_own_ehrlich_holo_black_box(config):
    v, L, c, k, q, seed, alphabet = config
    with global_generators_kept():
        theirs = EhrlichHoloBlackBox(sequence_length=L, motif_length=k, n_motifs=c,
                                     quantization=q, seed=seed,
                                     **({"alphabet": alphabet} if alphabet else {}))
    spec = f"ehrlich:v={v},L={L},c={c},k={k},q={q},seed={seed}"
    ours = box(spec, alphabet=alphabet)
    f = make_function(spec)
    assert ours.alphabet == theirs.alphabet
    assert theirs.initial_solution()[0] == "".join(ours.initial_solution()[0])
    assert theirs.optimal_solution()[0] == "".join(ours.tokens(f.optimal_solution()))

    X = ours.tokens(probes(f, np.random.default_rng(seed)))
    expected = theirs(X)
    values = ours(X)
    assert values.shape == expected.shape == (len(X), 1) and values.dtype == np.float64
    np.testing.assert_array_equal(values, expected)
    assert np.isneginf(values).any() and (values == 1.0).any()  # infeasible ones and the optimum
    # Whole sequences as strings, poli's other aligned form, give the same values.
    as_strings = np.array(["".join(row) for row in X])
    np.testing.assert_array_equal(box(spec, alphabet=alphabet)(as_strings), expected)


def test_polis_ehrlich_holo_drops_the_epistasis_factor():
    """Why the comparison above is at eps=0: poli-core 1.3.1 does not pass epistasis_factor on to
    holo's Ehrlich, so its values at eps=0.5 are holo-bench's at eps=0."""
    spec = "ehrlich:v=8,L=16,c=2,k=4,q=4,seed=1"
    with global_generators_kept():
        theirs = EhrlichHoloBlackBox(sequence_length=16, motif_length=4, n_motifs=2,
                                     quantization=4, seed=1, alphabet=default_alphabet(8),
                                     epistasis_factor=0.5)
    f = make_function(spec)
    X = probes(f, np.random.default_rng(0))
    tokens = np.asarray(default_alphabet(8))[X]
    np.testing.assert_array_equal(theirs(tokens)[:, 0], f(X))
    assert not np.array_equal(theirs(tokens)[:, 0], make_function(spec + ",eps=0.5")(X))


def test_tokens_map_to_states_by_their_position_in_the_alphabet(tmp_path):
    f = make_function(TINY)
    states = np.stack([f.optimal_solution(), f.initial_solution(), np.tile([0, 1], f.dim // 2)])
    tokens = np.array(list("wxyz"))[states]
    ours = box(TINY, alphabet=list("wxyz"), return_value_on_unfeasible=0.0)
    np.testing.assert_array_equal(ours.states(tokens), states)
    np.testing.assert_array_equal(ours.states(["".join(row) for row in tokens]), states)
    values = ours(tokens)
    expected = f(states)
    assert np.isneginf(expected[2])  # 0 -> 1 is a banned transition of this instance
    np.testing.assert_array_equal(values[:, 0], np.where(expected > -np.inf, expected, 0.0))
    records = ours.oracle.records  # the oracle logs the states and its own value, -inf
    np.testing.assert_array_equal(records["sequence"], states)
    np.testing.assert_array_equal(records["value"], expected)


def test_a_bad_query_is_an_error_naming_it_and_charges_nothing():
    ours = box(TINY)
    good = ours.initial_solution(2)
    bad = good.copy()
    bad[1, 3] = "B"
    with pytest.raises(ValueError, match=r"token 'B' \(sequence 1, position 3\) is not in the "
                                         r"alphabet A R N D"):
        ours(bad)
    with pytest.raises(TypeError, match="expected string tokens, got an array of dtype int64"):
        ours(np.zeros((2, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="sequence 1 is a string of 7 characters, expected 8"):
        ours.states(np.array(["ARNDARND", "ARNDARN"], dtype=object))
    assert ours.oracle.queries == 0 and ours.oracle.used == 0


def test_a_batch_over_the_budget_raises_the_oracles_error_then_the_run_ends():
    ours = box(TINY, budget=5, count="distinct")
    X = ours.tokens(make_function(TINY).initial_solution(6))
    assert len({"".join(row) for row in X}) == 6
    with pytest.raises(BudgetExhausted, match="exceeds the remaining budget of 5") as refused:
        ours(X)
    assert isinstance(refused.value, BudgetExhaustedException)  # poli's
    assert isinstance(refused.value, holo_bench.BudgetExhausted)
    assert ours.oracle.used == 0 and ours.oracle.queries == 0
    ours(X[:5])
    with pytest.raises(RunEnded, match=r"the run has ended \(budget: all 5 evaluations") as ended:
        ours(X[:1])  # a repeat would be free, but the run is over
    assert ended.value.reason == "budget" and ours.oracle.queries == 5


class RandomMutationSolver:
    """A small solver in poli-baselines' ``AbstractSolver`` pattern: built from (black box, x0,
    y0), it keeps a history; ``step`` proposes a batch, calls the black box and records the
    answer; ``solve(max_iter)`` loops over steps. Each step mutates one random position of the
    best sequence so far, ``batch`` times."""

    def __init__(self, black_box, x0, y0, batch=8, seed=0):
        self.black_box = black_box
        self.alphabet = np.asarray(black_box.info.get_alphabet())
        self.batch = batch
        self.rng = np.random.default_rng(seed)
        self.history = {"x": [x0], "y": [y0]}
        self.iteration = 0

    def next_candidate(self) -> np.ndarray:
        x, y = np.concatenate(self.history["x"]), np.concatenate(self.history["y"])
        X = np.tile(x[np.argmax(y[:, 0])], (self.batch, 1))
        X[np.arange(self.batch), self.rng.integers(0, X.shape[1], self.batch)] = self.rng.choice(
            self.alphabet, self.batch)
        return X

    def step(self):
        x = self.next_candidate()
        y = self.black_box(x)
        self.history["x"].append(x)
        self.history["y"].append(y)
        self.iteration += 1
        return x, y

    def solve(self, max_iter=100):
        for _ in range(max_iter):
            self.step()


def test_a_poli_baselines_style_solver_runs_into_a_verified_leaderboard_entry(tmp_path):
    runs, db = tmp_path / "runs", tmp_path / "store.sqlite"
    with black_box("smoke_ehrlich_small", 300, runs, solver=RandomMutationSolver, seed=3,
                   params={"batch": 8}) as f:
        x0 = f.initial_solution()
        solver = RandomMutationSolver(f, x0, f(x0), batch=8, seed=3)
        solver.solve(max_iter=10_000)  # ends when the run does: RunEnded, absorbed by black_box

    [folder] = find_runs(runs)
    manifest = verify_run(folder).manifest
    assert manifest.label == manifest.run.optimizer == "poli:RandomMutationSolver"
    assert manifest.optimizer_class == f"{__name__}:RandomMutationSolver"
    assert manifest.run.params == {"batch": 8} and manifest.run.count == "distinct"
    assert manifest.stop_reason in ("solved", "budget", "stalled") and manifest.evaluations <= 300
    _, records = read_trace(folder / "trace.bin")
    asked = np.concatenate(solver.history["x"])
    np.testing.assert_array_equal(records["sequence"], f.states(asked))
    np.testing.assert_array_equal(records["value"], np.concatenate(solver.history["y"])[:, 0])

    report = collect(runs, db)
    assert report.added == [manifest.identity] and not report.rejected
    markdown = tmp_path / "leaderboard.md"
    assert holo_bench_cli(["leaderboard", "--db", str(db), "--reference", manifest.label,
                           "--markdown", str(markdown)]) == 0
    board = markdown.read_text()
    assert "## smoke\\_ehrlich\\_small" in board and "| poli:RandomMutationSolver " in board


def test_a_call_after_the_optimum_raises_run_ended_and_the_run_verifies_as_solved(tmp_path):
    f = make_function(TINY)
    with black_box(TINY, 100, tmp_path, name="poli:peek", seed=0) as ours:
        assert ours(ours.tokens(f.optimal_solution()[None]))[0, 0] == 1.0
        with pytest.raises(RunEnded, match=r"\(solved: the optimum 1.0 was found\)"):
            ours(ours.initial_solution())
    manifest = verify_run(find_runs(tmp_path)[0]).manifest
    assert manifest.stop_reason == "solved" and manifest.evaluations == 1 and manifest.regret == 0


def test_a_failed_run_is_recorded_and_runs_again_by_replaying_its_trace(tmp_path):
    def session(crash: bool):
        with black_box(TINY, 100, tmp_path, name="poli:flaky", seed=0) as ours:
            ours(ours.initial_solution())
            if crash:
                raise ZeroDivisionError("the solver crashed")
            ours(ours.initial_solution(3))

    with pytest.raises(ZeroDivisionError):
        session(crash=True)
    [folder] = find_runs(tmp_path)
    failed = read_manifest(folder)
    assert failed.status == "failed" and failed.error["message"] == "the solver crashed"
    session(crash=False)  # the first call is served from the trace, the second is new
    manifest = verify_run(folder).manifest
    assert manifest.stop_reason == "optimizer-done" and manifest.calls == 2
    with pytest.raises(FileExistsError, match="finished \\(optimizer-done\\): collect it"):
        session(crash=False)


def test_a_second_writer_of_a_run_gets_run_locked_and_touches_nothing(tmp_path):
    with black_box(TINY, 100, tmp_path, name="poli:first", seed=0) as ours:
        ours(ours.initial_solution())
        [folder] = find_runs(tmp_path)
        trace = (folder / "trace.bin").read_bytes()
        manifest = (folder / "manifest.json").read_text()
        with pytest.raises(RunLocked, match=f"is being written by host .*, pid {os.getpid()}"):
            with black_box(TINY, 100, tmp_path, name="poli:first", seed=0):
                pass
        assert (folder / "trace.bin").read_bytes() == trace
        assert (folder / "manifest.json").read_text() == manifest
        ours(ours.initial_solution(3))  # the first writer goes on
    assert verify_run(folder).manifest.calls == 2


def test_the_wrapper_imports_only_the_core():
    layers = [(["holo_bench.interop.poli"], ["optimizers", "leaderboard", "harness"])]
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(layers)],
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == {"holo_bench.interop.poli": []}
