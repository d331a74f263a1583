"""The emulator's instructions (tilec_emu/isa.h) and the code generator's layouts vs the PTX ISA, written out here.

The tables below are transcribed from the PTX ISA text ("Matrix fragments for mma.m16n8k16 with floating point
type", "... for mma.m16n8k32" (.e4m3/.e5m2), "Matrix Fragments for ldmatrix" (m8n8 .b16, .trans), "wgmma
register fragment D (m64nNk16)", the shfl.sync pseudo-code, "Matrix Descriptor Format" and the swizzling
modes) in the ISA's own terms: element index a_i / b_i / c_i of a lane, groupID = laneid >> 2,
threadID_in_group = laneid % 4. They import nothing from isa.h nor from tilec/backends/cuda, so a wrong belief
shared by the emulator and the code generator fails here:
(a) isa.h's ldmatrix / mma place exactly these elements per lane; (b) mma sums exact products (float64 ref);
(c) the generator's layouts (prelude mma_row/mma_col/row_row compiled as written, layout.py's template
arguments, gemm.py's per-lane ldmatrix addresses, wgmma.py's descriptor fields over smem swz_panel) agree;
(d) number conversions vs torch bit for bit; (e) shfl vs the ISA pseudo-code; (f) descriptors and swizzles.
"""
from __future__ import annotations

import ctypes
import hashlib
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import isa_harness as H  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


# ---- the PTX ISA's tables, transcribed ---------------------------------------------------------------------

def ldmatrix_table(num: int, trans: bool) -> dict:
    """(lane, reg, half) -> (matrix, row, col) in the 8x8 matrices as stored (row j's address from lane 8*m+j).

    ISA: "each thread in a warp holds two elements of a row": thread l holds row l/4, elements 2*(l%4) and
    2*(l%4)+1 of each matrix, one matrix per destination register; .trans delivers the transposed matrix."""
    t = {}
    for lane in range(32):
        for reg in range(num):
            for half in range(2):
                r, c = lane // 4, 2 * (lane % 4) + half
                t[lane, reg, half] = (reg, c, r) if trans else (reg, r, c)
    return t


def mma_k16_a(lane: int, i: int) -> tuple[int, int]:
    """m16n8k16 .f16/.bf16 A (16x16, row): a_i, i in 0..7, two per register (a0,a1 | a2,a3 | ...)."""
    g, t = lane >> 2, lane % 4
    row = g if i in (0, 1, 4, 5) else g + 8
    col = t * 2 + (i & 1) if i < 4 else t * 2 + 8 + (i & 1)
    return row, col


def mma_k16_b(lane: int, i: int) -> tuple[int, int]:
    """m16n8k16 B (16x8, col): b_i, i in 0..3 -> (k, n)."""
    g, t = lane >> 2, lane % 4
    return (t * 2 + (i & 1) if i < 2 else t * 2 + 8 + (i & 1)), g


def mma_c(lane: int, i: int) -> tuple[int, int]:
    """m16n8k{16,32} C/D (16x8, f32): c_i, i in 0..3."""
    g, t = lane >> 2, lane % 4
    return (g if i < 2 else g + 8), t * 2 + (i & 1)


def mma_k32_a(lane: int, i: int) -> tuple[int, int]:
    """m16n8k32 .e4m3/.e5m2 A (16x32): a_i, i in 0..15, four per register."""
    g, t = lane >> 2, lane % 4
    row = g if (i < 4 or 8 <= i < 12) else g + 8
    col = t * 4 + (i & 3) if i < 8 else t * 4 + 16 + (i & 3)
    return row, col


def mma_k32_b(lane: int, i: int) -> tuple[int, int]:
    """m16n8k32 B (32x8): b_i, i in 0..7 -> (k, n)."""
    g, t = lane >> 2, lane % 4
    return (t * 4 + (i & 3) if i < 4 else t * 4 + 16 + (i & 3)), g


def wgmma_d(thread: int, i: int) -> tuple[int, int]:
    """wgmma m64nNk16 f32 accumulator D: thread of the warpgroup, d_i, i in 0..N/2-1."""
    w, lane = thread // 32, thread % 32
    g, t = lane >> 2, lane % 4
    return 16 * w + g + (8 if i % 4 >= 2 else 0), (i // 4) * 8 + t * 2 + (i & 1)


def shfl_ref(mode: str, vals, b, c: int, active):
    """The PTX ISA's shfl.sync pseudo-code, per lane."""
    out, pred = {}, {}
    cval, segmask = c & 31, (c >> 8) & 31
    for lane in range(32):
        if not active[lane]:
            continue
        bval = int(b[lane]) & 31
        max_lane = (lane & segmask) | (cval & ~segmask)
        min_lane = lane & segmask
        if mode == "up":
            j = lane - bval
            p = j >= max_lane
        elif mode == "down":
            j = lane + bval
            p = j <= max_lane
        elif mode == "bfly":
            j = lane ^ bval
            p = j <= max_lane
        else:
            j = min_lane | (bval & ~segmask & 31)
            p = j <= max_lane
        out[lane], pred[lane] = vals[j if p else lane], p
    return out, pred


def cuda_shfl(mode: str, vals, arg: int, width: int):
    """CUDA C Programming Guide semantics of __shfl_*_sync(full mask, v, arg, width) (a second oracle)."""
    res = []
    for lane in range(32):
        base, pos = lane - lane % width, lane % width
        src = {"idx": base + arg % width,
               "up": lane - arg if pos - arg >= 0 else lane,
               "down": lane + arg if pos + arg < width else lane,
               "bfly": (lane ^ arg) if (lane ^ arg) < base + width else lane}[mode]  # earlier groups: allowed
        res.append(vals[src])
    return res


def swizzle(addr: int, mode: int) -> int:
    """The ISA's swizzle modes: 128B -- the 16-byte chunk c of 128-byte row r (of an 8-row, 1024-byte repeating
    pattern) goes to chunk c ^ (r % 8); 64B -- chunk c (of 4) of the 64-byte row r goes to c ^ ((r // 2) % 4);
    32B -- chunk c (of 2) of 32-byte row r goes to c ^ ((r // 4) % 2). Patterns repeat at 1024/512/256 bytes."""
    if mode == 0:
        return addr
    width = {1: 128, 2: 64, 3: 32}[mode]
    chunks = width // 16
    row, chunk, byte = addr // width, (addr % width) // 16, addr % 16
    key = (row // (8 // chunks)) % chunks if chunks < 8 else row % 8
    return row * width + (chunk ^ key) * 16 + byte


def canonical_offset(start, lbo, sbo, mode, k_major, eb, mn, k):
    """Byte address of operand element (mn, k) in the ISA's canonical shared-memory layouts.

    Core matrix = 8 rows of 16 bytes; with swizzling the repeating unit is 8 rows of the swizzle width.
    K-major: rows run along MN, SBO steps 8 MN-rows, LBO steps along K (one core matrix / one swizzle row).
    MN-major: rows run along K, SBO steps 8 K-rows, LBO steps along MN past one core-matrix/swizzle width."""
    width = {0: 16, 1: 128, 2: 64, 3: 32}[mode]
    if k_major:
        along, rows = k * eb, mn
    else:
        along, rows = mn * eb, k
    addr = start + (rows // 8) * sbo + (rows % 8) * width + (along // width) * lbo + along % width
    return swizzle(addr, mode)


# ---- helpers -----------------------------------------------------------------------------------------------

def _pack(vals, bits):
    """Pack a list of 32/bits small values (low first) into one register."""
    r = 0
    for j, v in enumerate(vals):
        r |= int(v) << (bits * j)
    return r


def _f16_bits(x: np.ndarray, kind: str) -> np.ndarray:
    dt = torch.float16 if kind == "f16" else torch.bfloat16
    return torch.from_numpy(np.asarray(x, np.float32)).to(dt).view(torch.int16).numpy().view(np.uint16)


def _fp8_bits(x: np.ndarray, kind: str) -> np.ndarray:
    dt = torch.float8_e4m3fn if kind == "e4m3" else torch.float8_e5m2
    return torch.from_numpy(np.asarray(x, np.float32)).to(dt).view(torch.uint8).numpy()


# ---- (a) per-lane placements -------------------------------------------------------------------------------

@pytest.mark.parametrize("num", [1, 2, 4])
@pytest.mark.parametrize("trans", [False, True])
def test_ldmatrix_per_lane(num, trans):
    rng = np.random.default_rng(num + 10 * trans)
    smem_bytes = 4096
    # matrix m row j at a scattered 16-byte aligned address; element value = unique 16-bit id
    slots = rng.permutation(smem_bytes // 16)[:32]
    addr = (slots * 16).astype(np.uint32)
    smem = np.zeros(smem_bytes // 2, np.uint16)
    for m in range(num):
        for j in range(8):
            smem[addr[8 * m + j] // 2: addr[8 * m + j] // 2 + 8] = [(m << 8) | (j << 4) | c for c in range(8)]
    lanes = 8 * num
    addr[lanes:] = 3  # lanes past 8*num are not read: a misaligned address there must not be reported
    out, n = H.ldmatrix(num, trans, smem.view(np.uint8), addr)
    assert n == lanes, f"ldmatrix.x{num} made {n} accesses (or -errors), expected {lanes} row reads"
    for (lane, reg, half), (m, r, c) in ldmatrix_table(num, trans).items():
        got = (int(out[lane, reg]) >> (16 * half)) & 0xFFFF
        assert got == (m << 8) | (r << 4) | c, (lane, reg, half, hex(got))
    assert not out[:, num:].any()


def test_ldmatrix_rejects_bad_rows():
    addr = np.arange(32, dtype=np.uint32) * 16
    addr[5] = 8
    _, n = H.ldmatrix(1, False, np.zeros(1024, np.uint8), addr)
    assert n < 0
    addr[5] = 1024 - 8
    _, n = H.ldmatrix(1, False, np.zeros(1024, np.uint8), addr)
    assert n < 0


def _frag_regs(table, shape, vals_bits, per_reg, bits, nregs):
    """Registers [32, nregs] from element bits matrix vals_bits[shape] via the ISA table."""
    regs = np.zeros((32, nregs), np.uint32)
    for lane in range(32):
        for r in range(nregs):
            regs[lane, r] = _pack([vals_bits[table(lane, r * per_reg + j)] for j in range(per_reg)], bits)
    return regs


def _c_regs(c):
    return np.array([[c[mma_c(lane, i)] for i in range(4)] for lane in range(32)], np.float32)


def _d_matrix(d):
    out = np.full((16, 8), np.nan)
    for lane in range(32):
        for i in range(4):
            out[mma_c(lane, i)] = d[lane, i]
    return out


@pytest.mark.parametrize("ab", ["f16", "bf16", "e4m3", "e5m2"])
def test_mma_placement_one_hot(ab):
    """One-hot A and B: D[m, n] = 1 exactly where the ISA's tables put A[m, k] and B[k, n] -- any lane/reg
    permutation in isa.h's fragment decoding moves the 1."""
    k = 16 if ab in ("f16", "bf16") else 32
    at, bt = (mma_k16_a, mma_k16_b) if k == 16 else (mma_k32_a, mma_k32_b)
    per, bits = (2, 16) if k == 16 else (4, 8)
    enc = (lambda x: _f16_bits(x, ab)) if k == 16 else (lambda x: _fp8_bits(x, ab))
    rng = np.random.default_rng(k)
    for _ in range(6):
        m0, n0, k0 = int(rng.integers(16)), int(rng.integers(8)), int(rng.integers(k))
        a = np.zeros((16, k), np.float32)
        b = np.zeros((k, 8), np.float32)
        a[m0, k0] = 2.0
        b[k0, n0] = 3.0
        c = rng.integers(-4, 5, (16, 8)).astype(np.float32)
        d = H.mma(k, ab, _frag_regs(at, a.shape, enc(a), per, bits, 4), _frag_regs(bt, b.shape, enc(b), per, bits, 2),
                  _c_regs(c))
        want = c.copy()
        want[m0, n0] += 6.0
        np.testing.assert_array_equal(_d_matrix(d), want)


# ---- (b) mma arithmetic vs float64 --------------------------------------------------------------------------

@pytest.mark.parametrize("ab", ["f16", "bf16", "e4m3", "e5m2"])
def test_mma_random_vs_float64(ab):
    k = 16 if ab in ("f16", "bf16") else 32
    at, bt = (mma_k16_a, mma_k16_b) if k == 16 else (mma_k32_a, mma_k32_b)
    per, bits = (2, 16) if k == 16 else (4, 8)
    rng = np.random.default_rng(7)
    for trial in range(4):
        a = rng.standard_normal((16, k)).astype(np.float32) * (4 if trial % 2 else 1)
        b = rng.standard_normal((k, 8)).astype(np.float32)
        c = rng.standard_normal((16, 8)).astype(np.float32)
        if k == 16:
            ab_, bb_ = _f16_bits(a, ab), _f16_bits(b, ab)
            dt = torch.float16 if ab == "f16" else torch.bfloat16
            a64, b64 = (torch.from_numpy(x.view(np.int16)).view(dt).double().numpy() for x in (ab_, bb_))
        else:
            ab_, bb_ = _fp8_bits(a, ab), _fp8_bits(b, ab)
            dt = torch.float8_e4m3fn if ab == "e4m3" else torch.float8_e5m2
            a64, b64 = (torch.from_numpy(x).view(dt).double().numpy() for x in (ab_, bb_))
        d = H.mma(k, ab, _frag_regs(at, a.shape, ab_, per, bits, 4), _frag_regs(bt, b.shape, bb_, per, bits, 2),
                  _c_regs(c))
        got = _d_matrix(d)
        ref = a64 @ b64 + c.astype(np.float64)
        # products are exact in fp32; only the k+1 fp32 additions round: |err| <= (k+1) * 2^-24 * sum|terms|
        bound = (k + 1) * 2.0 ** -24 * (np.abs(a64) @ np.abs(b64) + np.abs(c))
        assert np.all(np.abs(got - ref) <= bound + 1e-30), np.max(np.abs(got - ref) - bound)
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-6


def test_mma_small_integers_exact_and_d_aliases_c():
    a = (np.arange(256).reshape(16, 16) % 7 - 3).astype(np.float32)
    b = (np.arange(128).reshape(16, 8) % 5 - 2).astype(np.float32)
    c = np.ones((16, 8), np.float32)
    ar = _frag_regs(mma_k16_a, a.shape, _f16_bits(a, "f16"), 2, 16, 4)
    br = _frag_regs(mma_k16_b, b.shape, _f16_bits(b, "f16"), 2, 16, 2)
    cr = _c_regs(c)
    lib = H.lib()
    lib.mma(16, H.AB["bf16"], ar * 0, br * 0, cr, cr)  # d aliases c: zero product keeps c
    np.testing.assert_array_equal(cr, _c_regs(c))
    d = H.mma(16, "f16", ar, br, cr)
    np.testing.assert_array_equal(_d_matrix(d), a @ b + c)


def test_wgmma_accumulator_layout():
    """wgmma m64n16k16 from K-major, unswizzled descriptors: each thread's d_i is D at wgmma_d(thread, i)."""
    n, rng = 16, np.random.default_rng(3)
    a = rng.integers(-3, 4, (64, 16)).astype(np.float32)
    b = rng.integers(-3, 4, (n, 16)).astype(np.float32)  # B stored [N, K] (K-major)
    smem = np.zeros(8192, np.uint8)
    abase, bbase = 0, 4096
    # no-swizzle K-major core matrices: 8 rows x 16 bytes; LBO = next core matrix along K, SBO = next 8 rows
    lbo, sbo = 128, 256
    for base, mat in ((abase, a), (bbase, b)):
        bits = _f16_bits(mat, "f16")
        for mn in range(mat.shape[0]):
            for k in range(16):
                off = canonical_offset(base, lbo, sbo, 0, True, 2, mn, k)
                smem[off:off + 2] = np.frombuffer(bits[mn, k].tobytes(), np.uint8)
    desc = [((base >> 4) & 0x3FFF) | ((lbo >> 4) << 16) | ((sbo >> 4) << 32) for base in (abase, bbase)]
    d, acc = H.wgmma("f16", n, desc[0], desc[1], 0, 0, 0, smem)
    assert acc > 0
    ref = a @ b.T
    for t in range(128):
        for i in range(n // 2):
            assert d[t, i] == ref[wgmma_d(t, i)], (t, i)


# ---- (c) the code generator's layouts vs the same tables ----------------------------------------------------

_LAYOUTS = [(32, 16, 1, 1), (64, 32, 2, 2), (64, 64, 4, 1), (128, 64, 2, 4), (64, 128, 4, 2)]
_WG_LAYOUTS = [(64, 32, 4, 1), (128, 64, 8, 1), (128, 128, 4, 2)]


@lru_cache(maxsize=1)
def _prelude_layouts() -> ctypes.CDLL:
    """The prelude's mma_row / mma_col / row_row / swz / swz_panel exactly as the generated CUDA contains them,
    instantiated with layout.py's template_args() for a few layouts and compiled with g++."""
    from tilec.backends.cuda.layout import MmaLayout
    text = (ROOT / "tilec/backends/cuda/templates/prelude.cuh.j2").read_text()
    start = text.index("template <int WM, int WGN, int NT, bool WG>")
    end = text.index("}", text.index("swz_panel(int r, int c)")) + 1
    src = ["#define __device__", "#define __forceinline__ inline", "namespace tilec {", text[start:end], "}",
           'extern "C" {']
    for j, (m, n, wm, wn) in enumerate(_LAYOUTS + _WG_LAYOUTS):
        wg = j >= len(_LAYOUTS)
        lay = MmaLayout(m, n, wm, wn, wg)
        targs, rargs = lay.template_args(), lay.row().template_args()
        cargs = f"{lay.n // lay.wn}, {lay.wn}, {lay.nt}, {str(wg).lower()}"  # as emit.py writes mma_col<...>
        src.append(f"void lay{j}(int* out) {{ int p = 0; for (int w = 0; w < {wm * wn}; ++w) "
                   f"for (int l = 0; l < 32; ++l) for (int r = 0; r < {lay.regs}; ++r) {{ "
                   f"out[p++] = tilec::mma_row<{targs}>(r, w, l); out[p++] = tilec::mma_col<{cargs}>(r, w, l); "
                   f"out[p++] = r < {lay.row().regs} ? tilec::row_row<{rargs}>(r, w, l) : -1; }} }}")
    for r, p in ((64, 64), (64, 32), (128, 64)):
        src.append(f"int panel_{r}_{p}(int r, int c) {{ return tilec::swz_panel<{r}, {p}>(r, c); }}")
    src.append("}")
    key = hashlib.sha256("\n".join(src).encode()).hexdigest()[:20]
    out = H.runtime_cache.cache_dir("cuda-emu-isa") / f"prelude-{key}.so"
    if not out.exists():
        cpp = out.with_suffix(".cpp")
        cpp.write_text("\n".join(src))
        subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC", str(cpp), "-o", str(out)], check=True)
    return ctypes.CDLL(str(out))


@pytest.mark.parametrize("j", range(len(_LAYOUTS) + len(_WG_LAYOUTS)))
def test_codegen_accumulator_layout(j):
    """Register r of warp w, lane l (prelude mma_row/mma_col with layout.py's template args) is element
    c_{r%4} of mma tile (r//4) -- the ISA's C table (m16n8) or wgmma D table (m64nN) -- and each element of
    the m x n tile has exactly one owner; row_row gives the rows of c_0 / c_2."""
    from tilec.backends.cuda.layout import MmaLayout
    wg = j >= len(_LAYOUTS)
    m, n, wm, wn = (_LAYOUTS + _WG_LAYOUTS)[j]
    lay = MmaLayout(m, n, wm, wn, wg)
    assert lay.regs == (m // wm // 16) * (n // wn // 8) * 4
    buf = (ctypes.c_int * (wm * wn * 32 * lay.regs * 3))()
    getattr(_prelude_layouts(), f"lay{j}")(buf)
    got = np.frombuffer(buf, np.int32).reshape(wm * wn, 32, lay.regs, 3)
    owners = np.zeros((m, n), int)
    mt, nt = lay.mt, lay.nt
    for w in range(wm * wn):
        for lane in range(32):
            for r in range(lay.regs):
                row, col, rrow = got[w, lane, r]
                owners[row, col] += 1
                tile, i = divmod(r, 4)
                if wg:  # warpgroups wm/4 x wn; each 64 x (n/wn) tile: wgmma D, register i + 4*nt_index
                    grp, q = divmod(w, 4)
                    g_m, g_n = divmod(grp, wn)
                    tm, tn = divmod(tile, nt)
                    dr, dc = wgmma_d(q * 32 + lane, tn * 4 + i)
                    want = (g_m * (m // (wm // 4)) + tm * 64 + dr, g_n * (n // wn) + dc)
                else:
                    w_m, w_n = divmod(w, wn)
                    tm, tn = divmod(tile, nt)
                    cr, cc = mma_c(lane, i)
                    want = (w_m * (m // wm) + tm * 16 + cr, w_n * (n // wn) + tn * 8 + cc)
                assert (row, col) == want, (w, lane, r)
                if r < lay.row().regs:  # row register q = tile*2 + h holds the rows of c_{2h}
                    t2, h = divmod(r, 2)
                    assert rrow == got[w, lane, t2 * nt * 4 + 2 * h, 0], (w, lane, r)
    assert (owners == 1).all()


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("x4", [True, False])
def test_codegen_ldmatrix_addresses_build_mma_fragments(trans_a, trans_b, x4):
    """gemm.py's per-lane ldmatrix addresses (the strings it writes into the CUDA, evaluated) with its .trans
    choices, read through the ISA's ldmatrix table, give each lane the ISA's mma A / B fragment elements."""
    from tilec.backends.cuda import gemm
    def ev(e, **v):
        return eval(e, {}, v)  # noqa: S307 -- the generator's own C/Python expressions
    env = {"_wm0": 0, "_wn0": 0, "_mt": 0, "_kk": 0, "_np": 0, "_nt": 0}
    # A: 16x16 operand stored [M, K] (or [K, M] when trans_a); element id = (m, k)
    rows = {lane: tuple(ev(e, _lane=lane, **env) for e in gemm.A_ADDR[trans_a]) for lane in range(32)}
    tab = ldmatrix_table(4, gemm.A_TRANS_LDMATRIX[trans_a])
    for lane in range(32):
        for reg in range(4):
            for half in range(2):
                mat, r, c = tab[lane, reg, half]
                srow, scol = rows[8 * mat + r]
                elem = (srow, scol + c)  # row r of matrix mat starts at that lane's address
                mk = (elem[1], elem[0]) if trans_a else elem
                assert mk == mma_k16_a(lane, 2 * reg + half), ("A", lane, reg, half)
    # B: K x 8 per n tile; stored [K, N] (trans_b False) or [N, K]
    addr = gemm.B_ADDR_X4 if x4 else gemm.B_ADDR_X2
    for nt in range(2 if x4 else 1):
        env_b = dict(env, _np=0, _nt=nt)
        rows = {lane: tuple(ev(e, _lane=lane, **env_b) for e in addr[trans_b]) for lane in range(32)}
        tab = ldmatrix_table(4 if x4 else 2, gemm.B_TRANS_LDMATRIX[trans_b])
        for lane in range(32):
            for reg in range(2):
                for half in range(2):
                    treg = 2 * nt + reg if x4 else reg  # x4: _b[2*_np][0..1] = _t[0..1], _b[2*_np+1] = _t[2..3]
                    mat, r, c = tab[lane, treg, half]
                    srow, scol = rows[8 * mat + r]
                    elem = (srow, scol + c)
                    kn = elem if not trans_b else (elem[1], elem[0])
                    k_, n_ = mma_k16_b(lane, 2 * reg + half)
                    assert kn == (k_, n_ + 8 * nt), ("B", nt, lane, reg, half)


@pytest.mark.parametrize("rows,panel,mn_major", [(64, 64, False), (64, 32, False), (128, 64, True),
                                                 (64, 64, True)])
def test_codegen_wgmma_descriptors_address_smem_layout(rows, panel, mn_major):
    """wgmma.py's descriptor fields over a buffer laid out by the prelude's swz_panel: the ISA's canonical
    layout (this file's formula) finds every element of each 16-deep k step where swz_panel put it."""
    from tilec.ir import nodes as IR
    from tilec.backends.cuda.wgmma import desc_fields
    cols = 128 if panel == 64 else 32
    buf = IR.Buffer("b", (IR.Const(rows), IR.Const(cols)), "float16", "shared")
    lbo, sbo, mode = desc_fields(buf, mn_major)
    swz = getattr(_prelude_layouts(), f"panel_{rows}_{panel}")
    base = 1024 * 3  # a 1024-byte aligned buffer start
    def elem(r, c):
        return base + 2 * swz(r, c)
    for step in range(2):
        if not mn_major:  # [MN, K] buffer, K contiguous: descriptor at (mn0, k0 = 16*step)
            start = elem(0, 16 * step)
            for mn in range(rows):
                for k in range(16):
                    assert canonical_offset(start, lbo, sbo, mode, True, 2, mn, k) == elem(mn, 16 * step + k)
        else:  # [K, MN] buffer, MN contiguous: descriptor at (k0 = 16*step, mn0 = 0), MN extent cols
            start = elem(16 * step, 0)
            for k in range(16):
                for mn in range(cols):
                    assert canonical_offset(start, lbo, sbo, mode, False, 2, mn, k) == elem(16 * step + k, mn)


# ---- (d) number conversions vs torch --------------------------------------------------------------------------

def _same_or_both_nan(got: np.ndarray, want: np.ndarray, what: str):
    gn, wn = np.isnan(got), np.isnan(want)
    assert (gn == wn).all(), f"{what}: NaN-ness differs at {np.flatnonzero(gn != wn)[:8]}"
    assert (got.view(np.uint32)[~gn] == want.view(np.uint32)[~wn]).all() if got.dtype == np.float32 else \
        (got[~gn] == want[~wn]).all(), what


@pytest.mark.parametrize("kind", ["f16", "bf16", "e4m3", "e5m2"])
def test_decode_all_patterns(kind):
    if kind in ("f16", "bf16"):
        bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        got = H.decode16(kind, bits)
        want = torch.from_numpy(bits.view(np.int16)).view(torch.float16 if kind == "f16" else torch.bfloat16)
    else:
        bits = np.arange(256, dtype=np.uint8)
        got = H.decode8(kind, bits)
        want = torch.from_numpy(bits).view(torch.float8_e4m3fn if kind == "e4m3" else torch.float8_e5m2)
    want = want.float().numpy()
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all()
    assert (got.view(np.uint32)[~nan] == want.view(np.uint32)[~nan]).all(), kind  # -0.0, subnormals, inf
    if kind == "e4m3":
        assert nan.sum() == 2 and got[0x7E] == 448.0
    # NaN bits: CUDA's conversions (the software paths of cuda_fp16.hpp __internal_half2float and
    # cuda_fp8.hpp __nv_cvt_fp8_to_halfraw) give the canonical float NaN 0x7fffffff, sign dropped; a
    # bf16 -> f32 is a shift and keeps the bits. torch keeps payloads, so it is not the oracle here.
    if kind == "bf16":
        assert (got.view(np.uint32)[nan] == bits[nan].astype(np.uint32) << 16).all()
    else:
        assert (got.view(np.uint32)[nan] == 0x7FFFFFFF).all(), kind


def _dense_f32() -> np.ndarray:
    """Every f16/bf16 value's neighbourhood (exact, +-1 ulp of f32, midpoints = ties and +-1 ulp around them),
    f32 subnormals, overflow edges, inf, NaNs, and 2^18 random bit patterns."""
    f16 = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(torch.float16).float().numpy()
    bf = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).float().numpy()
    parts = []
    for v in (f16, bf):
        v = np.sort(v[np.isfinite(v)].astype(np.float64))
        mid = ((v[1:] + v[:-1]) / 2).astype(np.float32)  # exact in f32 for both formats
        v32 = v.astype(np.float32)
        for x in (v32, mid):
            parts += [x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))]
    rng = np.random.default_rng(0)
    parts.append(rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32).view(np.float32))
    parts.append(np.arange(0, 1 << 12, dtype=np.uint32).view(np.float32))  # f32 subnormals
    parts.append(np.array([np.inf, -np.inf, np.nan, -np.nan, 65504, 65519.996, 65520, 448, 464, 480, 57344,
                           61440, 3.4e38, -3.4e38, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 2.0 ** -9,
                           2.0 ** -10, 2.0 ** -17, 2.0 ** -16 * 1.5], np.float32))
    parts.append(np.array([0x7F800001, 0x7FC00000, 0xFFC00001, 0x7FBFFFFF, 0x7F802000], np.uint32).view(np.float32))
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("kind", ["f16", "bf16"])
def test_encode16_vs_torch(kind):
    x = _dense_f32()
    got = H.encode16(kind, x)
    dt = torch.float16 if kind == "f16" else torch.bfloat16
    want = torch.from_numpy(x).to(dt).view(torch.int16).numpy().view(np.uint16)
    is_nan = np.isnan(x)
    assert (got[~is_nan] == want[~is_nan]).all(), x[~is_nan][got[~is_nan] != want[~is_nan]][:8]
    # every NaN (either sign, any payload) becomes the canonical 0x7fff, as cuda_fp16.hpp's
    # __internal_float2half and cuda_bf16.hpp's __internal_float2bfloat16 return (torch keeps sign/payload)
    assert is_nan.sum() >= 5 and (got[is_nan] == 0x7FFF).all(), np.unique(got[is_nan])


@pytest.mark.parametrize("kind,limit", [("e4m3", 448.0), ("e5m2", 57344.0)])
def test_encode8_satfinite_vs_torch(kind, limit):
    """satfinite = clamp to +-max then round (torch's cast overflows to NaN / inf, so it gets the clamped x)."""
    x = _dense_f32()
    e = torch.arange(-(1 << 7), 1 << 7, dtype=torch.int32).to(torch.int8).view(torch.uint8)
    v = e.view(torch.float8_e4m3fn if kind == "e4m3" else torch.float8_e5m2).float().numpy().astype(np.float64)
    v = np.sort(v[np.isfinite(v)])
    mid = ((v[1:] + v[:-1]) / 2).astype(np.float32)
    x = np.concatenate([x, mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))])
    got = H.encode8(kind, x)
    is_nan = np.isnan(x)
    want = _fp8_bits(np.clip(x[~is_nan], -limit, limit), kind)
    bad = got[~is_nan] != want
    assert not bad.any(), (x[~is_nan][bad][:8], got[~is_nan][bad][:8], want[bad][:8])
    assert (got[is_nan] == 0x7F).all()
    assert got[np.flatnonzero(x == np.inf)[0]] == (0x7E if kind == "e4m3" else 0x7B)


# ---- (e) shfl / vote --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["idx", "up", "down", "bfly"])
@pytest.mark.parametrize("width", [32, 16, 8])
def test_shfl_vs_pseudocode(mode, width):
    rng = np.random.default_rng(width)
    vals = rng.integers(0, 1 << 32, 32, dtype=np.uint64).astype(np.uint32)
    c = H.shfl_c(mode, width)
    assert c == ((32 - width) << 8) | (0 if mode == "up" else 31)
    masks = [np.ones(32, bool), np.arange(32) % 3 != 0, np.arange(32) < 16]
    args = list(range(0, 32)) if mode != "bfly" else [0, 1, 2, 4, 8, 16, 3, 31]
    for active in masks:
        for arg in args:
            b = np.full(32, arg, np.uint32) if arg % 5 else rng.integers(0, 64, 32).astype(np.uint32)
            before = np.full(32, 0xDEADBEEF, np.uint32)
            out, pred = H.shfl(mode, vals, b, c, active.astype(np.uint8), before)
            ref, rpred = shfl_ref(mode, vals, b, c, active)
            for lane in range(32):
                if active[lane]:
                    assert (out[lane], pred[lane]) == (ref[lane], rpred[lane]), (mode, width, arg, lane)
                else:
                    assert out[lane] == 0xDEADBEEF and not pred[lane]
            if active.all() and arg % 5:
                assert list(out) == cuda_shfl(mode, vals, arg, width), (mode, width, arg)


def test_vote():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p, act = rng.random(32) < 0.5, rng.random(32) < 0.7
        want = sum(1 << i for i in range(32) if p[i] and act[i])
        assert H.vote("ballot", p.astype(np.uint8), act.astype(np.uint8)) == want
        assert H.vote("all", p.astype(np.uint8), act.astype(np.uint8)) == int(all(p[act]))
        assert H.vote("any", p.astype(np.uint8), act.astype(np.uint8)) == int(any(p[act]))
        assert H.vote("uni", p.astype(np.uint8), act.astype(np.uint8)) == int(len(set(p[act])) <= 1)


# ---- (f) matrix descriptors and swizzles -----------------------------------------------------------------------

def test_descriptor_decode():
    rng = np.random.default_rng(5)
    for _ in range(200):
        d = int(rng.integers(0, 1 << 63, dtype=np.uint64)) | (int(rng.integers(0, 2)) << 63)
        want = ((d & 0x3FFF) << 4, ((d >> 16) & 0x3FFF) << 4, ((d >> 32) & 0x3FFF) << 4, (d >> 49) & 7, d >> 62)
        assert H.decode_desc(d) == want


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("k_major", [True, False])
def test_descriptor_element_offsets(mode, k_major):
    lbo, sbo = (128, 256) if mode == 0 else (4096, {1: 1024, 2: 512, 3: 256}[mode])
    for start in (0, 2048):
        d = (start >> 4) | ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (mode << 62)
        for mn in range(64):
            for k in range(16):
                assert H.elem_off(d, k_major, 2, mn, k) == canonical_offset(start, lbo, sbo, mode, k_major, 2, mn, k)


def test_swizzle_is_the_isa_pattern():
    """The 128B pattern as the ISA draws it: row r's chunks are c ^ (r % 8) -- e.g. row 1 swaps chunk 0 and 1."""
    assert [swizzle(128 + 16 * c, 1) // 16 - 8 for c in range(8)] == [1, 0, 3, 2, 5, 4, 7, 6]
    assert [swizzle(7 * 128 + 16 * c, 1) // 16 - 56 for c in range(8)] == [7 - c for c in range(8)]
    assert [swizzle(2 * 64 + 16 * c, 2) // 16 - 8 for c in range(4)] == [1, 0, 3, 2]
    assert [swizzle(4 * 32 + 16 * c, 3) // 16 - 8 for c in range(2)] == [1, 0]
    for mode in (1, 2, 3):  # a permutation of each 1024-byte block
        assert sorted(swizzle(a, mode) for a in range(0, 1024, 16)) == list(range(0, 1024, 16))


def test_no_table_is_vacuous():
    """Guard: the transcribed tables are bijections onto their matrices (a typo here would weaken every test)."""
    for table, n, shape in ((mma_k16_a, 8, (16, 16)), (mma_k16_b, 4, (16, 8)), (mma_c, 4, (16, 8)),
                            (mma_k32_a, 16, (16, 32)), (mma_k32_b, 8, (32, 8))):
        cells = {table(lane, i) for lane in range(32) for i in range(n)}
        assert len(cells) == shape[0] * shape[1] == 32 * n
    assert len({wgmma_d(t, i) for t in range(128) for i in range(64)}) == 64 * 128
    for num in (1, 2, 4):
        for trans in (False, True):
            assert len(set(ldmatrix_table(num, trans).values())) == 64 * num
