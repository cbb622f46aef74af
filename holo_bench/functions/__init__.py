"""Test functions: each is its formula, vectorized; validation lives in the shared base."""

from holo_bench.functions.base import TestFunction
from holo_bench.functions.ehrlich import Ehrlich
from holo_bench.functions.rough_mt_fuji import RoughMtFuji

__all__ = ["TestFunction", "Ehrlich", "RoughMtFuji"]
