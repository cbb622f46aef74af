#!/usr/bin/env bash
# The pre-registered comparison of docs/lambo2.md: LaMBO-2 (cpu preset) against ga, llome-marge
# and llome-nolm on f2's family, then every run verified into a store.
#   bash benchmarks/lambo2_experiment.sh [OUT] [WORKERS]
# Resumable: rerun the same command after a kill; finished runs are kept, unfinished ones resume.
# About 5 hours of one core (LaMBO-2 and LLOME-MargE about 10 and 5 minutes a run).
set -euo pipefail
out=${1:-runs/lambo2}
workers=${2:-2}
hb=${HOLO_BENCH:-.venv/bin/holo-bench}
export OMP_NUM_THREADS=1  # the torch-based optimizers repeat bit for bit at one torch thread
run() { "$hb" run --budget 28000 --count distinct --out "$out" --workers "$workers" --quiet \
          --no-page "$@"; }

# 8 runs each, 3 / 3 / 2 over the instances, as LLOME's arms in docs/llome-f2.md.
arms=(--optimizer lambo2 --set lambo2.preset=cpu --optimizer llome-marge
      --set llome-marge.samples=2 --set llome-marge.max_pairs=4096)
run "${arms[@]}" --problem f2 --problem f2_seed1 --seeds 0-2
run "${arms[@]}" --problem f2_seed2 --seeds 0-1
# 30 runs each: seeds 0-9 on every instance.
run --optimizer ga --optimizer llome-nolm --set llome-nolm.samples=2 \
    --set llome-nolm.max_pairs=4096 --problem llome_f2 --seeds 0-9

"$hb" collect "$out" --db "$out/store.sqlite"
