"""holo-bench as a poli black box: poli-core's ``AbstractBlackBox`` over a budgeted ``Oracle``.

A solver written against poli's interface (poli-baselines' ``step`` and ``solve``) calls the black
box with string tokens and gets values back; every query goes through the oracle, which charges it
under the run's counting rule and logs it. ``black_box(...)`` also writes the run folder, manifest
and trace as the runner writes them, so the run verifies and enters the leaderboard like any other.

Tokens and states: token ``alphabet[i]`` is state ``i``. The default alphabet is poli's amino acids
in poli's order (``AMINO_ACIDS``: A R N D C E Q G H I L K M F P S T W Y V), the first ``v`` of them
for a function of ``v <= 20`` states. That is the mapping of poli's own ``EhrlichHoloBlackBox``,
whose number of states is the length of its alphabet. Past 20 states (f2 has 32) the lowercase
letters a, b, c, ... follow, up to 46 states; pass ``alphabet`` for more, or for other tokens.

Values come back as float64 ``(b, 1)``. An infeasible sequence gets ``return_value_on_unfeasible``
(default ``-inf``, as holo-bench's oracle and poli's ``EhrlichHoloBlackBox`` both give); the trace
always logs the oracle's own value.

Needs poli-core, the ``poli`` extra (``pip install 'holo-bench[poli]'``), which pins numpy<2.
"""

from __future__ import annotations

import os
import string
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from poli.core.abstract_black_box import AbstractBlackBox
from poli.core.black_box_information import BlackBoxInformation
from poli.core.exceptions import BudgetExhaustedException
from poli.core.util.proteins.defaults import AMINO_ACIDS

from holo_bench import oracle as oracles
from holo_bench.oracle import Oracle, ReplayMismatch, check_count, default_count
from holo_bench.record import (
    STALL_CALLS,
    TRACE,
    RunSpec,
    ended_manifest,
    failure,
    previous_manifest,
    run_folder,
    running_manifest,
    stop_rule,
    write_manifest,
)
from holo_bench.run_lock import lock_run_folder
from holo_bench.suite import make_function

# The default alphabet: poli's amino acids, then lowercase letters for larger alphabets.
DEFAULT_TOKENS = tuple(AMINO_ACIDS) + tuple(string.ascii_lowercase)


class BudgetExhausted(oracles.BudgetExhausted, BudgetExhaustedException):
    """The oracle refused a batch over the remaining budget; nothing was charged. Both
    holo-bench's ``BudgetExhausted`` and poli's ``BudgetExhaustedException`` catch it."""


class RunEnded(BudgetExhausted):
    """A call after the run ended; ``reason`` is the stop rule that holds (``solved``, ``budget``
    or ``stalled``, see ``holo_bench.record.stop_rule``). To a solver, its budget is spent."""

    def __init__(self, reason: str, oracle: Oracle):
        self.reason = reason
        why = {"solved": f"the optimum {oracle.function.optimal_value} was found",
               "budget": f"all {oracle.budget} evaluations are charged",
               "stalled": f"the last {STALL_CALLS} calls asked only for sequences already "
                          "evaluated"}[reason]
        super().__init__(f"the run has ended ({reason}: {why}); nothing was charged")


def default_alphabet(num_states: int) -> list[str]:
    """The first ``num_states`` of ``DEFAULT_TOKENS``: poli's amino acids, then a, b, c, ..."""
    if num_states > len(DEFAULT_TOKENS):
        raise ValueError(f"the default alphabet has {len(DEFAULT_TOKENS)} tokens, the function "
                         f"{num_states} states: pass an alphabet of {num_states} distinct tokens")
    return list(DEFAULT_TOKENS[:num_states])


def check_alphabet(alphabet: Sequence[str], num_states: int) -> list[str]:
    """Validate an alphabet for ``num_states`` states: distinct non-empty strings, one per state."""
    alphabet = list(alphabet)
    if len(alphabet) != num_states:
        raise ValueError(f"alphabet has {len(alphabet)} tokens, the function {num_states} states")
    bad = [token for token in alphabet if not isinstance(token, str) or not token]
    if bad:
        raise ValueError(f"alphabet tokens must be non-empty strings, got {bad[0]!r}")
    repeated = sorted({token for token in alphabet if alphabet.count(token) > 1})
    if repeated:
        raise ValueError(f"alphabet token {repeated[0]!r} appears more than once")
    return alphabet


class OracleBlackBox(AbstractBlackBox):
    """A poli black box whose every query goes through ``oracle``.

    Args:
        oracle: the budgeted, logged oracle (its budget, counting rule and log govern; poli's own
            ``evaluation_budget`` stays unlimited, since under count ``distinct`` a repeat is free).
        alphabet: ``num_states`` distinct tokens, ``alphabet[i]`` for state ``i``; default
            ``default_alphabet(num_states)``.
        return_value_on_unfeasible: what a solver is told for an infeasible sequence (poli's name
            for it); default ``-inf``.

    A call takes tokens ``(b, L)`` (or ``(b,)`` strings of ``L`` one-character tokens) and returns
    float64 values ``(b, 1)``. Once a stop rule holds (solved, budget spent, or stalled: the rules
    the runner applies), every call raises ``RunEnded``.
    """

    def __init__(self, oracle: Oracle, alphabet: Sequence[str] | None = None,
                 return_value_on_unfeasible: float = -np.inf):
        super().__init__()
        function = oracle.function
        self.oracle = oracle
        self.alphabet = (default_alphabet(function.num_states) if alphabet is None
                         else check_alphabet(alphabet, function.num_states))
        self.return_value_on_unfeasible = float(return_value_on_unfeasible)
        self._state = {token: state for state, token in enumerate(self.alphabet)}
        self.free_calls = 0  # consecutive calls that charged nothing
        # Built once: poli's __call__ reads it several times a call.
        self._info = BlackBoxInformation(
            name=function.spec, max_sequence_length=function.dim, aligned=True, fixed_length=True,
            deterministic=True, alphabet=list(self.alphabet), log_transform_recommended=False,
            discrete=True, padding_token="",
        )

    @property
    def stop_reason(self) -> str | None:
        """The stop rule that holds now, or None while the run may go on."""
        return stop_rule(self.oracle, self.free_calls)

    def get_black_box_info(self) -> BlackBoxInformation:
        return self._info

    def initial_solution(self, n: int = 1) -> np.ndarray:
        """The problem's ``n`` feasible starting sequences as tokens ``(n, L)``."""
        return self.tokens(np.atleast_2d(self.oracle.function.initial_solution(n)))

    def tokens(self, states: np.ndarray) -> np.ndarray:
        """States ``(b, L)`` as tokens ``(b, L)``."""
        return np.asarray(self.alphabet)[np.asarray(states)]

    def states(self, x) -> np.ndarray:
        """Tokens ``(b, L)``, or ``(b,)``/``(b, 1)`` strings of ``L`` one-character tokens, as
        int64 states ``(b, L)``; ``ValueError`` names the first token not in the alphabet."""
        dim = self.oracle.function.dim
        x = np.asarray(x)
        if x.dtype.kind == "O" and all(isinstance(token, str) for token in x.flat):
            x = x.astype(str)
        if x.dtype.kind != "U":
            raise TypeError(f"expected string tokens, got an array of dtype {x.dtype}")
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if x.ndim == 2 and x.shape[1] == 1 and dim > 1:  # whole sequences as strings
            lengths = np.char.str_len(x[:, 0])
            if (lengths != dim).any():
                row = int(np.argmax(lengths != dim))
                raise ValueError(f"sequence {row} is a string of {lengths[row]} characters, "
                                 f"expected {dim} (one per token)")
            if any(len(token) != 1 for token in self.alphabet):
                raise ValueError("sequences given as strings need one-character tokens; give "
                                 f"tokens of shape (b, {dim}) for this alphabet")
            x = x[:, 0].astype(f"<U{dim}").view("<U1").reshape(len(x), dim)
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"expected tokens of shape (b, {dim}) or strings of shape (b,), "
                             f"got shape {x.shape}")
        distinct, inverse = np.unique(x, return_inverse=True)
        lookup = np.array([self._state.get(token, -1) for token in distinct.tolist()],
                          dtype=np.int64)
        states = lookup[inverse.reshape(-1)].reshape(x.shape)
        if (states < 0).any():
            row, position = divmod(int(np.argmax(states.reshape(-1) < 0)), dim)
            raise ValueError(f"token {str(x[row, position])!r} (sequence {row}, position "
                             f"{position}) is not in the alphabet {' '.join(self.alphabet)}")
        return states

    def _black_box(self, x: np.ndarray, context=None) -> np.ndarray:
        reason = self.stop_reason
        if reason is not None:
            raise RunEnded(reason, self.oracle)
        X = self.states(x)
        if not len(X):
            return np.empty((0, 1))
        used = self.oracle.used
        try:
            values = self.oracle.evaluate(X)
        except oracles.BudgetExhausted as err:
            raise BudgetExhausted(str(err)) from None
        self.free_calls = 0 if self.oracle.used > used else self.free_calls + 1
        values = np.where(values > -np.inf, values, self.return_value_on_unfeasible)
        return values.reshape(-1, 1)


@contextmanager
def black_box(problem: str, budget: int, out: str | os.PathLike, *, name: str | None = None,
              solver: type | None = None, seed: int = 0, count: str | None = None,
              params: dict | None = None, alphabet: Sequence[str] | None = None,
              return_value_on_unfeasible: float = -np.inf) -> Iterator[OracleBlackBox]:
    """An ``OracleBlackBox`` on ``problem`` (a named instance or a spec string) whose queries land
    in the run folder ``out/<name>/<problem>/seed-<seed>-<identity[:10]>``, with the manifest and
    trace the runner writes.

    ``name`` is the optimizer's name on the leaderboard (default ``poli:<solver's class name>``);
    ``solver`` (optional) is recorded as the manifest's optimizer class; ``params`` is the solver's
    configuration. Name, params, seed, budget and ``count`` are the run's identity: seed the solver
    from ``seed``. A ``BudgetExhausted`` or ``RunEnded`` raised in the block ends the run and is
    not re-raised; the run finishes with the stop rule that holds, else ``optimizer-done``. Any
    other exception marks the run failed, with the error in its manifest, and is re-raised. A
    failed or killed run given again replays its trace to a solver that asks the same sequences
    (as the runner does); a finished one is refused. The block holds the run folder's lock
    (``holo_bench.run_lock``): while it runs, another ``black_box`` of the same run gets
    ``RunLocked`` and touches nothing.
    """
    if name is None:
        if solver is None:
            raise ValueError("give the optimizer's name, or its solver class")
        name = f"poli:{solver.__name__}"
    function = make_function(problem)
    count = check_count(default_count(function) if count is None else count, function)
    alphabet = (default_alphabet(function.num_states) if alphabet is None
                else check_alphabet(alphabet, function.num_states))
    run = RunSpec(problem=problem, spec=function.spec, optimizer=name, params=dict(params or {}),
                  seed=int(seed), budget=int(budget), count=count)
    folder = run_folder(out, name, run)
    with lock_run_folder(folder):  # one writer per run folder, as the runner
        previous = previous_manifest(folder, run)
        if previous is not None and previous.status == "finished":
            raise FileExistsError(f"{folder} holds this run, finished ({previous.stop_reason}): "
                                  "collect it, or give another seed or name to run again")
        oracle = Oracle(function, run.budget, count=run.count, log_path=folder / TRACE)
        box = OracleBlackBox(oracle, alphabet, return_value_on_unfeasible)
        manifest = running_manifest(
            run, name, function,
            optimizer_class=f"{solver.__module__}:{solver.__qualname__}" if solver else "")
        write_manifest(folder, manifest)
        outcome: dict = {"status": "finished", "error": None}
        started = time.perf_counter()
        try:
            try:
                yield box
            except BudgetExhausted:
                pass  # the solver's loop stopped at the budget or at the run's end: it is over
            if oracle.replaying:
                raise ReplayMismatch("the run ended before replaying every logged call")
            outcome["stop_reason"] = box.stop_reason or "optimizer-done"
        except BaseException as err:
            outcome = failure(err)
            raise
        finally:
            oracle.close()
            write_manifest(folder, ended_manifest(manifest, oracle, outcome, started))
