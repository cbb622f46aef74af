"""One generation of our GA beside one ``DiscreteEvolution.step`` of holo's, on Ehr(32,128,4,4,4).

Each population size is one benchmark group holding four rows, so the relative column gives the
ratios:
- ``update``: the GA's own work. Ours is ``ask`` + ``tell`` on precomputed values; holo's is a
  ``step`` whose closure returns the same precomputed losses.
- ``generation``: the same plus evaluating every particle. Ours calls our Ehrlich (``f(X)``, no
  oracle bookkeeping); holo's closure calls holo's Ehrlich with ``negate=True``, as its callers do.
Both GAs use mutation 1/L, recombination 0.5 and survival quantile 0.1. Run:
    .venv/bin/pytest benchmarks/test_ga_speed.py --benchmark-only -q
"""

import pytest
import torch
from holo.optim import DiscreteEvolution
from holo.test_functions.closed_form import Ehrlich as HoloEhrlich

from holo_bench import Ehrlich
from optimizers.base import Problem
from optimizers.ga import GeneticAlgorithm

SPEC = (32, 128, 4, 4, 4)
SIZES = [1_000, 10_000]
PARAMS = dict(mutation_prob=1 / 128, recombine_prob=0.5, survival_quantile=0.1)
ROUNDS = {("ours", 1_000): 200, ("ours", 10_000): 50, ("holo", 1_000): 20, ("holo", 10_000): 5}


@pytest.fixture(scope="module")
def function():
    return Ehrlich(*SPEC, random_seed=0)


def evolved_population(f, n):
    """Particles ``(n, L)`` five generations from the initial solution (a realistic mix of
    feasible and infeasible sequences) and their values ``(n,)``."""
    ga = GeneticAlgorithm(num_particles=n, **PARAMS)
    ga.setup(Problem(f.num_states, f.dim, 10**9, f.initial_solution()[None]), 0)
    for _ in range(5):
        X = ga.ask(n)
        ga.tell(X, f(X))
    X = ga.ask(n)
    return X, f(X)


def holo_optimizer(f, X):
    """holo's GA holding the particles ``X``: one step creates its buffer, then ``X`` fills it."""
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.as_tensor(f.initial_solution(), dtype=torch.float32))
    vocab = torch.arange(f.num_states)
    optimizer = DiscreteEvolution([param], vocab=vocab, num_particles=len(X), **PARAMS)
    optimizer.step(lambda particles: torch.zeros(len(X)))  # creates the particle buffer
    optimizer.state[param]["particles"].copy_(torch.as_tensor(X, dtype=torch.float32))
    return optimizer


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")  # holo's vocab handling
@pytest.mark.parametrize("timed", ["update", "generation"])
@pytest.mark.parametrize("implementation", ["ours", "holo"])
@pytest.mark.parametrize("n", SIZES)
def test_one_generation(benchmark, function, n, implementation, timed):
    X, values = evolved_population(function, n)
    if implementation == "ours":
        # starts from one evolved particle; the cost of a generation does not depend on content
        ga = GeneticAlgorithm(num_particles=n, **PARAMS)
        ga.setup(Problem(function.num_states, function.dim, 10**9, X[:1]), 0)

        def generation():
            particles = ga.ask(n)
            ga.tell(particles, values if timed == "update" else function(particles))

    else:
        optimizer = holo_optimizer(function, X)
        holo_function = HoloEhrlich(*SPEC, negate=True, random_seed=0)
        losses = torch.as_tensor(-values, dtype=torch.float32)
        closure = (lambda p: losses) if timed == "update" else (lambda p: holo_function(p[0]))

        def generation():
            optimizer.step(closure)

    benchmark.group = f"GA generation, {n} particles, Ehr{SPEC}"
    benchmark.extra_info.update(
        particles=n, implementation=implementation, timed=timed, threads=torch.get_num_threads()
    )
    benchmark.pedantic(generation, rounds=ROUNDS[implementation, n], warmup_rounds=1)
