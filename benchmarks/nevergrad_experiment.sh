#!/usr/bin/env bash
# docs/nevergrad.md's two pre-registered comparisons, rerun from their protocols' commands into
# one folder, archived (into ARCHIVE, by default the published archive results/), and their
# tables written from the archive's records with the per-run CSVs beside the doc.
#   bash benchmarks/nevergrad_experiment.sh [OUT] [WORKERS]
# Resumable: rerun the same command after a kill; finished runs are kept, unfinished ones resume.
# About 50 minutes on 2 cores (nevergrad's runs cost 17-150 s each; the GA's under a second).
set -euo pipefail
out=${1:-runs/nevergrad}
workers=${2:-2}
hb=${HOLO_BENCH:-.venv/bin/holo-bench}
python=${PYTHON:-.venv/bin/python}
archive=${ARCHIVE:-results}
export OMP_NUM_THREADS=1
run() { "$hb" run --problem f2 --problem ehr_v-32_l-128_m-4_c-4_q-4 --count distinct \
          --out "$out" --workers "$workers" --quiet --no-page "$@"; }

# The first comparison: 1,000 evaluations, seeds 0-29, four nevergrad arms and the GA.
run --optimizer ng:DiscreteOnePlusOne --optimizer ng:DiscreteLenglerOnePlusOne \
    --optimizer ng:PortfolioDiscreteOnePlusOne --optimizer ng:NGOpt --optimizer ga \
    --seeds 0-29 --budget 1000
# The second: 10,000 evaluations, seeds 0-7 for the two nevergrad arms, 0-29 for the GA.
run --optimizer ng:DiscreteOnePlusOne --optimizer ng:DiscreteLenglerOnePlusOne --seeds 0-7 \
    --budget 10000
run --optimizer ga --seeds 0-29 --budget 10000

"$hb" archive "$out" --into "$archive"
for budget in 1000 10000; do
  "$python" benchmarks/baselines_report.py "$archive" --budget "$budget" --reference ga \
    --csv "docs/nevergrad-$budget-runs.csv" --markdown "$out/report-$budget.md"
done
