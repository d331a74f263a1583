#!/usr/bin/env bash
# GPU benchmark of tilec's CUDA backend (one script, nothing to install; budget: under 5 minutes on an H100):
#   1. every examples/*.py on the cuda target vs its torch reference (relative errors, fresh random
#      inputs, outputs poisoned with NaN before each run), at DEFAULTS and RAGGED sizes;
#   2. CUDA-event medians: GEMM bf16 4096^3 and 8192^3 vs torch.matmul, attention forward
#      B4 H32 S4096 D128 (causal and not) vs F.scaled_dot_product_attention;
#   3. the DeepSeek-V3.2 kernels at real per-layer sizes (benchmarks/gpu/deepseek.py): sparse MLA decode
#      and prefill, lightning indexer + top-k, MoE, act_quant + fp8_gemm, each checked against and timed
#      against its PyTorch equivalent on the GPU.
# Prints the tables; writes $OUT/gpu_bench.json when OUT is set. docs/benchmarks.md says what each row means.
# Usage: benchmarks/gpu/run.sh [--quick] [--only examples timings deepseek] [--deepseek WORKLOAD ...]
#        benchmarks/gpu/run.sh --compile-only [...]   # no GPU: generate + nvcc (sm_90a) every kernel, one line each
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# 0. the emulator's instructions (tilec_emu/isa.h) vs this GPU, bit for bit (< 60 s; a mismatch is reported, not fatal)
"$PY" benchmarks/gpu/emu_isa_check.py || echo "emu_isa_check: FAILED (cuda-emu disagrees with the GPU, see above)"
exec "$PY" benchmarks/gpu/bench.py "$@"
