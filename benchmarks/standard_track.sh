#!/usr/bin/env bash
# The standard track's runs of the built-in optimizers (holo-bench list problems), archived into
# results/ (docs/leaderboard.md, "The published archive").
#   bash benchmarks/standard_track.sh [OUT] [WORKERS]
# Resumable: rerun the same command after a kill; finished runs are kept, unfinished ones resume,
# and records already archived stay unchanged.
set -euo pipefail
out=${1:-runs/standard}
workers=${2:-2}
hb=${HOLO_BENCH:-.venv/bin/holo-bench}
export OMP_NUM_THREADS=1  # the model-guided methods repeat bit for bit at one torch thread
run() { "$hb" run --track standard --out "$out" --workers "$workers" --quiet --no-page "$@"; }

# Runs under a minute: seeds 0-9 on every instance of the track.
run --optimizer ga --optimizer random --optimizer ea-1p1 --optimizer ea-lengler \
    --optimizer ea-fast --optimizer ea-mu-lambda --optimizer sa
# The model-guided methods (2-5 minutes a run on f2 under preset=cpu): seeds 0-2 on f2_family.
run --optimizer adalead --optimizer pex --optimizer cbas --optimizer dbas --set preset=cpu \
    --problem f2_family --seeds 0-2

"$hb" archive "$out" --into results
