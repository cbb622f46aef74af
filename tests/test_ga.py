"""Our GA keeps the semantics of holo's ``DiscreteEvolution``; random search is uniform.

Expected values come from torch itself (the quantile), from the binomial law (mutation), from
the selection rule worked by hand (survivors), and from holo's GA run on the same problem.
"""

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from holo_bench import Ehrlich, Oracle
from optimizers.base import Problem
from optimizers.ga import (
    GeneticAlgorithm,
    bernoulli_mask,
    bernoulli_positions,
    survival_threshold,
    survivors,
)
from optimizers.random_search import RandomSearch


@pytest.fixture(scope="module")
def f2():
    return Ehrlich(32, 32, 4, 4, 4, random_seed=50494)


def problem_of(f, budget=10**6):
    return Problem(f.num_states, f.dim, budget, f.initial_solution()[None].astype(np.int64))


def started(f, seed=0, **params):
    ga = GeneticAlgorithm(**params)
    ga.setup(problem_of(f), seed)
    return ga


def diversified(f, generations=20, **params):
    """A GA whose particles drifted apart: equal values keep everybody, mutation accumulates."""
    ga = started(f, **params)
    for _ in range(generations):
        X = ga.ask(ga.params.num_particles)
        ga.tell(X, np.zeros(len(X)))
    return ga


def hamming(A, B):
    return (A != B).sum(axis=-1)


def unexplained(children, parents):
    """``(n,)``: for each child, the fewest positions that match neither parent of any pair."""
    either = (children[:, None, None, :] == parents[None, :, None, :]) | (
        children[:, None, None, :] == parents[None, None, :, :]
    )  # (children, first parent, second parent, dim)
    return (~either).sum(axis=-1).min(axis=(1, 2))


def torch_survivors(loss, quantile):
    """holo's selection rule, verbatim in meaning: survive below a finite threshold, else all."""
    threshold = torch.quantile(torch.from_numpy(loss), quantile)
    if threshold < float("inf"):
        return (torch.from_numpy(loss) <= threshold).numpy()
    return np.ones(len(loss), dtype=bool)


# --- the selection threshold ----------------------------------------------------------------------


def random_losses(rng):
    """Loss vectors like a GA sees: tied quantized values, continuous ones, +inf (infeasible)."""
    n = int(rng.integers(1, 300))
    if rng.random() < 0.5:
        loss = -rng.choice([0.0, 0.046875, 0.140625, 0.25, 0.5, 1.0], n)
    else:
        loss = rng.standard_normal(n) * 10.0 ** rng.integers(-4, 5)
    loss[rng.random(n) < rng.choice([0.0, 0.05, 0.5, 0.9, 1.0])] = np.inf
    return loss


def test_threshold_is_torch_quantile_bit_for_bit_including_inf_and_nan():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        loss = random_losses(rng)
        quantile = float(rng.choice([0.1, 0.5, 1e-4, rng.random()]))
        expected = torch.quantile(torch.from_numpy(loss), quantile).item()
        ours = survival_threshold(loss, quantile)
        assert ours == expected or (np.isnan(ours) and np.isnan(expected)), (loss, quantile)


def test_survivors_are_holos_survivors():
    rng = np.random.default_rng(1)
    for _ in range(3000):
        loss = random_losses(rng)
        quantile = float(rng.choice([0.1, 0.5, rng.random()]))
        np.testing.assert_array_equal(survivors(loss, quantile), torch_survivors(loss, quantile))


def test_ties_at_the_threshold_all_survive():
    loss = np.array([0.0] * 5 + [1.0] * 5)
    assert survivors(loss, 0.1).tolist() == [True] * 5 + [False] * 5


def test_everybody_survives_when_the_quantile_falls_among_the_infeasible():
    # 10 feasible of 100: the 0.5 quantile interpolates between two +inf, which is NaN
    loss = np.concatenate([-np.arange(10.0), np.full(90, np.inf)])
    assert np.isnan(survival_threshold(loss, 0.5))
    assert survivors(loss, 0.5).all()


# --- the random draws -----------------------------------------------------------------------------


@pytest.mark.parametrize("prob", [0.0, 1e-4, 0.3, 0.5, (77 + 0.5) / 256, 0.999])
def test_bernoulli_mask_has_rate_prob(prob):
    # (77 + 0.5) / 256 is decided by the tie-breaking draw in 1/256 of the cases
    n = 2_000_000
    mask = bernoulli_mask(np.random.default_rng(0), (1000, n // 1000), prob)
    assert mask.shape == (1000, n // 1000) and set(np.unique(mask)) <= {0, 1}
    assert abs(mask.sum() - n * prob) <= 5 * np.sqrt(n * prob * (1 - prob))


@pytest.mark.parametrize("prob", [1e-5, 1 / 128, 0.3, 0.9])
def test_bernoulli_positions_are_distinct_sorted_and_have_rate_prob(prob):
    n = 2_000_000
    positions = bernoulli_positions(np.random.default_rng(0), n, prob)
    assert np.all(np.diff(positions) > 0) and positions.min() >= 0 and positions.max() < n
    assert abs(len(positions) - n * prob) <= 5 * np.sqrt(n * prob * (1 - prob))


# --- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,message",
    [
        ({"mutation_prob": 0.0}, "mutation_prob must be in"),
        ({"mutation_prob": 1.0}, "mutation_prob must be in"),
        ({"recombine_prob": 1.0}, "recombine_prob must be in"),
        ({"recombine_prob": -0.1}, "recombine_prob must be in"),
        ({"num_particles": 0}, "num_particles must be"),
        ({"num_particles": 2.5}, "num_particles must be"),
        ({"survival_quantile": 0.0}, "survival_quantile must be in"),
        ({"survival_quantile": 1.0}, "survival_quantile must be in"),
        ({"num_particles": 10, "survival_quantile": 0.1}, "keep two parents"),
    ],
)
def test_bad_parameters_are_rejected_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        GeneticAlgorithm(**params)


def test_config_records_the_parameters_as_given():
    # mutation_prob None (1/dim) is resolved per problem; the mutation-rate test measures it
    assert GeneticAlgorithm().config() == {
        "num_particles": 1000,
        "mutation_prob": None,
        "recombine_prob": 0.5,
        "survival_quantile": 0.1,
    }


def test_tell_rejects_values_that_do_not_match_the_ask(f2):
    ga = started(f2, num_particles=50)
    X = ga.ask(20)
    with pytest.raises(ValueError, match="the 20 sequences of the last ask"):
        ga.tell(X, np.zeros(50))
    with pytest.raises(ValueError, match="NaN"):
        ga.tell(X, np.full(20, np.nan))


# --- the ask/tell contract, for both optimizers ---------------------------------------------------

OPTIMIZERS = {
    "ga": lambda: GeneticAlgorithm(num_particles=64, mutation_prob=0.05),
    "random": lambda: RandomSearch(batch_size=64),
}


def drive(make, f, seed, asks=(100, 7, 64, 1, 0, 200)):
    optimizer = make()
    optimizer.setup(problem_of(f), seed)
    asked = []
    for n in asks:
        X = optimizer.ask(n)
        asked.append(X)
        optimizer.tell(X, f(X))
    return asked


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_asks_are_integer_tokens_in_range_and_never_more_than_asked(name, f2):
    asks = (100, 7, 64, 1, 0, 200)
    for n, X in zip(asks, drive(OPTIMIZERS[name], f2, seed=0, asks=asks)):
        assert X.dtype.kind in "iu" and X.shape == (min(n, 64), f2.dim)
        assert len(X) == 0 or (X.min() >= 0 and X.max() < f2.num_states)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_seed_same_asks_bit_for_bit_and_other_seeds_differ(name, f2):
    first, again, other = (drive(OPTIMIZERS[name], f2, seed) for seed in (3, 3, 4))
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_random_search_is_uniform(f2):
    search = RandomSearch(batch_size=50_000)
    search.setup(problem_of(f2), 0)
    counts = np.bincount(search.ask(10**6).ravel(), minlength=32)  # 50_000 x 32 tokens
    expected = 50_000 * 32 / 32
    assert np.abs(counts - expected).max() < 6 * np.sqrt(expected)


# --- one generation, piece by piece ---------------------------------------------------------------


def test_first_generation_is_copies_of_the_first_initial_solution(f2):
    ga = GeneticAlgorithm(num_particles=100)
    x0 = f2.initial_solution(3).astype(np.int64)
    ga.setup(Problem(32, 32, 10**6, x0), 0)
    np.testing.assert_array_equal(ga.ask(1000), np.tile(x0[0], (100, 1)))


@pytest.mark.parametrize("mutation_prob", [None, 0.05, 0.5])
def test_mutation_changes_positions_at_rate_p_times_v_minus_1_over_v(f2, mutation_prob):
    # all-equal values: everybody survives, so mutation is the only change
    ga = started(f2, num_particles=2000, mutation_prob=mutation_prob)
    before = ga.ask(2000)
    ga.tell(before, np.zeros(2000))
    changed = hamming(ga.ask(2000), before).sum()
    trials = before.size
    p = (mutation_prob or 1 / 32) * 31 / 32
    assert abs(changed - trials * p) < 5 * np.sqrt(trials * p * (1 - p))


def test_the_best_quantile_survives_in_place_and_the_rest_are_children_of_it(f2):
    ga = diversified(f2, num_particles=200, mutation_prob=0.02)
    before = ga.ask(200)
    values = np.random.default_rng(0).permutation(200).astype(float)  # distinct
    ga.tell(before, values)
    after = ga.ask(200)
    # loss rank 0.1 * 199 = 19.9 lies between the 20th and 21st smallest: 20 survivors
    alive = values >= 180
    assert hamming(after[alive], before[alive]).max() <= 6  # mutation only: about 0.6 each
    # every other slot holds a crossover of two survivors, up to mutation; the particles it
    # replaced were not such crossovers (control)
    children = unexplained(after[~alive], before[alive])
    assert children.max() <= 8 and children.mean() < 1.0
    assert unexplained(before[~alive], before[alive]).mean() > 3.0


def test_uniform_crossover_takes_recombine_prob_of_positions_from_one_parent(f2):
    recombine = 0.2
    params = dict(mutation_prob=0.02, recombine_prob=recombine, survival_quantile=0.002)
    ga = diversified(f2, num_particles=1000, **params)
    before = ga.ask(1000)
    values = np.full(1000, -1.0)
    values[:2] = 0.0  # loss rank 0.002 * 999 = 1.998: exactly particles 0 and 1 survive
    ga.tell(before, values)
    a, b = before[0], before[1]
    differ = a != b
    assert differ.sum() >= 8
    children = ga.ask(1000)[2:, differ]
    from_a, from_b = (children == a[differ]).sum(axis=1), (children == b[differ]).sum(axis=1)
    share = from_a / (from_a + from_b)  # positions hit by mutation count for neither
    # half the children have two different parents; their share of either parent is
    # Binomial(d, recombine)/d, so E[share (1 - share)] = r (1 - r) (1 - 1/d); copies give 0
    d = from_a + from_b
    expected = 0.5 * recombine * (1 - recombine) * (1 - 1 / d)
    assert abs((share * (1 - share)).mean() - expected.mean()) < 0.015


def test_all_infeasible_everybody_survives(f2):
    ga = diversified(f2, num_particles=200, mutation_prob=0.02)
    before = ga.ask(200)
    ga.tell(before, np.full(200, -np.inf))
    assert hamming(ga.ask(200), before).max() <= 6  # mutation only


def test_a_short_ask_ranks_only_what_was_evaluated_and_refills_the_rest(f2):
    ga = diversified(f2, num_particles=100, mutation_prob=0.02)
    population = ga.ask(100)
    before = ga.ask(30)
    np.testing.assert_array_equal(before, population[:30])
    values = np.arange(30.0)
    ga.tell(before, values)
    after = ga.ask(100)
    # loss rank 0.1 * 29 = 2.9 among the 30 evaluated: the 3 best survive, 97 slots are refilled
    alive = np.zeros(100, dtype=bool)
    alive[27:30] = True
    assert hamming(after[alive], population[alive]).max() <= 6
    children = unexplained(after[~alive], population[alive])
    assert children.max() <= 8 and children.mean() < 1.0
    assert unexplained(population[~alive], population[alive]).mean() > 3.0


# --- the whole run, against holo's GA -------------------------------------------------------------

RUN = dict(num_particles=200, mutation_prob=1 / 32, recombine_prob=0.5, survival_quantile=0.1)
BUDGET = 20_000  # 100 generations of 200 on f2: regrets spread over 0.44-0.86
SEEDS = range(40)
ALPHA = 0.01


def holo_run(seed):
    """holo's GA as its callers run it: returns (regret, feasible fraction of all evaluations)."""
    from holo.optim import DiscreteEvolution
    from holo.test_functions.closed_form import Ehrlich as HoloEhrlich

    function = HoloEhrlich(32, 32, 4, 4, 4, negate=True, random_seed=50494)
    torch.manual_seed(seed)
    param = torch.nn.Parameter(function.initial_solution().float())
    optimizer = DiscreteEvolution([param], vocab=torch.arange(32), **RUN)
    best, feasible = -np.inf, 0

    def closure(particles):
        nonlocal best, feasible
        loss = function(particles[0])
        finite = loss[loss < float("inf")]
        feasible += len(finite)
        if len(finite):
            best = max(best, -finite.min().item())
        return loss

    for _ in range(BUDGET // RUN["num_particles"]):
        optimizer.step(closure)
    return 1.0 - max(0.0, best), feasible / BUDGET


def our_run(f, seed):
    """Our GA through the oracle, in the plain loop a runner uses, charging every query as holo's
    callers do."""
    oracle = Oracle(f, BUDGET, count="all")
    ga = GeneticAlgorithm(**RUN)
    ga.setup(problem_of(f, BUDGET), seed)
    while oracle.remaining:
        X = ga.ask(oracle.remaining)
        ga.tell(X, oracle.evaluate(X))
    return oracle.regret, oracle.records["feasible"].mean()



@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore:To copy construct from a tensor", "ignore:`torch.jit.script` is deprecated"
)
def test_regret_and_feasibility_are_distributed_as_holos_ga(f2, one_torch_thread):
    holo_regret, holo_feasible = np.array([holo_run(seed) for seed in SEEDS]).T
    our_regret, our_feasible = np.array([our_run(f2, seed) for seed in SEEDS]).T
    regret_p = mannwhitneyu(our_regret, holo_regret).pvalue
    feasible_p = mannwhitneyu(our_feasible, holo_feasible).pvalue
    print(
        f"\nregret median ours {np.median(our_regret):.4f} holo {np.median(holo_regret):.4f} "
        f"(Mann-Whitney p = {regret_p:.3f}); feasible fraction median ours "
        f"{np.median(our_feasible):.4f} holo {np.median(holo_feasible):.4f} (p = {feasible_p:.3f})"
    )
    # informative: both make progress from the start, neither solves it, seeds disagree
    for regrets in (our_regret, holo_regret):
        assert 0.0 < np.median(regrets) < 1.0 and len(np.unique(regrets)) >= 3
    assert regret_p > ALPHA and feasible_p > ALPHA
