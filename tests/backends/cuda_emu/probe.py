"""A hand-written probe kernel for the emulator's runtime and race-checker tests.

``probe_source(body)``: a 2-block, 64-thread kernel with 1 KB of shared memory (``s``: 256 floats), its
pointers declared as the emu flavour declares them (``TILEC_EMU_PTR``: plain pointers, checked ones under
the race checker), ``body`` inside; ``run_probe(body, mode, flags)`` builds and runs it on ``out`` (128
floats, -7 before the run) and ``in`` (0..127) and returns ``out``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tilec.backends.cuda.emu.build import load

HEAD = '#include "tilec_emu/ops.h"\n'
CHECK = """#define TILEC_CHECK(call, what) do { const cudaError_t _e = (call); if (_e != cudaSuccess) { \\
  snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(_e)); return _e; } } while (0)
"""
ENTRY = """
extern "C" int tilec_launch_t(void* const* ptrs, const long long* dims, cudaStream_t stream, char* err, int errlen) {
  float* out = static_cast<float*>(ptrs[0]);
  const float* in = static_cast<const float*>(ptrs[1]);
  tilec_emu::launch("probe_kernel", probe_kernel, dim3(2, 1, 1), 64, 1024, stream, out, in, static_cast<int>(dims[0]));
  TILEC_CHECK(cudaGetLastError(), "launch of probe_kernel");
  return 0;
}
"""


def probe_source(body: str) -> str:
    return (HEAD + CHECK + "__global__ void probe_kernel(TILEC_EMU_PTR(float) out, TILEC_EMU_PTR(const float) in, "
            "int mode) {\n  extern __shared__ __align__(128) unsigned char smem[];\n"
            "  TILEC_EMU_PTR(float) s = reinterpret_cast<float*>(smem);\n  const int t = threadIdx.x;\n"
            "  (void)s; (void)t; (void)in; (void)mode;\n" + body + "\n}\n" + ENTRY)


def run_probe(body: str, mode: int = 0, flags: Sequence[str] = ()) -> np.ndarray:
    out = np.full(128, -7.0, np.float32)
    inp = np.arange(128, dtype=np.float32)
    load(probe_source(body), "sm_80", flags).call("tilec_launch_t", [out, inp], [mode], ["out", "in"])
    return out
