#!/usr/bin/env bash
# Recompute the reference set dlib-lfw-cfpfp-v2 from scratch (see README.md beside this file).
# Needs: BENCH_DATA holding lfw/ and cfp/ (../shared/data), the MobileFaceNet ONNX at $MFN, and
# about 6 CPU-hours (half of it FaceQAN: ~0.65 s per image; DifFIQA n = 1: ~0.25 s per image).
# Steps 1-2 retrain the shipped weights (skip them to use weights/ as committed); floats of a
# retrained network differ from the shipped one's, so only steps 3-5 reproduce the numbers.
set -euo pipefail
cd "$(dirname "$0")/../../.."
: "${BENCH_DATA:?set BENCH_DATA to the folder holding lfw/ and cfp/}"
MFN=${MFN:-$BENCH_DATA/models/mobilefacenet-112.onnx}
WORK=${WORK:-reference-work}
R=${R:-$WORK/results}
RETRAIN=${RETRAIN:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$WORK"

if [ "$RETRAIN" = 1 ]; then
  # 1. DDPMs, cross-dataset (the commands in weights/weights.toml).
  bench crops cfp-fp "$WORK/cfp_all_dlib150.npy" --domain dlib150 --all-images
  bench crops lfw "$WORK/lfw_all_dlib150.npy" --domain dlib150 --all-images
  for pair in "cfp:1166" "lfw:1086"; do
    src=${pair%%:*}; steps=${pair##*:}
    bench train ddpm "$WORK/${src}_all_dlib150.npy" "weights/dlib150-$src/diffiqa_ddpm.pt" --domain dlib150 \
      --image-size 48 --width 16 --mults 1,2,4 --recipe cheap --degradation bsrgan --batch-size 16 \
      --steps "$steps" --save-every 200 --seed 0
  done
  # 2. Teacher labels on training-set images only (CFP-FP folds 1-5 for the LFW side, LFW folds 1-5
  #    for the CFP-FP side), then DifFIQA(R) and eDifFIQA on dlib-torch.
  bench run --method diffiqa --fr dlib --quality-fr dlib-torch --dataset cfp-fp --folds 1,2,3,4,5 \
    --weights weights/dlib150-cfp --method-option repeats=1 --results "$WORK/labels-cfp"
  bench run --method diffiqa --fr dlib --quality-fr dlib-torch --dataset lfw --folds 1,2,3,4,5 \
    --weights weights/dlib150-lfw --method-option repeats=1 --results "$WORK/labels-lfw"
  python - "$WORK" <<'PY'
import csv, sys
from pathlib import Path
import pyarrow.parquet as pq
work = Path(sys.argv[1])
for side, depth in (("cfp", 2), ("lfw", 1)):  # identity = the subject folder
    (score,) = (work / f"labels-{side}" / "scores" / "diffiqa").glob("*.parquet")
    t = pq.read_table(score)
    with open(work / f"labels_{side}.csv", "w", newline="") as fh:
        w = csv.writer(fh); w.writerow(["image_id", "quality", "identity"])
        for i, q in zip(t.column("image_id").to_pylist(), t.column("score").to_pylist()):
            w.writerow([i, repr(q), Path(i).parents[depth - 1].name])
PY
  for side in cfp lfw; do
    bench train distill "$WORK/labels_$side.csv" "$WORK/${side}_all_dlib150.npy" "weights/dlib150-$side/diffiqa_r.pth" \
      --kind diffiqa-r --fr dlib-torch
    bench train distill "$WORK/labels_$side.csv" "$WORK/${side}_all_dlib150.npy" "weights/dlib150-$side/ediffiqaL.pth" \
      --kind ediffiqa --fr dlib-torch --min-images 2
  done
fi

# 3. Every runnable cell: LFW View 2 and CFP-FP (all folds), dlib and MobileFaceNet. Quality FR for the
#    FR-dependent methods is dlib-torch (the dlib network in PyTorch), so their scores serve both FR models.
for fr in dlib "onnx:$MFN"; do
  for d in lfw cfp-fp; do
    if [ "$d" = lfw ]; then W=weights/dlib150-cfp; else W=weights/dlib150-lfw; fi
    for s in 0 1 2 3 4 5 6 7 8 9; do bench run --method random --fr "$fr" --dataset "$d" --seed "$s" --results "$R"; done
    bench run --method oracle --fr "$fr" --dataset "$d" --results "$R"
    bench run --method ser-fiq --fr "$fr" --quality-fr dlib-torch --dataset "$d" --results "$R"
    bench run --method diffiqa --fr "$fr" --quality-fr dlib-torch --dataset "$d" --weights "$W" --method-option repeats=1 --results "$R"
    bench run --method diffiqa-r,ediffiqa --fr "$fr" --dataset "$d" --weights "$W" --results "$R"
    bench run --method faceqan --fr "$fr" --quality-fr dlib-torch --dataset "$d" --results "$R"
  done
done
# 4. Table 4's ablations, LFW folds 1-2 only (CPU time).
for m in diffiqa-noflip diffiqa-noforward diffiqa-t20; do
  bench run --method "$m" --fr dlib --quality-fr dlib-torch --dataset lfw --folds 1,2 --weights weights/dlib150-cfp \
    --method-option repeats=1 --results "$R"
done
# 5. The CI subset, exactly as CI computes it: `make demo` (LFW folds 1-2, dlib: random, oracle, SER-FIQ, DifFIQA n = 1).
BENCH_MIRROR=$BENCH_DATA python -m bench.demo --out "$WORK/demo"
python - "$R" "$WORK/demo/results" <<'PY'
import shutil, sys
from pathlib import Path
dst, src = Path(sys.argv[1]), Path(sys.argv[2])
rows = (src / "pauc.csv").read_text().splitlines(keepends=True)[1:]
with open(dst / "pauc.csv", "a") as fh:
    fh.writelines(rows)
for sub in ("runs", "curves"):
    for p in (src / sub).glob("2*"):
        shutil.copy2(p, dst / sub / p.name)
PY
echo "compare with: bench check --results $R --against results/reference/dlib-lfw-cfpfp-v2"
