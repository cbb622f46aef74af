#!/usr/bin/env bash
# One device session (docs/benchmarks.md): the hf backend on CUDA for benchmarks/llome_backends.py,
# and, on the CPU cores beside it, LLOME runs of the head-to-head (docs/llome-f2.md), one thread
# each. Everything it writes goes under $OUT. Usage: bash benchmarks/device_run.sh SECONDS
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
limit=${1:-540}
out=${OUT:-/tmp/out}
mkdir -p "$out" runs
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import torch, transformers, numpy; print(torch.__version__, transformers.__version__, numpy.__version__, torch.cuda.is_available())" >> "$out/gpu.txt" 2>&1
# The head-to-head's LLOME runs on two of its instances: 15 runs, one worker each.
llome="--optimizer llome-marge --optimizer llome-sft --optimizer llome-marge-onpolicy --set samples=2 --set max_pairs=4096"
timeout $((limit - 30)) python3 -m harness.cli run --budget 28000 --out runs --workers 9 --quiet \
    $llome --problem f2_seed1 --seeds 0-2 > "$out/llome-seed1.log" 2>&1 &
first=$!
timeout $((limit - 30)) python3 -m harness.cli run --budget 28000 --out runs --workers 6 --quiet \
    $llome --problem f2_seed2 --seeds 0-1 > "$out/llome-seed2.log" 2>&1 &
second=$!
# The checkpoint gate's acceptance, on one MargE run of f2.
timeout $((limit - 30)) python3 -m harness.cli run --budget 28000 --out runs --workers 1 --quiet \
    --optimizer llome-marge --label llome-marge-gate --set gate=true --set samples=2 \
    --set max_pairs=4096 --problem f2 --seeds 0 > "$out/llome-gate.log" 2>&1 &
third=$!
# GPU: the hf backend, default model and a 33.6M-parameter one (rounds of 2,000 after the seed).
(timeout $((limit / 2)) python3 benchmarks/llome_backends.py --device cuda --backends hf --budget 16000 \
    --out "$out/gpu-default.json" > "$out/gpu-default.log" 2>&1
 timeout $((limit / 2 - 30)) python3 benchmarks/llome_backends.py --device cuda --backends hf --budget 16000 \
    --hidden-size 512 --layers 8 --head-size 64 --out "$out/gpu-large.json" > "$out/gpu-large.log" 2>&1) &
gpu=$!
wait $first $second $third $gpu
# Bring back the run folders: traces, manifests, metrics and state; only each run's last model.
find runs -type d -name 'round-*' | sort -V | python3 -c "
import sys, collections, shutil, pathlib
last = collections.defaultdict(list)
for line in sys.stdin:
    p = pathlib.Path(line.strip()); last[p.parent].append(p)
for folder, rounds in last.items():
    for p in sorted(rounds, key=lambda p: int(p.name.split('-')[1]))[:-1]:
        shutil.rmtree(p)
"
tar czf "$out/runs.tar.gz" runs
ls -la "$out"
