#!/usr/bin/env bash
# The pre-registered comparison of docs/baselines.md ("The comparison"): every run, its
# verification into a store, then the report.
#   bash benchmarks/baselines_experiment.sh [OUT] [WORKERS]
# Resumable: rerun the same command after a kill; finished runs are kept, unfinished ones resume.
# About 4 hours of one core (2 hours with 2 workers on 2 idle cores).
set -euo pipefail
out=${1:-runs/baselines}
workers=${2:-2}
hb=${HOLO_BENCH:-.venv/bin/holo-bench}
python=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1  # the model-guided methods repeat bit for bit at one torch thread
run() { "$hb" run --budget 28000 --count distinct --out "$out" --workers "$workers" --quiet \
          --no-page "$@"; }

# The cheap arms: seeds 0-29 on the six problems of the suite bbo.
run --optimizer ga --optimizer random --optimizer ea-1p1 --optimizer ea-lengler \
    --optimizer ea-fast --optimizer ea-mu-lambda --optimizer sa --problem bbo --seeds 0-29
# The model-guided arms, preset cpu: seeds 0-9 on the two L = 32 problems, in two blocks.
for block in 0-4 5-9; do
  run --optimizer adalead --optimizer pex --optimizer cbas --optimizer dbas --set preset=cpu \
      --problem ehr_v-32_l-032_m-4_c-4_q-4 --problem ehr_v-32_l-032_m-4_c-4_q-2 --seeds "$block"
done

"$hb" collect "$out" --db "$out/store.sqlite"
"$python" benchmarks/baselines_report.py "$out/store.sqlite" --csv docs/baselines-runs.csv \
    --markdown "$out/report.md"
"$hb" leaderboard --db "$out/store.sqlite" --markdown "$out/leaderboard.md" --reference ga
