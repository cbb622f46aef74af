"""What every generation backend shares: the sampling rules and the interface.

LLOME needs, for a batch of prompts, ``num_samples`` samples each (greedy when ``temperature`` is
0) and the log-probability of every generated token under the *untempered, unrestricted* model,
which ranks proposals. How samples are drawn is fixed for a run by a ``Decoding``; every backend
applies it the same way, so that backends differ in speed, never in distribution:

1. logits of tokens outside ``allowed`` are set to -inf (greedy picks the most likely allowed one);
2. the rest are divided by the temperature;
3. top-k keeps the ``top_k`` largest (ties at the k-th kept), then top-p keeps the most likely
   tokens whose probabilities, renormalized, first reach ``top_p`` (at least one);
4. a token is drawn from what is left; a row stops after a ``stop`` token, and its remaining
   positions hold ``pad`` with log-probability 0.

The backends (``hf_backend``, ``vllm_backend``) import this module, and ``backends`` builds one
by name: the arrows run one way. A backend serves one run. ``update`` hands it each round's
freshly trained model (the in-memory module, and the checkpoint directory it was saved to, for
engines that load from disk); ``sleep`` says the model is about to train, so an engine on the
accelerator can release its memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from optimizers.llome.model import Tokens


@dataclass(frozen=True)
class Decoding:
    """Sampling rules for a whole run: the tokens sampling may choose (``None``: any), the tokens
    that end a sample, the padding after the end, and the top-k (0: off) and top-p (1: off) cuts."""

    allowed: tuple[int, ...] | None = None
    stop: tuple[int, ...] = ()
    pad: int = 0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


class Backend:
    """Interface of a generation backend."""

    # Whether ``update`` needs the model saved to a checkpoint directory.
    loads_from_disk = False

    def update(self, model, checkpoint: str | os.PathLike | None) -> None:
        raise NotImplementedError

    def generate(self, prompts: Tokens, length: int, temperature: float, num_samples: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``num_samples`` continuations of at most ``length`` tokens per prompt (``B``
        prompts, left-padded).

        Returns tokens ``(B * num_samples, length)`` (the samples of prompt ``b`` are rows
        ``b * num_samples ...``) and their untempered log-probabilities, same shape.
        """
        raise NotImplementedError

    def sleep(self) -> None:
        """The model is about to train: release accelerator memory until the next ``update``."""

    def close(self) -> None:
        """Release the engine."""


def through_stop(tokens: torch.Tensor, stop: tuple[int, ...]) -> torch.Tensor:
    """Which of the generated ``tokens`` ``(n, T)`` a sample wrote: those up to and including its
    first stop token (all of them if it has none)."""
    stops = torch.isin(tokens, torch.tensor(stop, dtype=tokens.dtype, device=tokens.device)).long()
    return (stops.cumsum(1) - stops) == 0


def sampling_logits(logits: torch.Tensor, decoding: Decoding, temperature: float) -> torch.Tensor:
    """Steps 1-3 of the module's rules on ``(n, V)`` logits: what is left to sample from
    (-inf elsewhere), tempered. With ``temperature`` 0 only the allowed mask applies."""
    logits = logits.float()
    if decoding.allowed is not None:
        keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        keep[list(decoding.allowed)] = True
        logits = logits.masked_fill(~keep, -torch.inf)
    if temperature == 0:
        return logits
    logits = logits / temperature
    if decoding.top_k and decoding.top_k < logits.shape[-1]:
        kth = logits.topk(decoding.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if decoding.top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
        drop = before >= decoding.top_p
        drop[:, 0] = False
        logits = logits.scatter(-1, order, ordered.masked_fill(drop, -torch.inf))
    return logits
