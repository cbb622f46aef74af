"""A tiny GPT-2 with a byte-level BPE tokenizer trained here, saved as a local Hugging Face
directory: it stands in for a checkpoint such as Pythia that a user points LLOME at."""

import json
from pathlib import Path

import numpy as np


def save_tiny_gpt2(path: Path, hidden_size: int = 32, heads: int = 2) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from optimizers.llome.model import seeded

    rng = np.random.default_rng(0)
    lists = [json.dumps(rng.integers(0, 8, 16).tolist()) for _ in range(600)]
    corpus = [f"<inc> {x}\n{y}" for x, y in zip(lists[::2], lists[1::2])]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=hidden_size, n_layer=1,
                        n_head=heads)
    seeded(GPT2LMHeadModel, config, seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
