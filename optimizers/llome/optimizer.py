"""LLOME as an ask/tell optimizer: GA seed data, then rounds of train, generate, select.

Round 0 labels come from a genetic algorithm run through the same oracle budget. Every later
round trains the language model on edit pairs (worse -> better) of the previous round's labels
(the first training is always SFT, as published; then the variant's loss: SFT, MargE or DPO
with the round-start model as reference), refines the best labelled sequences with it, and asks
the oracle for the selected proposals. With a ``workdir`` (given to ``setup``) each round is saved
there (the model as a Hugging Face directory ``round-N``; labels and the round's proposals in
``state.pkl``) with its metrics, and a restarted run resumes from the last save.

Randomness: every draw comes from the run's seed tree (``holo_bench.seeding``), by a fixed path
under the root ``seed`` given to ``setup``. Round ``r`` (1, 2, ...) is the ``r``-th training and
the proposals made with its model, so a resumed run derives the streams of the rounds it has
yet to make, whatever ran before:

- ``child(seed, 0)``: the seed phase's genetic algorithm;
- ``child(seed, 1, r)``: round ``r``'s data draws (the order of its edit pairs or its DPO
  triples, then the uniform draw among the likely proposals);
- ``child(seed, 2)``: the from-scratch model's initial weights;
- ``child(seed, 3, r)``: round ``r``'s training (the order of its examples);
- ``child(seed, 4, r, job, step)``: round ``r``'s generation with sampling setting ``job`` (0
  greedy, then the temperatures in order) at refinement step ``step``, as an integer seed; the
  vLLM backend seeds prompt ``b``'s request from child ``b`` of that integer's own tree;
- ``child(seed, 5, r)``: the subsample of round ``r``'s proposals that measures their diversity.

Nothing seeds or draws from torch's or numpy's global generators: the model is initialised from
its own generator (``model.seeded``) and trains in eval mode, without dropout
(``train.train_round``).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from holo_bench.seeding import as_seed_sequence, child, integer_seed
from optimizers.base import Optimizer, Problem
from optimizers.ga import GAParams, GeneticAlgorithm
from optimizers.llome import model as lm
from optimizers.llome.data import edit_pairs, preference_triples
from optimizers.llome.generate import Decoding, check_backend, make_backend
from optimizers.llome.propose import refine, select, sequence_key
from optimizers.llome.train import train_round

STATE = "state.pkl"
METRICS = "metrics.jsonl"

# Paths of the seed tree (see the module's docstring).
SEED_GA, DATA, MODEL, TRAIN, GENERATE, DIVERSITY = range(6)

# Integer parameters that must be at least 1.
COUNTS = ("labels_per_round", "seed_particles", "seed_generations", "hidden_size", "layers",
          "head_size", "first_epochs", "epochs", "batch_size", "max_triples", "num_seeds", "steps",
          "samples")


@dataclass(frozen=True)
class LlomeParams:
    """Parameters of LLOME.

    Defaults follow the published f2 pipeline where they are about the algorithm (GA seed:
    1000 particles, 10 generations, mutation 0.005, recombination 0.0882, survival 0.1; 2000
    labels per round; 200 seeds; temperatures 0.6-1.6; top 40% by likelihood; MargE alpha 1,
    beta 10; DPO beta 0.4) and are scaled for a CPU where they are about compute (a 134k-parameter
    model, 4 samples per temperature, 4 refinement steps, 20 epochs on the GA data then 1 per
    round as published, DPO triples capped at 20,000 per round).

    Seed phase: ``seed_particles``, ``seed_generations`` (>= 1), ``seed_mutation_prob``,
    ``seed_recombine_prob``, ``seed_survival_quantile``: the GA's ``GAParams``.
    Model: ``hidden_size``, ``layers``, ``head_size`` (hidden_size a multiple of head_size) of the
    from-scratch Llama; or ``model_path``, a local pretrained Hugging Face causal LM used instead
    (nothing is downloaded).
    Training: ``first_epochs`` (on the GA data) and ``epochs`` (per later round); ``batch_size``,
    also MargE's self-normalization batch (``batch_size=1`` reproduces the released
    configuration, in which the normalized weights are always 1 and MargE is (beta - alpha) times
    SFT); ``lr`` (> 0); MargE's ``alpha``, ``beta`` (>= 0) and ``self_normalize``; DPO's
    ``dpo_beta`` (> 0) and ``max_triples`` per round.
    Proposals: ``num_seeds`` best targets refined for ``steps`` edits, greedily and at each of the
    comma-separated ``temperatures`` (> 0) with ``samples`` draws; sampling restricted to the
    tokens a proposal may contain, with ``top_k`` (>= 0, 0: off) and ``top_p`` ((0, 1], 1: off)
    cuts; ``keep_fraction`` ([0, 1]) most likely kept, from which ``labels_per_round`` go to
    the oracle. Integer counts are at least 1.
    Compute: ``device`` (a torch device), ``backend`` (``hf`` or ``vllm``) and
    ``vllm_gpu_memory``, the fraction of GPU memory the vLLM engine may take ((0, 1]).
    """

    labels_per_round: int = 2000
    seed_particles: int = 1000
    seed_generations: int = 10
    seed_mutation_prob: float = 0.005
    seed_recombine_prob: float = 0.0882
    seed_survival_quantile: float = 0.1
    hidden_size: int = 64
    layers: int = 2
    head_size: int = 32
    first_epochs: int = 20
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    alpha: float = 1.0
    beta: float = 10.0
    self_normalize: bool = True
    dpo_beta: float = 0.4
    max_triples: int = 20_000
    num_seeds: int = 200
    steps: int = 4
    temperatures: str = "0.6,0.8,1.0,1.2,1.4,1.6"
    samples: int = 4
    keep_fraction: float = 0.4
    top_k: int = 0
    top_p: float = 1.0
    model_path: str | None = None
    device: str = "cpu"
    backend: str = "hf"
    vllm_gpu_memory: float = 0.5

    def __post_init__(self):
        for name in COUNTS:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.hidden_size % self.head_size:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of head_size "
                             f"{self.head_size}")
        try:
            self.seed_ga()
        except ValueError as err:
            raise ValueError(f"the seed phase's GA (parameters seed_*): {err}") from None
        if not self.lr > 0 or not self.dpo_beta > 0:
            raise ValueError(f"lr and dpo_beta must be > 0, got {self.lr!r} and {self.dpo_beta!r}")
        if not (self.alpha >= 0 and self.beta >= 0):
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha!r} and {self.beta!r}")
        if not all(t > 0 for t in self.temperature_values):
            raise ValueError("temperatures must be > 0 (greedy decoding is always added), got "
                             f"{self.temperatures!r}")
        if not 0 <= self.keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in [0, 1], got {self.keep_fraction!r}")
        if not 0 < self.vllm_gpu_memory <= 1:
            raise ValueError(f"vllm_gpu_memory must be in (0, 1], got {self.vllm_gpu_memory!r}")
        Decoding(top_k=self.top_k, top_p=self.top_p)  # checks the cuts
        check_backend(self.backend)
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device must be a torch device such as cpu or cuda:0, got "
                             f"{self.device!r}") from err

    def seed_ga(self) -> GAParams:
        """The parameters of the seed phase's genetic algorithm."""
        return GAParams(self.seed_particles, self.seed_mutation_prob, self.seed_recombine_prob,
                        self.seed_survival_quantile)

    @property
    def temperature_values(self) -> list[float]:
        """``temperatures`` as numbers."""
        try:
            return [float(t) for t in self.temperatures.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"temperatures must be comma-separated numbers, got "
                             f"{self.temperatures!r}") from None


class Llome(Optimizer):
    """LLOME (parameters: ``LlomeParams``) with a from-scratch Llama LM (head size 32), or the
    local pretrained Hugging Face causal LM at ``model_path``, on CPU or CUDA, generating through
    the ``hf`` (transformers) or ``vllm`` backend. Subclasses fix the loss of rounds after the
    first."""

    Params = LlomeParams
    name = "llome"
    loss = "marge"

    def __init__(self, params=None, /, **values):
        super().__init__(params, **values)
        if self.params.batch_size < 2 and self.params.self_normalize and self.loss == "marge":
            warnings.warn("MargE with self-normalized weights on micro-batches of 1 reduces to "
                          "(beta - alpha) x SFT: the rewards have no effect (the released "
                          "configuration)")

    @property
    def deterministic(self) -> bool:
        """Bit-for-bit repeatable only with the transformers backend on a CPU: vLLM's batching and
        GPU kernels change the last bits of the likelihoods that rank proposals."""
        return self.params.backend == "hf" and self.params.device == "cpu"

    # -- ask/tell -------------------------------------------------------------------------------

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        p = self.params
        self._seed = as_seed_sequence(seed)
        self._workdir = None if workdir is None else Path(workdir)
        if p.model_path:  # a local pretrained LM, with the paper's text format
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(p.model_path)
            self._codec = lm.TextCodec(tokenizer, problem.num_states, problem.dim)
        else:
            self._codec = lm.Codec(problem.num_states, problem.dim)
        self._round = 0  # trainings done
        self._calls = 0  # tells received: the oracle calls this state accounts for
        self._labels: list[tuple[np.ndarray, np.ndarray]] = []  # (X, values) per round
        self._labelled: set[bytes] = set()
        self._pending: dict | None = None  # proposals of this round not asked yet
        self._asked: dict | None = None
        self._metrics: dict | None = None
        self._model = None
        codec = self._codec
        decoding = Decoding(codec.allowed, codec.stop, codec.pad, p.top_k, p.top_p)
        options = {"gpu_memory": p.vllm_gpu_memory} if p.backend == "vllm" else {}
        self._backend = make_backend(p.backend, decoding, p.device, **options)
        self._scratch = None  # checkpoints for a backend that loads from disk, without a workdir
        self._ga = GeneticAlgorithm(p.seed_ga())
        self._ga.setup(problem, child(self._seed, SEED_GA))
        self._ga_generations = 0
        return self._restore() if self._workdir else 0

    def ask(self, n: int) -> np.ndarray:
        if self._ga_generations < self.params.seed_generations:
            return self._ga.ask(n)
        if self._pending is None:
            self._pending = self._next_round()
            # with the proposals: a resumed run asks them again, never regenerates them
            self._save()
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
        if self._ga_generations < self.params.seed_generations:
            self._ga.tell(X, values)
            self._ga_generations += 1
            self._add_labels(X, values, new_round=self._ga_generations == 1)
            if self._ga_generations == self.params.seed_generations:
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
        """Round ``r``: train on the last round's labels, then generate and select proposals."""
        p = self.params
        r = self._round + 1
        rng = np.random.default_rng(child(self._seed, DATA, r))
        X, values = self._labels[-1]
        X, first = np.unique(X, axis=0, return_index=True)
        values = values[first]
        if self._model is None:
            self._model = self._initial_model()
        loss = "sft" if r == 1 else self.loss
        examples = self._examples(X, values, loss, rng)
        self._backend.sleep()
        started = time.perf_counter()
        terms = train_round(self._model, self._codec, examples, loss,
                            epochs=p.first_epochs if r == 1 else p.epochs, batch_size=p.batch_size,
                            lr=p.lr, seed=integer_seed(child(self._seed, TRAIN, r)), alpha=p.alpha,
                            beta=p.beta, self_normalize=p.self_normalize, dpo_beta=p.dpo_beta)
        self._round = r
        self._backend.update(self._model, self._save_model())
        trained = time.perf_counter()
        better = examples["chosen"] if loss == "dpo" else examples["target"]
        better_values = examples["better_value"]
        if len(better) == 0:  # no improving pair among the labels: refine the best labelled ones
            better, better_values = X, values
        order = np.argsort(-better_values, kind="stable")[: p.num_seeds]
        proposals = refine(self._backend, self._codec, better[order], p.steps, p.temperature_values,
                           p.samples, seed=child(self._seed, GENERATE, r))
        generated = time.perf_counter()
        chosen = select(proposals, self._labelled, p.labels_per_round, p.keep_fraction, rng)
        sent = proposals.sequence[chosen]
        diversity_rng = np.random.default_rng(child(self._seed, DIVERSITY, r))
        self._metrics = {
            "round": r, "loss": loss, "pairs": len(better), "generated": len(proposals.valid),
            "parse_rate": float(proposals.valid.mean()), "selected": len(chosen),
            "edit_distance": (float(np.mean(sent != proposals.prompt[chosen])) if len(chosen)
                              else None),
            "diversity": _mean_pairwise_hamming(sent, diversity_rng),
            # Wall times (training includes saving and loading the model into the backend).
            "train_seconds": trained - started, "generate_seconds": generated - trained,
            "generated_tokens": int(proposals.tokens.sum()),
            **{f"train_{key}": value for key, value in terms.items()},
        }
        return {"sequence": sent.astype(np.int64), "loglik": proposals.loglik[chosen]}

    def _initial_model(self):
        """The model the first round trains: the pretrained one, or a new one from the seed tree."""
        p = self.params
        if p.model_path:
            return lm.load(p.model_path, p.device)
        return lm.new_model(self._codec, p.hidden_size, p.layers, p.head_size,
                            seed=integer_seed(child(self._seed, MODEL))).to(p.device)

    def _examples(self, X, values, loss, rng: np.random.Generator) -> dict:
        if loss == "dpo":
            triples = preference_triples(X, values, rng, max_triples=self.params.max_triples)
            return {"prompt": X[triples.prompt], "chosen": X[triples.chosen],
                    "rejected": X[triples.rejected], "better_value": values[triples.chosen]}
        pairs = edit_pairs(X, values, rng)
        return {"prompt": X[pairs.prompt], "target": X[pairs.target], "reward": pairs.reward,
                "better_value": values[pairs.target]}

    # -- round checkpoints ------------------------------------------------------------------------

    def _save_model(self) -> Path | None:
        """Save the model just trained as the Hugging Face directory ``round-N`` of the workdir
        (or of a scratch folder, when only the backend needs it); returns the directory."""
        if not self._workdir and not self._backend.loads_from_disk:
            return None
        if self._workdir:
            folder = self._workdir
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
        if not self._workdir:
            return
        workdir = self._workdir
        workdir.mkdir(parents=True, exist_ok=True)
        if self._round and self._metrics is not None and self._pending is None:  # a finished round
            with open(workdir / METRICS, "a") as file:
                file.write(json.dumps({**self._metrics, "calls": self._calls}) + "\n")
        state = {"round": self._round, "calls": self._calls, "labels": self._labels,
                 "ga": self._ga_generations, "pending": self._pending,
                 "metrics": self._metrics if self._pending is not None else None}
        tmp = workdir / (STATE + ".tmp")
        tmp.write_bytes(pickle.dumps(state))
        os.replace(tmp, workdir / STATE)

    def _restore(self) -> int:
        """Load the last saved state (a finished round, or a round's proposals not yet labelled),
        if any; returns the oracle calls it accounts for."""
        path = self._workdir / STATE
        if not path.exists():
            return 0
        state = pickle.loads(path.read_bytes())
        if state["ga"] < self.params.seed_generations:
            return 0  # only the seed phase ran: the deterministic GA replays it from the log
        self._round, self._calls, self._labels = state["round"], state["calls"], state["labels"]
        self._ga_generations = state["ga"]
        for X, _ in self._labels:
            self._labelled.update(sequence_key(x) for x in X)
        if self._round:
            self._model = lm.load(self._workdir / f"round-{self._round}", self.params.device)
        self._pending, self._metrics = state["pending"], state["metrics"]
        # Metrics of rounds after this state (written before a kill) are dropped.
        metrics = self._workdir / METRICS
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


def _mean_pairwise_hamming(X: np.ndarray, rng: np.random.Generator,
                           most: int = 500) -> float | None:
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
