"""Optimizers by name: the built-ins, third-party ones, ``ng:NAME`` (any optimizer in nevergrad's
registry, ``optimizers.nevergrad``) and ``module:Class`` paths.

Third-party packages register optimizers in their own metadata, e.g. in ``pyproject.toml``::

    [project.entry-points."holo_bench.optimizers"]
    my-optimizer = "my_package.module:MyOptimizer"

A ``module:Class`` path that is not registered is imported with the working folder first on the
import path, as ``python -m`` has it (docs/submitting-an-optimizer.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from importlib.metadata import entry_points

from holo_bench.params import build_params, close_matches
from optimizers.base import NoParams, Optimizer
from optimizers.nevergrad import PREFIX as NEVERGRAD
from optimizers.nevergrad import nevergrad_class

ENTRY_POINT_GROUP = "holo_bench.optimizers"

BUILTINS = {
    "ga": "optimizers.ga:GeneticAlgorithm",
    "random": "optimizers.random_search:RandomSearch",
    "ea-1p1": "optimizers.ea:OnePlusOne",
    "ea-lengler": "optimizers.ea:LenglerOnePlusOne",
    "ea-fast": "optimizers.ea:FastOnePlusOne",
    "ea-mu-lambda": "optimizers.ea:MuPlusLambda",
    "sa": "optimizers.annealing:SimulatedAnnealing",
    "holo-ga": "optimizers.closure:HoloDiscreteEvolution",
    "llome-marge": "optimizers.llome.optimizer:LlomeMarge",
    "llome-sft": "optimizers.llome.optimizer:LlomeSft",
    "llome-dpo": "optimizers.llome.optimizer:LlomeDpo",
    "llome-marge-onpolicy": "optimizers.llome.optimizer:LlomeMargeOnPolicy",
    "llome-nolm": "optimizers.llome.optimizer:LlomeNoModel",
    "adalead": "optimizers.adalead:AdaLead",
    "pex": "optimizers.pex:PEX",
    "cbas": "optimizers.cbas:CbAS",
    "dbas": "optimizers.cbas:DbAS",
    "lambo2": "optimizers.lambo2.optimizer:LaMBO2",
}


def available() -> dict[str, str]:
    """Every registered name and the ``module:Class`` it loads (built-ins win name clashes)."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTINS}


def optimizer_class(name: str) -> type[Optimizer]:
    """Resolve a registered name, ``ng:NAME`` or a ``module:Class`` path to an optimizer class."""
    if name.startswith(NEVERGRAD):  # nevergrad's optimizer NAME, not a module:Class path
        return nevergrad_class(name.removeprefix(NEVERGRAD))
    registered = available()
    target = registered.get(name, name)
    module_name, colon, class_name = target.partition(":")
    if not colon:
        raise ValueError(
            f"unknown optimizer {name!r}{close_matches(name, registered)}: use a registered name "
            f"({', '.join(sorted(registered))}), ng:NAME for nevergrad's optimizer NAME, or "
            "module:Class"
        )
    if name not in registered:
        _working_folder_importable()
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        searched = (f" (searched the working folder {os.getcwd()} and the installed packages)"
                    if isinstance(err, ModuleNotFoundError) and name not in registered else "")
        raise ValueError(
            f"cannot load optimizer {name!r} from {target!r}: {err}{searched}") from err
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"{target!r} is not a subclass of optimizers.base.Optimizer")
    _check_protocol(cls, target)
    return cls


def make_optimizer(name: str, params: dict | None = None) -> Optimizer:
    """Instantiate optimizer ``name`` from its parameters (typed values, or text from ``--set``),
    validated against its ``Params``."""
    cls = optimizer_class(name)
    record = build_params(cls.Params, dict(params or {}), owner=f"optimizer {name}")
    try:
        optimizer = cls(record)
    except TypeError as err:
        raise ValueError(f"bad parameters for optimizer {name!r}: {err}") from err
    if not isinstance(getattr(optimizer, "params", None), cls.Params):
        raise ValueError(f"optimizer {name!r} did not keep its parameters as a "
                         f"{cls.Params.__name__} record in self.params: {_PROTOCOL_CHANGE}")
    return optimizer


def _working_folder_importable() -> None:
    """Put the working folder first on ``sys.path`` unless it is there, as ``python -m`` does.

    A console script such as ``holo-bench`` starts with its own folder there instead, so
    ``my_package/`` beside the user would not be found. It stays for the rest of the process: the
    module may import its siblings later, and every pool worker, started in the same folder,
    resolves the name again.
    """
    folder = os.getcwd()
    if folder not in sys.path and "" not in sys.path:
        sys.path.insert(0, folder)


_PROTOCOL_CHANGE = (
    "since holo-bench 0.2 an optimizer declares its parameters as a frozen dataclass `Params` (and "
    "lets Optimizer.__init__ build it), and implements setup(problem, seed, workdir=None) -> int; "
    "see docs/submitting-an-optimizer.md"
)


def _check_protocol(cls: type[Optimizer], target: str) -> None:
    """Refuse, with what changed, a class written for the protocol before holo-bench 0.2."""
    if "workdir" not in inspect.signature(cls.setup).parameters:
        raise ValueError(f"{target!r}: setup takes no workdir: {_PROTOCOL_CHANGE}")
    if not dataclasses.is_dataclass(cls.Params):
        raise ValueError(f"{target!r}: Params is not a dataclass: {_PROTOCOL_CHANGE}")
    if cls.__init__ is not Optimizer.__init__ and cls.Params is NoParams:
        raise ValueError(f"{target!r} takes parameters in __init__ but declares no Params: "
                         f"{_PROTOCOL_CHANGE}")
