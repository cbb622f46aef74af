"""LaMBO-2's guided discrete diffusion (cortex's ``LaMBO.step``, as bbo-bench runs it: guidance on
the trunk features, edit positions drawn again at every step, the seeds kept when nothing
better is found).

Each of ``steps`` diffusion steps, for every sequence at once:

1. saliency (cortex's ``approximate_occlusion``): the first-order change of the acquisition when
   a position's embedding is replaced by the mask token's, ``grad . (e_mask - e_i)``;
2. edit positions: ``mutations`` positions drawn without replacement from
   ``softmax(temperature * saliency)`` (Gumbel top-k, which is the same law);
3. masking: each edit position masked with probability ``1 / sqrt(1 + t)`` at step ``t``
   (0-based), the masked sequence's trunk features computed once;
4. ``updates`` Adam steps (learning rate ``step_size``) on a delta added to the trunk features
   at the masked positions, against ``kl_weight * KL(guided || unguided) - (1 - kl_weight) *
   acquisition``: the KL between the language model's token distributions at the masked
   positions with and without the delta (the unguided one fixed at delta 0, the mask token
   excluded, probabilities floored at 1e-6), averaged over the masked positions, the
   acquisition averaged over the sequences;
5. after each update: tokens sampled from the language model at the guided features (mask token
   excluded) replace the masked positions, and a sequence takes the sample only if its
   acquisition does not drop.

Sequences never interact, so the work runs in chunks of ``CHUNK`` sequences with the batch's
normalizers, and every random draw is made for the whole batch first: the outcome does not
depend on the chunk size (beyond the last bits of floating point). Draws come from a numpy
generator, so the CPU and CUDA runs use the same random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from optimizers.lambo2.acquisition import acquisition

# Sequences per forward pass: bounds a step's memory whatever the round's batch.
CHUNK = 500
# cortex floors the unguided token probabilities before the KL.
PROBABILITY_FLOOR = 1e-6


@dataclass(frozen=True)
class Guidance:
    """The settings of one round's diffusion (see the module's docstring)."""

    steps: int
    mutations: int
    updates: int
    step_size: float
    kl_weight: float
    temperature: float
    use_feasibility: bool


def mask_fraction(step: int) -> float:
    """The fraction of edit positions masked at diffusion step ``step`` (0-based)."""
    return 1.0 / (1.0 + step) ** 0.5


def saliency(model, tokens: torch.Tensor, best: torch.Tensor,
             use_feasibility: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Occlusion saliency ``(B, L)`` of tokens ``(B, L)``, ``sum_d grad_d * (mask_d - e_d)``
    with the gradient of the acquisition with respect to the token embeddings ``e``, and the
    acquisition itself ``(B,)``."""
    embeddings = model.embed(tokens).detach().requires_grad_()
    value = acquisition(model, model.trunk(embeddings), best, use_feasibility)
    gradient, = torch.autograd.grad(value.sum(), embeddings)
    mask = model.embed(torch.full_like(tokens[:1, :1], model.mask_token))  # (1, D, 1)
    return (gradient * (mask - embeddings.detach())).sum(1), value.detach()


def choose_positions(scores: torch.Tensor, count: int, temperature: float,
                     gumbel: torch.Tensor) -> torch.Tensor:
    """Bool ``(B, L)``: ``count`` positions per row drawn without replacement from
    ``softmax(temperature * scores)``, by Gumbel top-k with standard Gumbel noise ``(B, L)``."""
    keys = torch.log_softmax(temperature * scores, dim=-1) + gumbel
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    return chosen.scatter_(1, keys.topk(count, dim=-1).indices, True)


def sample_tokens(logits: torch.Tensor, uniforms: torch.Tensor, num_states: int) -> torch.Tensor:
    """One token per position ``(B, L)`` from ``softmax(logits)`` over the first ``num_states``
    tokens (the mask token excluded), by inverting the distribution function at ``uniforms``
    ``(B, L)`` in [0, 1)."""
    cdf = logits[..., :num_states].softmax(-1).cumsum(-1)
    drawn = torch.searchsorted(cdf, (uniforms * cdf[..., -1]).unsqueeze(-1), right=True)
    return drawn.squeeze(-1).clamp_max(num_states - 1)


def token_kl(logits: torch.Tensor, base: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Summed over masked positions: KL(softmax(logits) || base), logits ``(B, L, V)``, base
    probabilities ``(B, L, V)``, masked bool ``(B, L)``."""
    log_guided = logits.log_softmax(-1)
    kl = (log_guided.exp() * (log_guided - base.log())).sum(-1)
    return kl[masked].sum()


def unguided(logits: torch.Tensor, num_states: int) -> torch.Tensor:
    """The fixed reference distribution: mask token excluded, floored, renormalized."""
    probs = logits.detach().clone()
    probs[..., num_states:] = -torch.inf
    probs = probs.softmax(-1).clamp_min(PROBABILITY_FLOOR)
    return probs / probs.sum(-1, keepdim=True)


def guidance_loss(model, features: torch.Tensor, base: torch.Tensor, masked: torch.Tensor,
                  best: torch.Tensor, g: Guidance, batch: int,
                  masked_total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss a guidance update descends, for a chunk's guided features ``(b, D, L)``:
    ``kl_weight * KL / masked_total - (1 - kl_weight) * sum(acquisition) / batch``, the two
    normalizers being the whole batch's; returns it with the summed KL and the acquisition
    ``(b,)``."""
    kl = token_kl(model.token_logits(features), base, masked)
    value = acquisition(model, features, best, g.use_feasibility)
    loss = g.kl_weight * kl / max(masked_total, 1) - (1 - g.kl_weight) * value.sum() / batch
    return loss, kl, value


def accept(tokens: torch.Tensor, current: torch.Tensor, proposal: torch.Tensor,
           value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A sequence ``(b, L)`` takes its proposal unless the proposal's acquisition ``(b,)`` is
    below its own ``current`` ``(b,)``; returns the tokens and acquisition kept."""
    taken = value >= current
    return torch.where(taken.unsqueeze(1), proposal, tokens), torch.where(taken, value, current)


def guide(model, tokens: torch.Tensor, masked: torch.Tensor, current: torch.Tensor,
          best: torch.Tensor, g: Guidance, uniforms: torch.Tensor, batch: int,
          masked_total: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Steps 3-5 for a chunk: tokens ``(b, L)``, masked positions ``(b, L)``, their acquisition
    ``(b,)``, sampling uniforms ``(updates, b, L)``. ``batch`` and ``masked_total`` are the
    whole batch's sequences and masked positions (``guidance_loss``). Returns the new tokens,
    their acquisition and the summed loss terms."""
    v = model.num_states
    with torch.no_grad():
        activations = model.trunk(model.embed(torch.where(masked, model.mask_token, tokens)))
        base = unguided(model.token_logits(activations), v)
    delta = torch.zeros_like(activations, requires_grad=True)
    adam = torch.optim.Adam([delta], lr=g.step_size)
    where = masked.unsqueeze(1)  # (b, 1, L) against features (b, D, L)
    sums = {"kl": 0.0, "acquisition": 0.0, "accepted": 0}
    for update in range(g.updates):
        loss, kl, value = guidance_loss(model, activations + torch.where(where, delta, 0.0), base,
                                        masked, best, g, batch, masked_total)
        adam.zero_grad()
        loss.backward()
        adam.step()
        sums["kl"] += kl.item()
        sums["acquisition"] += value.sum().item()
        with torch.no_grad():
            features = activations + torch.where(where, delta, 0.0)
            sampled = sample_tokens(model.token_logits(features), uniforms[update], v)
            proposal = torch.where(masked, sampled, tokens)
            value = acquisition(model, model.trunk(model.embed(proposal)), best,
                                g.use_feasibility)
            kept = tokens
            tokens, current = accept(tokens, current, proposal, value)
            sums["accepted"] += int((tokens != kept).any(1).sum())
    return tokens, current, sums


def diffuse(model, seeds: torch.Tensor, best: torch.Tensor, g: Guidance,
            rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Run ``g.steps`` diffusion steps from ``seeds`` ``(B, L)``; returns the final tokens, their
    acquisition ``(B,)`` and each step's diagnostics (means per sequence or per masked
    position). The network's weights are frozen meanwhile: only the deltas learn."""
    model.requires_grad_(False)
    try:
        return _diffuse(model, seeds, best, g, rng)
    finally:
        model.requires_grad_(True)


def _diffuse(model, seeds: torch.Tensor, best: torch.Tensor, g: Guidance,
             rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    tokens, (B, L) = seeds.clone(), seeds.shape
    device = seeds.device
    chunks = [slice(start, start + CHUNK) for start in range(0, B, CHUNK)]
    current = torch.empty(B, device=device)
    history = []
    for step in range(g.steps):
        draws = rng.random((2 + g.updates, B, L))
        with np.errstate(divide="ignore"):  # u = 0 gives -inf noise: that position comes last
            draws[0] = -np.log(-np.log(draws[0]))  # Gumbel noise
        draws = torch.as_tensor(draws, dtype=torch.float32, device=device)
        masked = torch.empty(B, L, dtype=torch.bool, device=device)
        for part in chunks:
            scores, current[part] = saliency(model, tokens[part], best, g.use_feasibility)
            chosen = choose_positions(scores, g.mutations, g.temperature, draws[0, part])
            masked[part] = chosen & (draws[1, part] < mask_fraction(step))
        total = int(masked.sum())
        sums = {"kl": 0.0, "acquisition": 0.0, "accepted": 0}
        before = tokens.clone()
        for part in chunks:
            tokens[part], current[part], chunk_sums = guide(
                model, tokens[part], masked[part], current[part], best, g, draws[2:, part], B,
                total)
            sums = {key: sums[key] + chunk_sums[key] for key in sums}
        history.append({"step": step, "masked": total / B,
                        "kl": sums["kl"] / max(total, 1) / g.updates,
                        "guided_acquisition": sums["acquisition"] / B / g.updates,
                        "changed_per_update": sums["accepted"] / B / g.updates,
                        "changed": float((tokens != before).any(1).float().mean()),
                        "acquisition": float(current.mean())})
    return tokens, current, history
