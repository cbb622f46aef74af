"""Generation backends: sample target token strings from a model, with their log-probabilities.

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

A backend serves one run. ``update`` hands it each round's freshly trained model (the in-memory
module, and the checkpoint directory it was saved to, for engines that load from disk); ``sleep``
says the model is about to train, so an engine on the accelerator can release its memory.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch

from optimizers.llome.model import Tokens, positions


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


class HFBackend(Backend):
    """A transformers causal LM decoding with its KV cache, batched, on CPU or CUDA.

    The decoding loop is ours rather than ``generate``'s: it samples with its own seeded
    generator (the same seed gives the same samples) and keeps the untempered log-probabilities at
    no extra cost (4x faster than ``generate`` on CPU).
    """

    def __init__(self, decoding: Decoding = Decoding(), device: str = "cpu", max_batch: int = 4096):
        self.decoding = decoding
        self.device = device
        self.max_batch = max_batch
        self.model = None

    def update(self, model, checkpoint=None) -> None:
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def generate(self, prompts, length, temperature, num_samples, seed):
        generator = torch.Generator(self.device).manual_seed(seed)
        rows = prompts.repeat_interleave(num_samples)
        tokens, logprobs = [], []
        for start in range(0, len(rows), self.max_batch):
            chunk_tokens, chunk_logprobs = self._decode(rows[start : start + self.max_batch],
                                                        length, temperature, generator)
            tokens.append(chunk_tokens)
            logprobs.append(chunk_logprobs)
        return torch.cat(tokens), torch.cat(logprobs)

    def _decode(self, prompts: Tokens, length, temperature, generator):
        # transformers 5 calls the KV cache `cache`; 4.x called it `past_key_values`.
        takes = inspect.signature(self.model.forward).parameters
        name = "cache" if "cache" in takes else "past_key_values"
        stop = torch.tensor(self.decoding.stop, dtype=torch.long, device=self.device)
        mask = prompts.mask.to(self.device).long()
        position = positions(mask)
        out = self.model(input_ids=prompts.ids.to(self.device), attention_mask=mask,
                         position_ids=position, use_cache=True)
        position = position[:, -1:]
        n = len(prompts)
        tokens = torch.full((n, length), self.decoding.pad, dtype=torch.long, device=self.device)
        logprobs = torch.zeros((n, length), device=self.device)
        running = torch.ones(n, dtype=torch.bool, device=self.device)
        for step in range(length):
            logits = out.logits[:, -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            sample_from = sampling_logits(logits, self.decoding, temperature)
            if temperature > 0:
                token = torch.multinomial(torch.softmax(sample_from, -1), 1, generator=generator)
            else:
                token = sample_from.argmax(-1, keepdim=True)
            tokens[:, step] = torch.where(running, token[:, 0], self.decoding.pad)
            logprobs[:, step] = torch.where(running, logp.gather(-1, token)[:, 0], 0.0)
            running &= ~torch.isin(token[:, 0], stop)
            if step == length - 1 or not running.any():
                break
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            position = position + 1
            out = self.model(input_ids=token, attention_mask=mask, position_ids=position,
                             use_cache=True, **{name: out[name]})
        return tokens.cpu(), logprobs.cpu()


BACKENDS = ("hf", "vllm")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; use one of {', '.join(BACKENDS)}")
    return name


def make_backend(name: str, decoding: Decoding, device: str = "cpu", **options) -> Backend:
    """The backend called ``name`` (one of ``BACKENDS``); ``options`` go to the vLLM engine."""
    if check_backend(name) == "hf":
        return HFBackend(decoding, device)
    from optimizers.llome.vllm_backend import VLLMBackend

    return VLLMBackend(decoding, device, **options)
