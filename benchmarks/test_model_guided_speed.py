"""Seconds per round of the model-guided optimizers (AdaLead, PEX, CbAS, DbAS) on f2 (L = 32) and
on ``ehr_v-32_l-128_m-4_c-4_q-4`` (L = 128), at one torch thread, under both presets.

A round is one ``ask`` (the surrogate's training on every label so far, then the method's
proposal with it) and its ``tell`` with the function's values. Each benchmark first runs
``WARMUP`` rounds (1,001 labels: the start and ten batches of 100), then times ``ROUNDS[preset]``
more; under ``published`` a round's training grows with the labels (20 epochs, or PEX's
patience), under ``cpu`` it is capped (``optimizers.surrogate.CPU_STEPS``). ``extra_info``
holds the process CPU seconds per round and per evaluation (a round's CPU time over the batch it
sends). Not part of CI's speed comparison (no ``ours`` in the names). The published preset's
rounds (marked ``manual``: PEX's warm-up alone takes about half an hour at L = 128) run only when
selected. Run:
    OMP_NUM_THREADS=1 .venv/bin/pytest benchmarks/test_model_guided_speed.py --benchmark-only -q \
        -m "manual or not manual"
"""

import time

import numpy as np
import pytest

from holo_bench import make_function
from optimizers.base import Problem
from optimizers.registry import make_optimizer

METHODS = ["adalead", "pex", "cbas", "dbas"]
PROBLEMS = ["f2", "ehr_v-32_l-128_m-4_c-4_q-4"]
WARMUP = 11  # round 0 (the start) and ten rounds of 100
ROUNDS = {"cpu": 3, "published": 1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("preset", ["cpu", pytest.param("published", marks=pytest.mark.manual)])
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("method", METHODS)
def test_one_round(benchmark, method, problem, preset):
    f = make_function(problem)
    optimizer = make_optimizer(method, {"preset": preset})
    start = np.atleast_2d(f.initial_solution()).astype(np.int64)
    optimizer.setup(Problem(f.num_states, f.dim, 10**9, start), np.random.SeedSequence(0))
    cpu = []

    def one_round():
        started = time.process_time()
        X = optimizer.ask(10**9)
        optimizer.tell(X, f(X))
        cpu.append((time.process_time() - started, len(X)))

    for _ in range(WARMUP):
        one_round()
    cpu.clear()
    benchmark.group = f"model-guided round, {problem}, preset {preset}"
    benchmark.pedantic(one_round, rounds=ROUNDS[preset], iterations=1)
    seconds = sum(s for s, _ in cpu)
    benchmark.extra_info["labels_before"] = 1 + 100 * (WARMUP - 1)
    benchmark.extra_info["cpu_seconds_per_round"] = seconds / len(cpu)
    benchmark.extra_info["cpu_seconds_per_evaluation"] = seconds / sum(n for _, n in cpu)
