"""LLOME as an ask/tell optimizer: GA seed data, then rounds of train, generate, select.

Round 0 labels come from a genetic algorithm run through the same oracle budget. Every later
round trains the language model on edit pairs (worse -> better) of the previous round's labels
(the first training is always SFT, as published; then the variant's loss: SFT, MargE or DPO
with the round-start model as reference), refines the best labelled sequences with it, and asks
the oracle for the selected proposals. With a ``workdir`` (set by the runner) each round is saved
there (the model as a Hugging Face directory ``round-N``; labels, random state and the round's
proposals in ``state.pkl``) with its metrics, and a restarted run resumes from the last save.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from optimizers.base import Optimizer, Problem
from optimizers.ga import GeneticAlgorithm
from optimizers.llome import model as lm
from optimizers.llome.data import edit_pairs, preference_triples
from optimizers.llome.generate import Decoding, check_backend, make_backend
from optimizers.llome.propose import refine, select, sequence_key
from optimizers.llome.train import train_round

STATE = "state.pkl"
METRICS = "metrics.jsonl"


class Llome(Optimizer):
    """LLOME with a from-scratch Llama LM (head size 32), or the local pretrained Hugging Face
    causal LM at ``model_path`` (nothing is downloaded), on CPU or CUDA, generating through the
    ``hf`` (transformers) or ``vllm`` backend.

    Defaults follow the published f2 pipeline where they are about the algorithm (GA seed:
    1000 particles, 10 generations, mutation 0.005, recombination 0.0882, survival 0.1; 2000
    labels per round; 200 seeds; temperatures 0.6-1.6; top 40% by likelihood; MargE alpha 1,
    beta 10; DPO beta 0.4) and are scaled for a CPU where they are about compute (a 134k-parameter
    model, 4 samples per temperature, 4 refinement steps, 20 epochs on the GA data then 1 per
    round as published, DPO triples capped at 20,000 per round). ``batch_size`` is also MargE's
    self-normalization batch: ``--set batch_size=1`` reproduces the released configuration, in
    which the normalized weights are always 1 and MargE is (beta - alpha) times SFT.
    Sampling is restricted to the tokens a proposal may contain, with optional ``top_k`` and
    ``top_p`` cuts; ``vllm_gpu_memory`` is the GPU memory fraction the vLLM engine may take.
    """

    name = "llome"
    loss = "marge"

    def __init__(self, labels_per_round: int = 2000, seed_particles: int = 1000, seed_generations: int = 10,
                 seed_mutation_prob: float = 0.005, seed_recombine_prob: float = 0.0882,
                 seed_survival_quantile: float = 0.1, hidden_size: int = 64, layers: int = 2,
                 head_size: int = 32, first_epochs: int = 20, epochs: int = 1, batch_size: int = 32,
                 lr: float = 1e-3, alpha: float = 1.0, beta: float = 10.0, self_normalize: bool = True,
                 dpo_beta: float = 0.4, max_triples: int = 20_000, num_seeds: int = 200, steps: int = 4,
                 temperatures: str = "0.6,0.8,1.0,1.2,1.4,1.6", samples: int = 4,
                 keep_fraction: float = 0.4, top_k: int = 0, top_p: float = 1.0,
                 model_path: str | None = None, device: str = "cpu", backend: str = "hf",
                 vllm_gpu_memory: float = 0.5):
        self.labels_per_round = labels_per_round
        self.seed_particles = seed_particles
        self.seed_generations = seed_generations
        self.seed_mutation_prob = seed_mutation_prob
        self.seed_recombine_prob = seed_recombine_prob
        self.seed_survival_quantile = seed_survival_quantile
        self.hidden_size, self.layers, self.head_size = hidden_size, layers, head_size
        self.first_epochs, self.epochs, self.batch_size, self.lr = first_epochs, epochs, batch_size, lr
        self.alpha, self.beta, self.self_normalize, self.dpo_beta = alpha, beta, self_normalize, dpo_beta
        self.max_triples = max_triples
        self.num_seeds, self.steps, self.samples = num_seeds, steps, samples
        self.temperatures = temperatures
        self.keep_fraction = keep_fraction
        self.top_k, self.top_p = top_k, top_p
        self.model_path = model_path
        self.device = device
        self.backend = check_backend(backend)  # before any run starts
        self.vllm_gpu_memory = vllm_gpu_memory
        if batch_size < 2 and self_normalize and self.loss == "marge":
            warnings.warn("MargE with self-normalized weights on micro-batches of 1 reduces to "
                          "(beta - alpha) x SFT: the rewards have no effect (the released configuration)")

    @property
    def deterministic(self) -> bool:
        """Bit-for-bit repeatable only with the transformers backend on a CPU: vLLM's batching and
        GPU kernels change the last bits of the likelihoods that rank proposals."""
        return self.backend == "hf" and self.device == "cpu"

    # -- ask/tell -------------------------------------------------------------------------------

    def setup(self, problem: Problem, seed: int) -> None:
        self._problem, self._seed = problem, seed
        if self.model_path:  # a local pretrained LM, with the paper's text format
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            self._codec = lm.TextCodec(tokenizer, problem.num_states, problem.dim)
        else:
            self._codec = lm.Codec(problem.num_states, problem.dim)
        self._rng = np.random.default_rng(seed)
        self._round = 0  # trainings done
        self._calls = 0  # tells received: the oracle calls this state accounts for
        self._labels: list[tuple[np.ndarray, np.ndarray]] = []  # (X, values) per round
        self._labelled: set[bytes] = set()
        self._pending: np.ndarray | None = None  # proposals of this round not asked yet
        self._asked: dict | None = None
        self._metrics: dict | None = None
        self._model = None
        decoding = Decoding(self._codec.allowed, self._codec.stop, self._codec.pad, self.top_k, self.top_p)
        options = {"gpu_memory": self.vllm_gpu_memory} if self.backend == "vllm" else {}
        self._backend = make_backend(self.backend, decoding, self.device, **options)
        self._scratch = None  # checkpoints for a backend that loads from disk, without a workdir
        self._ga = GeneticAlgorithm(self.seed_particles, self.seed_mutation_prob, self.seed_recombine_prob,
                                    self.seed_survival_quantile)
        self._ga.setup(problem, seed)
        self._ga_generations = 0
        self.resumed_calls = self._restore() if self.workdir else 0

    def ask(self, n: int) -> np.ndarray:
        if self._ga_generations < self.seed_generations:
            return self._ga.ask(n)
        if self._pending is None:
            self._pending = self._next_round()
            self._save()  # with the proposals: a resumed run asks them again, never regenerates them
        X = self._pending["sequence"][:n]
        self._asked = {key: value[:n] for key, value in self._pending.items()}
        self._pending = None  # unasked proposals of a budget-cut round are dropped
        if len(X) == 0:  # nothing to propose ends the run: keep this round's model and metrics
            self._save()
        return X

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        if len(X) == 0:  # not an oracle call: nothing was evaluated
            return
        self._calls += 1
        X = np.asarray(X, dtype=np.int64)
        if self._ga_generations < self.seed_generations:
            self._ga.tell(X, values)
            self._ga_generations += 1
            self._add_labels(X, values, new_round=self._ga_generations == 1)
            if self._ga_generations == self.seed_generations:
                self._save()
            return
        self._add_labels(X, values, new_round=True)
        self._metrics["feasible_rate"] = float(np.mean(values > -np.inf))
        self._metrics["calibration_spearman"] = _spearman(self._asked["loglik"], values)
        self._metrics["best_value"] = float(max(v.max() for _, v in self._labels))
        self._metrics["round_best_value"] = float(values.max())
        self._save()

    # -- one round --------------------------------------------------------------------------------

    def _add_labels(self, X, values, new_round: bool) -> None:
        if new_round or not self._labels:
            self._labels.append((X, values))
        else:
            old_X, old_values = self._labels[-1]
            self._labels[-1] = (np.concatenate([old_X, X]), np.concatenate([old_values, values]))
        self._labelled.update(sequence_key(x) for x in X)

    def _next_round(self) -> dict:
        X, values = self._labels[-1]
        X, first = np.unique(X, axis=0, return_index=True)
        values = values[first]
        if self._model is None and self.model_path:
            self._model = lm.load(self.model_path, self.device)
        elif self._model is None:
            self._model = lm.new_model(self._codec, self.hidden_size, self.layers, self.head_size,
                                       seed=self._seed).to(self.device)
        loss = "sft" if self._round == 0 else self.loss
        examples = self._examples(X, values, loss)
        torch.manual_seed(self._seed * 7919 + self._round)
        self._backend.sleep()
        started = time.perf_counter()
        terms = train_round(self._model, self._codec, examples, loss,
                            epochs=self.first_epochs if self._round == 0 else self.epochs,
                            batch_size=self.batch_size, lr=self.lr, seed=self._seed * 7919 + self._round,
                            alpha=self.alpha, beta=self.beta, self_normalize=self.self_normalize,
                            dpo_beta=self.dpo_beta)
        self._round += 1
        self._backend.update(self._model, self._save_model())
        trained = time.perf_counter()
        better = examples["chosen"] if loss == "dpo" else examples["target"]
        better_values = examples["better_value"]
        if len(better) == 0:  # no improving pair among the labels: refine the best labelled ones
            better, better_values = X, values
        order = np.argsort(-better_values, kind="stable")[: self.num_seeds]
        temperatures = [float(t) for t in str(self.temperatures).split(",") if t.strip()]
        proposals = refine(self._backend, self._codec, better[order], self.steps, temperatures, self.samples,
                           seed=self._seed * 7919 + self._round)
        generated = time.perf_counter()
        chosen = select(proposals, self._labelled, self.labels_per_round, self.keep_fraction, self._rng)
        sent = proposals.sequence[chosen]
        self._metrics = {
            "round": self._round, "loss": loss, "pairs": len(better), "generated": len(proposals.valid),
            "parse_rate": float(proposals.valid.mean()), "selected": len(chosen),
            "edit_distance": float(np.mean(sent != proposals.prompt[chosen])) if len(chosen) else None,
            "diversity": _mean_pairwise_hamming(sent, np.random.default_rng(self._round)),
            # Wall times (training includes saving and loading the model into the backend).
            "train_seconds": trained - started, "generate_seconds": generated - trained,
            "generated_tokens": int(proposals.tokens.sum()),
            **{f"train_{key}": value for key, value in terms.items()},
        }
        return {"sequence": sent.astype(np.int64), "loglik": proposals.loglik[chosen]}

    def _examples(self, X, values, loss) -> dict:
        if loss == "dpo":
            triples = preference_triples(X, values, self._rng, max_triples=self.max_triples)
            return {"prompt": X[triples.prompt], "chosen": X[triples.chosen],
                    "rejected": X[triples.rejected], "better_value": values[triples.chosen]}
        pairs = edit_pairs(X, values, self._rng)
        return {"prompt": X[pairs.prompt], "target": X[pairs.target], "reward": pairs.reward,
                "better_value": values[pairs.target]}

    # -- round checkpoints ------------------------------------------------------------------------

    def _save_model(self) -> Path | None:
        """Save the model just trained as the Hugging Face directory ``round-N`` of the workdir
        (or of a scratch folder, when only the backend needs it); returns the directory."""
        if not self.workdir and not self._backend.loads_from_disk:
            return None
        if self.workdir:
            folder = Path(self.workdir)
        else:
            self._scratch = self._scratch or tempfile.TemporaryDirectory(prefix="llome-")
            folder = Path(self._scratch.name)
            shutil.rmtree(folder / f"round-{self._round - 1}", ignore_errors=True)
        lm.save(self._model, self._codec, folder / f"round-{self._round}")
        return folder / f"round-{self._round}"

    def _save(self) -> None:
        """Persist the state, replaced atomically so that a kill leaves the previous one intact:
        after a finished round, and once a round's proposals are made (with them, so that a
        resumed run asks exactly what the killed one may already have sent to the oracle, even
        with a backend that does not repeat itself bit for bit). It refers to the round's model,
        saved right after training."""
        if not self.workdir:
            return
        workdir = Path(self.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if self._round and self._metrics is not None and self._pending is None:  # a finished round
            with open(workdir / METRICS, "a") as file:
                file.write(json.dumps({**self._metrics, "calls": self._calls}) + "\n")
        state = {"round": self._round, "calls": self._calls, "labels": self._labels,
                 "rng": self._rng.bit_generator.state, "ga": self._ga_generations,
                 "pending": self._pending, "metrics": self._metrics if self._pending is not None else None}
        tmp = workdir / (STATE + ".tmp")
        tmp.write_bytes(pickle.dumps(state))
        os.replace(tmp, workdir / STATE)

    def _restore(self) -> int:
        """Load the last saved state (a finished round, or a round's proposals not yet labelled),
        if any; returns the oracle calls it accounts for."""
        path = Path(self.workdir) / STATE
        if not path.exists():
            return 0
        state = pickle.loads(path.read_bytes())
        if state["ga"] < self.seed_generations:
            return 0  # only the seed phase ran: the deterministic GA replays it from the log
        self._round, self._calls, self._labels = state["round"], state["calls"], state["labels"]
        self._rng.bit_generator.state = state["rng"]
        self._ga_generations = state["ga"]
        for X, _ in self._labels:
            self._labelled.update(sequence_key(x) for x in X)
        if self._round:
            self._model = lm.load(Path(self.workdir) / f"round-{self._round}", self.device)
        self._pending, self._metrics = state["pending"], state["metrics"]
        # Metrics of rounds after this state (written before a kill) are dropped.
        metrics = Path(self.workdir) / METRICS
        if metrics.exists():
            kept = [line for line in metrics.read_text().splitlines()
                    if json.loads(line)["calls"] <= self._calls]
            metrics.write_text("".join(line + "\n" for line in kept))
        return self._calls

    def close(self) -> None:
        self._backend.close()
        if self._scratch is not None:
            self._scratch.cleanup()


def _spearman(loglik: np.ndarray, values: np.ndarray) -> float | None:
    """Rank correlation of likelihood and reward over the labelled proposals (calibration)."""
    values = np.where(np.isfinite(values), values, -1.0)  # infeasible ranks below every feasible
    if len(values) < 3 or np.ptp(values) == 0 or np.ptp(loglik) == 0:
        return None
    return float(spearmanr(loglik, values).statistic)


def _mean_pairwise_hamming(X: np.ndarray, rng: np.random.Generator, most: int = 500) -> float | None:
    """Mean normalized Hamming distance between proposals (diversity), on at most ``most``."""
    if len(X) < 2:
        return None
    if len(X) > most:
        X = X[rng.choice(len(X), most, replace=False)]
    distance = (X[:, None, :] != X[None, :, :]).mean(axis=2)
    return float(distance[np.triu_indices(len(X), 1)].mean())


class LlomeMarge(Llome):
    name = "llome-marge"
    loss = "marge"


class LlomeSft(Llome):
    name = "llome-sft"
    loss = "sft"


class LlomeDpo(Llome):
    name = "llome-dpo"
    loss = "dpo"
