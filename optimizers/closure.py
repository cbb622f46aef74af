"""Run a closure-style optimizer (``torch.optim`` style ``step(closure)``) through ask/tell.

Such an optimizer evaluates a batch by calling ``closure(particles)`` from inside ``step``. We run
its steps in a worker thread: each closure call hands the batch to ``ask`` and waits for ``tell``,
so the optimizer joins the benchmark unchanged while the runner keeps the loop and the budget.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

import numpy as np
import torch

from optimizers.base import Optimizer, Problem


class _Stop(Exception):
    """Ends the worker thread when the run is over."""


class ClosureAdapter(Optimizer):
    """Ask/tell around ``build(params, problem, seed) -> torch.optim.Optimizer``.

    ``params`` is one float parameter holding the first initial solution; the closure receives the
    optimizer's batch (a list with one ``(m, dim)`` tensor, or a tensor) and returns losses, the
    negated values (infeasible = ``+inf``), as holo's callers do. If the batch is larger than what
    ``ask`` may return, only its first ``n`` sequences are asked for and the rest are reported as
    infeasible; this only happens when the budget runs out, so the run ends right after.
    """

    name = "closure"

    def __init__(self, build: Callable[[list, Problem, int], torch.optim.Optimizer]):
        self._build = build
        self._thread = None

    def setup(self, problem: Problem, seed: int) -> None:
        self.close()
        param = torch.nn.Parameter(torch.as_tensor(problem.initial_solution[0], dtype=torch.float32))
        self._optimizer = self._build([param], problem, seed)
        self._asks: queue.Queue = queue.Queue(maxsize=1)
        self._tells: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._pending = 0
        self._thread.start()

    def _run(self) -> None:
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


class HoloDiscreteEvolution(ClosureAdapter):
    """pytorch-holo's own ``DiscreteEvolution`` GA, unchanged, through the closure adapter.

    Needs ``pytorch-holo`` installed. It draws from torch's global generator, which ``setup``
    seeds with the run's seed.
    """

    name = "holo-ga"

    def __init__(self, num_particles=1000, mutation_prob=None, recombine_prob=0.5, survival_quantile=0.1):
        self.num_particles = num_particles
        self.mutation_prob = mutation_prob
        self.recombine_prob = recombine_prob
        self.survival_quantile = survival_quantile
        super().__init__(self._build_holo)

    def _build_holo(self, params, problem: Problem, seed: int):
        from holo.optim import DiscreteEvolution

        torch.manual_seed(seed)
        return DiscreteEvolution(
            params,
            vocab=list(range(problem.num_states)),
            mutation_prob=self.mutation_prob or 1.0 / problem.dim,
            recombine_prob=self.recombine_prob,
            num_particles=self.num_particles,
            survival_quantile=self.survival_quantile,
        )
