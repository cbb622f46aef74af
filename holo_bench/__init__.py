"""holo-bench: black-box optimization of biological sequences on Ehrlich functions."""

from holo_bench.functions import Ehrlich, RoughMtFuji, TestFunction
from holo_bench.oracle import BudgetExhausted, Oracle, ReplayMismatch
from holo_bench.suite import make_function

__version__ = "0.2.0"

__all__ = [
    "BudgetExhausted",
    "Ehrlich",
    "Oracle",
    "ReplayMismatch",
    "RoughMtFuji",
    "TestFunction",
    "make_function",
]
