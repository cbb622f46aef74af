"""Proposals: iterative refinement from the best labelled sequences, then likelihood selection.

Each seed starts one trajectory per sampling setting (greedy, and every temperature with
``samples`` draws). At each refinement step the trajectory's input is edited by the model, and
the next input is the most likely valid output the trajectory has produced so far (likelihood
under the untempered model, per token): the oracle is not consulted inside this loop. Every
output is kept; selection then drops the invalid (unparsable, wrong length, out of range),
duplicate and already-labelled ones, keeps the top fraction by likelihood, and draws the round's
labels from those uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from holo_bench.seeding import child, integer_seed
from optimizers.llome.data import top_fraction_by_likelihood
from optimizers.llome.decoding import Backend, through_stop


@dataclass(frozen=True)
class Proposals:
    """Every generated output: sequence ``(m, L)``, the input it edited ``(m, L)``, its mean token
    log-probability under the untempered model ``(m,)``, whether it parsed ``(m,)``, and the
    tokens the backend generated for it ``(m,)`` (up to its stop token)."""

    sequence: np.ndarray
    prompt: np.ndarray
    loglik: np.ndarray
    valid: np.ndarray
    tokens: np.ndarray


def refine(backend: Backend, codec, seeds: np.ndarray, steps: int, temperatures: list[float],
           samples: int, seed: np.random.SeedSequence) -> Proposals:
    """Run every trajectory (``len(seeds)`` per sampling setting) for ``steps`` edits.

    Setting ``job`` (0 greedy, then ``temperatures`` in order) samples its step ``step`` with the
    seed ``child(seed, job, step)``: each generation has a stream of its own, whatever the
    settings and steps around it."""
    outputs = []
    settings = [(0.0, 1)] + [(float(t), samples) for t in temperatures]
    for job, (temperature, draws) in enumerate(settings):
        current = np.array(seeds, dtype=np.int64)
        best = np.full(len(seeds), -np.inf)
        for step in range(steps):
            tokens, logprobs = backend.generate(codec.prompts(current), codec.target_length,
                                                temperature, draws,
                                                seed=integer_seed(child(seed, job, step)))
            sequence, valid, length = codec.parse(tokens)
            spans = np.arange(tokens.shape[1])[None, :] < length[:, None]  # tokens of the proposal
            loglik = (logprobs.double().numpy() * spans).sum(1) / length
            generated = through_stop(tokens, codec.stop).sum(1).numpy()
            outputs.append((sequence, np.repeat(current, draws, axis=0), loglik, valid, generated))
            ranked = np.where(valid, loglik, -np.inf).reshape(len(seeds), draws)
            pick = ranked.argmax(axis=1)
            better = ranked[np.arange(len(seeds)), pick] > best
            best[better] = ranked[better, pick[better]]
            current[better] = sequence.reshape(len(seeds), draws, -1)[better, pick[better]]
    return Proposals(*(np.concatenate(parts) for parts in zip(*outputs)))


def mutate(seeds: np.ndarray, per_seed: int, num_states: int,
           rng: np.random.Generator) -> Proposals:
    """``per_seed`` random mutants of every seed ``(n, L)``, each with 1 or 2 (equally likely)
    distinct sites changed to another residue, drawn uniformly: the proposals of the ablation
    without a language model. All valid, with likelihood 0 and no generated tokens."""
    prompt = np.repeat(np.asarray(seeds, dtype=np.int64), per_seed, axis=0)
    sequence = prompt.copy()
    n, length = sequence.shape
    sites = np.argsort(rng.random((n, length)), axis=1)[:, :2]
    changes = rng.integers(1, 3, n)
    shift = rng.integers(1, num_states, (n, 2))  # never back to the same residue
    for j in range(2):
        rows, columns = np.flatnonzero(changes > j), sites[changes > j, j]
        sequence[rows, columns] = (sequence[rows, columns] + shift[rows, j]) % num_states
    return Proposals(sequence, prompt, np.zeros(n), np.ones(n, dtype=bool), np.zeros(n, np.int64))


def sequence_key(sequence: np.ndarray) -> bytes:
    """A hashable key of one sequence, for the set of labelled sequences."""
    return np.asarray(sequence, dtype=np.uint16).tobytes()


def select(proposals: Proposals, labelled: set[bytes], count: int, keep_fraction: float,
           rng: np.random.Generator) -> np.ndarray:
    """Indices into ``proposals`` of at most ``count`` new, unique, valid, likely outputs."""
    candidates = np.flatnonzero(proposals.valid)
    # Most likely copy first, so that dropping duplicates keeps it.
    candidates = candidates[np.argsort(-proposals.loglik[candidates], kind="stable")]
    rows = np.ascontiguousarray(proposals.sequence[candidates].astype(np.uint16))
    _, first = np.unique(rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel(),
                         return_index=True)
    candidates = candidates[np.sort(first)]
    new = np.array([sequence_key(proposals.sequence[i]) not in labelled for i in candidates],
                   dtype=bool)
    candidates = candidates[new]
    if len(candidates) == 0:
        return candidates
    candidates = candidates[top_fraction_by_likelihood(proposals.loglik[candidates], keep_fraction)]
    if len(candidates) > count:
        candidates = np.sort(rng.choice(candidates, size=count, replace=False))
    return candidates
