"""The tensor-core path checked without a GPU: a Python model of one block executing the codegen's own
ldmatrix addresses (gemm.A_ADDR, B_ADDR_*), swizzle, register layouts and packing against the PTX ISA's
definitions of ldmatrix (.trans) and mma.m16n8k16 fragments, compared with numpy's A @ B.

The address formulas are the very strings the generator writes into the CUDA source (they are valid
Python too); the fragment semantics below are written from the PTX documentation, independently of
the generator. A mismatch anywhere (a lane formula, the x4 matrix order, transposition, swizzle,
register numbering) gives a wrong product here.
"""
from __future__ import annotations

import numpy as np
import pytest

from tilec.backends.cuda import emit, gemm, tileops
from tilec.backends.cuda.layout import MmaLayout, RowLayout
from tilec.backends.cuda.smem import swizzle_params
from tilec.ir import nodes as N


def swz(r: int, c: int, params) -> int:
    """Python twin of tilec::swz<C, V, NC> in the prelude (row-major when params is None)."""
    if params is None:
        raise AssertionError
    C, V, NC = params
    x = (r & 7) if NC >= 8 else ((r // (8 // NC)) & (NC - 1))
    return r * C + (((c // V) ^ x) * V) + (c % V)


def mma_row(r, warp, lane, lay: MmaLayout) -> int:
    return (warp // lay.wn) * (lay.m // lay.wm) + ((r >> 2) // lay.nt) * 16 + ((r >> 1) & 1) * 8 + (lane >> 2)


def mma_col(r, warp, lane, lay: MmaLayout) -> int:
    return (warp % lay.wn) * (lay.n // lay.wn) + ((r >> 2) % lay.nt) * 8 + (lane & 3) * 2 + (r & 1)


def row_row(q, warp, lane, lay: RowLayout) -> int:
    return (warp // lay.wn) * (lay.m // lay.wm) + (q >> 1) * 16 + (q & 1) * 8 + (lane >> 2)


class Smem:
    """A 2-D shared tile stored the way smem.py lays it out (swizzled when the generator would)."""

    def __init__(self, logical: np.ndarray):
        rows, cols = logical.shape
        buf = N.Buffer("t", (N.Const(rows), N.Const(cols)), "float16", "shared")
        self.params = swizzle_params(buf)
        self.cols = cols
        self.phys = np.full(rows * cols, np.nan)
        for r in range(rows):
            for c in range(cols):
                self.phys[self.offset(r, c)] = logical[r, c]
        assert not np.isnan(self.phys).any(), "the swizzle is not a permutation"

    def offset(self, r: int, c: int) -> int:
        return swz(r, c, self.params) if self.params else r * self.cols + c

    def row8(self, r: int, c: int) -> np.ndarray:
        """The 16 bytes one lane hands to ldmatrix: 8 consecutive elements (c is a multiple of 8)."""
        assert c % 8 == 0
        off = self.offset(r, c)
        return self.phys[off:off + 8]


def ldmatrix(rows: list[np.ndarray], nmat: int, trans: bool) -> list[list[tuple]]:
    """PTX ldmatrix.m8n8.x{nmat}[.trans].b16: lane 8q+i supplies row i of matrix q; returns regs[lane][q]."""
    out = []
    for t in range(32):
        regs = []
        for q in range(nmat):
            m = np.stack(rows[8 * q:8 * q + 8])
            if trans:
                regs.append((m[2 * (t % 4), t // 4], m[2 * (t % 4) + 1, t // 4]))
            else:
                regs.append((m[t // 4, 2 * (t % 4)], m[t // 4, 2 * (t % 4) + 1]))
        out.append(regs)
    return out


def mma(a, b) -> np.ndarray:
    """PTX mma.m16n8k16 .row.col: a[lane] = 4 regs of 2, b[lane] = 2 regs of 2; returns D (16 x 8)."""
    A, B = np.full((16, 16), np.nan), np.full((16, 8), np.nan)
    for lane in range(32):
        g, t = lane // 4, lane % 4
        for e in range(2):
            A[g, 2 * t + e], A[g + 8, 2 * t + e] = a[lane][0][e], a[lane][1][e]
            A[g, 2 * t + 8 + e], A[g + 8, 2 * t + 8 + e] = a[lane][2][e], a[lane][3][e]
            B[2 * t + e, g], B[2 * t + 8 + e, g] = b[lane][0][e], b[lane][1][e]
    assert not np.isnan(A).any() and not np.isnan(B).any()
    return A @ B


def ev(expr: str, **env) -> int:
    return eval(expr.replace("/", "//"), {}, env)  # the generator's C index expressions


def run_block(M, N_, K, wm, wn, trans_a, trans_b, a_in_regs=False):
    rng = np.random.default_rng(M * 7 + N_ * 3 + K)
    A = rng.integers(-4, 5, (M, K)).astype(np.float64)
    B = rng.integers(-4, 5, (K, N_)).astype(np.float64)
    sa, sb = Smem(A.T if trans_a else A), Smem(B.T if trans_b else B)
    lay = MmaLayout(M, N_, wm, wn)
    play = MmaLayout(M, K, wm, 1)
    acc = np.zeros((wm * wn, 32, lay.regs))
    for warp in range(wm * wn):
        env0 = dict(_wm0=(warp // wn) * (M // wm), _wn0=(warp % wn) * (N_ // wn))
        for kk in range(K // 16):
            a = []
            for mt in range(lay.mt):
                if a_in_regs:  # P in registers with the accumulator layout of an M x K tile
                    regs = []
                    for lane in range(32):
                        val = {r: A[mma_row(r, warp, lane, play), mma_col(r, warp, lane, play)]
                               for r in range(play.regs)}
                        lane_regs = []
                        for step, half in gemm.A_REG_PACK:
                            base = (mt * play.nt + 2 * kk + step) * 4 + half * 2
                            lane_regs.append((val[base], val[base + 1]))
                        regs.append(lane_regs)
                    a.append(regs)
                    continue
                rows = [sa.row8(*(ev(x, _lane=ln, _mt=mt, _kk=kk, **env0) for x in gemm.A_ADDR[trans_a]))
                        for ln in range(32)]
                a.append(ldmatrix(rows, 4, gemm.A_TRANS_LDMATRIX[trans_a]))
            b = [None] * lay.nt
            if lay.nt % 2 == 0:
                for np_ in range(lay.nt // 2):
                    rows = [sb.row8(*(ev(x, _lane=ln, _np=np_, _kk=kk, **env0) for x in gemm.B_ADDR_X4[trans_b]))
                            for ln in range(32)]
                    regs = ldmatrix(rows, 4, gemm.B_TRANS_LDMATRIX[trans_b])
                    b[2 * np_] = [r[0:2] for r in regs]
                    b[2 * np_ + 1] = [r[2:4] for r in regs]
            else:
                for nt in range(lay.nt):
                    rows = [sb.row8(*(ev(x, _lane=ln, _nt=nt, _kk=kk, **env0) for x in gemm.B_ADDR_X2[trans_b]))
                            for ln in range(16)]
                    regs = ldmatrix(rows + rows, 2, gemm.B_TRANS_LDMATRIX[trans_b])
                    b[nt] = regs
            for mt in range(lay.mt):
                for nt in range(lay.nt):
                    d = mma(a[mt], b[nt])
                    for lane in range(32):
                        g, t = lane // 4, lane % 4
                        base = (mt * lay.nt + nt) * 4
                        acc[warp, lane, base:base + 4] += (d[g, 2 * t], d[g, 2 * t + 1], d[g + 8, 2 * t],
                                                           d[g + 8, 2 * t + 1])
    C = np.full((M, N_), np.nan)
    for warp in range(wm * wn):
        for lane in range(32):
            for r in range(lay.regs):
                i, j = mma_row(r, warp, lane, lay), mma_col(r, warp, lane, lay)
                assert np.isnan(C[i, j]), f"element ({i}, {j}) owned twice"
                C[i, j] = acc[warp, lane, r]
    np.testing.assert_array_equal(C, A @ B)


@pytest.mark.parametrize("M,N_,K,wm,wn,ta,tb", [
    (64, 64, 32, 2, 2, False, False),      # A rows of 64 B (4 chunks), B rows of 128 B (8 chunks)
    (32, 64, 64, 1, 2, False, True),       # B transposed: [N, K]
    (64, 32, 32, 2, 1, True, False),       # A transposed: [K, M]
    (32, 32, 128, 2, 1, True, True),       # both, 16-chunk rows
    (32, 24, 32, 2, 1, False, False),      # odd n tiles per warp: ldmatrix.x2; B rows unswizzled
    (16, 48, 16, 1, 2, False, True),       # odd n tiles, transposed B, 2-chunk rows
])
def test_shared_operands(M, N_, K, wm, wn, ta, tb):
    run_block(M, N_, K, wm, wn, ta, tb)


@pytest.mark.parametrize("M,N_,K,wm", [(64, 64, 64, 4), (32, 32, 32, 1)])
def test_a_in_registers(M, N_, K, wm):
    run_block(M, N_, K, wm, 1, False, False, a_in_regs=True)


@pytest.mark.parametrize("lay", [MmaLayout(64, 64, 2, 2), MmaLayout(64, 128, 4, 1), MmaLayout(32, 48, 1, 2)])
def test_row_layout_and_reduce_registers_agree_with_the_mma_layout(lay):
    row = lay.row()
    for warp in range(lay.wm * lay.wn):
        for lane in range(32):
            for r in range(lay.regs):  # T.Parallel over (i, j) reading a row fragment at i
                q = ev(emit.ROW_OF_REG.format(nt=lay.nt), _r=r)
                assert row_row(q, warp, lane, row) == mma_row(r, warp, lane, lay)
            for q in range(row.regs):  # a register reduction over row q visits exactly its columns
                regs = [ev(tileops.REDUCE_REG.format(nt=lay.nt), _q=q, _c=cc) for cc in range(lay.nt * 2)]
                assert {mma_row(r, warp, lane, lay) for r in regs} == {row_row(q, warp, lane, row)}
                cols = sorted(mma_col(r, warp, lane, lay) for r in regs)
                quad = {mma_col(r, warp, lx, lay) for r in regs for lx in range(lane & ~3, (lane & ~3) + 4)}
                assert len(set(cols)) == len(cols)
                assert len(quad) == lay.n // lay.wn  # the quad's shuffles cover the warp's columns
