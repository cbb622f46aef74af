"""LaMBO-2 (optimizers/lambo2): its pieces on hand-sized cases, then whole runs through the
runner (both counting rules, repeatable per seed, resumed after a kill)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from killing import assert_resumed_as_whole, kill_after_rounds, run_command

from harness.runner import make_job, run_job
from holo_bench import make_function
from holo_bench.seeding import child
from holo_bench.trace import read_trace
from leaderboard.verify import verify_run
from optimizers.base import Problem
from optimizers.ga import GeneticAlgorithm
from optimizers.lambo2.acquisition import (
    TAU,
    acquisition,
    farthest_first,
    log_improvement,
    select_seeds,
)
from optimizers.lambo2.guidance import (
    Guidance,
    accept,
    choose_positions,
    guidance_loss,
    mask_fraction,
    saliency,
    sample_tokens,
    unguided,
)
from optimizers.lambo2.model import Lambo2Model
from optimizers.lambo2.optimizer import LaMBO2, Lambo2Params
from optimizers.lambo2.train import (
    balanced_stream,
    corruption_fractions,
    fit,
    learning_rate_factor,
    recency_groups,
)
from optimizers.llome.optimizer import LlomeParams
from optimizers.rounds import METRICS, STATE
from optimizers.seed_phase import seed_ga

PROBLEM = "smoke_ehrlich_small"  # 8 states, length 16
BUDGET = 200
# A seed phase of 64 charged evaluations, then three rounds of 16 with a small network.
SMALL = {"preset": "cpu", "seed_particles": 32, "seed_generations": 2, "num_samples": 16,
         "rounds": 3, "ensemble_size": 2, "embed_dim": 8, "channels": 16, "epochs": 2,
         "batch_size": 32}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(num_states=5, length=6, members=3, seed=0, dtype=torch.float32):
    model = Lambo2Model(num_states, length, members, embed_dim=4, channels=6, kernel_size=3,
                        generator=torch.Generator().manual_seed(seed))
    return model.to(dtype)


def tokens_of(model, batch, seed=1):
    length = model.position.shape[1]
    return torch.randint(0, model.num_states, (batch, length),
                         generator=torch.Generator().manual_seed(seed))


# -- the network and its training -----------------------------------------------------------------

def test_one_member_alone_equals_its_slice_of_the_ensemble():
    model = tiny_model()
    features = model.trunk(model.embed(tokens_of(model, 7)))
    for member in range(model.members):
        torch.testing.assert_close(model.value_outputs(features, member)[0],
                                   model.value_outputs(features)[member])
        torch.testing.assert_close(model.feasibility_logits(features, member)[0],
                                   model.feasibility_logits(features)[member])


def test_embeddings_have_norm_sqrt_of_their_width():
    model = tiny_model()
    norms = model.embed(tokens_of(model, 3)).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, 2.0))


def test_corruption_fractions_follow_the_cosine_schedule():
    fractions = corruption_fractions()
    assert len(fractions) == 1000 and np.all(np.diff(fractions) < 0)
    # sqrt(alpha_bar(t) / alpha_bar(0)) wherever the 0.999 cap on beta does not bind
    s = 0.008
    def alpha_bar(t):
        return math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2
    for t in (1, 500, 990):
        assert fractions[t - 1] == pytest.approx(math.sqrt(alpha_bar(t) / alpha_bar(0)))


def test_recency_groups_are_geometric_in_the_age_of_a_round():
    rounds = np.array([12, 11, 10, 9, 6, 5, 0])
    np.testing.assert_array_equal(recency_groups(rounds), [0, 1, 1, 2, 2, 3, 3])


def test_a_balanced_stream_visits_the_groups_in_turn_cycling_the_small_ones():
    keys = np.array([0] * 6 + [1] * 2 + [2] * 3)
    stream = balanced_stream(keys, np.random.default_rng(0))
    assert len(stream) == 3 * 6
    turns = keys[stream].reshape(6, 3)
    assert all(sorted(turn) == [0, 1, 2] for turn in turns)  # one row of each group per turn
    assert sorted(stream[keys[stream] == 0]) == list(range(6))  # the largest group once
    assert np.bincount(stream[keys[stream] == 1]).tolist()[6:] == [3, 3]  # cycled


def test_the_learning_rate_warms_up_then_follows_a_cosine_to_zero():
    factors = [learning_rate_factor(epoch, 16, 2) for epoch in range(16)]
    assert factors[0] == 0.5 and factors[1] == 1.0
    assert factors[8] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 14)))
    assert factors[-1] == pytest.approx(0.0)


@pytest.mark.parametrize("shared", [False, True])
def test_training_lowers_every_tasks_loss(shared):
    f = make_function(PROBLEM)
    ga = GeneticAlgorithm(num_particles=200, mutation_prob=0.1)
    start = np.atleast_2d(f.initial_solution()).astype(np.int64)
    ga.setup(Problem(f.num_states, f.dim, 10**6, start), np.random.SeedSequence(0))
    X = ga.ask(200).astype(np.int64)
    values = f(X)
    model = Lambo2Model(f.num_states, f.dim, 2, 8, 16, 5, torch.Generator().manual_seed(0))
    rounds = np.zeros(len(X), dtype=np.int64)
    rng = np.random.default_rng(0)
    first = fit(model, X, values, rounds, epochs=4, batch_size=32, lr=5e-3, warmup=2,
                max_steps=None, shared=shared, rng=rng)
    later = fit(model, X, values, rounds, epochs=4, batch_size=32, lr=5e-3, warmup=2,
                max_steps=None, shared=shared, rng=rng)
    for task in ("value", "token"):
        assert later[f"train_{task}_loss"] < first[f"train_{task}_loss"]
    assert later["train_feasible_loss"] < 0.75


# -- seeds and the acquisition --------------------------------------------------------------------

def test_farthest_first_starts_from_the_best_then_takes_the_farthest():
    X = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 1, 1]])
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    # from 0000: 1111 is 4 away; then 0011 (2 from both) beats 0001 (1 from 0000)
    np.testing.assert_array_equal(farthest_first(X, scores, 4), [0, 2, 3, 1])
    np.testing.assert_array_equal(farthest_first(X, scores, 2), [0, 2])


def test_farthest_first_breaks_ties_by_score_then_by_index():
    X = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(farthest_first(X, np.array([9.0, 1.0, 5.0, 0.0]), 3),
                                  [0, 3, 2])  # 1 and 2 tie at distance 1 after 0 and 3
    np.testing.assert_array_equal(farthest_first(X, np.array([9.0, 5.0, 5.0, 0.0]), 3),
                                  [0, 3, 1])  # equal scores: the lower index


def test_seeds_are_the_distinct_best_thinned_to_n():
    X = np.array([[0, 0], [0, 0], [0, 1], [1, 1], [1, 0], [2, 2]])
    values = np.array([0.9, 0.9, 0.8, 0.7, -np.inf, 0.1])
    seeds = select_seeds(X, values, n=2, expansion=2)  # from 00, 01, 11, 22 (the 4 best)
    np.testing.assert_array_equal(seeds, [[0, 0], [1, 1]])  # 11 and 22 tie: the better value


def test_too_few_distinct_labels_are_repeated_best_first_to_make_n_seeds():
    X = np.array([[0, 1], [0, 1], [1, 1], [0, 0]])
    values = np.array([0.5, 0.5, 0.9, 0.1])
    seeds = select_seeds(X, values, n=5, expansion=2)
    np.testing.assert_array_equal(seeds, [[1, 1], [0, 0], [0, 1], [1, 1], [0, 1]])


def test_log_improvement_is_the_log_of_botorchs_fat_softplus():
    values = np.array([-0.5, -1e-3, -1e-7, 0.0, 2e-7, 1e-3, 0.3])
    z = (values - 0.1) / TAU
    expected = np.log(TAU * (np.logaddexp(0.0, z) + 0.1 / (1 + z ** 2)))  # float64
    best = torch.tensor(0.1, dtype=torch.float64)
    np.testing.assert_allclose(log_improvement(torch.tensor(values), best).numpy(), expected,
                               rtol=1e-12)
    far_above = log_improvement(torch.tensor([0.5], dtype=torch.float64), best)
    np.testing.assert_allclose(far_above.item(), np.log(0.4), rtol=1e-9)  # the improvement


def test_log_improvement_agrees_with_botorch():
    logei = pytest.importorskip("botorch.acquisition.logei")
    values = torch.linspace(-0.2, 0.2, 41, dtype=torch.float64)
    best = torch.tensor(0.05, dtype=torch.float64)
    expected = logei._log_improvement(values.unsqueeze(-1), best.unsqueeze(-1), tau=TAU,
                                      fat=True).squeeze(-1)
    torch.testing.assert_close(log_improvement(values, best), expected)


class FixedPredictions:
    """A stand-in network whose members predict given values and feasibilities."""

    def __init__(self, values, feasibility):
        self._values, self._feasibility = values, feasibility

    def values(self, features):
        return self._values

    def feasibility(self, features):
        return self._feasibility


@pytest.mark.parametrize("use_feasibility", [False, True])
def test_the_acquisition_is_the_members_mean_log_improvement_over_their_own_best(
        use_feasibility):
    values = torch.tensor([[0.2, 0.5, 0.1], [0.4, 0.3, 0.6]], dtype=torch.float64)
    feasible = torch.tensor([[1.0, 0.5, 0.2], [0.9, 0.1, 1.0]], dtype=torch.float64)
    best = torch.tensor([0.45, 0.35], dtype=torch.float64)
    objective = (values * feasible if use_feasibility else values).numpy()
    z = (objective - best.numpy()[:, None]) / TAU
    expected = np.log(TAU * (np.logaddexp(0.0, z) + 0.1 / (1 + z ** 2))).mean(0)
    got = acquisition(FixedPredictions(values, feasible), None, best, use_feasibility)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


# -- the guided diffusion -------------------------------------------------------------------------

def test_the_masking_schedule_is_one_over_root_one_plus_t():
    assert [mask_fraction(t) for t in (0, 3, 8, 15)] == [1.0, 0.5, 1 / 3, 0.25]


def test_the_saliency_is_the_gradient_times_mask_embedding_minus_embedding():
    """Checked against a central difference of the acquisition along (e_mask - e_i) at each
    position, in float64."""
    model = tiny_model(dtype=torch.float64)
    tokens = tokens_of(model, 3)
    # best above every prediction: the log-improvement's tail, smooth at the difference's scale
    best = model.values(model.trunk(model.embed(tokens))).max(1).values.detach() + 0.1
    scores, value = saliency(model, tokens, best, use_feasibility=False)
    embeddings = model.embed(tokens).detach()
    direction = model.embed(torch.full_like(tokens, model.mask_token)).detach() - embeddings
    h = 1e-6
    for position in range(tokens.shape[1]):
        step = torch.zeros_like(embeddings)
        step[..., position] = h * direction[..., position]
        with torch.no_grad():
            up = acquisition(model, model.trunk(embeddings + step), best, False)
            down = acquisition(model, model.trunk(embeddings - step), best, False)
        torch.testing.assert_close(scores[:, position], (up - down) / (2 * h), rtol=1e-6,
                                   atol=1e-8)
    with torch.no_grad():
        torch.testing.assert_close(value, acquisition(model, model.trunk(embeddings), best,
                                                      False))


def test_edit_positions_follow_the_softmax_of_the_saliency():
    """Gumbel top-1 picks position i with probability softmax(scores)_i; top-k never repeats."""
    scores = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    rng = np.random.default_rng(0)
    gumbel = torch.as_tensor(-np.log(-np.log(rng.random((20000, 4)))), dtype=torch.float32)
    picks = choose_positions(scores.expand(20000, -1), 1, 1.0, gumbel).float().mean(0)
    torch.testing.assert_close(picks, scores[0].softmax(0), atol=0.01, rtol=0)
    two = choose_positions(scores.expand(20000, -1), 2, 1.0, gumbel)
    assert (two.sum(1) == 2).all()
    hot = choose_positions(scores.expand(20000, -1), 1, 50.0, gumbel).float().mean(0)
    assert hot[2] > 0.99  # temperature sharpens the softmax


def test_sampled_tokens_follow_the_language_model_without_the_mask_token():
    logits = torch.log(torch.tensor([0.1, 0.2, 0.7, 5.0])).expand(1, 20000, 4)  # last: mask
    uniforms = torch.as_tensor(np.random.default_rng(0).random((1, 20000)), dtype=torch.float32)
    drawn = sample_tokens(logits, uniforms, num_states=3)
    frequencies = torch.bincount(drawn.ravel(), minlength=4) / 20000
    torch.testing.assert_close(frequencies, torch.tensor([0.1 / 1.0, 0.2, 0.7, 0.0]), atol=0.01,
                               rtol=0)


def test_a_sequence_keeps_its_sample_only_if_the_acquisition_does_not_drop():
    tokens = torch.tensor([[0, 0], [1, 1], [2, 2]])
    proposal = torch.tensor([[5, 0], [5, 1], [5, 2]])
    current = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    value = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64)  # drops, equal, rises
    kept, kept_value = accept(tokens, current, proposal, value)
    np.testing.assert_array_equal(kept.numpy(), [[0, 0], [5, 1], [5, 2]])
    np.testing.assert_array_equal(kept_value.numpy(), [0.5, 0.5, 0.6])


def test_one_guidance_step_raises_the_acquisition_of_the_guided_features():
    model = tiny_model(members=4)
    model.requires_grad_(False)
    tokens = tokens_of(model, 8)
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    masked[:, 1:4] = True
    with torch.no_grad():
        activations = model.trunk(model.embed(torch.where(masked, model.mask_token, tokens)))
        best = model.values(activations).max(1).values
        base = unguided(model.token_logits(activations), model.num_states)
    g = Guidance(steps=1, mutations=3, updates=1, step_size=1e-3, kl_weight=0.0,
                 temperature=1.0, use_feasibility=False)
    delta = torch.zeros_like(activations, requires_grad=True)
    loss, _, before = guidance_loss(model, activations + torch.where(masked[:, None], delta, 0),
                                    base, masked, best, g, len(tokens), int(masked.sum()))
    adam = torch.optim.Adam([delta], lr=g.step_size)
    loss.backward()
    adam.step()
    _, _, after = guidance_loss(model, activations + torch.where(masked[:, None], delta, 0),
                                base, masked, best, g, len(tokens), int(masked.sum()))
    assert (after > before).all()
    assert torch.equal(delta[~masked[:, None].expand_as(delta)],
                       torch.zeros(int((~masked).sum()) * delta.shape[1]))  # only masked moved


def test_with_kl_weight_one_a_guidance_step_lowers_the_kl_to_the_unguided_tokens():
    model = tiny_model()
    model.requires_grad_(False)
    tokens = tokens_of(model, 4)
    masked = torch.ones_like(tokens, dtype=torch.bool)
    with torch.no_grad():
        activations = model.trunk(model.embed(torch.full_like(tokens, model.mask_token)))
        base = unguided(model.token_logits(activations), model.num_states)
    g = Guidance(1, 6, 1, 1e-3, kl_weight=1.0, temperature=1.0, use_feasibility=False)
    delta = torch.randn(activations.shape, generator=torch.Generator().manual_seed(0))
    delta.requires_grad_()
    adam = torch.optim.Adam([delta], lr=g.step_size)
    loss, before, _ = guidance_loss(model, activations + delta, base, masked, torch.zeros(3), g,
                                    4, 24)
    loss.backward()
    adam.step()
    _, after, _ = guidance_loss(model, activations + delta, base, masked, torch.zeros(3), g, 4, 24)
    assert after < before


# -- parameters and the optimizer -----------------------------------------------------------------

def test_defaults_are_bbo_benchs_and_the_seed_phase_is_llomes():
    p = Lambo2Params()
    assert (p.num_samples, p.rounds, p.num_steps, p.num_mutations_per_step,
            p.max_guidance_updates, p.guidance_step_size, p.kl_weight, p.epochs, p.lr,
            p.embed_dim, p.channels, p.kernel_size, p.batch_size, p.ensemble_size) == (
        2000, 12, 64, 16, 2, 0.05, 0.0, 16, 5e-3, 32, 128, 5, 128, 8)
    assert seed_ga(p) == seed_ga(LlomeParams())
    assert p.seed_particles * p.seed_generations == (
        LlomeParams().seed_particles * LlomeParams().seed_generations)


def test_the_cpu_preset_caps_training_and_diffusion_steps():
    published, cpu = Lambo2Params(), Lambo2Params(preset="cpu")
    assert published.max_train_steps is None and cpu.max_train_steps == 100
    assert published.guidance(32).steps == 64 and cpu.guidance(32).steps == 8
    assert cpu.guidance(10).mutations == 10  # at most the sequence's length


@pytest.mark.parametrize("bad, message", [
    (dict(num_steps=0), "num_steps must be an integer >= 1"),
    (dict(kernel_size=4), "kernel_size must be odd"),
    (dict(embed_dim=7), "embed_dim must be even"),
    (dict(kl_weight=1.5), "kl_weight must be in"),
    (dict(guidance_step_size=0.0), "guidance_step_size must be > 0"),
    (dict(warmup_epochs=-1), "warmup_epochs"),
    (dict(seed_particles=10), "seed phase's GA.*survival_quantile \\* num_particles"),
    (dict(device="gpu"), "device must be auto or a torch device"),
])
def test_parameters_out_of_range_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        LaMBO2(**bad)


def small_problem(count="distinct"):
    f = make_function(PROBLEM)
    start = np.atleast_2d(f.initial_solution()).astype(np.int64)
    return f, Problem(f.num_states, f.dim, 10**6, start, count)


def test_the_seed_phase_asks_what_llomes_genetic_algorithm_asks():
    f, problem = small_problem()
    optimizer = LaMBO2(**SMALL)
    optimizer.setup(problem, np.random.SeedSequence(3))
    ga = GeneticAlgorithm(seed_ga(Lambo2Params(**SMALL)))
    ga.setup(problem, child(np.random.SeedSequence(3), 0))
    while optimizer._seeding:
        X = optimizer.ask(20)
        np.testing.assert_array_equal(X, ga.ask(20))
        optimizer.tell(X, f(X))
        ga.tell(X, f(X))


def test_a_run_leaves_the_global_random_generators_alone():
    f, problem = small_problem()
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    optimizer = LaMBO2(**SMALL)
    optimizer.setup(problem, np.random.SeedSequence(0))
    while optimizer.round < 1:
        X = optimizer.ask(50)
        optimizer.tell(X, f(X))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]


def test_a_budget_cut_round_sends_its_first_proposals_and_rounds_end_the_run():
    f, problem = small_problem()
    optimizer = LaMBO2(**SMALL)
    optimizer.setup(problem, np.random.SeedSequence(0))
    while optimizer._seeding:
        X = optimizer.ask(50)
        optimizer.tell(X, f(X))
    X = optimizer.ask(5)
    assert len(X) == 5
    optimizer.tell(X, f(X))
    for _ in range(2):
        X = optimizer.ask(100)
        assert len(X) == SMALL["num_samples"]
        optimizer.tell(X, f(X))
    assert len(optimizer.ask(100)) == 0  # three rounds, then done


# -- whole runs through the runner ----------------------------------------------------------------

def trace(folder):
    return read_trace(Path(folder) / "trace.bin")[1]


def run(out, seed=0, count="distinct"):
    job = make_job("lambo2", PROBLEM, seed, BUDGET, out, params=SMALL, count=count)
    manifest = run_job(job)
    assert manifest.status == "finished", manifest.error
    return job.folder, manifest


@pytest.mark.parametrize("count", ["distinct", "all"])
def test_runs_under_both_counting_rules_verify(count, tmp_path):
    folder, manifest = run(tmp_path, count=count)
    verified = verify_run(folder)
    records = trace(folder)
    assert verified.manifest.run.count == count
    assert manifest.evaluations == records["charged"].sum() <= BUDGET
    assert manifest.stop_reason == "optimizer-done"  # three rounds after the seed phase
    rounds = (folder / "optimizer" / METRICS).read_text().splitlines()
    assert len(rounds) == SMALL["rounds"]
    last_calls = np.unique(records["call"])[-SMALL["rounds"]:]
    assert all((records["call"] == call).sum() == SMALL["num_samples"] for call in last_calls)


def test_same_seed_same_trace(tmp_path):
    """(The contract test checks that another seed asks otherwise.)"""
    first = trace(run(tmp_path / "a")[0])
    again = trace(run(tmp_path / "b")[0])
    np.testing.assert_array_equal(first["sequence"], again["sequence"])
    np.testing.assert_array_equal(first["value"], again["value"])


def test_a_run_stopped_mid_round_resumes_from_its_saved_round(tmp_path, monkeypatch):
    """The process dies in the second round's tell (that call logged, its labels never told):
    the rerun restores the state saved with the second round's proposals, asks that call again
    from it and ends with the uninterrupted run's trace."""
    whole = trace(run(tmp_path / "whole")[0])
    told = LaMBO2.tell

    def dying_tell(self, X, values):
        if self.round == 2:
            raise RuntimeError("killed")
        told(self, X, values)

    monkeypatch.setattr(LaMBO2, "tell", dying_tell)
    job = make_job("lambo2", PROBLEM, 0, BUDGET, tmp_path / "killed", params=SMALL)
    assert run_job(job).status == "failed"
    partial = trace(job.folder)
    monkeypatch.setattr(LaMBO2, "tell", told)
    setup, restored = LaMBO2.setup, []

    def counted_setup(self, problem, seed, workdir=None):
        restored.append(setup(self, problem, seed, workdir))
        return restored[-1]

    monkeypatch.setattr(LaMBO2, "setup", counted_setup)
    assert run_job(job).status == "finished"
    assert restored == [partial["call"].max()]  # every call before the one that died
    resumed = trace(job.folder)
    np.testing.assert_array_equal(resumed["sequence"], whole["sequence"])
    np.testing.assert_array_equal(resumed["value"], whole["value"])
    np.testing.assert_array_equal(resumed["time"][: len(partial)], partial["time"])
    assert (job.folder / "optimizer" / STATE).exists()


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA GPU: checks that device=cuda runs the same code path")
def test_a_run_on_cuda_finishes_with_well_formed_asks(tmp_path):
    job = make_job("lambo2", PROBLEM, 0, BUDGET, tmp_path, params={**SMALL, "device": "cuda"})
    manifest = run_job(job)
    assert manifest.status == "finished", manifest.error
    assert len(trace(job.folder)) > SMALL["seed_particles"] * SMALL["seed_generations"]


@pytest.mark.e2e
def test_killed_run_resumes_with_the_same_trace(tmp_path):
    """SIGKILL once a round is saved; the rerun (one torch thread, as the uninterrupted run)
    ends with the same trace and keeps the calls made before the kill."""
    params = {**SMALL, "rounds": 6}
    whole_job = make_job("lambo2", PROBLEM, 0, 400, tmp_path / "whole", params=params)
    assert run_job(whole_job).status == "finished"
    whole = trace(whole_job.folder)
    out = tmp_path / "killed"
    folder = make_job("lambo2", PROBLEM, 0, 400, out, params=params).folder
    partial, resumed = kill_after_rounds(run_command("lambo2", PROBLEM, 400, out, params),
                                         folder, 3)
    assert_resumed_as_whole(partial, resumed, whole)
