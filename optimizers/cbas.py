"""CbAS and DbAS (Brookes, Park & Listgarten 2019, "Conditioning by adaptive sampling for robust
design", ICML; DbAS from Brookes & Listgarten 2018), after FLEXS 0.2.8's ``CbAS``
(``flexs/baselines/explorers/cbas_dbas.py``, its VAE in ``flexs/utils/VAE_utils.py``), with the
shared CNN-ensemble surrogate (``optimizers.surrogate``) as the oracle's model and a small torch
VAE as the generator.

The first round, while only the start is measured, sends ``batch_size`` random mutants of it
(rate 2/L per position). Each later round:

1. ``gamma``: the ``Q``-quantile of the last round's values; the generator's first training set
   is the last round's sequences scoring at least ``gamma``, each of weight 1, padded to 100
   distinct sequences with their mutants (rate ``mutation_rate``, weight 1);
2. fit the VAE on it (continuing from the last round's VAE) and keep a copy, the prior ``p0``;
3. until the round's ``model_queries_per_round`` are spent, a cycle: decode one latent draw into
   per-position token probabilities and sample ``cycle_batch_size`` new sequences from them
   (Boltzmann weights at temperature 0.001, raised 1.3-fold at every repeat); score them with the
   surrogate; raise ``gamma`` to the ``Q``-quantile of the scores if higher; weight each sample
   ``p0(x) / p_t(x)`` (CbAS's importance weight; DbAS: 1) if it scores at least ``gamma``, else 0;
   refit the VAE on every sample of the round so far, weighted;
4. send the ``batch_size`` best samples by the surrogate that were never measured.

The VAE (per member of the sum, ``x`` one-hot ``(L, v)`` flattened): encoder
dense(Lv -> H) -> ELU -> dense(H -> H) -> ELU -> dense(H -> H) -> ELU -> (mean, log-variance) in
``latent_dim``; decoder the mirror, ending in a softmax per position. Loss: the weighted negative
ELBO (cross-entropy of the positions plus the Gaussian KL), Adam with elementwise gradient
clipping at 0.5, early stopping when the epoch's loss has not improved for 3 epochs (FLEXS's
Keras settings). ``log p(x)`` is the decoder's log-probability of ``x`` at the encoder's mean.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from holo_bench.seeding import child, integer_seed
from optimizers.base import Problem
from optimizers.model_guided import METHOD_MODEL, ModelGuided, mutants
from optimizers.rounds import row_keys
from optimizers.surrogate import SurrogateParams

# FLEXS pads the generator's first training set to this many distinct sequences.
MIN_TRAINING_SET = 100
# Draws before sampling or padding gives up on finding a new sequence (FLEXS would draw forever).
MAX_DRAWS = 10_000
# FLEXS's sampling temperature and its growth at each repeated sample.
TEMPERATURE, TEMPERATURE_GROWTH = 0.001, 1.3
# Early stopping of each VAE fit (Keras's EarlyStopping(monitor="loss", patience=3)).
VAE_PATIENCE = 3
# Minibatch steps per VAE fit under the ``cpu`` preset.
CPU_VAE_STEPS = 1


def quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation), except that an interpolation whose
    lower end is ``-inf`` gives ``-inf`` rather than NaN."""
    ordered = np.sort(values)
    if ordered[int(q * (len(ordered) - 1))] == -np.inf:
        return -math.inf
    return float(np.quantile(values, q))


def cycle_weights(scores: np.ndarray, gamma: float, q: float,
                  log_ratio: np.ndarray | None) -> tuple[float, np.ndarray]:
    """One cycle's threshold and sample weights: ``gamma`` raised to the ``q``-quantile of
    ``scores`` if that is higher, and weights ``exp(log_ratio)`` (CbAS: ``log p0 - log p_t``;
    DbAS: ``None``, weights 1) set to 0 where the score is below the new threshold."""
    gamma = max(quantile(scores, q), gamma)
    weights = np.ones(len(scores)) if log_ratio is None else np.nan_to_num(np.exp(log_ratio))
    weights[scores < gamma] = 0.0
    return gamma, weights


def _linear(fan_in: int, fan_out: int, generator: torch.Generator) -> list[torch.nn.Parameter]:
    """A dense layer's weight ``(fan_out, fan_in)`` and bias, initialized as torch's Linear."""
    bound = 1.0 / math.sqrt(fan_in)
    return [torch.nn.Parameter((torch.rand(*shape, generator=generator) * 2 - 1) * bound)
            for shape in ((fan_out, fan_in), (fan_out,))]


class SequenceVAE(torch.nn.Module):
    """The VAE over one-hot sequences of ``dim`` tokens out of ``num_states`` (module docstring)."""

    def __init__(self, num_states: int, dim: int, hidden: int, latent: int,
                 generator: torch.Generator):
        super().__init__()
        self.num_states, self.dim, self.latent = num_states, dim, latent
        sizes = [(num_states * dim, hidden), (hidden, hidden), (hidden, hidden),
                 (hidden, 2 * latent)]
        self.encoder = torch.nn.ParameterList(
            [p for fan_in, fan_out in sizes for p in _linear(fan_in, fan_out, generator)])
        sizes = [(latent, hidden), (hidden, hidden), (hidden, hidden), (hidden, num_states * dim)]
        self.decoder = torch.nn.ParameterList(
            [p for fan_in, fan_out in sizes for p in _linear(fan_in, fan_out, generator)])

    @staticmethod
    def _mlp(layers, x: torch.Tensor) -> torch.Tensor:
        for i in range(0, len(layers), 2):
            x = F.linear(x, layers[i], layers[i + 1])
            if i + 2 < len(layers):
                x = F.elu(x)
        return x

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance ``(n, latent)`` of tokens ``(n, L)``."""
        one_hot = F.one_hot(tokens, self.num_states).float().flatten(1)
        return self._mlp(self.encoder, one_hot).chunk(2, dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Per-position log-probabilities ``(n, L, v)`` of latents ``(n, latent)``."""
        logits = self._mlp(self.decoder, z).view(len(z), self.dim, self.num_states)
        return F.log_softmax(logits, dim=2)

    def loss(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Negative ELBO ``(n,)`` of tokens ``(n, L)``, one reparameterized latent each."""
        mean, log_var = self.encode(tokens)
        z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=generator)
        log_p = self.decode(z).gather(2, tokens.unsqueeze(2)).squeeze(2).sum(1)
        kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum(1)
        return kl - log_p

    @torch.no_grad()
    def log_prob(self, X: np.ndarray) -> np.ndarray:
        """``log p(x)`` ``(n,)``: the decoder's log-probability of each row at its encoder mean."""
        tokens = torch.as_tensor(np.asarray(X, dtype=np.int64))
        mean, _ = self.encode(tokens)
        return self.decode(mean).gather(2, tokens.unsqueeze(2)).squeeze(2).sum(1).double().numpy()

    @torch.no_grad()
    def position_probabilities(self, generator: torch.Generator) -> np.ndarray:
        """Token probabilities ``(L, v)`` decoded from one standard normal latent draw."""
        z = torch.randn(1, self.latent, generator=generator)
        return self.decode(z)[0].exp().double().numpy()


def fit_vae(vae: SequenceVAE, adam: torch.optim.Optimizer, X: np.ndarray, weights: np.ndarray,
            *, epochs: int, batch_size: int, max_steps: int | None,
            generator: torch.Generator) -> int:
    """Weighted maximum likelihood: minimize ``sum(w * loss) / batch`` over the rows of positive
    weight (weights scaled to a maximum of 1, which Adam does not notice), for ``epochs`` with
    early stopping, or at most ``max_steps`` steps. Returns the steps taken."""
    keep = weights > 0
    if not keep.any():
        return 0
    tokens = torch.as_tensor(np.asarray(X, dtype=np.int64)[keep])
    w = torch.as_tensor(weights[keep] / weights[keep].max(), dtype=torch.float32)
    best, stale, steps = math.inf, 0, 0
    for _ in range(epochs):
        order = torch.randperm(len(tokens), generator=generator)
        total = 0.0
        for start in range(0, len(tokens), batch_size):
            index = order[start:start + batch_size]
            loss = (w[index] * vae.loss(tokens[index], generator)).sum() / len(index)
            adam.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(vae.parameters(), 0.5)
            adam.step()
            total, steps = total + loss.item() * len(index), steps + 1
            if steps == max_steps:
                return steps
        best, stale = (total, 0) if total < best else (best, stale + 1)
        if stale >= VAE_PATIENCE:
            break
    return steps


def sample_new(probabilities: np.ndarray, count: int, existing: set[bytes],
               rng: np.random.Generator) -> np.ndarray:
    """FLEXS's sampling from one decoded distribution ``(L, v)``: draw each position from the
    Boltzmann weights ``softmax(probabilities / T)`` per position, starting at ``T = 0.001`` and
    multiplying ``T`` by 1.3 after every draw that repeats a sample or an ``existing`` sequence,
    until ``count`` new sequences ``(m, L)`` (fewer after ``MAX_DRAWS`` draws)."""
    temperature, found, keys = TEMPERATURE, [], set(existing)
    for _ in range(MAX_DRAWS):
        if len(found) == count:
            break
        logits = probabilities / temperature
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        draw = (cumulative < rng.random((len(cumulative), 1))).sum(axis=1)
        draw = np.minimum(draw, probabilities.shape[1] - 1)
        key = draw.astype(np.int64).tobytes()
        if key in keys:
            temperature *= TEMPERATURE_GROWTH
        else:
            keys.add(key)
            found.append(draw)
    return np.array(found, dtype=np.int64).reshape(-1, probabilities.shape[0])


@dataclass(frozen=True)
class CbASParams(SurrogateParams):
    """Parameters of CbAS/DbAS: the surrogate's (``SurrogateParams``) and FLEXS's.

    batch_size: sequences sent to the oracle per round (100 in FLEXS's experiments).
    model_queries_per_round: surrogate queries per round (2000 in FLEXS's experiments).
    Q: quantile of the threshold ``gamma``, in (0, 1). cycle_batch_size: samples per cycle.
    mutation_rate: per-position rate of the mutants padding the first training set.
    latent_dim, vae_hidden, vae_epochs, vae_batch_size, vae_lr: the VAE (FLEXS's experiments:
    2, 250, 10 epochs per fit, batches of 100, Adam at 1e-4).
    """

    batch_size: int = 100
    model_queries_per_round: int = 2000
    Q: float = 0.9
    cycle_batch_size: int = 100
    mutation_rate: float = 0.2
    latent_dim: int = 2
    vae_hidden: int = 250
    vae_epochs: int = 10
    vae_batch_size: int = 100
    vae_lr: float = 1e-4

    def __post_init__(self):
        super().__post_init__()
        for name in ("batch_size", "model_queries_per_round", "cycle_batch_size", "latent_dim",
                     "vae_hidden", "vae_epochs", "vae_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not 0.0 < self.Q < 1.0:
            raise ValueError(f"Q must be in (0, 1), got {self.Q!r}")
        if not 0.0 < self.mutation_rate <= 1.0:
            raise ValueError(f"mutation_rate must be in (0, 1], got {self.mutation_rate!r}")
        if not self.vae_lr > 0:
            raise ValueError(f"vae_lr must be > 0, got {self.vae_lr!r}")

    @property
    def vae_max_steps(self) -> int | None:
        """Minibatch steps a VAE fit may take at most (None: no cap)."""
        return CPU_VAE_STEPS if self.preset == "cpu" else None


class CbAS(ModelGuided):
    """CbAS: a VAE refitted to the samples the CNN-ensemble surrogate scores above a rising
    quantile, importance-weighted against the round's prior (parameters: ``CbASParams``;
    ``importance_weights`` False makes it DbAS)."""

    Params = CbASParams
    importance_weights = True

    def _setup_method(self, problem: Problem) -> None:
        p = self.params
        generator = torch.Generator().manual_seed(integer_seed(child(self._seed, METHOD_MODEL)))
        self.vae = SequenceVAE(problem.num_states, problem.dim, p.vae_hidden, p.latent_dim,
                               generator)
        self.vae_adam = torch.optim.Adam(self.vae.parameters(), lr=p.vae_lr, foreach=True)

    def _method_state(self) -> dict:
        return copy.deepcopy({"vae": self.vae.state_dict(), "adam": self.vae_adam.state_dict()})

    def _load_method_state(self, state: dict) -> None:
        self.vae.load_state_dict(state["vae"])
        self.vae_adam.load_state_dict(state["adam"])

    def propose(self, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        if self.measured <= set(row_keys(self.start)):  # nothing but the start measured
            return self._padding(self.start[:1], p.batch_size, 2 / self.dim, self.measured, rng)
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** 63)))
        last = self.rounds == self.rounds.max()
        gamma = quantile(self.values[last], p.Q)
        samples = self.X[last][self.values[last] >= gamma]
        if len(set(row_keys(samples))) < MIN_TRAINING_SET:
            more = MIN_TRAINING_SET - len(set(row_keys(samples)))
            padding = self._padding(samples, more, p.mutation_rate, set(), rng, grow=True)
            samples = np.concatenate([samples, padding])
        weights = np.ones(len(samples))
        self._fit(samples, weights, generator)
        prior = copy.deepcopy(self.vae)
        found, found_scores = [], []
        while self.model_queries < p.model_queries_per_round:
            proposals = sample_new(self.vae.position_probabilities(generator),
                                   p.cycle_batch_size, set(row_keys(samples)), rng)
            if len(proposals) == 0:
                break
            scores = self.score(proposals)
            log_ratio = (prior.log_prob(proposals) - self.vae.log_prob(proposals)
                         if self.importance_weights else None)
            gamma, cycle = cycle_weights(scores, gamma, p.Q, log_ratio)
            samples = np.concatenate([samples, proposals])
            weights = np.concatenate([weights, cycle])
            self._fit(samples, weights, generator)
            found.append(proposals)
            found_scores.append(scores)
        if not found:
            return np.empty((0, self.dim), dtype=np.int64)
        found, found_scores = np.concatenate(found), np.concatenate(found_scores)
        order = np.argsort(-found_scores, kind="stable")
        order = order[self.is_new(found[order])]  # FLEXS may send a measured one again
        return found[order[: p.batch_size]]

    def _fit(self, X: np.ndarray, weights: np.ndarray, generator: torch.Generator) -> None:
        p = self.params
        fit_vae(self.vae, self.vae_adam, X, weights, epochs=p.vae_epochs,
                batch_size=p.vae_batch_size, max_steps=p.vae_max_steps, generator=generator)

    def _padding(self, parents: np.ndarray, count: int, rate: float, avoid: set[bytes],
                 rng: np.random.Generator, grow: bool = False) -> np.ndarray:
        """``count`` distinct mutants (rate ``rate`` per position) of parents drawn uniformly,
        new to ``parents`` and ``avoid``; with ``grow``, each mutant joins the parents to draw
        from, as FLEXS pads its first training set."""
        pool, taken, found = list(parents), set(avoid) | set(row_keys(parents)), []
        for _ in range(MAX_DRAWS):
            if len(found) == count:
                break
            parent = pool[rng.integers(len(pool))]
            mutant = mutants(parent[None], rate, self.num_states, rng)[0]
            key = mutant.astype(np.int64).tobytes()
            if key not in taken:
                taken.add(key)
                found.append(mutant)
                if grow:
                    pool.append(mutant)
        return np.array(found, dtype=np.int64).reshape(-1, self.dim)


class DbAS(CbAS):
    """DbAS: CbAS without the importance weights (every sample above the threshold weighs 1)."""

    importance_weights = False
