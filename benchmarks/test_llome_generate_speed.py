"""LLOME's generation on a CPU, side by side: transformers' default KV cache, which concatenates
every step (before issue 22), and the cache written in place (``hf_backend._cache``, today's).
Both decode the same tokens to the last bit (``tests/test_generate.py``).

One sampling setting of one refinement step of an f2 round: 200 seeds x 2 samples, 33 tokens
each, on LLOME's default model. ``extra_info`` holds the generated tokens per second. Run:
    OMP_NUM_THREADS=1 .venv/bin/pytest benchmarks/test_llome_generate_speed.py --benchmark-only -q
"""

import time

import numpy as np
import pytest

from optimizers.llome import hf_backend
from optimizers.llome.decoding import Decoding, through_stop
from optimizers.llome.model import Codec, new_model
from optimizers.llome.optimizer import LlomeParams

SEEDS, SAMPLES, L, STATES = 200, 2, 32, 32

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("cache", ["default", "in-place"])
def test_generation_ours(benchmark, monkeypatch, cache):
    p = LlomeParams()
    codec = Codec(STATES, L)
    backend = hf_backend.HFBackend(Decoding(codec.allowed, codec.stop, codec.pad))
    backend.update(new_model(codec, p.hidden_size, p.layers, p.head_size, seed=0))
    prompts = codec.prompts(np.random.default_rng(0).integers(0, STATES, (SEEDS, L)))
    if cache == "default":
        monkeypatch.setattr(hf_backend, "_cache", lambda config, capacity: None)
    seconds = []

    def generate():
        started = time.perf_counter()
        out = backend.generate(prompts, codec.target_length, 1.0, SAMPLES, seed=0)
        seconds.append(time.perf_counter() - started)
        return out

    benchmark.group = "LLOME generation, 400 samples of 33 tokens"
    tokens, _ = benchmark.pedantic(generate, rounds=5, warmup_rounds=1)
    assert tokens.shape == (SEEDS * SAMPLES, codec.target_length)
    generated = int(through_stop(tokens, codec.stop).sum())  # up to each sample's stop token
    benchmark.extra_info.update(cache=cache, tokens_per_second=generated / min(seconds))
