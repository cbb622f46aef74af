"""Generation backends: sample target token strings from a model, with their log-probabilities.

LLOME needs, for a batch of prompts, ``num_samples`` samples each (greedy when ``temperature`` is
0) and the log-probability of every generated token under the *untempered* model, which ranks
proposals. A backend serves one run; ``update`` hands it each round's freshly trained model (the
in-memory module and its checkpoint directory, so that engines that load from disk can).
"""

from __future__ import annotations

import inspect
import os

import torch

from optimizers.llome.model import Tokens, positions


class Backend:
    """Interface of a generation backend."""

    def update(self, model, checkpoint: str | os.PathLike) -> None:
        raise NotImplementedError

    def generate(self, prompts: Tokens, length: int, temperature: float, num_samples: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``num_samples`` continuations of ``length`` tokens per prompt (``B`` prompts,
        left-padded).

        Returns tokens ``(B * num_samples, length)`` (the samples of prompt ``b`` are rows
        ``b * num_samples ...``) and their untempered log-probabilities, same shape.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the engine."""


class HFBackend(Backend):
    """A transformers causal LM decoding with its KV cache, batched, on CPU or CUDA.

    The decoding loop is ours rather than ``generate``'s: it decodes a fixed number of tokens
    (the codec finds where each proposal ends), samples with its own seeded generator, and keeps
    the untempered log-probabilities at no extra cost (4x faster than ``generate`` on CPU).
    """

    def __init__(self, device: str = "cpu", max_batch: int = 4096):
        self.device = device
        self.max_batch = max_batch
        self.model = None

    def update(self, model, checkpoint) -> None:
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def generate(self, prompts, length, temperature, num_samples, seed):
        generator = torch.Generator(self.device).manual_seed(seed)
        rows = prompts.repeat_interleave(num_samples)
        tokens, logprobs = [], []
        for start in range(0, len(rows), self.max_batch):
            chunk_tokens, chunk_logprobs = self._decode(rows[start : start + self.max_batch], length,
                                                        temperature, generator)
            tokens.append(chunk_tokens)
            logprobs.append(chunk_logprobs)
        return torch.cat(tokens), torch.cat(logprobs)

    def _decode(self, prompts: Tokens, length, temperature, generator):
        # transformers 5 calls the KV cache `cache`; 4.x called it `past_key_values`.
        name = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        mask = prompts.mask.to(self.device).long()
        position = positions(mask)
        out = self.model(input_ids=prompts.ids.to(self.device), attention_mask=mask,
                         position_ids=position, use_cache=True)
        position = position[:, -1:]
        tokens, logprobs = [], []
        for _ in range(length):
            logits = out.logits[:, -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            if temperature > 0:
                token = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)
            else:
                token = logits.argmax(-1, keepdim=True)
            tokens.append(token)
            logprobs.append(logp.gather(-1, token))
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            position = position + 1
            out = self.model(input_ids=token, attention_mask=mask, position_ids=position, use_cache=True,
                             **{name: out[name]})
        return torch.cat(tokens, 1).cpu(), torch.cat(logprobs, 1).cpu()
