"""The language model LLOME trains: a small causal LM built from scratch, one token per residue.

A sequence edit is one fixed-length token string: the prompt ``<bos> <inc> x_1 .. x_L <sep>``
and the target ``y_1 .. y_L <eos>``. Fixed lengths mean no padding anywhere, and a proposal is
valid iff its first ``L`` tokens are residues and the next is ``<eos>``. Each checkpoint is a plain
Hugging Face directory (config, safetensors weights, tokenizer), which transformers and vLLM open
without our code. The Llama configuration keeps a head size of 32, which vLLM's kernels support.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

CONTROL = ["<pad>", "<bos>", "<eos>", "<inc>", "<sep>"]
PAD, BOS, EOS, INC, SEP = range(len(CONTROL))
RESIDUE_OFFSET = len(CONTROL)


@dataclass(frozen=True)
class Codec:
    """Token layout of edit prompts and targets for sequences of ``dim`` tokens out of ``num_states``."""

    num_states: int
    dim: int

    @property
    def vocab_size(self) -> int:
        return RESIDUE_OFFSET + self.num_states

    @property
    def prompt_length(self) -> int:
        return self.dim + 3

    @property
    def target_length(self) -> int:
        return self.dim + 1

    def prompts(self, X: np.ndarray) -> torch.Tensor:
        """``(n, L)`` sequences to ``(n, L + 3)`` prompt token ids."""
        X = torch.as_tensor(np.asarray(X, dtype=np.int64)) + RESIDUE_OFFSET
        n = len(X)
        return torch.cat([torch.full((n, 1), BOS), torch.full((n, 1), INC), X, torch.full((n, 1), SEP)], 1)

    def targets(self, Y: np.ndarray) -> torch.Tensor:
        """``(n, L)`` sequences to ``(n, L + 1)`` target token ids (residues then ``<eos>``)."""
        Y = torch.as_tensor(np.asarray(Y, dtype=np.int64)) + RESIDUE_OFFSET
        return torch.cat([Y, torch.full((len(Y), 1), EOS)], 1)

    def parse(self, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Generated target tokens ``(n, L + 1)`` to sequences ``(n, L)`` and a validity mask:
        valid iff every residue position holds a residue token and the last is ``<eos>``."""
        tokens = tokens.cpu().numpy().astype(np.int64)
        residues = tokens[:, : self.dim] - RESIDUE_OFFSET
        valid = ((residues >= 0) & (residues < self.num_states)).all(axis=1) & (tokens[:, self.dim] == EOS)
        return np.clip(residues, 0, self.num_states - 1), valid

    def tokenizer(self):
        """A word-level Hugging Face tokenizer for this layout, saved beside each checkpoint."""
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {token: i for i, token in enumerate(CONTROL + [str(s) for s in range(self.num_states)])}
        core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>",
                                       pad_token="<pad>", unk_token="<pad>")


def new_model(codec: Codec, hidden_size: int = 128, layers: int = 4, head_size: int = 32, seed: int = 0):
    """A freshly initialised Llama causal LM sized for ``codec``'s vocabulary and lengths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % head_size:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of head_size {head_size}")
    config = LlamaConfig(
        vocab_size=codec.vocab_size, hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=hidden_size // head_size,
        num_key_value_heads=hidden_size // head_size, head_dim=head_size,
        max_position_embeddings=codec.prompt_length + codec.target_length,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def save(model, codec: Codec, path: str | os.PathLike) -> None:
    """Write ``model`` and its tokenizer as a plain Hugging Face directory."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    model.save_pretrained(path, safe_serialization=True)
    codec.tokenizer().save_pretrained(path)


def load(path: str | os.PathLike, device: str = "cpu"):
    """Load a causal LM saved by ``save`` (or any local Hugging Face causal LM)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).to(device)


def target_logprobs(model, prompts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities ``(n, T)`` of ``targets`` given ``prompts`` (teacher forcing)."""
    inputs = torch.cat([prompts, targets[:, :-1]], dim=1).to(model.device)
    logits = model(input_ids=inputs).logits[:, prompts.shape[1] - 1 :]
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.to(model.device)[..., None])[..., 0]
