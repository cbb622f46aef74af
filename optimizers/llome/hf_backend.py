"""The transformers backend: our own batched decoding loop with a KV cache, on CPU or CUDA."""

from __future__ import annotations

import inspect

import torch

from optimizers.llome.decoding import Backend, Decoding, sampling_logits
from optimizers.llome.model import Tokens, positions


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
        cache = _cache(self.model.config, prompts.ids.shape[1] + length)
        stop = torch.tensor(self.decoding.stop, dtype=torch.long, device=self.device)
        mask = prompts.mask.to(self.device).long()
        position = positions(mask)
        out = self.model(input_ids=prompts.ids.to(self.device), attention_mask=mask,
                         position_ids=position, use_cache=True,
                         **({} if cache is None else {name: cache}))
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


def _cache(config, capacity: int):
    """A KV cache that writes each step into tensors allocated once for ``capacity`` positions,
    where transformers' default cache concatenates (a copy of the whole cache every step, a
    quarter of the decoding time of LLOME's model on a CPU). Attention reads the same values in
    the same order, so the outputs are bit for bit the default's (``tests/test_generate.py``).
    Models with sliding-window layers keep the default cache (``None``)."""
    from transformers.cache_utils import Cache, DynamicLayer

    if getattr(config, "sliding_window", None) is not None or "sliding_attention" in (
            getattr(config, "layer_types", None) or ()):
        return None

    class InPlaceLayer(DynamicLayer):
        filled = None  # positions written; None until the first update allocates the buffers

        def update(self, keys, values, *args, **kwargs):
            if self.filled is None:
                self.device, self.is_initialized, self.filled = keys.device, True, 0
                self.buffers = [x.new_empty((*x.shape[:2], capacity, x.shape[-1]))
                                for x in (keys, values)]
            end = self.filled + keys.shape[-2]
            for buffer, new in zip(self.buffers, (keys, values)):
                buffer[:, :, self.filled : end] = new
            self.filled = end
            self.keys, self.values = (buffer[:, :, :end] for buffer in self.buffers)
            return self.keys, self.values

    layers = config.get_text_config().num_hidden_layers
    return Cache(layers=[InPlaceLayer() for _ in range(layers)])
