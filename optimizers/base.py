"""The ask/tell protocol, defined in the core (``holo_bench.protocol``) and re-exported here,
where optimizers are written."""

from holo_bench.protocol import NoParams, Optimizer, Problem

__all__ = ["NoParams", "Optimizer", "Problem"]
