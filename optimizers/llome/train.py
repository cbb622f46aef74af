"""One round of training: every variant is a loss over per-example target log-probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from optimizers.llome.losses import dpo_loss, marge_loss, scale_rewards, sft_loss
from optimizers.llome.model import Tokens, target_logprobs

# MargE's reward share costs a second gradient pass; it is measured on every this-many-th step of
# a round (steps 0, k, 2k, ...): a systematic sample, drawing nothing from any generator.
REWARD_SHARE_EVERY = 8


@torch.no_grad()
def reference_logprobs(model, prompts: Tokens, targets: Tokens, batch: int = 512) -> torch.Tensor:
    """Summed target log-probabilities ``(n,)`` under the round-start model, computed once."""
    model.eval()
    return torch.cat([target_logprobs(model, prompts[i : i + batch], targets[i : i + batch])
                      .sum(1).cpu() for i in range(0, len(prompts), batch)])


@dataclass(frozen=True)
class Marge:
    """MargE's settings (``losses.marge_loss`` and ``losses.scale_rewards``)."""

    alpha: float = 1.0
    beta: float = 10.0
    self_normalize: bool = True
    reduction: str = "sum"
    reward_scale: str = "standardize"
    reward_temperature: float = 1.0
    log_ratio_clip: float = float("inf")


def train_round(model, codec, examples: dict[str, np.ndarray], loss: str, *, epochs: int,
                batch_size: int, lr: float, seed: int, marge: Marge = Marge(),
                dpo_beta: float = 0.4) -> dict:
    """Train ``model`` in place for ``epochs`` over ``examples``; returns mean loss terms over
    the round's steps (for MargE also ``reward_share``: the norm of the rewards' part of the
    gradient over the norm of the whole gradient, before clipping, the quantity that says whether
    the rewards shape training at all; it takes a second gradient pass, so it is the mean over
    the steps 0, ``REWARD_SHARE_EVERY``, 2 ``REWARD_SHARE_EVERY``, ... only, and
    ``reward_share_steps`` says how many). Measuring it leaves ``.grad``, and so training, as it
    is: ``autograd.grad`` does not accumulate into ``.grad``.

    ``examples`` holds ``prompt`` and ``target`` sequences ``(m, L)`` and ``reward`` ``(m,)`` for
    ``sft``/``marge``, or ``prompt``, ``chosen``, ``rejected`` for ``dpo``. The reference model of
    MargE and DPO is ``model`` as it is when the round starts, so its log-probabilities are
    computed once, before the first step. Micro-batches of ``batch_size`` are also MargE's
    self-normalization batches (the reference's released batch of 1 made the weights trivially 1).

    The only randomness is the order of the examples, drawn from ``seed``. The model trains in
    eval mode: what train mode adds (dropout, layer drop, router noise) would draw from torch's
    global generator. The from-scratch Llama has none of it, so for it the two modes agree.
    """
    if len(examples["prompt"]) == 0:
        return {}
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    prompts = codec.prompts(examples["prompt"])
    if loss == "dpo":
        chosen, rejected = codec.targets(examples["chosen"]), codec.targets(examples["rejected"])
        ref_chosen = reference_logprobs(model, prompts, chosen)
        ref_rejected = reference_logprobs(model, prompts, rejected)
    else:
        targets = codec.targets(examples["target"])
        reward = torch.as_tensor(examples["reward"], dtype=torch.float32)
        ref = reference_logprobs(model, prompts, targets) if loss == "marge" else None
    n = len(prompts)
    steps = epochs * max(1, -(-n // batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            if loss == "dpo":
                logp_c = target_logprobs(model, prompts[index], chosen[index]).sum(1)
                logp_r = target_logprobs(model, prompts[index], rejected[index]).sum(1)
                value, terms = dpo_loss(logp_c, logp_r, ref_chosen[index], ref_rejected[index],
                                        beta=dpo_beta)
            else:
                per_token = target_logprobs(model, prompts[index], targets[index])
                logp, n_tokens = per_token.sum(1), targets.mask[index].sum(1).float()
                if loss == "marge":
                    scaled = scale_rewards(reward[index], marge.reward_scale,
                                           marge.reward_temperature)
                    value, reward_part, terms = marge_loss(
                        logp, n_tokens, ref[index], scaled, marge.alpha, marge.beta,
                        marge.self_normalize, marge.reduction, marge.log_ratio_clip)
                else:
                    value, terms = sft_loss(logp, n_tokens), {}
            optimizer.zero_grad()
            if loss == "marge" and step % REWARD_SHARE_EVERY == 0:
                terms["reward_share"] = _reward_share(model, value, reward_part)
            else:
                value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            for key, term in {"loss": value.item(), **terms}.items():
                totals[key] = totals.get(key, 0.0) + float(term)
                counts[key] = counts.get(key, 0) + 1
            step += 1
    means = {key: total / counts[key] for key, total in totals.items()}
    if "reward_share" in counts:
        means["reward_share_steps"] = counts["reward_share"]
    return means


def _reward_share(model, loss: torch.Tensor, reward_part: torch.Tensor) -> float:
    """Backpropagate ``loss``; return ``|grad(reward_part)| / |grad(loss)|`` over the parameters."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    by_reward = torch.autograd.grad(reward_part, parameters, retain_graph=True, allow_unused=True)
    loss.backward()
    reward_norm = torch.sqrt(sum((g.double() ** 2).sum() for g in by_reward if g is not None))
    total = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in parameters if p.grad is not None))
    return float(reward_norm / total) if total > 0 else 0.0
