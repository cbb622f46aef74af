"""LLOME's losses (reference sections 5.2-5.4): values worked by hand, MargE's gradient against
its analytic form, and the batch-1 degeneracy of self-normalized MargE on a real (tiny) model.
"""

import math

import numpy as np
import pytest
import torch

from optimizers.llome.losses import dpo_loss, marge_loss, sft_loss

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
    loss, terms = marge_loss(logp, n_tokens, ref_logp, reward, alpha=1.0, beta=10.0)
    # weights 1/4, 3/4; per-token l = -2, -2; reverse = mean(1/4 * -2.5, 3/4 * -2.25)
    reverse = (0.25 * -2.5 + 0.75 * -2.25) / 2
    forward = 10.0 * 2.0
    assert terms["reverse"] == pytest.approx(reverse)
    assert terms["forward"] == pytest.approx(forward)
    assert terms["weight"] == pytest.approx(0.5)
    assert terms["log_ratio"] == pytest.approx(math.log(3.0) / 2)
    assert loss.item() == pytest.approx(reverse + forward)
    raw, raw_terms = marge_loss(logp, n_tokens, ref_logp, reward, self_normalize=False)
    assert raw_terms["weight"] == pytest.approx(2.0)  # exp(0), exp(log 3)
    assert raw.item() == pytest.approx((1 * -2.5 + 3 * -2.25) / 2 + forward)


def analytic_marge_gradient(s, s_ref, n, r, alpha, beta, self_normalize):
    """dL/ds_k for L = mean_i [alpha w_i (l_i - r_i) - beta l_i], l_i = s_i / n_i, in numpy.

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
    return (alpha * through_weights + alpha * w / n - beta / n) / len(s)


@pytest.mark.parametrize("self_normalize", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_marge_gradient_matches_the_analytic_one(self_normalize, seed):
    rng = np.random.default_rng(seed)
    B = 6
    n = rng.integers(5, 40, B).astype(float)
    s = -rng.uniform(0.5, 2.0, B) * n
    s_ref = s + rng.normal(0, 0.7, B)
    r = rng.uniform(0, 1, B)
    alpha, beta = rng.uniform(0.5, 2.0), rng.uniform(0.1, 10.0)
    logp = torch.tensor(s, requires_grad=True)
    loss, _ = marge_loss(
        logp, torch.tensor(n), torch.tensor(s_ref), torch.tensor(r), alpha, beta, self_normalize
    )
    loss.backward()
    expected = analytic_marge_gradient(s, s_ref, n, r, alpha, beta, self_normalize)
    np.testing.assert_allclose(logp.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_marge_self_normalized_weights_survive_huge_log_ratios():
    # raw exp(1000) overflows; the softmax of (1000, 1000 + log 3) is (1/4, 3/4)
    logp = torch.tensor([-10.0, -10.0], dtype=f64, requires_grad=True)
    ref_logp = torch.tensor([-1010.0, -1010.0 - math.log(3.0)], dtype=f64)
    loss, terms = marge_loss(logp, torch.tensor([10, 10]), ref_logp, torch.zeros(2, dtype=f64))
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logp.grad).all()
    assert terms["weight"] == pytest.approx(0.5)
    assert loss.item() == pytest.approx((0.25 * -1 + 0.75 * -1) / 2 + 10.0)


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


def marge_on(model, reference, examples, rewards, self_normalize=True, alpha=1.0, beta=10.0):
    def loss():
        logp = torch.stack([model.target_logp(x, y) for x, y in examples])
        with torch.no_grad():
            ref_logp = torch.stack([reference.target_logp(x, y) for x, y in examples])
        n_tokens = torch.tensor([len(y) for _, y in examples])
        reward = torch.tensor(rewards, dtype=f64)
        return marge_loss(logp, n_tokens, ref_logp, reward, alpha, beta, self_normalize)[0]

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
