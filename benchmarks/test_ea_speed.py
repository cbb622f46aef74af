"""CPU per evaluation of our (1+1) family, (mu + lambda) EA and annealing beside nevergrad's
counterparts, on f2's shape (32 tokens, 32 positions).

One benchmark group per pair (ours and nevergrad's), so the relative column is the cost ratio. A
round is ``EVALUATIONS`` evaluations, asked, valued and told through the ask/tell protocol as
the runner does; a round's time is process CPU time (``time.process_time``), so other load on
the machine does not count, and ``extra_info["cpu_per_evaluation_us"]`` is it per evaluation.
The values come from a stand-in, the fraction of positions equal to a fixed target (a few
microseconds per call, the same for both), so what is timed is the optimizers' own ask and tell,
not the Ehrlich function or the oracle. Each optimizer runs on from round to round (its archive
grows as in a run). Run:
    .venv/bin/pytest benchmarks/test_ea_speed.py --benchmark-only -q
"""

import time

import numpy as np
import pytest

from optimizers.base import Problem
from optimizers.registry import make_optimizer

NUM_STATES, DIM, EVALUATIONS = 32, 32, 100
PAIRS = {  # ours: (nevergrad's counterpart, its adapter parameters)
    "ea-1p1": ("ng:DiscreteOnePlusOne", {}),
    "ea-lengler": ("ng:DiscreteLenglerOnePlusOne", {}),
    "ea-fast": ("ng:FastGADiscreteOnePlusOne", {}),
    # nevergrad's (1+1) with 100 asks pending is its (1 + lambda): its batch counterpart
    "ea-mu-lambda": ("ng:DiscreteOnePlusOne", {"batch_size": 100}),
    # nevergrad's discrete (1+1) with its annealing option: the nearest it has to ours
    "sa": ("ng:SADiscreteOnePlusOneExp09", {}),
}
ROUNDS = {"ours": 200, "nevergrad": 3}


def timed_rounds(benchmark, name, params, implementation):
    """Benchmark rounds of ``EVALUATIONS`` evaluations of optimizer ``name``."""
    target = np.random.default_rng(1).integers(0, NUM_STATES, DIM)
    optimizer = make_optimizer(name, params)
    start = np.random.default_rng(2).integers(0, NUM_STATES, (1, DIM))
    optimizer.setup(Problem(NUM_STATES, DIM, 10**7, start), np.random.SeedSequence(0))

    def evaluations():
        done = 0
        while done < EVALUATIONS:
            X = optimizer.ask(EVALUATIONS - done)
            optimizer.tell(X, (X == target).mean(axis=1))
            done += len(X)

    benchmark.extra_info.update(optimizer=name, params=params, evaluations=EVALUATIONS)
    benchmark.pedantic(evaluations, rounds=ROUNDS[implementation], warmup_rounds=1)
    if benchmark.stats is not None:  # None under --benchmark-disable (CI's correctness run)
        benchmark.extra_info["cpu_per_evaluation_us"] = (
            benchmark.stats.stats.mean / EVALUATIONS * 1e6)
    optimizer.close()


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("name", list(PAIRS))
def test_cpu_per_evaluation_ours(benchmark, name):
    benchmark.group = f"{name} vs {PAIRS[name][0]}, {EVALUATIONS} evaluations, CPU seconds"
    timed_rounds(benchmark, name, {}, "ours")


@pytest.mark.benchmark(timer=time.process_time)
@pytest.mark.parametrize("name", list(PAIRS))
def test_cpu_per_evaluation_nevergrad(benchmark, name):
    pytest.importorskip("nevergrad")
    counterpart, params = PAIRS[name]
    benchmark.group = f"{name} vs {counterpart}, {EVALUATIONS} evaluations, CPU seconds"
    timed_rounds(benchmark, counterpart, params, "nevergrad")
