#!/usr/bin/env bash
# The pre-registered LLOME head-to-head of docs/llome-f2.md: every run, archived (into ARCHIVE,
# by default the published archive results/), then the report from the archive's records.
#   bash benchmarks/llome_f2_experiment.sh [OUT] [WORKERS]
# Resumable: rerun the same command after a kill and finished runs are kept, unfinished ones
# resume. Takes about 80 minutes on 2 cores with 2 workers.
set -euo pipefail
out=${1:-runs/llome-f2}
workers=${2:-2}
hb=${HOLO_BENCH:-.venv/bin/holo-bench}
python=${PYTHON:-.venv/bin/python}
archive=${ARCHIVE:-results}
run() { "$hb" run --budget 28000 --out "$out" --workers "$workers" --quiet "$@"; }

# LLOME: 8 runs per variant, 3 / 3 / 2 over the three instances, at the experiment's compute
# settings (2 samples per temperature, at most 4,096 edit pairs per round).
llome=(--optimizer llome-marge --optimizer llome-sft --optimizer llome-marge-onpolicy
       --set samples=2 --set max_pairs=4096)
run "${llome[@]}" --problem f2 --problem f2_seed1 --seeds 0-2
run "${llome[@]}" --problem f2_seed2 --seeds 0-1

# Baselines: 10 runs per instance.
instances=(--problem f2 --problem f2_seed1 --problem f2_seed2 --seeds 0-9)
run --optimizer ga --optimizer llome-nolm --set llome-nolm.samples=2 \
    --set llome-nolm.max_pairs=4096 "${instances[@]}"
run --optimizer ga --label ga-seed --set num_particles=1000 --set mutation_prob=0.005 \
    --set recombine_prob=0.0882 --set survival_quantile=0.1 "${instances[@]}"
run --optimizer ga --label ga-all --count all "${instances[@]}"

"$hb" archive "$out" --into "$archive"
"$python" benchmarks/llome_f2_report.py "$archive" --markdown "$out/report.md"
