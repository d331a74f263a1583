#!/usr/bin/env bash
# GPU benchmark of tilec's CUDA backend (one script, nothing to install, a few minutes on an H100):
#   1. every examples/*.py on the cuda target vs its torch reference (relative errors, fresh random
#      inputs, outputs poisoned with NaN before each run), at DEFAULTS and RAGGED sizes;
#   2. CUDA-event medians: GEMM bf16 4096^3 and 8192^3 vs torch.matmul, attention forward
#      B4 H32 S4096 D128 (causal and not) vs F.scaled_dot_product_attention.
# Prints one table; writes $OUT/gpu_bench.json when OUT is set. Usage: benchmarks/gpu/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu/bench.py "$@"
