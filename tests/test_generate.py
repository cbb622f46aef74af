"""The sampling rules every generation backend follows, checked on the transformers backend
against computations written independently of it (tests/test_vllm_backend.py holds vLLM to the
same rules)."""

import numpy as np
import pytest
import torch
from decoding_reference import (
    assert_first_tokens_follow_the_rules,
    kept_probabilities,
    peaked_model,
)

from optimizers.llome.decoding import Decoding, sampling_logits
from optimizers.llome.hf_backend import HFBackend
from optimizers.llome.model import EOS, PAD, RESIDUE_OFFSET, Codec, Tokens, target_logprobs


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.7), (4, 0.8)])
def test_sampling_logits_keep_what_the_rules_say(top_k, top_p):
    rng = np.random.default_rng(top_k)
    logits = rng.normal(0, 2, (20, 30))
    decoding = Decoding(allowed=tuple(range(3, 27)), top_k=top_k, top_p=top_p)
    probs = torch.softmax(sampling_logits(torch.tensor(logits), decoding, 1.3), -1).double().numpy()
    expected = np.array([kept_probabilities(row, decoding, 1.3) for row in logits])
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_greedy_decoding_equals_a_full_forward_argmax_over_the_allowed_tokens():
    codec = Codec(8, 6)
    model = peaked_model(codec)
    decoding = Decoding(codec.allowed, codec.stop, codec.pad)
    backend = HFBackend(decoding)
    backend.update(model)
    X = np.random.default_rng(1).integers(0, 8, (6, 6))
    tokens, _ = backend.generate(codec.prompts(X), codec.target_length, 0.0, 1, seed=0)
    allowed = torch.zeros(codec.vocab_size, dtype=torch.bool)
    allowed[list(codec.allowed)] = True
    for row, x in zip(tokens, X):  # no cache, no batching: one full forward pass per token
        ids = codec.prompts(x[None]).ids
        for position in range(codec.target_length):
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, -1]
            token = int(logits.masked_fill(~allowed, -torch.inf).argmax())
            assert int(row[position]) == token
            if token == EOS:
                assert (row[position + 1:] == PAD).all()
                break
            ids = torch.cat([ids, torch.tensor([[token]])], 1)


def test_samples_stop_at_a_stop_token_then_pad_with_zero_log_probability():
    codec = Codec(8, 10)
    model = peaked_model(codec, seed=2)
    decoding = Decoding(codec.allowed, codec.stop, codec.pad)
    backend = HFBackend(decoding)
    backend.update(model)
    prompts = codec.prompts(np.random.default_rng(2).integers(0, 8, (40, 10)))
    tokens, logprobs = backend.generate(prompts, codec.target_length, 2.0, 5, seed=3)
    stops = tokens == EOS
    assert stops[:, :-1].any(), "the test needs samples that stop early"
    after = (stops.long().cumsum(1) - stops.long()) > 0
    assert (tokens[after] == PAD).all() and (logprobs[after] == 0).all()
    assert torch.isin(tokens[~after], torch.tensor(codec.allowed)).all()
    scored = target_logprobs(model, prompts.repeat_interleave(5), Tokens(tokens, ~after)).detach()
    torch.testing.assert_close(logprobs, scored, rtol=1e-5, atol=1e-4)


def test_samples_follow_the_rules_distribution():
    """First tokens of many samples against the exact distribution (chi-square)."""
    codec = Codec(12, 6)
    model = peaked_model(codec, seed=3)
    decoding = Decoding(codec.allowed, codec.stop, codec.pad, top_k=8, top_p=0.9)
    backend = HFBackend(decoding)
    backend.update(model)
    prompts = codec.prompts(np.random.default_rng(3).integers(0, 12, (2, 6)))
    assert_first_tokens_follow_the_rules(backend, model, prompts, decoding, 1.3, draws=6000)


def test_codec_decoding_vocabulary():
    codec = Codec(4, 3)
    assert codec.allowed == (EOS, *range(RESIDUE_OFFSET, RESIDUE_OFFSET + 4))
    assert codec.stop == (EOS,) and codec.pad == PAD


@pytest.mark.parametrize("bad", [dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5)])
def test_bad_decoding_settings_are_refused(bad):
    with pytest.raises(ValueError, match="top_"):
        Decoding(**bad)


@pytest.mark.parametrize("pretrained_model", [False, True])
@pytest.mark.parametrize("temperature", [0.0, 1.3])
def test_the_in_place_kv_cache_decodes_bit_for_bit_as_the_default_cache(
        pretrained_model, temperature, tmp_path, monkeypatch):
    """The cache written in place (``hf_backend._cache``) against transformers' own, which
    concatenates: same tokens, same log-probabilities, to the last bit (LLOME's from-scratch
    Llama, and a pretrained GPT-2 with left-padded text prompts)."""
    from tiny_pretrained import save_tiny_gpt2
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from optimizers.llome import hf_backend
    from optimizers.llome.model import TextCodec, new_model

    X = np.random.default_rng(2).integers(0, 8, (40, 6))
    X[::3, :3] = 0  # shorter JSON, so the text prompts are left-padded
    if pretrained_model:
        path = save_tiny_gpt2(tmp_path)
        model = AutoModelForCausalLM.from_pretrained(path)
        codec = TextCodec(AutoTokenizer.from_pretrained(path), 8, 6)
    else:
        codec = Codec(8, 6)
        model = new_model(codec, 64, 2, 32, seed=3)
    backend = HFBackend(Decoding(codec.allowed, codec.stop, codec.pad))
    backend.update(model)
    assert hf_backend._cache(model.config, 20) is not None  # the in-place cache is the one used
    ours = backend.generate(codec.prompts(X), codec.target_length, temperature, 3, seed=5)
    monkeypatch.setattr(hf_backend, "_cache", lambda config, capacity: None)
    default = backend.generate(codec.prompts(X), codec.target_length, temperature, 3, seed=5)
    assert torch.equal(ours[0], default[0]) and torch.equal(ours[1], default[1])
