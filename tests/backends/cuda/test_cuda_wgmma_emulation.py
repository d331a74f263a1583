"""The wgmma path (sm_90a, option ``wgmma``) checked without a GPU.

A Python model of ``wgmma.mma_async.m64nNk16`` reads its operands through matrix descriptors the way the
PTX ISA / CUTLASS define the canonical swizzled layouts (K-major and MN-major; 128- and 64-byte
swizzles applied to absolute shared-memory address bits), from a shared-memory image laid out by the
generator's ``swz_panel`` rule, with the descriptor fields of ``wgmma.desc_fields`` and the start
addresses ``wgmma.emit`` computes; the accumulator fragment follows the PTX D layout and is mapped to
(row, column) by the generator's ``MmaLayout(wg=True)``. The product must equal numpy's.
"""
from __future__ import annotations

import numpy as np
import pytest

import cuda_support as cs
from tilec.backends.cuda import wgmma
from tilec.backends.cuda.layout import MmaLayout
from tilec.ir import nodes as N

BASE = 3 * 1024  # a 1024-aligned shared address that is not 0, so absolute-address swizzling matters


def swz(r, c, C, V, NC):
    x = (r & 7) if NC >= 8 else ((r // (8 // NC)) & (NC - 1))
    return r * C + (((c // V) ^ x) * V) + (c % V)


def swz_panel(r, c, R, P):
    return (c // P) * (R * P) + swz(r, c % P, P, 8, P // 8)


class Image:
    """Shared memory bytes -> values for one operand buffer (R x C, 16-bit) stored by swz_panel."""

    def __init__(self, logical: np.ndarray):
        self.R, self.C = logical.shape
        buf = N.Buffer("t", (N.Const(self.R), N.Const(self.C)), "bfloat16", "shared")
        self.buf, self.P = buf, wgmma.panel_width(buf)
        assert self.P is not None
        self.mem = {}
        for r in range(self.R):
            for c in range(self.C):
                addr = BASE + 2 * swz_panel(r, c, self.R, self.P)
                assert addr not in self.mem
                self.mem[addr] = logical[r, c]

    def start(self, r, c) -> int:
        return BASE + 2 * swz_panel(r, c, self.R, self.P)


def swizzle(addr: int, mode: int) -> int:
    bits = {1: 3, 2: 2}[mode]  # 128B: Swizzle<3,4,3>; 64B: Swizzle<2,4,3>
    return addr ^ (((addr >> 7) & ((1 << bits) - 1)) << 4)


def read_kmajor(img: Image, start: int, rows: int, fields) -> np.ndarray:
    """rows x 16 K-major operand: ((8, m), (16)) : ((row bytes, SBO), 2 bytes), then swizzled."""
    _, sbo, mode = fields
    row_bytes = 128 if mode == 1 else 64
    out = np.empty((rows, 16))
    for r in range(rows):
        for k in range(16):
            out[r, k] = img.mem[swizzle(start + (r % 8) * row_bytes + (r // 8) * sbo + 2 * k, mode)]
    return out


def read_mnmajor(img: Image, start: int, n: int, fields) -> np.ndarray:
    """16 x n MN-major operand: ((atom, m), (8, k)) : ((2 bytes, LBO), (row bytes, SBO)), then swizzled."""
    lbo, sbo, mode = fields
    atom = 64 if mode == 1 else 32
    out = np.empty((16, n))
    for k in range(16):
        for j in range(n):
            addr = start + 2 * (j % atom) + (j // atom) * lbo + (k % 8) * 2 * atom + (k // 8) * sbo
            out[k, j] = img.mem[swizzle(addr, mode)]
    return out


def run(M, N_, K, warps, trans_b):
    rng = np.random.default_rng(M + N_ + K + warps)
    A = rng.integers(-4, 5, (M, K)).astype(np.float64)
    B = rng.integers(-4, 5, (K, N_)).astype(np.float64)
    ia, ib = Image(A), Image(B.T if trans_b else B)
    g = N.Gemm(N.Region(ia.buf, (N.Const(0),) * 2, ia.buf.shape), N.Region(ib.buf, (N.Const(0),) * 2, ib.buf.shape),
               N.Region(N.Buffer("C", (N.Const(M), N.Const(N_)), "float32", "fragment"), (N.Const(0),) * 2,
                        (N.Const(M), N.Const(N_))), trans_b=trans_b)
    lay = wgmma.layout_for(g, warps)
    assert lay is not None and lay.wg
    gm, gn = lay.wm // 4, lay.wn
    wn_ = N_ // gn
    fa, fb = wgmma.desc_fields(ia.buf, False), wgmma.desc_fields(ib.buf, not trans_b)
    acc = np.zeros((warps, 32, lay.regs))
    for wgid in range(warps // 4):
        m0, n0 = (wgid // gn) * (M // gm), (wgid % gn) * wn_
        for kk in range(K // 16):
            for mt in range(lay.mt):
                a = read_kmajor(ia, ia.start(m0 + mt * 64, kk * 16), 64, fa)
                b = read_kmajor(ib, ib.start(n0, kk * 16), wn_, fb).T if trans_b else \
                    read_mnmajor(ib, ib.start(kk * 16, n0), wn_, fb)
                d = a @ b
                for wq in range(4):
                    for lane in range(32):
                        for i in range(wn_ // 8):
                            for h in range(2):
                                for e in range(2):
                                    acc[wgid * 4 + wq, lane, mt * lay.nt * 4 + 4 * i + 2 * h + e] += \
                                        d[16 * wq + lane // 4 + 8 * h, 8 * i + 2 * (lane % 4) + e]
    C = np.full((M, N_), np.nan)
    for warp in range(warps):
        for lane in range(32):
            for r in range(lay.regs):
                i, j = mma_row(r, warp, lane, lay), mma_col(r, warp, lane, lay)
                assert np.isnan(C[i, j])
                C[i, j] = acc[warp, lane, r]
    np.testing.assert_array_equal(C, A @ B)


def mma_row(r, warp, lane, lay: MmaLayout) -> int:
    """Python twin of tilec::mma_row<WM, WGN, NT, true>."""
    wm_rows = lay.m // lay.wm
    return ((warp >> 2) // lay.wn) * (4 * wm_rows) + ((r >> 2) // lay.nt) * 64 + (warp & 3) * 16 + \
        ((r >> 1) & 1) * 8 + (lane >> 2)


def mma_col(r, warp, lane, lay: MmaLayout) -> int:
    return ((warp >> 2) % lay.wn) * (lay.n // lay.wn) + ((r >> 2) % lay.nt) * 8 + (lane & 3) * 2 + (r & 1)


@pytest.mark.parametrize("M,N_,K,warps,trans_b", [
    (128, 128, 32, 4, False),    # A: 64-byte rows; B MN-major in two 64-wide panels
    (64, 32, 32, 4, False),      # B MN-major, one 32-wide panel (64-byte swizzle)
    (128, 64, 64, 8, True),      # B K-major (transposed), 2 warpgroups along M
    (64, 128, 128, 8, False),    # A in two K panels; 2 warpgroups along N (one B panel each)
])
def test_wgmma_reads_the_generated_layouts(M, N_, K, warps, trans_b):
    run(M, N_, K, warps, trans_b)


def test_wgmma_kernel_source_and_sass():
    from tilec.backends.cuda.codegen import generate
    text = generate(cs.irkit.gemm(dtype="bfloat16"), "sm_90a", {"wgmma": True}).text
    accumulator = ("float C_f[128];  // irkit.py:9:5  fragment C_f: registers, wgmma accumulator layout, "
                   "4x1 warps (warpgroups of 4 along rows)")
    wgmma_call = ("tilec::wgmma_m64n128k16_bf16_tb1(&C_f[_mt * 64], "
                  "tilec::gmma_desc(&A_s[(_it_1 % 3) * 4096 + tilec::swz_panel<128, 32>(_m0 + _mt * 64, _kk * 16)], "
                  "16, 512, 2), "
                  "tilec::gmma_desc(&B_s[(_it_1 % 3) * 4096 + tilec::swz_panel<32, 64>(_kk * 16, _n0)], "
                  "4096, 1024, 1));")
    cs.filecheck(text, ("""
    CHECK: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
    CHECK: half{{.*}}A_s{{.*}}wgmma panels of 32
    CHECK: """ + accumulator + """
    CHECK: tilec::cp_async_wait<1>();
    CHECK-NEXT: tilec::fence_proxy_async();
    CHECK-NEXT: __syncthreads();
    CHECK: tilec::wgmma_fence();
    CHECK: """ + wgmma_call + """
    CHECK: tilec::wgmma_commit();
    CHECK-NEXT: tilec::wgmma_wait<0>();
    CHECK: const int _i = tilec::mma_row<32, 1, 16, true>(_r, _warp, _lane);
    """).replace("half{{.*}}", "__nv_bfloat16{{.*}}"))
    assert "wgmma_m64" not in generate(cs.irkit.gemm(dtype="bfloat16"), "sm_80", {"wgmma": True}).text
    if cs.have_nvcc() and cs.cuobjdump():
        from tilec.backends.cuda.build import compile_source
        assert "HGMMA.64x128x16.F32.BF16" in cs.sass(compile_source(text, "sm_90a", "cubin"))
