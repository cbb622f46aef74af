"""The three LLOME training losses (reference sections 5.1-5.4), on per-example quantities that
the caller computes from the model.

Shapes: ``logp`` ``(B,)`` summed target-token log-probs under the policy (with grad);
``ref_logp`` ``(B,)`` the same under the frozen reference; ``n_tokens`` ``(B,)`` target token
counts; ``reward`` ``(B,)``. ``B`` is the micro-batch: MargE's self-normalization runs over it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sft_loss(logp: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per target token over the micro-batch:
    ``-sum(logp) / sum(n_tokens)`` (a token mean, as a causal-LM loss with masked prompts).
    """
    _check_batch(logp=logp, n_tokens=n_tokens)
    return -logp.sum() / n_tokens.to(logp.dtype).sum()


def marge_loss(
    logp: torch.Tensor,
    n_tokens: torch.Tensor,
    ref_logp: torch.Tensor,
    reward: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 10.0,
    self_normalize: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """MargE: ``mean_i [alpha * w_i * (l_i - r_i) + beta * (-l_i)]``, with ``l_i = logp_i /
    n_tokens_i`` and ``w_i = exp(logp_i - ref_logp_i)``, replaced by ``w_i / sum_j w_j`` (a
    softmax of the log-ratios, stable) when ``self_normalize``.

    The first term estimates the reverse KL to ``p_r ∝ exp(r)`` by importance sampling from the
    reference, so ``w`` keeps its gradient; the second is the forward KL to the reference, up to
    a constant. With ``B = 1`` and self-normalization ``w ≡ 1`` and the gradient is
    ``(alpha - beta) ∇l``: the reward does nothing (reference section 5.3). ``ref_logp`` and
    ``reward`` are treated as constants. ``terms``: floats for logging, ``reverse`` and
    ``forward`` (the two terms' batch means, summing to the loss), ``weight`` and
    ``log_ratio`` (batch means).
    """
    _check_batch(logp=logp, n_tokens=n_tokens, ref_logp=ref_logp, reward=reward)
    per_token = logp / n_tokens.to(logp.dtype)
    log_ratio = logp - ref_logp.detach().to(logp.dtype)
    weight = torch.softmax(log_ratio, dim=0) if self_normalize else torch.exp(log_ratio)
    reverse = alpha * weight * (per_token - reward.detach().to(logp.dtype))
    forward = beta * -per_token
    loss = (reverse + forward).mean()
    terms = {
        "reverse": reverse.mean().item(),
        "forward": forward.mean().item(),
        "weight": weight.mean().item(),
        "log_ratio": log_ratio.mean().item(),
    }
    return loss, terms


def dpo_loss(
    logp_chosen: torch.Tensor,
    logp_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.4,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sigmoid DPO: ``mean -log sigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r)))`` on summed
    log-probs ``(B,)``. ``terms``: the implicit rewards ``beta * (logp - ref)`` of chosen and
    rejected (means), their margin (mean) and ``accuracy``, the fraction of triples whose chosen
    reward exceeds the rejected one.
    """
    _check_batch(
        logp_chosen=logp_chosen,
        logp_rejected=logp_rejected,
        ref_chosen=ref_chosen,
        ref_rejected=ref_rejected,
    )
    chosen = beta * (logp_chosen - ref_chosen.detach())
    rejected = beta * (logp_rejected - ref_rejected.detach())
    margin = chosen - rejected
    loss = -F.logsigmoid(margin).mean()
    terms = {
        "reward_chosen": chosen.mean().item(),
        "reward_rejected": rejected.mean().item(),
        "margin": margin.mean().item(),
        "accuracy": (margin > 0).to(margin.dtype).mean().item(),
    }
    return loss, terms


def _check_batch(**tensors: torch.Tensor) -> None:
    """Every argument is a non-empty ``(B,)`` tensor with the same ``B``."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    if len(first) != 1 or first[0] == 0 or any(s != first for s in shapes.values()):
        raise ValueError(f"expected non-empty (B,) tensors of one shape, got {shapes}")
