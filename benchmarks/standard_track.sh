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
# The model-guided methods (3-7 minutes a run on f2 under preset=cpu): seeds 0-2 on f2_family.
run --optimizer adalead --optimizer pex --optimizer cbas --optimizer dbas --set preset=cpu \
    --problem f2_family --seeds 0-2
# LaMBO-2 (cpu preset) and LLOME at the head-to-head's settings (docs/llome-f2.md), seeds 0-2
# on f2_family, into the folder of the llome_f2 and LaMBO-2 experiments (docs/llome-f2.md,
# docs/lambo2.md): the same problem names and identities, so a run they share is made once.
# Every LLOME arm trains on at most 4,096 examples a round; DPO's are preference triples
# (max_triples: its max_pairs bounds only the first round, which is SFT). DPO runs with the
# release's checkpoint gate: without it a run can take hours (docs/leaderboard.md says why).
f2=${F2_OUT:-runs/llome-f2}
"$hb" run --track standard --out "$f2" --workers "$workers" --quiet --no-page \
    --optimizer lambo2 --set lambo2.preset=cpu --optimizer llome-marge --optimizer llome-sft \
    --optimizer llome-marge-onpolicy --optimizer llome-dpo --set llome-marge.samples=2 \
    --set llome-marge.max_pairs=4096 --set llome-sft.samples=2 --set llome-sft.max_pairs=4096 \
    --set llome-marge-onpolicy.samples=2 --set llome-marge-onpolicy.max_pairs=4096 \
    --set llome-dpo.samples=2 --set llome-dpo.max_pairs=4096 --set llome-dpo.max_triples=4096 \
    --set llome-dpo.gate=true \
    --problem f2 --problem f2_seed1 --problem f2_seed2 --seeds 0-2

"$hb" archive "$out" "$f2" --into results
