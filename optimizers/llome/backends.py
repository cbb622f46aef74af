"""Generation backends by name: the factory the optimizer calls."""

from __future__ import annotations

from optimizers.llome.decoding import Backend, Decoding
from optimizers.llome.hf_backend import HFBackend

BACKENDS = ("hf", "vllm")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; use one of {', '.join(BACKENDS)}")
    return name


def make_backend(name: str, decoding: Decoding, device: str = "cpu", **options) -> Backend:
    """The backend called ``name`` (one of ``BACKENDS``); ``options`` go to the vLLM engine."""
    if check_backend(name) == "hf":
        return HFBackend(decoding, device)
    from optimizers.llome.vllm_backend import VLLMBackend

    return VLLMBackend(decoding, device, **options)
