"""Optimizers by name: the built-ins, third-party ones, and ``module:Class`` paths.

Third-party packages register optimizers in their own metadata, e.g. in ``pyproject.toml``::

    [project.entry-points."holo_bench.optimizers"]
    my-optimizer = "my_package.module:MyOptimizer"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from optimizers.base import Optimizer

ENTRY_POINT_GROUP = "holo_bench.optimizers"

BUILTINS = {
    "ga": "optimizers.ga:GeneticAlgorithm",
    "random": "optimizers.random_search:RandomSearch",
    "holo-ga": "optimizers.closure:HoloDiscreteEvolution",
    "llome-marge": "optimizers.llome.optimizer:LlomeMarge",
    "llome-sft": "optimizers.llome.optimizer:LlomeSft",
    "llome-dpo": "optimizers.llome.optimizer:LlomeDpo",
}


def available() -> dict[str, str]:
    """Every registered name and the ``module:Class`` it loads (built-ins win name clashes)."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTINS}


def optimizer_class(name: str) -> type[Optimizer]:
    """Resolve a registered name or a ``module:Class`` path to an optimizer class."""
    target = available().get(name, name)
    module_name, colon, class_name = target.partition(":")
    if not colon:
        raise ValueError(
            f"unknown optimizer {name!r}: use a registered name ({', '.join(sorted(available()))}) "
            "or module:Class"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load optimizer {name!r} from {target!r}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"{target!r} is not a subclass of optimizers.base.Optimizer")
    return cls


def make_optimizer(name: str, params: dict | None = None) -> Optimizer:
    """Instantiate optimizer ``name`` with keyword parameters (e.g. from ``--set``)."""
    cls = optimizer_class(name)
    try:
        return cls(**(params or {}))
    except TypeError as err:
        raise ValueError(f"bad parameters for optimizer {name!r}: {err}") from err


def parse_params(assignments: list[str]) -> dict:
    """``["num_particles=500", "mutation_prob=0.01"]`` -> typed keyword parameters."""
    params = {}
    for assignment in assignments:
        key, eq, text = assignment.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set takes name=value, got {assignment!r}")
        params[key.strip()] = _parse_value(text.strip())
    return params


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text
