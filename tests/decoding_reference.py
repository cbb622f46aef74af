"""Independent references for the generation tests: a model with peaked next-token
distributions, and the sampling rules of ``optimizers.llome.decoding`` computed in plain numpy."""

import numpy as np
import torch
from scipy.stats import chisquare

from optimizers.llome.decoding import Decoding
from optimizers.llome.model import new_model


def peaked_model(codec, seed=0):
    """A random Llama whose next-token distributions are far from uniform (no near-ties)."""
    model = new_model(codec, hidden_size=64, layers=2, head_size=32, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def kept_probabilities(logits: np.ndarray, decoding: Decoding, temperature: float) -> np.ndarray:
    """The distribution the rules sample from, one row of logits at a time, in plain numpy."""
    allowed = range(len(logits)) if decoding.allowed is None else decoding.allowed
    scaled = {int(i): logits[i] / temperature for i in allowed}
    ranked = sorted(scaled, key=lambda i: -scaled[i])
    if decoding.top_k:
        kth = scaled[ranked[min(decoding.top_k, len(ranked)) - 1]]
        ranked = [i for i in ranked if scaled[i] >= kth]
    weights = np.exp([scaled[i] - scaled[ranked[0]] for i in ranked])
    weights /= weights.sum()
    kept, mass = [], 0.0
    for i, weight in zip(ranked, weights):
        if mass >= decoding.top_p:
            break
        kept.append(i)
        mass += weight
    probs = np.zeros(len(logits))
    probs[kept] = np.exp([scaled[i] for i in kept])
    return probs / probs.sum()


def assert_first_tokens_follow_the_rules(backend, model, prompts, decoding: Decoding,
                                         temperature: float, draws: int) -> None:
    """``draws`` one-token samples per prompt from ``backend`` against the exact distribution the
    rules make of ``model``'s logits: nothing outside its support, and a chi-square fit."""
    tokens, _ = backend.generate(prompts, 1, temperature, draws, seed=5)
    with torch.no_grad():
        logits = model(input_ids=prompts.ids).logits[:, -1].double().numpy()
    for b, row in enumerate(logits):
        expected = kept_probabilities(row, decoding, temperature)
        counts = np.bincount(tokens[b * draws:(b + 1) * draws, 0].numpy(), minlength=len(row))
        assert counts[expected == 0].sum() == 0
        support = expected > 0
        assert 3 <= support.sum() < len(decoding.allowed), "the test needs several tokens, a cut"
        assert chisquare(counts[support], expected[support] * draws).pvalue > 1e-4
