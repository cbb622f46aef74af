"""Run a closure-style optimizer (``torch.optim`` style ``step(closure)``) through ask/tell.

Such an optimizer evaluates a batch by calling ``closure(particles)`` from inside ``step``. We run
its steps in a worker thread: each closure call hands the batch to ``ask`` and waits for ``tell``,
so the optimizer joins the benchmark unchanged while the runner keeps the loop and the budget.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np
import torch

from holo_bench.seeding import as_seed_sequence, integer_seed
from optimizers.base import Optimizer, Problem


class _Stop(Exception):
    """Ends the worker thread when the run is over."""


class ClosureAdapter(Optimizer):
    """Ask/tell around a subclass's ``build(params, problem) -> torch.optim.Optimizer``.

    ``params`` is one float parameter holding the first initial solution; the closure receives the
    optimizer's batch (a list with one ``(m, dim)`` tensor, or a tensor) and returns losses, the
    negated values (infeasible = ``+inf``), as holo's callers do. If the batch is larger than what
    ``ask`` may return, only its first ``n`` sequences are asked for and the rest are reported as
    infeasible; this only happens when the budget runs out, so the run ends right after.
    """

    _thread = None

    def build(self, params: list, problem: Problem) -> torch.optim.Optimizer:
        raise NotImplementedError

    def setup(self, problem: Problem, seed, workdir=None) -> int:
        self.close()
        param = torch.nn.Parameter(torch.as_tensor(problem.initial_solution[0],
                                                   dtype=torch.float32))
        self._optimizer = self.build([param], problem)
        self._asks: queue.Queue = queue.Queue(maxsize=1)
        self._tells: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run,
                                        args=(integer_seed(as_seed_sequence(seed)),), daemon=True)
        self._pending = 0
        self._thread.start()
        return 0

    def _run(self, seed: int) -> None:
        # Closure-style optimizers (holo's among them) draw from torch's global generator: seed it
        # from the run's tree for the run's duration only, and restore it afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                while True:
                    self._optimizer.step(self._closure)
            except _Stop:
                pass
            except BaseException as err:  # handed to ask(), which raises it in the runner
                self._asks.put(err)

    def _closure(self, particles) -> torch.Tensor:
        batch = particles[0] if isinstance(particles, (list, tuple)) else particles
        self._asks.put(np.rint(batch.detach().cpu().numpy()).astype(np.int64))
        values = self._tells.get()
        if values is None:
            raise _Stop
        return torch.as_tensor(-values, dtype=torch.float32)

    def ask(self, n: int) -> np.ndarray:
        X = self._asks.get()
        if isinstance(X, BaseException):
            raise X
        self._pending = len(X)
        return X[:n]

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        padded = np.full(self._pending, -np.inf)
        padded[: len(values)] = values
        self._tells.put(padded)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self._tells.put(None, timeout=0.1)
                except queue.Full:
                    pass
                try:  # the thread may be blocked handing over its next batch
                    self._asks.get_nowait()
                except queue.Empty:
                    pass
                self._thread.join(timeout=0.1)
        self._thread = None


@dataclass(frozen=True)
class HoloGAParams:
    """holo's ``DiscreteEvolution`` arguments (``mutation_prob`` None means ``1/dim``)."""

    num_particles: int = 1000
    mutation_prob: float | None = None
    recombine_prob: float = 0.5
    survival_quantile: float = 0.1


class HoloDiscreteEvolution(ClosureAdapter):
    """pytorch-holo's own ``DiscreteEvolution`` GA, unchanged, through the closure adapter.

    Needs ``pytorch-holo`` installed. It draws from torch's global generator, seeded from the run's
    seed tree while it runs (see ``ClosureAdapter``).
    """

    Params = HoloGAParams

    def build(self, params, problem: Problem):
        from holo.optim import DiscreteEvolution

        p = self.params
        return DiscreteEvolution(
            params,
            vocab=list(range(problem.num_states)),
            mutation_prob=p.mutation_prob or 1.0 / problem.dim,
            recombine_prob=p.recombine_prob,
            num_particles=p.num_particles,
            survival_quantile=p.survival_quantile,
        )
