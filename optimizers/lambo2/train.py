"""One round's training of LaMBO-2's network on every label so far, as cortex's
``SequenceModelTree.training_step`` does it, in a plain torch loop.

Three tasks, each with its own data: value (regression) on the feasible labels, feasibility
(classification) on every label (``-inf`` is infeasible), and the masked language model on the
distinct feasible sequences. An epoch gives every leaf (``E`` value members, ``E`` feasibility
members, the language model) its own stream of minibatches: the task's rows grouped (value:
by recency; feasibility: by feasibility and recency; language model: one group), the groups
visited in turn, shorter ones cycled until the longest is spent (cortex's
``RandomizedMinorityUpsampler``). Recency groups are geometric: the last round, the two before
it, the four before those, ... An epoch lasts as many steps as the shortest stream has
minibatches (Lightning's ``min_size`` loader). Each step takes the leaves in a random order and
gives each its own Adam update of the whole network on its own minibatch; under the ``cpu``
preset (``shared``) a task's members share one minibatch and a step is one Adam update on the
sum of every leaf's loss.

Each leaf's minibatch is corrupted first: a fraction drawn from a cosine schedule (cortex's
``MaskCorruptionProcess``: a timestep uniform in 1..1000, the fraction ``sqrt(alpha_bar(t))``)
of its positions, each independently, becomes the mask token. Losses: value members, the KL
divergence from the label smoothed toward N(0, 1) by that fraction (cortex's ``RegressorLeaf``
with ``label_smoothing="corrupt_frac"``; labels standardized) to the predicted Gaussian;
feasibility members, cross-entropy; language model, cross-entropy of the original tokens at
the masked positions. Adam (lr 5e-3, betas 0.9/0.99), fresh each fit, under a cosine schedule
with warm-up that steps once per epoch, at its start (as cortex's ``on_train_epoch_start``).

Randomness: every draw (orders, leaf orders, corruption fractions and masks) comes from one
numpy generator, seeded by the caller.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from optimizers.lambo2.model import Lambo2Model, gaussian

# The diffusion schedule behind cortex's corruption fractions (improved DDPM's cosine schedule).
SCHEDULE_STEPS, SCHEDULE_OFFSET, MAX_BETA = 1000, 0.008, 0.999
# Smoothed value labels move toward N(0, 1) from N(label, NOMINAL_LABEL_VAR) (bbo-bench: 0.01).
NOMINAL_LABEL_VAR = 0.01
# Adam's betas in bbo-bench's fit configuration.
BETAS = (0.9, 0.99)


def corruption_fractions() -> np.ndarray:
    """``(1000,)``: the corruption fraction at timesteps 1..1000, ``sqrt`` of the cumulative
    product of ``1 - beta_t`` for the cosine schedule (betas capped at 0.999)."""
    def alpha_bar(t):
        return math.cos((t / SCHEDULE_STEPS + SCHEDULE_OFFSET) / (1 + SCHEDULE_OFFSET)
                        * math.pi / 2) ** 2
    betas = [min(1 - alpha_bar(t + 1) / alpha_bar(t), MAX_BETA) for t in range(SCHEDULE_STEPS)]
    return np.sqrt(np.cumprod(1 - np.array(betas)))


def recency_groups(rounds: np.ndarray) -> np.ndarray:
    """Recency group of each label from the round it came from ``(n,)``: 0 for the last round,
    then ``floor(log2(age + 1))``: 1 for the two rounds before, 2 for the four before those..."""
    age = rounds.max() - rounds if len(rounds) else rounds
    return np.floor(np.log2(age + 1)).astype(np.int64)


def balanced_stream(keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch's row order over rows grouped by ``keys`` ``(n,)``: the groups in a random
    order, each shuffled, visited in turn, shorter groups cycled, for as many turns as the
    largest group has rows (cortex stops in the last turn at the first largest group; we end
    the turn)."""
    groups = [rng.permutation(np.flatnonzero(keys == key)) for key in np.unique(keys)]
    groups = [groups[i] for i in rng.permutation(len(groups))]
    turns = max(len(group) for group in groups)
    return np.stack([group[np.arange(turns) % len(group)] for group in groups], axis=1).ravel()


def learning_rate_factor(epoch: int, epochs: int, warmup: int) -> float:
    """The cosine schedule with linear warm-up (transformers' ``get_cosine_schedule_with_warmup``
    over ``epochs`` steps), stepped once before epoch ``epoch`` (0-based) trains."""
    step = epoch + 1
    if step < warmup:
        return step / warmup
    progress = (step - warmup) / max(1, epochs - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def value_loss(outputs: torch.Tensor, target: torch.Tensor, fraction: float) -> torch.Tensor:
    """KL divergence from the smoothed label to the predicted Gaussian, averaged over the
    minibatch and summed over members.

    outputs: members' raw outputs ``(M, b, 2)``; target: standardized labels ``(b,)``. The
    smoothed label is the moment average of N(0, 1) (weight ``fraction``) and
    N(target, NOMINAL_LABEL_VAR)."""
    mean_q, var_q = gaussian(outputs)
    mean_p = (1 - fraction) * target
    var_p = fraction + (1 - fraction) * NOMINAL_LABEL_VAR + fraction * (1 - fraction) * target ** 2
    kl = 0.5 * (torch.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1)
    return kl.mean(-1).sum()


class Data:
    """The three tasks' rows: tokens ``(n, L)`` int64 with values ``(n,)`` (``-inf``
    infeasible) and the round each came from ``(n,)``."""

    def __init__(self, X: np.ndarray, values: np.ndarray, rounds: np.ndarray):
        feasible = values > -np.inf
        recency = recency_groups(rounds)
        self.feasible = feasible
        self.value_rows = np.flatnonzero(feasible)
        self.value_keys = recency[feasible]
        self.feasible_keys = recency * 2 + feasible
        _, first = np.unique(X[feasible], axis=0, return_index=True)
        self.token_rows = np.sort(self.value_rows[first])

    def streams(self, members: int, shared: bool,
                rng: np.random.Generator) -> list[tuple[str, int | None, np.ndarray]]:
        """Each leaf's epoch stream as (task, member, rows), or with ``shared`` one stream per
        task for all its members (member None); a task without rows has none."""
        who = [None] if shared else range(members)
        streams = []
        if len(self.value_rows):
            streams += [("value", e, self.value_rows[balanced_stream(self.value_keys, rng)])
                        for e in who]
        streams += [("feasible", e, balanced_stream(self.feasible_keys, rng)) for e in who]
        if len(self.token_rows):
            streams.append(("token", None, rng.permutation(self.token_rows)))
        return streams


def fit(model: Lambo2Model, X: np.ndarray, values: np.ndarray, rounds: np.ndarray, *,
        epochs: int, batch_size: int, lr: float, warmup: int, max_steps: int | None,
        shared: bool, rng: np.random.Generator) -> dict:
    """Train ``model`` in place for ``epochs`` epochs (at most ``max_steps`` steps, None: no
    cap) on tokens ``X`` ``(n, L)``, values ``(n,)`` and rounds ``(n,)``; returns each task's
    mean loss per leaf, the epochs and the steps.

    ``shared`` (the ``cpu`` preset): the members of a task share its minibatch, and each step is
    one Adam update on the sum of every leaf's loss, instead of one update per leaf."""
    device = model.embedding.device
    data = Data(X, values, rounds)
    good = values[data.feasible]
    std = float(good.std(ddof=1)) if len(good) > 1 else 1.0
    model.scale.copy_(torch.tensor([float(good.mean()) if len(good) else 0.0,
                                    std if std >= 1e-8 else 1.0]))
    tokens = torch.as_tensor(X, device=device)
    target = torch.as_tensor(np.where(data.feasible, values, 0.0), dtype=torch.float32,
                             device=device)
    target = (target - model.scale[0]) / model.scale[1]
    label = torch.as_tensor(data.feasible, dtype=torch.int64, device=device)
    fractions = corruption_fractions()
    adam = torch.optim.Adam(model.parameters(), lr=lr, betas=BETAS)
    losses: dict[str, list[float]] = {"value": [], "feasible": [], "token": []}
    steps = epochs_done = 0
    while epochs_done < epochs and steps != max_steps:
        for group in adam.param_groups:
            group["lr"] = lr * learning_rate_factor(epochs_done, epochs, warmup)
        streams = data.streams(model.members, shared, rng)
        length = min(-(-len(rows) // batch_size) for _, _, rows in streams)
        for step in range(length):
            order = rng.permutation(len(streams))
            for update in [order] if shared else order[:, None]:
                total = 0.0
                for task, member, rows in (streams[leaf] for leaf in update):
                    batch = torch.as_tensor(rows[step * batch_size:(step + 1) * batch_size],
                                            device=device)
                    fraction = float(fractions[rng.integers(0, len(fractions))])
                    masked = torch.as_tensor(rng.random((len(batch), X.shape[1])) < fraction,
                                             device=device)
                    loss = _leaf_loss(model, task, member, tokens[batch], masked, fraction,
                                      target[batch], label[batch])
                    if loss is not None:  # None: a language-model batch with nothing masked
                        leaves = model.members if member is None and task != "token" else 1
                        losses[task].append(loss.item() / leaves)
                        total = total + loss
                if torch.is_tensor(total):
                    adam.zero_grad()
                    total.backward()
                    adam.step()
            steps += 1
            if steps == max_steps:
                break
        epochs_done += 1
    return {**{f"train_{task}_loss": float(np.mean(v)) if v else None
               for task, v in losses.items()},
            "train_epochs": epochs_done, "train_steps": steps}


def _leaf_loss(model: Lambo2Model, task: str, member: int | None, tokens: torch.Tensor,
               masked: torch.Tensor, fraction: float, target: torch.Tensor,
               label: torch.Tensor) -> torch.Tensor | None:
    """A leaf's (or, ``member`` None, all its task's members') loss on a corrupted minibatch
    (see the module's docstring); None for a language-model batch with nothing masked."""
    if task == "token" and not masked.any():
        return None
    features = model.trunk(model.embed(torch.where(masked, model.mask_token, tokens)))
    if task == "value":
        return value_loss(model.value_outputs(features, member), target, fraction)
    if task == "feasible":
        logits = model.feasibility_logits(features, member)
        return F.cross_entropy(logits.transpose(1, 2), label.expand(len(logits), -1),
                               reduction="none").mean(-1).sum()
    return F.cross_entropy(model.token_logits(features)[masked], tokens[masked])
