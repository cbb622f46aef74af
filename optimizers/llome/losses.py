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


REDUCTIONS = ("sum", "mean")
REWARD_SCALES = ("standardize", "none")


def scale_rewards(reward: torch.Tensor, how: str = "standardize",
                  temperature: float = 1.0) -> torch.Tensor:
    """Rewards as the reverse term sees them: ``z / temperature``, with ``z`` the rewards
    standardized over the micro-batch (``how="standardize"``: mean 0, standard deviation 1; all 0
    when they are all equal) or the rewards themselves (``how="none"``, the released choice).

    Self-normalized weights already subtract the batch's weighted mean reward, so only the spread
    of the rewards within the batch can move the model; standardizing fixes that spread at
    ``1 / temperature``, whatever the problem's quantization or how small the margins get as a run
    converges (on f2 they are about 0.01-0.1, next to a spread of about 0.3 in per-token
    log-likelihoods). The target distribution is then ``p(y | x) ∝ exp(z(y) / temperature)``.
    """
    if how not in REWARD_SCALES:
        raise ValueError(f"reward scale must be one of {', '.join(REWARD_SCALES)}, got {how!r}")
    reward = reward.detach()
    if how == "standardize":
        spread = reward.std(unbiased=False) if len(reward) > 1 else reward.new_zeros(())
        reward = (reward - reward.mean()) / spread if spread > 0 else torch.zeros_like(reward)
    return reward / temperature


def marge_loss(
    logp: torch.Tensor,
    n_tokens: torch.Tensor,
    ref_logp: torch.Tensor,
    reward: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 10.0,
    self_normalize: bool = True,
    reduction: str = "sum",
    log_ratio_clip: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """MargE: ``alpha * R + beta * mean_i(-l_i)``, the reverse KL to ``p_r ∝ exp(r)`` estimated
    by importance sampling from the reference plus the forward KL to the reference (up to a
    constant), with ``l_i = logp_i / n_tokens_i`` and the reverse estimate

    - ``R = sum_i w_i (l_i - r_i)`` (``reduction="sum"``: the self-normalized estimator), or
    - ``R = mean_i w_i (l_i - r_i)`` (``"mean"``: the released code, which divides the reward's
      pull by the batch size),

    where ``w_i = exp(c_i)`` for the log-ratio ``c_i = logp_i - ref_logp_i`` clipped to
    ``[-log_ratio_clip, log_ratio_clip]`` (a clipped ratio carries no gradient), replaced by
    ``w_i / sum_j w_j`` when ``self_normalize``. ``reward`` is used as given: scale it first
    (``scale_rewards``). The released f2 loss is ``reduction="mean"``, no clip, unscaled rewards;
    with ``B = 1`` and self-normalization its gradient is ``(alpha - beta) ∇l``: the rewards do
    nothing (reference section 5.3).

    Returns the loss, the reward's part of it (``-alpha * sum_i w_i r_i``, or the mean: the
    loss minus the loss at zero reward, whose gradient is the rewards' share of the update) and
    floats for logging: ``reverse`` and ``forward`` (the two terms), ``ess`` (the effective
    sample size ``1 / sum w~^2`` of the normalized weights ``w~``, out of ``B``), ``max_weight``
    (the largest ``w~``), ``log_ratio`` (mean) and ``clipped`` (the fraction of clipped ratios).
    """
    _check_batch(logp=logp, n_tokens=n_tokens, ref_logp=ref_logp, reward=reward)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    per_token = logp / n_tokens.to(logp.dtype)
    raw_ratio = logp - ref_logp.detach().to(logp.dtype)
    log_ratio = raw_ratio.clamp(-log_ratio_clip, log_ratio_clip)
    weight = torch.softmax(log_ratio, dim=0) if self_normalize else torch.exp(log_ratio)
    reward = reward.detach().to(logp.dtype)
    reduce = torch.sum if reduction == "sum" else torch.mean
    reverse = alpha * reduce(weight * (per_token - reward))
    reward_part = -alpha * reduce(weight * reward)
    forward = beta * -per_token.mean()
    normalized = torch.softmax(log_ratio.detach(), dim=0)
    terms = {
        "reverse": reverse.item(),
        "forward": forward.item(),
        "ess": 1.0 / normalized.square().sum().item(),
        "max_weight": normalized.max().item(),
        "log_ratio": raw_ratio.mean().item(),
        "clipped": (raw_ratio.abs() > log_ratio_clip).to(logp.dtype).mean().item(),
    }
    return reverse + forward, reward_part, terms


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
