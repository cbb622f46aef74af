"""LaMBO-2 as an ask/tell optimizer: LLOME's seed GA through the oracle, then ``rounds`` rounds
of train, select seeds, diffuse, each sending ``num_samples`` sequences to the oracle.

Round ``r`` (1, 2, ...): retrain the network (``train.fit``) on every label so far, continuing
from the last round's weights (the first round trains twice, as the reference does: the solver's
initial fit, then its first step's retraining); choose the seeds (``acquisition.select_seeds``)
and each value member's best prediction on them; run the guided diffusion
(``guidance.diffuse``) from the seeds and ask for its final sequences, in seed order (a
budget-cut round sends the first ``n``). After ``rounds`` rounds ``ask`` returns nothing, which
ends the run.

Randomness comes from the run's seed tree (``holo_bench.seeding``), by fixed paths, so a resumed
run derives the very streams of the rounds it has yet to make:

- ``child(seed, 0)``: the seed phase's genetic algorithm;
- ``child(seed, 1)``: the network's initial weights;
- ``child(seed, 2, r)``: round ``r``'s training (orders, leaf orders, corruption);
- ``child(seed, 3, r)``: round ``r``'s diffusion (edit positions, masks, sampled tokens).

State: the labels, the round and its proposals (``optimizers.rounds``), with the seed phase's
charged evaluations and the network's weights, saved once the seed phase ends and with each
round's proposals, before they are asked. A killed run resumes from its last save and asks
exactly the proposals that round saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from holo_bench.seeding import child, integer_seed
from optimizers.base import Problem
from optimizers.lambo2.acquisition import predictions, select_seeds
from optimizers.lambo2.guidance import Guidance, diffuse
from optimizers.lambo2.model import Lambo2Model
from optimizers.lambo2.train import fit
from optimizers.llome.optimizer import LlomeParams
from optimizers.rounds import RoundBased, row_keys
from optimizers.seed_phase import SeedPhase, seed_ga

# Paths of the seed tree (see the module's docstring).
SEED_GA, MODEL, TRAIN, GENERATE = range(4)

# The ``cpu`` preset: minibatch steps per fit (each one Adam update on every leaf's loss, the
# members of a task sharing its minibatch) and diffusion steps per round.
CPU_TRAIN_STEPS = 100
CPU_DIFFUSION_STEPS = 8

# Integer parameters that must be at least 1.
COUNTS = ("num_samples", "rounds", "num_steps", "num_mutations_per_step", "max_guidance_updates",
          "seed_expansion", "ensemble_size", "embed_dim", "channels", "kernel_size", "batch_size",
          "epochs", "seed_particles", "seed_generations")


@dataclass(frozen=True)
class Lambo2Params:
    """Parameters of LaMBO-2; defaults are bbo-bench's Ehrlich settings (docs/lambo2.md).

    Rounds: ``num_samples`` (N) sequences per round, the batch sent to the oracle; ``rounds``
    rounds after the seed phase; seeds: the ``seed_expansion * N`` best labels thinned to N.
    Diffusion: ``num_steps`` steps, ``num_mutations_per_step`` edit positions per sequence and
    step (at most the sequence length), ``max_guidance_updates`` Adam steps of size
    ``guidance_step_size`` on the trunk features, ``kl_weight`` in [0, 1],
    ``saliency_temperature`` (cortex's ``feature_attr_temp``) scaling the saliency before the
    softmax; ``use_feasibility`` multiplies each member's prediction by its probability of
    feasibility in the acquisition (off, as in bbo-bench).
    Network: ``ensemble_size`` value and feasibility members, ``embed_dim``, ``channels``, odd
    ``kernel_size``; training: ``batch_size``, ``epochs`` per round, Adam ``lr`` with a cosine
    schedule after ``warmup_epochs``.
    Seed phase: LLOME's genetic algorithm (``seed_*``, as ``LlomeParams``), run until
    ``seed_particles * seed_generations`` evaluations are charged.
    ``preset``: ``published`` (the above) or ``cpu`` (at most ``CPU_TRAIN_STEPS`` minibatch steps
    per fit and ``CPU_DIFFUSION_STEPS`` diffusion steps per round). ``device``: ``auto`` (CUDA
    when present, else the CPU) or a torch device.
    """

    num_samples: int = 2000
    rounds: int = 12
    seed_expansion: int = 2
    num_steps: int = 64
    num_mutations_per_step: int = 16
    max_guidance_updates: int = 2
    guidance_step_size: float = 0.05
    kl_weight: float = 0.0
    saliency_temperature: float = 1.0
    use_feasibility: bool = False
    ensemble_size: int = 8
    embed_dim: int = 32
    channels: int = 128
    kernel_size: int = 5
    batch_size: int = 128
    epochs: int = 16
    lr: float = 5e-3
    warmup_epochs: int = 2
    seed_particles: int = LlomeParams.seed_particles
    seed_generations: int = LlomeParams.seed_generations
    seed_mutation_prob: float = LlomeParams.seed_mutation_prob
    seed_recombine_prob: float = LlomeParams.seed_recombine_prob
    seed_survival_quantile: float = LlomeParams.seed_survival_quantile
    preset: Literal["published", "cpu"] = "published"
    device: str = "auto"

    def __post_init__(self):
        for name in COUNTS:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same padding), got {self.kernel_size!r}")
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sine and cosine positions), got "
                             f"{self.embed_dim!r}")
        if not 0 <= self.kl_weight <= 1:
            raise ValueError(f"kl_weight must be in [0, 1], got {self.kl_weight!r}")
        for name in ("guidance_step_size", "lr", "saliency_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0, got {self.warmup_epochs!r}")
        try:
            seed_ga(self)
        except ValueError as err:
            raise ValueError(f"the seed phase's GA (parameters seed_*): {err}") from None
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError as err:
                raise ValueError(f"device must be auto or a torch device such as cpu or cuda:0, "
                                 f"got {self.device!r}") from err

    @property
    def max_train_steps(self) -> int | None:
        """Minibatch steps a fit may take at most (None: no cap)."""
        return CPU_TRAIN_STEPS if self.preset == "cpu" else None

    def guidance(self, dim: int) -> Guidance:
        """The diffusion's settings for sequences of ``dim`` tokens."""
        steps = min(self.num_steps, CPU_DIFFUSION_STEPS) if self.preset == "cpu" else self.num_steps
        return Guidance(steps, min(self.num_mutations_per_step, dim), self.max_guidance_updates,
                        self.guidance_step_size, self.kl_weight, self.saliency_temperature,
                        self.use_feasibility)


class LaMBO2(RoundBased):
    """LaMBO-2, guided discrete diffusion: a masked language model's edits steered by expected
    improvement, after LLOME's seed data (Gruver and others 2023; parameters:
    ``Lambo2Params``)."""

    Params = Lambo2Params

    @property
    def deterministic(self) -> bool:
        """Bit for bit only on a CPU, at one torch thread (GPU kernels may vary)."""
        return self.params.device == "cpu" or (self.params.device == "auto"
                                               and not torch.cuda.is_available())

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        p = self.params
        self._setup_rounds(problem, seed, workdir)
        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(auto if p.device == "auto" else p.device)
        self._seed_phase = SeedPhase(p, problem, child(self._seed, SEED_GA))
        generator = torch.Generator().manual_seed(integer_seed(child(self._seed, MODEL)))
        self.model = Lambo2Model(problem.num_states, problem.dim, p.ensemble_size, p.embed_dim,
                                 p.channels, p.kernel_size, generator).to(self.device)
        return self._restore() if self._workdir else 0

    @property
    def _seeding(self) -> bool:
        """Whether the seed phase's GA still runs."""
        return self._seed_phase.running

    def _before_rounds(self, n: int) -> np.ndarray | None:
        """The seed phase's GA asks, then rounds; after the last round, nothing (the run ends)."""
        if self._seeding:
            return self._seed_phase.ask(n)
        if self._pending is None and self.round == self.params.rounds:
            return np.empty((0, self.dim), dtype=np.int64)
        return None

    def _told(self, X: np.ndarray, values: np.ndarray) -> None:
        if self._seeding:
            self._seed_phase.tell(X, values, len(set(row_keys(X)) - self.measured))

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        super().tell(X, values)
        if self.round == 0 and not self._seeding:  # the seed phase ended: save its labels
            self._save()

    # -- one round ------------------------------------------------------------------------------

    def _next_round(self) -> np.ndarray:
        """Train, choose the seeds and diffuse from them: round ``r``'s proposals ``(N, L)``."""
        p = self.params
        r = self.round = self.round + 1
        started = time.perf_counter()
        rng = np.random.default_rng(child(self._seed, TRAIN, r))
        X, first = np.unique(self.X, axis=0, return_index=True)  # a repeat adds nothing
        for _ in range(2 if r == 1 else 1):
            trained = fit(self.model, X, self.values[first], self.rounds[first], epochs=p.epochs,
                          batch_size=p.batch_size, lr=p.lr, warmup=p.warmup_epochs,
                          max_steps=p.max_train_steps, shared=p.preset == "cpu", rng=rng)
        fitted = time.perf_counter()
        seeds = torch.as_tensor(select_seeds(self.X, self.values, p.num_samples, p.seed_expansion),
                                device=self.device)
        guidance = p.guidance(self.dim)
        with torch.no_grad():
            features = self.model.trunk(self.model.embed(seeds))
            best = predictions(self.model, features, guidance.use_feasibility).max(1).values
        tokens, value, history = diffuse(self.model, seeds, best, guidance,
                                         np.random.default_rng(child(self._seed, GENERATE, r)))
        proposals = tokens.cpu().numpy().astype(np.int64)
        top = float(self.values.max())
        self._metrics = {
            "round": r, "labels": len(self.values), **trained,
            "train_seconds": fitted - started, "generate_seconds": time.perf_counter() - fitted,
            "seeds": len(seeds), "diffusion_steps": guidance.steps,
            "acquisition": float(value.mean()),
            "changed": float((tokens != seeds).any(1).float().mean()),
            "edit_distance": float((tokens != seeds).sum(1).float().mean()),
            "distinct": len(np.unique(proposals, axis=0)),
            "new": sum(key not in self.measured for key in set(row_keys(proposals))),
            "best_value": top if top > -np.inf else None,
            "last_step": history[-1] if history else None,
        }
        return proposals

    # -- state ----------------------------------------------------------------------------------

    def _extra_state(self) -> dict:
        return {"seed_charged": self._seed_phase.charged,
                "model": {key: value.cpu() for key, value in self.model.state_dict().items()}}

    def _load_extra_state(self, state: dict) -> None:
        self._seed_phase.charged = state["seed_charged"]
        self.model.load_state_dict(state["model"])
