#!/usr/bin/env bash
# The standard track's runs of the built-in optimizers (holo-bench list problems), with the
# llome_f2 experiment's, archived into results/ (docs/leaderboard.md, "The published archive").
#   bash benchmarks/standard_track.sh [OUT] [WORKERS]
# Resumable: rerun the same command after a kill; finished runs are kept, unfinished ones resume,
# and records already archived stay unchanged.
set -euo pipefail
out=${1:-runs/standard}
workers=${2:-2}
hb=${HOLO_BENCH:-.venv/bin/holo-bench}
export OMP_NUM_THREADS=1  # the model-based methods repeat bit for bit at one torch thread
run() { "$hb" run --track standard --out "$out" --workers "$workers" --quiet --no-page "$@"; }

# Runs under a minute: seeds 0-9 on every instance of the track.
run --optimizer ga --optimizer random --optimizer ea-1p1 --optimizer ea-lengler \
    --optimizer ea-fast --optimizer ea-mu-lambda --optimizer sa --optimizer holo-ga
run --optimizer llome-nolm --set samples=2 --set max_pairs=4096
# The model-based methods (2-10 minutes a run on f2 under preset=cpu): seeds 0-2 on f2_family.
run --optimizer adalead --optimizer pex --optimizer cbas --optimizer dbas --optimizer lambo2 \
    --set preset=cpu --problem f2_family --seeds 0-2
# LLOME at the head-to-head's settings (docs/llome-f2.md), seeds 0-2 on f2_family, into the
# llome_f2 experiment's folder (same problem names, so the runs it has are not made again).
"$hb" run --track standard --out "${LLOME_OUT:-runs/llome-f2}" --workers "$workers" --quiet \
    --no-page --optimizer llome-marge --optimizer llome-sft --optimizer llome-marge-onpolicy \
    --optimizer llome-dpo --set samples=2 --set max_pairs=4096 \
    --problem f2 --problem f2_seed1 --problem f2_seed2 --seeds 0-2

"$hb" archive "$out" "${LLOME_OUT:-runs/llome-f2}" --into results
