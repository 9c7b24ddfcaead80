#!/usr/bin/env bash
# GPU checks for a machine with a CUDA device (about 5 minutes, 8 at most): paper-size DifFIQA
# (n = 10) and DifFIQA(R) / eDifFIQA ms per image in fp32 and bf16, FR embeddings per second,
# and GPU-vs-CPU max |score difference| on the same 64 images (see benchmarks/gpu_check.py).
# Usage: benchmarks/gpu_check.sh [--device cuda:0] [--images 64]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device visible to torch')"
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
