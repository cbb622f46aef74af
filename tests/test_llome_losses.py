"""LLOME's losses (reference sections 5.2-5.4): values worked by hand, MargE's gradient against
its analytic form, the batch-1 degeneracy of self-normalized MargE on a tiny bigram model, and on
LLOME's own Llama whether the rewards shape the update (their share of the gradient, reversal).
"""

import math

import numpy as np
import pytest
import torch

from optimizers.llome.losses import dpo_loss, marge_loss, scale_rewards, sft_loss
from optimizers.llome.model import Codec, new_model, target_logprobs
from optimizers.llome.optimizer import LlomeParams
from optimizers.llome.train import Marge

f64 = torch.float64


def test_sft_loss_is_the_negative_log_likelihood_per_target_token():
    logp = torch.tensor([-6.0, -3.0], dtype=f64)
    n_tokens = torch.tensor([4, 2])
    # (6 + 3) / (4 + 2) nats per token
    assert sft_loss(logp, n_tokens).item() == pytest.approx(1.5)


def test_marge_loss_value_by_hand():
    logp = torch.tensor([-4.0, -2.0], dtype=f64)
    ref_logp = torch.tensor([-4.0, -2.0 - math.log(3.0)], dtype=f64)  # log-ratios 0 and log 3
    n_tokens = torch.tensor([2, 1])
    reward = torch.tensor([0.5, 0.25], dtype=f64)
    # weights 1/4, 3/4; per-token l = -2, -2; reverse = sum(1/4 * -2.5, 3/4 * -2.25)
    total = 0.25 * -2.5 + 0.75 * -2.25
    forward = 10.0 * 2.0
    loss, reward_part, terms = marge_loss(logp, n_tokens, ref_logp, reward, alpha=1.0, beta=10.0)
    assert terms["reverse"] == pytest.approx(total)
    assert terms["forward"] == pytest.approx(forward)
    assert terms["ess"] == pytest.approx(1 / (0.25**2 + 0.75**2))
    assert terms["max_weight"] == pytest.approx(0.75)
    assert terms["log_ratio"] == pytest.approx(math.log(3.0) / 2)
    assert loss.item() == pytest.approx(total + forward)
    assert reward_part.item() == pytest.approx(-(0.25 * 0.5 + 0.75 * 0.25))
    # the release: the batch mean
    released, released_part, _ = marge_loss(logp, n_tokens, ref_logp, reward, reduction="mean")
    assert released.item() == pytest.approx(total / 2 + forward)
    assert released_part.item() == pytest.approx(-(0.25 * 0.5 + 0.75 * 0.25) / 2)
    raw, _, _ = marge_loss(logp, n_tokens, ref_logp, reward, self_normalize=False,
                           reduction="mean")
    assert raw.item() == pytest.approx((1 * -2.5 + 3 * -2.25) / 2 + forward)
    # clipped at 0.5: weights from log-ratios 0 and 0.5
    clipped, _, clipped_terms = marge_loss(logp, n_tokens, ref_logp, reward, log_ratio_clip=0.5)
    w = np.exp([0.0, 0.5]) / np.exp([0.0, 0.5]).sum()
    assert clipped.item() == pytest.approx(w[0] * -2.5 + w[1] * -2.25 + forward)
    assert clipped_terms["clipped"] == 0.5


def test_standardized_rewards_have_mean_zero_and_the_temperatures_spread():
    reward = torch.tensor([0.01, 0.03, 0.05, 0.05], dtype=f64)
    z = scale_rewards(reward, "standardize", temperature=2.0)
    assert z.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert z.std(unbiased=False).item() == pytest.approx(0.5)
    assert torch.equal(scale_rewards(torch.full((3,), 0.2), "standardize"), torch.zeros(3))
    assert torch.equal(scale_rewards(reward, "none"), reward)
    with pytest.raises(ValueError, match="reward scale"):
        scale_rewards(reward, "rank")


def analytic_marge_gradient(s, s_ref, n, r, alpha, beta, self_normalize, reduction):
    """dL/ds_k for L = alpha R_i [w_i (l_i - r_i)] + beta mean_i(-l_i), l_i = s_i / n_i, R the
    sum or the mean, in numpy.

    Self-normalized: dw_i/ds_k = w_i (delta_ik - w_k), so the reverse term contributes
    alpha w_k ((l_k - r_k) - sum_i w_i (l_i - r_i)); raw weights: dw_i/ds_k = delta_ik w_k.
    Both add alpha w_k / n_k through l_k.
    """
    log_ratio = s - s_ref
    if self_normalize:
        w = np.exp(log_ratio - log_ratio.max())
        w /= w.sum()
    else:
        w = np.exp(log_ratio)
    gap = s / n - r
    through_weights = w * (gap - (w * gap).sum()) if self_normalize else w * gap
    scale = 1 if reduction == "sum" else len(s)
    return (alpha * through_weights + alpha * w / n) / scale - beta / n / len(s)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("self_normalize", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_marge_gradient_matches_the_analytic_one(self_normalize, seed, reduction):
    rng = np.random.default_rng(seed)
    B = 6
    n = rng.integers(5, 40, B).astype(float)
    s = -rng.uniform(0.5, 2.0, B) * n
    s_ref = s + rng.normal(0, 0.7, B)
    r = rng.uniform(0, 1, B)
    alpha, beta = rng.uniform(0.5, 2.0), rng.uniform(0.1, 10.0)
    logp = torch.tensor(s, requires_grad=True)
    loss, _, _ = marge_loss(logp, torch.tensor(n), torch.tensor(s_ref), torch.tensor(r), alpha,
                            beta, self_normalize, reduction)
    loss.backward()
    expected = analytic_marge_gradient(s, s_ref, n, r, alpha, beta, self_normalize, reduction)
    np.testing.assert_allclose(logp.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_marge_self_normalized_weights_survive_huge_log_ratios():
    # raw exp(1000) overflows; the softmax of (1000, 1000 + log 3) is (1/4, 3/4)
    logp = torch.tensor([-10.0, -10.0], dtype=f64, requires_grad=True)
    ref_logp = torch.tensor([-1010.0, -1010.0 - math.log(3.0)], dtype=f64)
    loss, _, terms = marge_loss(logp, torch.tensor([10, 10]), ref_logp,
                                torch.zeros(2, dtype=f64))
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logp.grad).all()
    assert terms["max_weight"] == pytest.approx(0.75)
    assert loss.item() == pytest.approx(0.25 * -1 + 0.75 * -1 + 10.0)


class TinyLM(torch.nn.Module):
    """A bigram language model: next-token logits from the previous token's embedding."""

    def __init__(self, vocab=7, width=5, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embed = torch.nn.Embedding(vocab, width, dtype=f64)
        self.out = torch.nn.Linear(width, vocab, dtype=f64)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=f64))

    def target_logp(self, prompt, target):
        """Summed log-probs of ``target`` after ``prompt`` (1-D token tensors), a scalar."""
        tokens = torch.cat([prompt, target])
        logprobs = torch.log_softmax(self.out(self.embed(tokens[:-1])), dim=-1)
        predicted = logprobs[len(prompt) - 1 :]  # the rows that predict the target tokens
        return predicted.gather(1, target[:, None]).sum()


EXAMPLES = [
    (torch.tensor([1, 2, 3]), torch.tensor([1, 4, 3, 0])),
    (torch.tensor([5, 5]), torch.tensor([6, 2, 2])),
    (torch.tensor([0, 3, 6, 1]), torch.tensor([0, 3, 5, 1, 2])),
]


def parameter_gradients(model, loss_of_batch):
    """Gradients of every parameter of ``model`` for the loss of a batch of ``EXAMPLES``."""
    model.zero_grad()
    loss_of_batch().backward()
    return [p.grad.clone() for p in model.parameters()]


def marge_on(model, reference, examples, rewards, self_normalize=True, alpha=1.0, beta=10.0,
             reduction="mean"):
    """The released loss by default (the batch mean, rewards as given)."""

    def loss():
        logp = torch.stack([model.target_logp(x, y) for x, y in examples])
        with torch.no_grad():
            ref_logp = torch.stack([reference.target_logp(x, y) for x, y in examples])
        n_tokens = torch.tensor([len(y) for _, y in examples])
        reward = torch.tensor(rewards, dtype=f64)
        return marge_loss(logp, n_tokens, ref_logp, reward, alpha, beta, self_normalize,
                          reduction)[0]

    return loss


@pytest.fixture
def models():
    return TinyLM(seed=0), TinyLM(seed=1)  # a policy that has moved away from its reference


def test_marge_at_batch_one_is_sft_scaled_by_beta_minus_alpha(models):
    model, reference = models
    x, y = EXAMPLES[0]
    alpha, beta = 1.0, 10.0
    marge_loss_of_one = marge_on(model, reference, [(x, y)], [0.3], True, alpha, beta)
    marge = parameter_gradients(model, marge_loss_of_one)
    sft = parameter_gradients(
        model, lambda: sft_loss(model.target_logp(x, y)[None], torch.tensor([len(y)]))
    )
    for got, g in zip(marge, sft):
        assert g.abs().max() > 0
        torch.testing.assert_close(got, (beta - alpha) * g, rtol=1e-13, atol=1e-15)


def test_marge_at_batch_one_ignores_the_reward(models):
    model, reference = models
    low = parameter_gradients(model, marge_on(model, reference, EXAMPLES[:1], [0.0]))
    high = parameter_gradients(model, marge_on(model, reference, EXAMPLES[:1], [0.9]))
    for a, b in zip(low, high):
        assert torch.equal(a, b)  # the softmax of one log-ratio has exactly zero gradient


def test_marge_at_batch_one_without_self_normalization_sees_the_reward(models):
    model, reference = models
    low = parameter_gradients(model, marge_on(model, reference, EXAMPLES[:1], [0.0], False))
    high = parameter_gradients(model, marge_on(model, reference, EXAMPLES[:1], [0.9], False))
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(low, high))


def test_marge_above_batch_one_sees_the_reward(models):
    model, reference = models
    low = parameter_gradients(model, marge_on(model, reference, EXAMPLES, [0.1, 0.1, 0.1]))
    skewed = parameter_gradients(model, marge_on(model, reference, EXAMPLES, [0.9, 0.0, 0.1]))
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(low, skewed))


def test_dpo_loss_value_by_hand():
    logp_c = torch.tensor([-10.0, -7.0], dtype=f64)
    logp_r = torch.tensor([-12.0, -5.0], dtype=f64)
    ref_c = torch.tensor([-11.0, -7.0], dtype=f64)
    ref_r = torch.tensor([-11.0, -6.0], dtype=f64)
    loss, terms = dpo_loss(logp_c, logp_r, ref_c, ref_r, beta=0.4)
    # margins beta * ((1) - (-1)) = 0.8 and beta * ((0) - (1)) = -0.4
    expected = (math.log1p(math.exp(-0.8)) + math.log1p(math.exp(0.4))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert terms["accuracy"] == 0.5
    assert terms["margin"] == pytest.approx(0.2)
    assert terms["reward_chosen"] == pytest.approx(0.2)
    assert terms["reward_rejected"] == pytest.approx(0.0)


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    rng = np.random.default_rng(0)
    logp_c = torch.tensor(-rng.uniform(5, 20, 8), requires_grad=True)
    logp_r = torch.tensor(-rng.uniform(5, 20, 8), requires_grad=True)
    ref_c, ref_r = torch.tensor(-rng.uniform(5, 20, 8)), torch.tensor(-rng.uniform(5, 20, 8))
    loss, _ = dpo_loss(logp_c, logp_r, ref_c, ref_r)
    loss.backward()
    # gradient descent moves against the gradient: chosen up, rejected down, by equal amounts
    assert (logp_c.grad < 0).all() and (logp_r.grad > 0).all()
    torch.testing.assert_close(logp_c.grad, -logp_r.grad)


def test_losses_reject_mismatched_batches():
    with pytest.raises(ValueError, match="shape"):
        marge_loss(torch.zeros(2), torch.ones(3), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        sft_loss(torch.zeros(0), torch.ones(0))


# -- MargE on LLOME's own model: do the rewards shape the update? ------------------------------
#
# The setting of the measurement that found the released loss to be SFT: the default 136k-
# parameter Llama at a round start (policy = reference), 32 edit pairs of length-32 sequences
# over 32 residues, rewards spread over [0, 0.1] like f2's margins.

RELEASED = Marge(reduction="mean", reward_scale="none", reward_temperature=1.0)


@pytest.fixture(scope="module")
def llama_batch():
    codec = Codec(32, 32)
    model = new_model(codec, hidden_size=64, layers=2, head_size=32, seed=0)
    rng = np.random.default_rng(0)
    prompts = rng.integers(0, 32, (32, 32))
    targets = prompts.copy()
    for row in targets:
        sites = rng.choice(32, rng.integers(1, 4), replace=False)
        row[sites] = rng.integers(0, 32, len(sites))
    P, T = codec.prompts(prompts), codec.targets(targets)
    with torch.no_grad():
        ref = target_logprobs(model, P, T).sum(1)
    reward = torch.tensor(rng.uniform(0, 0.1, 32), dtype=torch.float32)
    return model, P, T, ref, reward


def marge_gradients(model, P, T, ref, reward, marge: Marge):
    """The whole gradient and the rewards' part of it, flattened over the parameters."""
    logp = target_logprobs(model, P, T).sum(1)
    scaled = scale_rewards(reward, marge.reward_scale, marge.reward_temperature)
    loss, reward_part, _ = marge_loss(logp, T.mask.sum(1).float(), ref, scaled, marge.alpha,
                                      marge.beta, marge.self_normalize, marge.reduction,
                                      marge.log_ratio_clip)
    parameters = list(model.parameters())
    by_reward = torch.autograd.grad(reward_part, parameters, retain_graph=True)
    total = torch.autograd.grad(loss, parameters)
    return torch.cat([g.flatten() for g in total]), torch.cat([g.flatten() for g in by_reward])


def test_the_rewards_carry_a_real_share_of_the_default_gradient(llama_batch):
    """Floor 0.3: at least 30% of the update's norm comes from the rewards (0.65 measured at the
    defaults); below that, the forward term's SFT pull decides alone what the model learns. The
    released loss (batch mean, raw margins) gives about 0.002: the same batch trains it like SFT."""
    total, by_reward = marge_gradients(*llama_batch, LlomeParams().marge())
    assert by_reward.norm() / total.norm() > 0.3
    total, by_reward = marge_gradients(*llama_batch, RELEASED)
    assert by_reward.norm() / total.norm() < 0.01


def test_reversed_rewards_reverse_the_rewards_part_of_the_update(llama_batch):
    model, P, T, ref, reward = llama_batch
    marge = LlomeParams().marge()
    reversed_reward = reward.max() + reward.min() - reward  # the best pair becomes the worst
    total, by_reward = marge_gradients(model, P, T, ref, reward, marge)
    total_reversed, by_reversed = marge_gradients(model, P, T, ref, reversed_reward, marge)
    torch.testing.assert_close(by_reversed, -by_reward, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(total - total_reversed, 2 * by_reward, rtol=1e-3, atol=1e-6)
    # One gradient step raises the likelihood of the better-rewarded targets, relative to the
    # others, under the rewards, and lowers it under the reversed rewards.
    z = scale_rewards(reward, "standardize")
    before = {key: value.clone() for key, value in model.state_dict().items()}

    def reward_weighted_change(gradient):
        with torch.no_grad():
            start = target_logprobs(model, P, T).sum(1)
            torch.nn.utils.vector_to_parameters(
                torch.nn.utils.parameters_to_vector(model.parameters()) - 1e-2 * gradient,
                model.parameters())
            change = (z * (target_logprobs(model, P, T).sum(1) - start)).sum().item()
        model.load_state_dict(before)
        return change

    assert reward_weighted_change(total) > 0 > reward_weighted_change(total_reversed)


def test_the_released_setting_at_batch_one_is_sft_scaled_on_the_real_model(llama_batch):
    model, P, T, ref, reward = llama_batch
    alpha, beta = RELEASED.alpha, RELEASED.beta
    marge, _ = marge_gradients(model, P[:1], T[:1], ref[:1], reward[:1], RELEASED)
    logp = target_logprobs(model, P[:1], T[:1]).sum(1)
    sft = torch.autograd.grad(sft_loss(logp, T.mask[:1].sum(1)), list(model.parameters()))
    sft = torch.cat([g.flatten() for g in sft])
    assert sft.norm() > 0
    torch.testing.assert_close(marge, (beta - alpha) * sft, rtol=1e-4, atol=1e-6)
