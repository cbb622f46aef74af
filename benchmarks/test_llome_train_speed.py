"""One MargE training round of LLOME's default model, side by side: the reward share measured on
every step (``REWARD_SHARE_EVERY = 1``, before issue 22) and on every eighth (today's default).
The measurement takes a second gradient pass; training itself is the same in both (the tests in
``tests/test_llome.py`` check the traces bit for bit).

1,024 edit pairs of f2-sized sequences (32 tokens over 32 states) in micro-batches of 32: 32
steps, one epoch. ``extra_info`` holds the target tokens trained per second. Run:
    OMP_NUM_THREADS=1 .venv/bin/pytest benchmarks/test_llome_train_speed.py --benchmark-only -q
"""

import time

import numpy as np
import pytest

from optimizers.llome import train
from optimizers.llome.model import Codec, new_model
from optimizers.llome.optimizer import LlomeParams

PAIRS, L, STATES = 1024, 32, 32

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def examples() -> dict:
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, STATES, (PAIRS, L))
    target = prompt.copy()
    rows = np.arange(PAIRS)
    target[rows, rng.integers(0, L, PAIRS)] = rng.integers(0, STATES, PAIRS)
    return {"prompt": prompt, "target": target, "reward": rng.random(PAIRS)}


@pytest.mark.parametrize("every", [1, train.REWARD_SHARE_EVERY])
def test_marge_round_ours(benchmark, monkeypatch, every):
    p = LlomeParams()
    codec = Codec(STATES, L)
    model = new_model(codec, p.hidden_size, p.layers, p.head_size, seed=0)
    data = examples()
    monkeypatch.setattr(train, "REWARD_SHARE_EVERY", every)
    seconds = []

    def one_round():
        started = time.perf_counter()
        terms = train.train_round(model, codec, data, "marge", epochs=1, batch_size=p.batch_size,
                                  lr=p.lr, seed=0, marge=p.marge())
        seconds.append(time.perf_counter() - started)
        return terms

    benchmark.group = "LLOME MargE round, 1,024 pairs of 32 tokens"
    terms = benchmark.pedantic(one_round, rounds=3, warmup_rounds=1)
    assert terms["reward_share_steps"] == -(-PAIRS // p.batch_size // every)
    tokens = PAIRS * codec.target_length
    benchmark.extra_info.update(reward_share_every=every,
                                target_tokens_per_second=tokens / min(seconds))
