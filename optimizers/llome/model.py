"""The language model LLOME trains, and codecs between sequences and its tokens.

By default a small causal LM is built from scratch with one token per residue (``Codec``): an
edit is the prompt ``<bos> <inc> x_1 .. x_L <sep>`` and the target ``y_1 .. y_L <eos>``, fixed
lengths with no padding, and a proposal is valid iff its first ``L`` tokens are residues and the
next is ``<eos>``. A local pretrained Hugging Face causal LM can be used instead with the paper's
text format (``TextCodec``): the prompt ``<inc> [4, 23, ..]\n`` and the JSON-list target, cut at
the first ``]``. Each checkpoint is a plain Hugging Face directory (config, safetensors weights,
tokenizer), which transformers and vLLM open without our code. The from-scratch Llama keeps a head
size of 32, which vLLM's kernels support.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Tokens:
    """Token ids ``(n, T)`` and a mask of the real (non-padding) ones; prompts pad on the left,
    targets on the right."""

    ids: torch.Tensor
    mask: torch.Tensor

    def __getitem__(self, index) -> "Tokens":
        return Tokens(self.ids[index], self.mask[index])

    def __len__(self) -> int:
        return len(self.ids)

    def repeat_interleave(self, repeats: int) -> "Tokens":
        return Tokens(self.ids.repeat_interleave(repeats, 0),
                      self.mask.repeat_interleave(repeats, 0))


def _unpadded(ids: torch.Tensor) -> Tokens:
    return Tokens(ids, torch.ones_like(ids, dtype=torch.bool))

CONTROL = ["<pad>", "<bos>", "<eos>", "<inc>", "<sep>"]
PAD, BOS, EOS, INC, SEP = range(len(CONTROL))
RESIDUE_OFFSET = len(CONTROL)


@dataclass(frozen=True)
class Codec:
    """Token layout of edit prompts and targets for sequences of ``dim`` tokens out of
    ``num_states``."""

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
        """Tokens to generate for one proposal."""
        return self.dim + 1

    # What generation may write (residues and <eos>), what ends a proposal, and what pads it.
    @property
    def allowed(self) -> tuple[int, ...]:
        return (EOS, *range(RESIDUE_OFFSET, self.vocab_size))

    stop = (EOS,)
    pad = PAD

    def prompts(self, X: np.ndarray) -> Tokens:
        """``(n, L)`` sequences to ``(n, L + 3)`` prompt tokens."""
        X = torch.as_tensor(np.asarray(X, dtype=np.int64)) + RESIDUE_OFFSET
        n = len(X)
        return _unpadded(torch.cat([torch.full((n, 1), BOS), torch.full((n, 1), INC), X,
                                    torch.full((n, 1), SEP)], 1))

    def targets(self, Y: np.ndarray) -> Tokens:
        """``(n, L)`` sequences to ``(n, L + 1)`` target tokens (residues then ``<eos>``)."""
        Y = torch.as_tensor(np.asarray(Y, dtype=np.int64)) + RESIDUE_OFFSET
        return _unpadded(torch.cat([Y, torch.full((len(Y), 1), EOS)], 1))

    def parse(self, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Generated tokens ``(n, L + 1)`` to sequences ``(n, L)``, a validity mask (every residue
        position holds a residue token and the last is ``<eos>``), and the number of tokens the
        proposal spans (all of them)."""
        tokens = tokens.cpu().numpy().astype(np.int64)
        residues = tokens[:, : self.dim] - RESIDUE_OFFSET
        in_range = ((residues >= 0) & (residues < self.num_states)).all(axis=1)
        valid = in_range & (tokens[:, self.dim] == EOS)
        return np.clip(residues, 0, self.num_states - 1), valid, np.full(len(tokens), self.dim + 1)

    def tokenizer(self):
        """A word-level Hugging Face tokenizer for this layout, saved beside each checkpoint."""
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        tokens = CONTROL + [str(s) for s in range(self.num_states)]
        vocab = {token: i for i, token in enumerate(tokens)}
        core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>",
                                       pad_token="<pad>", unk_token="<pad>")


class TextCodec:
    """The paper's text format for a pretrained tokenizer: ``<inc> [x]\n`` -> ``[y]``, no EOS.

    A proposal ends with the first generated token whose text contains ``]``; it is valid iff
    the text up to that ``]`` is a JSON list of ``dim`` integers in ``[0, num_states)``.
    """

    def __init__(self, tokenizer, num_states: int, dim: int):
        self._tokenizer = tokenizer
        self.num_states, self.dim = num_states, dim
        pad = tokenizer.pad_token_id
        pad = tokenizer.eos_token_id if pad is None else pad
        self.pad = 0 if pad is None else pad
        vocab = len(tokenizer)
        texts = [tokenizer.decode([i]) for i in range(vocab)]
        self._closes = np.array(["]" in text for text in texts])
        widest = json.dumps([num_states - 1] * dim)
        self.target_length = len(tokenizer(widest, add_special_tokens=False).input_ids) + 4
        # Generation may write tokens made of JSON-list characters (and EOS, if the tokenizer has
        # one), and ends a proposal at its first "]".
        eos = () if tokenizer.eos_token_id is None else (tokenizer.eos_token_id,)
        self.allowed = tuple(sorted({i for i, text in enumerate(texts)
                                     if text and set(text) <= set("0123456789[], ")} | set(eos)))
        self.stop = tuple(int(i) for i in np.flatnonzero(self._closes)) + eos

    def tokenizer(self):
        return self._tokenizer

    def _encode(self, texts: list[str], left: bool) -> Tokens:
        rows = self._tokenizer(texts, add_special_tokens=False).input_ids
        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), self.pad)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span], mask[i, span] = torch.tensor(row), True
        return Tokens(ids, mask)

    def prompts(self, X: np.ndarray) -> Tokens:
        return self._encode([f"<inc> {json.dumps(np.asarray(x).tolist())}\n" for x in X], left=True)

    def targets(self, Y: np.ndarray) -> Tokens:
        return self._encode([json.dumps(np.asarray(y).tolist()) for y in Y], left=False)

    def parse(self, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tokens = tokens.cpu().numpy()
        closes = self._closes[np.clip(tokens, 0, len(self._closes) - 1)]
        length = np.where(closes.any(axis=1), closes.argmax(axis=1) + 1, tokens.shape[1])
        sequences = np.zeros((len(tokens), self.dim), dtype=np.int64)
        valid = np.zeros(len(tokens), dtype=bool)
        for i, (row, n) in enumerate(zip(tokens, length)):
            text = self._tokenizer.decode(row[:n].tolist())
            try:
                values = json.loads(text[: text.index("]") + 1])
            except ValueError:
                continue
            if (isinstance(values, list) and len(values) == self.dim
                    and all(isinstance(v, int) and 0 <= v < self.num_states for v in values)):
                sequences[i], valid[i] = values, True
        return sequences, valid, length


def new_model(codec: Codec, hidden_size: int = 128, layers: int = 4, head_size: int = 32,
              seed: int = 0):
    """A freshly initialised Llama causal LM sized for ``codec``'s vocabulary and lengths, its
    weights drawn from a generator seeded with ``seed`` (see ``seeded``)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % head_size:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of head_size {head_size}")
    config = LlamaConfig(
        vocab_size=codec.vocab_size, hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=hidden_size // head_size,
        num_key_value_heads=hidden_size // head_size, head_dim=head_size,
        max_position_embeddings=codec.prompt_length + codec.target_length,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        # Untied: vLLM cannot reload a tied output layer in place (it keeps the old one).
        tie_word_embeddings=False,
    )
    return seeded(LlamaForCausalLM, config, seed)


def seeded(model_class, config, seed: int):
    """``model_class(config)`` with every weight drawn from ``torch.Generator().manual_seed(seed)``
    as transformers initialises them (matrices normal with ``config.initializer_range``, norm
    scales 1, biases 0, the padding token's embedding 0), leaving torch's global generator as it
    was: the constructor's own draws come from a forked copy of its state, and are overwritten."""
    with torch.random.fork_rng(devices=[]):
        model = model_class(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, config.initializer_range, generator=generator)
            else:
                parameter.fill_(0.0 if name.endswith("bias") else 1.0)
        embedding = model.get_input_embeddings()
        if embedding.padding_idx is not None:
            embedding.weight[embedding.padding_idx] = 0.0
    return model


def save(model, codec, path: str | os.PathLike) -> None:
    """Write ``model`` and its tokenizer as a plain Hugging Face directory."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    model.save_pretrained(path, safe_serialization=True)
    codec.tokenizer().save_pretrained(path)


def load(path: str | os.PathLike, device: str = "cpu"):
    """Load a causal LM saved by ``save`` (or any local Hugging Face causal LM)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).to(device)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding."""
    return (mask.long().cumsum(1) - 1).clamp(min=0)


def target_logprobs(model, prompts: Tokens, targets: Tokens) -> torch.Tensor:
    """Per-token log-probabilities ``(n, T)`` of ``targets`` given ``prompts`` (teacher forcing);
    0 at target padding, so a row's sum is the target's log-likelihood."""
    ids = torch.cat([prompts.ids, targets.ids[:, :-1]], dim=1).to(model.device)
    mask = torch.cat([prompts.mask, targets.mask[:, :-1]], dim=1).to(model.device)
    logits = model(input_ids=ids, attention_mask=mask.long(), position_ids=positions(mask)).logits
    logp = torch.log_softmax(logits[:, prompts.ids.shape[1] - 1 :].float(), dim=-1)
    target = targets.ids.to(model.device)
    return logp.gather(-1, target[..., None])[..., 0] * targets.mask.to(model.device)
