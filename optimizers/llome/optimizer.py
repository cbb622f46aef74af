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
  triples, the checkpoint gate's held-out examples, then the uniform draw among the likely
  proposals);
- ``child(seed, 2)``: the from-scratch model's initial weights;
- ``child(seed, 3, r)``: round ``r``'s training (the order of its examples);
- ``child(seed, 4, r, job, step)``: round ``r``'s generation with sampling setting ``job`` (0
  greedy, then the temperatures in order) at refinement step ``step``, as an integer seed; the
  vLLM backend seeds prompt ``b``'s request from child ``b`` of that integer's own tree;
- ``child(seed, 5, r)``: the subsample of round ``r``'s proposals that measures their diversity;
- ``child(seed, 6, r)``: the proposals a budget-cut round ``r`` sends (a random subset);
- ``child(seed, 7, r)``: round ``r``'s checkpoint gate (its greedy edits draw nothing).

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

from holo_bench.measures import mean_pairwise_hamming
from holo_bench.seeding import as_seed_sequence, child, integer_seed
from optimizers.base import Optimizer, Problem
from optimizers.llome import model as lm
from optimizers.llome.backends import check_backend, make_backend
from optimizers.llome.data import edit_pairs, preference_triples
from optimizers.llome.decoding import Decoding
from optimizers.llome.losses import REDUCTIONS, REWARD_SCALES
from optimizers.llome.propose import Proposals, mutate, refine, select, sequence_key
from optimizers.llome.train import Marge, train_round
from optimizers.seed_phase import SeedPhase, seed_ga

STATE = "state.pkl"
METRICS = "metrics.jsonl"

# Paths of the seed tree (see the module's docstring).
SEED_GA, DATA, MODEL, TRAIN, GENERATE, DIVERSITY, CUT, GATE = range(8)

# Integer parameters that must be at least 1.
COUNTS = ("labels_per_round", "seed_particles", "seed_generations", "hidden_size", "layers",
          "head_size", "first_epochs", "epochs", "batch_size", "max_triples", "num_seeds", "steps",
          "samples", "gate_examples")


@dataclass(frozen=True)
class LlomeParams:
    """Parameters of LLOME.

    Defaults follow the published f2 pipeline where they are about the algorithm (GA seed:
    1000 particles, 10 generations, mutation 0.005, recombination 0.0882, survival 0.1; 2000
    labels per round; 200 seeds; temperatures 0.6-1.6, scaled by the observed edit distance; top
    40% by likelihood; MargE alpha 1, beta 10; DPO beta 0.4) and are scaled for a CPU where they
    are about compute (a 136k-parameter model, 4 samples per temperature, 4 refinement steps, 5
    epochs on the GA data, whose 10,000 distinct labels make about 28,000 pairs on f2, then 1
    per round as published, DPO triples capped at 20,000 per round).
    Where we depart from the release on purpose (MargE's estimator, the elitist pool, the gate's
    default) ``docs/llome.md`` says why, and which settings restore the release.

    Seed phase: ``seed_particles``, ``seed_generations`` (>= 1), ``seed_mutation_prob``,
    ``seed_recombine_prob``, ``seed_survival_quantile``: the GA's ``GAParams``; the GA runs until
    ``seed_particles * seed_generations`` evaluations are charged under the run's counting rule
    (under ``distinct``, that many distinct sequences).
    Model: ``hidden_size``, ``layers``, ``head_size`` (hidden_size a multiple of head_size) of the
    from-scratch Llama; or ``model_path``, a local pretrained Hugging Face causal LM used instead
    (nothing is downloaded).
    Training: ``first_epochs`` (on the GA data) and ``epochs`` (per later round); ``batch_size``,
    also MargE's self-normalization batch (``batch_size=1`` reproduces the released
    configuration, in which the normalized weights are always 1 and MargE is (beta - alpha) times
    SFT);
    ``lr`` (> 0); MargE's ``alpha``, ``beta`` (>= 0), ``self_normalize``, ``marge_reduction``
    (``sum``: the self-normalized estimator; ``mean``: the release), ``reward_scale``
    (``standardize`` within the batch, or ``none``), ``reward_temperature`` (> 0) and
    ``log_ratio_clip`` (> 0, ``inf``: off); DPO's ``dpo_beta`` (> 0) and ``max_triples`` per round;
    ``max_pairs`` (``None``: all, as released) edit pairs per round, a uniform draw.
    Pool: training pairs and refinement seeds come from the last round's labels plus the
    ``elite_size`` (>= 0; 0: the release) best distinct labels of the run.
    Proposals: ``num_seeds`` best targets refined for ``steps`` edits, greedily and at each of the
    comma-separated ``temperatures`` (> 0) with ``samples`` draws; sampling restricted to the
    tokens a proposal may contain, with ``top_k`` (>= 0, 0: off) and ``top_p`` ((0, 1], 1: off)
    cuts; ``keep_fraction`` ([0, 1]) most likely kept, from which ``labels_per_round`` go to
    the oracle; ``temperature_scaling`` raises the temperatures when the last round's edits were
    small (as released). ``gate``: hold out ``gate_examples`` pairs (at most 5%) and keep a MargE
    or DPO round's model only if its greedy edits of them are at least 90% valid and plausibly
    feasible and at most 10% repeat their input (else the round starts from the model before
    it). Integer counts are at least 1.
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
    first_epochs: int = 5
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    alpha: float = 1.0
    beta: float = 10.0
    self_normalize: bool = True
    marge_reduction: str = "sum"
    reward_scale: str = "standardize"
    reward_temperature: float = 3.0
    log_ratio_clip: float = 5.0
    elite_size: int = 500
    dpo_beta: float = 0.4
    max_triples: int = 20_000
    max_pairs: int | None = None
    num_seeds: int = 200
    steps: int = 4
    temperatures: str = "0.6,0.8,1.0,1.2,1.4,1.6"
    samples: int = 4
    keep_fraction: float = 0.4
    temperature_scaling: bool = True
    gate: bool = False
    gate_examples: int = 100
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
            seed_ga(self)
        except ValueError as err:
            raise ValueError(f"the seed phase's GA (parameters seed_*): {err}") from None
        if not self.lr > 0 or not self.dpo_beta > 0:
            raise ValueError(f"lr and dpo_beta must be > 0, got {self.lr!r} and {self.dpo_beta!r}")
        if not (self.alpha >= 0 and self.beta >= 0):
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha!r} and {self.beta!r}")
        if self.marge_reduction not in REDUCTIONS:
            raise ValueError(f"marge_reduction must be one of {', '.join(REDUCTIONS)}, got "
                             f"{self.marge_reduction!r}")
        if self.reward_scale not in REWARD_SCALES:
            raise ValueError(f"reward_scale must be one of {', '.join(REWARD_SCALES)}, got "
                             f"{self.reward_scale!r}")
        if not (self.reward_temperature > 0 and self.log_ratio_clip > 0):
            raise ValueError(f"reward_temperature and log_ratio_clip must be > 0, got "
                             f"{self.reward_temperature!r} and {self.log_ratio_clip!r}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"max_pairs must be None or an integer >= 1, got {self.max_pairs!r}")
        if self.elite_size < 0:
            raise ValueError(f"elite_size must be an integer >= 0, got {self.elite_size!r}")
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

    def marge(self) -> Marge:
        """MargE's settings."""
        return Marge(self.alpha, self.beta, self.self_normalize, self.marge_reduction,
                     self.reward_scale, self.reward_temperature, self.log_ratio_clip)

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
    first (``loss``) and where their examples come from (``data``): edit pairs between
    neighbouring labels (``neighbours``, as released), or the model's own labelled edits of the
    last round (``own``: prompt -> output, rewarded by the output's value, infeasible at 0)."""

    Params = LlomeParams
    name = "llome"
    loss = "marge"
    data = "neighbours"
    uses_model = True

    def __init__(self, params=None, /, **values):
        super().__init__(params, **values)
        if self.params.batch_size < 2 and self.params.self_normalize and self.loss == "marge":
            warnings.warn("MargE with self-normalized weights on micro-batches of 1 reduces to "
                          "(beta - alpha) x SFT: the rewards have no effect (the released "
                          "configuration)")

    @property
    def deterministic(self) -> bool:
        """Bit-for-bit repeatable only with the transformers backend on a CPU, at one torch thread
        (docs/llome.md, "Seeds"): vLLM's batching and GPU kernels change the last bits of the
        likelihoods that rank proposals, and so may torch's CPU kernels on several threads."""
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
        self._edits: dict | None = None  # the last round's labelled proposals and their prompts
        self._edit_distance = None  # the last round's mean edit distance, for temperature scaling
        self._pending: dict | None = None  # proposals of this round not asked yet
        self._asked: dict | None = None
        self._metrics: dict | None = None
        self._model = None
        codec = self._codec
        decoding = Decoding(codec.allowed, codec.stop, codec.pad, p.top_k, p.top_p)
        options = {"gpu_memory": p.vllm_gpu_memory} if p.backend == "vllm" else {}
        self._backend = make_backend(p.backend, decoding, p.device, **options)
        self._scratch = None  # checkpoints for a backend that loads from disk, without a workdir
        self._seed_phase = SeedPhase(p, problem, child(self._seed, SEED_GA))
        return self._restore() if self._workdir else 0

    @property
    def _seeding(self) -> bool:
        """Whether the seed phase's GA still runs."""
        return self._seed_phase.running

    def ask(self, n: int) -> np.ndarray:
        if self._seeding:
            return self._seed_phase.ask(n)
        if self._pending is None:
            self._pending = self._next_round()
            # with the proposals: a resumed run asks them again, never regenerates them
            self._save()
        sent = np.arange(len(self._pending["sequence"]))
        if n < len(sent):  # a budget-cut round: a random subset, not the first by index
            rng = np.random.default_rng(child(self._seed, CUT, self._round))
            sent = np.sort(rng.choice(sent, size=n, replace=False))
        self._asked = {key: value[sent] for key, value in self._pending.items()}
        self._pending = None  # unasked proposals of a budget-cut round are dropped
        if len(sent) == 0:  # nothing to propose ends the run: keep this round's model and metrics
            self._save()
        return self._asked["sequence"]

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        if len(X) == 0:  # not an oracle call: nothing was evaluated
            return
        self._calls += 1
        X = np.asarray(X, dtype=np.int64)
        if self._seeding:
            self._seed_phase.tell(X, values, len({sequence_key(x) for x in X} - self._labelled))
            self._add_labels(X, values, new_round=not self._labels)
            if not self._seeding:
                self._save()
            return
        self._add_labels(X, values, new_round=True)
        self._edits = {"prompt": self._asked["prompt"], "sequence": X, "value": values}
        self._metrics["feasible_rate"] = float(np.mean(values > -np.inf))
        self._metrics["calibration_spearman"] = _spearman(self._asked["loglik"], values)
        self._metrics["ranking_accuracy"], self._metrics["ranking_pairs"] = _ranking_accuracy(
            self._asked["prompt"], self._asked["loglik"], values)
        self._metrics["best_value"] = float(max(v.max() for _, v in self._labels))
        self._metrics["round_best_value"] = float(values.max())
        self._save()

    # -- one round --------------------------------------------------------------------------------

    def _add_labels(self, X, values, new_round: bool) -> None:
        if new_round:
            self._labels.append((X, values))
        else:
            old_X, old_values = self._labels[-1]
            self._labels[-1] = (np.concatenate([old_X, X]), np.concatenate([old_values, values]))
        self._labelled.update(sequence_key(x) for x in X)

    def _pool(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct labelled sequences to train and refine from: the last round's, plus the
        ``elite_size`` best of the whole run (so that a round that finds nothing better does not
        forget the best sequence found so far)."""
        X, values = self._labels[-1]
        if self.params.elite_size and len(self._labels) > 1:
            every_X = np.concatenate([x for x, _ in self._labels])
            every_value = np.concatenate([v for _, v in self._labels])
            every_X, first = np.unique(every_X, axis=0, return_index=True)
            best = np.argsort(-every_value[first], kind="stable")[: self.params.elite_size]
            X = np.concatenate([X, every_X[best]])
            values = np.concatenate([values, every_value[first][best]])
        X, first = np.unique(X, axis=0, return_index=True)
        return X, values[first]

    def _next_round(self) -> dict:
        """Round ``r``: train on the pool (or on the last round's own edits), then generate and
        select proposals."""
        p = self.params
        r = self._round + 1
        rng = np.random.default_rng(child(self._seed, DATA, r))
        X, values = self._pool()
        loss = "sft" if r == 1 else self.loss
        own = self.data == "own" and r > 1
        examples = self._examples(X, values, loss, rng, own)
        self._round = r  # the checkpoint this round saves is round-r
        started = time.perf_counter()
        examples, terms, gate = self._train(r, examples, loss, X, values, rng)
        trained = time.perf_counter()
        if own or len(examples["prompt"]) == 0:
            better, better_values = X, values  # the pool's best; also when no pair improves
        else:
            better = examples["chosen"] if loss == "dpo" else examples["target"]
            better_values = examples["better_value"]
        order = np.argsort(-better_values, kind="stable")[: p.num_seeds]
        temperatures = self._temperatures(r)
        proposals = self._propose(better[order], temperatures, child(self._seed, GENERATE, r))
        generated = time.perf_counter()
        valid = proposals.valid
        self._edit_distance = (float(np.mean(proposals.sequence[valid] != proposals.prompt[valid]))
                               if valid.any() else None)
        chosen = select(proposals, self._labelled, p.labels_per_round, p.keep_fraction, rng)
        sent = proposals.sequence[chosen]
        diversity_rng = np.random.default_rng(child(self._seed, DIVERSITY, r))
        self._metrics = {
            "round": r, "loss": loss, "pool": len(X), "pairs": len(examples["prompt"]),
            "generated": len(valid), "parse_rate": float(valid.mean()), "selected": len(chosen),
            "temperatures": temperatures, "generated_edit_distance": self._edit_distance,
            "edit_distance": (float(np.mean(sent != proposals.prompt[chosen])) if len(chosen)
                              else None),
            "diversity": mean_pairwise_hamming(sent, diversity_rng),
            # Wall times (training includes saving and loading the model into the backend, and
            # the gate's generation).
            "train_seconds": trained - started, "generate_seconds": generated - trained,
            "generated_tokens": int(proposals.tokens.sum()),
            **gate, **{f"train_{key}": value for key, value in terms.items()},
        }
        return {"sequence": sent.astype(np.int64), "loglik": proposals.loglik[chosen],
                "prompt": proposals.prompt[chosen].astype(np.int64)}

    def _train(self, r: int, examples: dict, loss: str, X, values, rng) -> tuple[dict, dict, dict]:
        """Train round ``r``'s model, save it, hand it to the backend, and gate it; returns the
        examples it trained on (less the gate's), the loss terms and the gate's metrics."""
        p = self.params
        if self._model is None:
            self._model = self._initial_model()
        held = None
        if p.gate and loss != "sft":
            examples, held = _hold_out(examples, p.gate_examples, rng)
            before = {key: value.clone() for key, value in self._model.state_dict().items()}
        self._backend.sleep()
        terms = train_round(self._model, self._codec, examples, loss,
                            epochs=p.first_epochs if r == 1 else p.epochs, batch_size=p.batch_size,
                            lr=p.lr, seed=integer_seed(child(self._seed, TRAIN, r)),
                            marge=p.marge(), dpo_beta=p.dpo_beta)
        self._backend.update(self._model, self._save_model())
        gate = {}
        if held is not None:
            gate = self._gate(held, X, values, seed=child(self._seed, GATE, r))
            if not gate["gate_accepted"]:  # the round goes on with the model it started from
                self._model.load_state_dict(before)
                self._backend.update(self._model, self._save_model())
        return examples, terms, gate

    def _propose(self, seeds: np.ndarray, temperatures: list[float], seed) -> Proposals:
        """Refine ``seeds`` with the model (``propose.refine``)."""
        p = self.params
        return refine(self._backend, self._codec, seeds, p.steps, temperatures, p.samples, seed)

    def _temperatures(self, r: int) -> list[float]:
        """Round ``r``'s temperatures: as given, raised by 0.6, 0.4 or 0.2 when the last round's
        mean normalized edit distance was below 0.075, 0.1 or 0.15 (the released scaling, which
        the first two rounds, an SFT and the first of the variant's, do not use)."""
        base = self.params.temperature_values
        hd = self._edit_distance
        if not self.params.temperature_scaling or r < 3 or hd is None:
            return base
        shift = 0.6 if hd < 0.075 else 0.4 if hd < 0.1 else 0.2 if hd < 0.15 else 0.0
        return [round(t + shift, 10) for t in base]

    def _gate(self, held: dict, X: np.ndarray, values: np.ndarray, seed) -> dict:
        """The released checkpoint gate on the held-out examples, without the oracle: greedy edits
        must be at least 90% valid and plausibly feasible (every adjacent pair of residues seen in
        some feasible label, which never calls an infeasible sequence feasible when feasibility
        is a set of banned transitions, as in Ehrlich functions) and at most 10% repeats of
        their input."""
        out = refine(self._backend, self._codec, held["prompt"], 1, [], 1, seed=seed)
        seen = _transitions_seen(X[values > -np.inf], self._codec.num_states)
        sequence = np.clip(out.sequence, 0, self._codec.num_states - 1)
        plausible = out.valid & seen[sequence[:, :-1], sequence[:, 1:]].all(axis=1)
        repeated = out.valid & (out.sequence == out.prompt).all(axis=1)
        metrics = {"gate_valid": float(out.valid.mean()), "gate_feasible": float(plausible.mean()),
                   "gate_repeated": float(repeated.mean())}
        metrics["gate_accepted"] = bool(metrics["gate_valid"] >= 0.9
                                        and metrics["gate_feasible"] >= 0.9
                                        and metrics["gate_repeated"] <= 0.1)
        return metrics

    def _initial_model(self):
        """The model the first round trains: the pretrained one, or a new one from the seed tree."""
        p = self.params
        if p.model_path:
            return lm.load(p.model_path, p.device)
        return lm.new_model(self._codec, p.hidden_size, p.layers, p.head_size,
                            seed=integer_seed(child(self._seed, MODEL))).to(p.device)

    def _examples(self, X, values, loss, rng: np.random.Generator, own: bool) -> dict:
        """The round's training examples, as sequences: edit pairs or DPO triples of the pool, or
        (``own``) the last round's labelled edits."""
        if own:
            edits = self._edits
            worth = np.where(edits["value"] > -np.inf, edits["value"], 0.0)
            order = rng.permutation(len(worth))
            return {"prompt": edits["prompt"][order], "target": edits["sequence"][order],
                    "reward": worth[order], "better_value": edits["value"][order]}
        if loss == "dpo":
            triples = preference_triples(X, values, rng, max_triples=self.params.max_triples)
            return {"prompt": X[triples.prompt], "chosen": X[triples.chosen],
                    "rejected": X[triples.rejected], "better_value": values[triples.chosen]}
        pairs = edit_pairs(X, values, rng)
        kept = slice(self.params.max_pairs)  # the pairs come in a random order: a uniform draw
        prompt, target = pairs.prompt[kept], pairs.target[kept]
        return {"prompt": X[prompt], "target": X[target], "reward": pairs.reward[kept],
                "better_value": values[target]}

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
        after the seed phase and each finished round, and once a round's proposals are made (with
        them, so that a resumed run asks exactly what the killed one may already have sent to
        the oracle, even with a backend that does not repeat itself bit for bit). It refers to
        the round's model, saved right after training. A finished round's metrics line is
        written first: a kill before the state is replaced leaves a line that ``_restore``
        drops, never a saved round without its line."""
        if not self._workdir:
            return
        workdir = self._workdir
        workdir.mkdir(parents=True, exist_ok=True)
        if self._round and self._metrics is not None and self._pending is None:  # a finished round
            with open(workdir / METRICS, "a") as file:
                file.write(json.dumps({**self._metrics, "calls": self._calls}) + "\n")
        state = {"round": self._round, "calls": self._calls, "labels": self._labels,
                 "seed_charged": self._seed_phase.charged, "edits": self._edits,
                 "edit_distance": self._edit_distance, "pending": self._pending,
                 "metrics": self._metrics if self._pending is not None else None}
        tmp = workdir / (STATE + ".tmp")
        tmp.write_bytes(pickle.dumps(state))
        os.replace(tmp, workdir / STATE)

    def _restore(self) -> int:
        """Load the last saved state (the seed phase, a finished round, or a round's proposals not
        yet labelled), if any; returns the oracle calls it accounts for."""
        path = self._workdir / STATE
        if not path.exists():
            return 0
        state = pickle.loads(path.read_bytes())
        self._round, self._calls, self._labels = state["round"], state["calls"], state["labels"]
        self._seed_phase.charged, self._edits = state["seed_charged"], state["edits"]
        self._edit_distance = state["edit_distance"]
        for X, _ in self._labels:
            self._labelled.update(sequence_key(x) for x in X)
        if self._round and self.uses_model:
            self._model = lm.load(self._workdir / f"round-{self._round}", self.params.device)
        self._pending, self._metrics = state["pending"], state["metrics"]
        # Metrics of rounds after this state (a round whose state was not saved) are dropped.
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


def _hold_out(examples: dict, most: int, rng: np.random.Generator) -> tuple[dict, dict | None]:
    """Split off at most ``most`` examples and at most 5% (as released) for the gate."""
    n = len(examples["prompt"])
    held = min(most, n // 20)
    if held == 0:
        return examples, None
    order = rng.permutation(n)
    return ({key: value[order[held:]] for key, value in examples.items()},
            {key: value[order[:held]] for key, value in examples.items()})


def _transitions_seen(X: np.ndarray, num_states: int) -> np.ndarray:
    """``(v, v)`` bool: which residue follows which somewhere in the rows of ``X``."""
    seen = np.zeros((num_states, num_states), dtype=bool)
    seen[X[:, :-1].ravel(), X[:, 1:].ravel()] = True
    return seen


def _spearman(loglik: np.ndarray, values: np.ndarray) -> float | None:
    """Rank correlation of likelihood and reward over the labelled proposals (calibration)."""
    values = np.where(np.isfinite(values), values, -1.0)  # infeasible ranks below every feasible
    if len(values) < 3 or np.ptp(values) == 0 or np.ptp(loglik) == 0:
        return None
    return float(spearmanr(loglik, values).statistic)


def _ranking_accuracy(prompts: np.ndarray, loglik: np.ndarray,
                      values: np.ndarray) -> tuple[float | None, int]:
    """The model's ranking accuracy on the round's labelled edits, and the pairs it is over.

    A pair is two labelled edits of one parent (the same prompt) with different values
    (infeasible below every feasible); the model ranks it right when the better edit has the
    higher likelihood (the per-token mean that ranks proposals), and half right on a tie. No
    label of the round was trained on when the model ranked them, so every pair is held out.
    Labels are deterministic, so an ideal optimum of the preference objective ranks every pair
    right: its accuracy is 1, and ``1 - accuracy`` is the model's miscalibration."""
    values = np.where(np.isfinite(values), values, -1.0)
    _, parent = np.unique(prompts, axis=0, return_inverse=True)
    order = np.argsort(parent.reshape(-1), kind="stable")
    right, pairs = 0.0, 0
    for group in np.split(order, np.flatnonzero(np.diff(parent.reshape(-1)[order])) + 1):
        better = values[group][:, None] > values[group][None, :]
        margin = loglik[group][:, None] - loglik[group][None, :]
        right += float((margin > 0)[better].sum() + 0.5 * (margin == 0)[better].sum())
        pairs += int(better.sum())
    return (right / pairs if pairs else None), pairs


class LlomeMarge(Llome):
    """LLOME trained every round with the MargE loss on the oracle's labels."""

    name = "llome-marge"
    loss = "marge"


class LlomeSft(Llome):
    """LLOME trained every round by supervised fine-tuning on its best edits."""

    name = "llome-sft"
    loss = "sft"


class LlomeDpo(Llome):
    """LLOME trained every round with the DPO preference loss."""

    name = "llome-dpo"
    loss = "dpo"


class LlomeMargeOnPolicy(Llome):
    """LLOME-MargE trained on its own proposals (on-policy) instead of the pool's."""

    name = "llome-marge-onpolicy"
    loss = "marge"
    data = "own"


class LlomeNoModel(Llome):
    """The ablation without a language model: LLOME's seed phase, pool, refinement seeds and
    selection, with proposals made by random 1-2-site mutations of the seeds (as many as LLOME
    generates) instead of by a trained model. Nothing is trained, so nothing ranks the
    proposals: the round's labels are drawn uniformly among the new ones."""

    name = "llome-nolm"
    loss = "sft"  # the loss that would train: edit pairs pick the seeds, as in llome-sft
    uses_model = False

    def _train(self, r, examples, loss, X, values, rng):
        return examples, {}, {}

    def _propose(self, seeds, temperatures, seed):
        p = self.params
        per_seed = (1 + len(temperatures) * p.samples) * p.steps
        return mutate(seeds, per_seed, self._codec.num_states, np.random.default_rng(seed))
