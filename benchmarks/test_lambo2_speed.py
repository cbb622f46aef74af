"""Seconds per LaMBO-2 round (optimizers/lambo2), split into training and guided generation, on
f2 (L = 32) and ``ehr_v-32_l-128_m-4_c-4_q-4`` (L = 128), at one torch thread.

A round's two parts each repeat one unit of work a fixed number of times: a training step (a
minibatch of 128 per task) and a diffusion step (over the round's 2,000 sequences). So the
default benchmarks time a few units of each at the ``cpu`` preset and report the round they
make, ``CPU_TRAIN_STEPS`` training steps and ``CPU_DIFFUSION_STEPS`` diffusion steps, in
``extra_info``; the benchmark's own time is the probe's. The ``manual`` ones run whole rounds
of the optimizer after its seed phase and the first round (which trains twice), and report the
second round's measured split: minutes per round under the ``cpu`` preset at L = 128, hours
under ``published`` on a CPU. Not part of CI's speed comparison (no ``ours`` in the names).
Run:
    OMP_NUM_THREADS=1 .venv/bin/pytest benchmarks/test_lambo2_speed.py --benchmark-only -q
    (add -m "manual or not manual" for the whole rounds)
"""

import time

import numpy as np
import pytest
import torch

from holo_bench import make_function
from optimizers.base import Problem
from optimizers.lambo2.guidance import diffuse
from optimizers.lambo2.model import Lambo2Model
from optimizers.lambo2.optimizer import CPU_DIFFUSION_STEPS, CPU_TRAIN_STEPS, Lambo2Params
from optimizers.lambo2.train import fit
from optimizers.registry import make_optimizer

PROBLEMS = ["f2", "ehr_v-32_l-128_m-4_c-4_q-4"]
TRAIN_PROBE = 5  # training steps timed per benchmark
LABELS = 10_000  # labelled sequences the probe trains on (LLOME's seed data: 10,000 distinct)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def labelled(f, n, rng):
    """``n`` mutants of the initial solution (a tenth of positions redrawn) and their values."""
    start = np.atleast_2d(f.initial_solution()).astype(np.int64)[0]
    X = np.tile(start, (n, 1))
    redraw = rng.random(X.shape) < 0.1
    X[redraw] = rng.integers(0, f.num_states, redraw.sum())
    return X, f(X)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_cpu_round_from_its_steps(benchmark, problem):
    f = make_function(problem)
    p = Lambo2Params(preset="cpu")
    rng = np.random.default_rng(0)
    X, values = labelled(f, LABELS, rng)
    model = Lambo2Model(f.num_states, f.dim, p.ensemble_size, p.embed_dim, p.channels,
                        p.kernel_size, torch.Generator().manual_seed(0))
    seeds = torch.as_tensor(X[: p.num_samples])
    guidance = p.guidance(f.dim)
    one_step = type(guidance)(**{**guidance.__dict__, "steps": 1})
    split = {}

    def train(steps):
        fit(model, X, values, np.zeros(len(X), dtype=np.int64), epochs=p.epochs,
            batch_size=p.batch_size, lr=p.lr, warmup=p.warmup_epochs, max_steps=steps,
            shared=True, rng=rng)

    def generate(seeds):
        with torch.no_grad():
            best = model.values(model.trunk(model.embed(seeds))).max(1).values
        diffuse(model, seeds, best, one_step, rng)

    def probe():
        started = time.perf_counter()
        train(TRAIN_PROBE)
        trained = time.perf_counter()
        generate(seeds)
        split["train"] = (trained - started) / TRAIN_PROBE
        split["generate"] = time.perf_counter() - trained

    train(1)  # warm-up: the first calls of each kernel set it up
    generate(seeds[:100])
    benchmark.group = f"LaMBO-2 round (cpu preset, from its steps), {problem}"
    benchmark.pedantic(probe, rounds=1, iterations=1)
    benchmark.extra_info.update(
        train_seconds_per_step=split["train"], generate_seconds_per_step=split["generate"],
        train_seconds_per_round=split["train"] * CPU_TRAIN_STEPS,
        generate_seconds_per_round=split["generate"] * CPU_DIFFUSION_STEPS,
        seconds_per_round=split["train"] * CPU_TRAIN_STEPS
        + split["generate"] * CPU_DIFFUSION_STEPS)


@pytest.mark.manual
@pytest.mark.parametrize("preset", ["cpu", "published"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_second_round(benchmark, problem, preset):
    f = make_function(problem)
    optimizer = make_optimizer("lambo2", {"preset": preset, "device": "cpu"})
    start = np.atleast_2d(f.initial_solution()).astype(np.int64)
    optimizer.setup(Problem(f.num_states, f.dim, 10**9, start), np.random.SeedSequence(0))

    def one_call():
        X = optimizer.ask(10**9)
        optimizer.tell(X, f(X))

    while optimizer.round < 1 or optimizer._pending is not None:  # the seed phase, round 1
        one_call()
    benchmark.group = f"LaMBO-2 round 2, {problem}, preset {preset}"
    benchmark.pedantic(one_call, rounds=1, iterations=1)
    metrics = optimizer._metrics
    benchmark.extra_info.update(labels=metrics["labels"], train_steps=metrics["train_steps"],
                                train_seconds_per_round=metrics["train_seconds"],
                                generate_seconds_per_round=metrics["generate_seconds"])
