"""``T.gemm`` on the CUDA backend: tensor cores (ldmatrix + mma.sync.m16n8k16) or an FMA fallback.

The tensor-core path needs float16/bfloat16 operands, a float32 accumulator in a register ``MmaLayout``
(layout.py), and operands in shared memory (2-D, rows of whole 16-byte chunks, swizzled by smem.py so
ldmatrix is free of bank conflicts) -- or operand A in registers with the accumulator layout of a
previous gemm (FlashAttention's P @ V). Each warp computes its ``WM x WN`` tile: per 16-deep k step it
loads A with ``ldmatrix.x4`` (``.trans`` when A is transposed), B with ``ldmatrix.x4.trans`` (``.x4``
when B is transposed, since a transposed B is column-major B), then issues MT x NT mma instructions.
Everything else (float32, int8, float8, accumulators in shared memory) takes the FMA path: each thread
computes the dot products of the accumulator elements it owns.
"""
from __future__ import annotations

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as N

from .cexpr import cname, compute_ctype, convert, from_compute, to_compute
from .layout import MmaLayout, gemm_dims, mma_dtypes, static_int, static_shape, walk


def _operand_ok(em, r: N.Region) -> bool:
    b = r.buffer
    shape = static_shape(b)
    if not em.in_smem(b) or shape is None or len(shape) != 2 or dtypes.itemsize(b.dtype) != 2:
        return False
    col = static_int(r.starts[1])
    return shape[1] % 8 == 0 and col is not None and col % 8 == 0


def uses_mma(em, g: N.Gemm) -> bool:
    lay = em.layouts.get(g.c.buffer.name)
    dims = gemm_dims(g)
    if not mma_dtypes(g) or not isinstance(lay, MmaLayout) or lay.wg or dims is None or dims[2] % 16:
        return False
    a_ok = em.is_reg(g.a.buffer) or _operand_ok(em, g.a)
    return a_ok and _operand_ok(em, g.b)


def swizzled_operands(em) -> set[str]:
    """Shared buffers read by ldmatrix: they get the XOR swizzle of smem.swizzle_params."""
    out: set[str] = set()
    for s in walk(em.launch.body):
        if isinstance(s, N.Gemm) and uses_mma(em, s):
            out.add(s.b.buffer.name)
            if not em.is_reg(s.a.buffer):
                out.add(s.a.buffer.name)
    return out


def emit(em, g: N.Gemm) -> None:
    dims = gemm_dims(g)
    if dims is None:
        raise TilecError("cuda: gemm needs tiles of constant shape", g.loc)
    if g.c.buffer.scope == "local":
        raise TilecError("cuda: a gemm accumulating into a local buffer is not supported (use a fragment)",
                         g.loc)
    if em.is_reg(g.a.buffer) and not uses_mma(em, g) or em.is_reg(g.b.buffer):
        raise TilecError("cuda: gemm operand in registers needs the tensor-core path", g.loc)
    if uses_mma(em, g):
        _emit_mma(em, g, *dims)
    else:
        _emit_fma(em, g, *dims)


# Per-lane ldmatrix addresses, as (row, col) of the operand's 2-D region, by (operand, transposed).
# Lanes 8q..8q+7 give the 8 rows of matrix q. A (16x16, x4): matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15)
# in the order a0a1, a2a3, a4a5, a6a7; B (16x8 per n tile; x4 covers two n tiles): (k 0-7, k 8-15) of
# n tile 2*_np, then of n tile 2*_np + 1. The expressions are C and Python at once (tests evaluate them).
A_ADDR = {False: ("_wm0 + _mt * 16 + (_lane & 15)", "_kk * 16 + (_lane >> 4) * 8"),
          True: ("_kk * 16 + (_lane & 7) + (_lane >> 4) * 8", "_wm0 + _mt * 16 + ((_lane >> 3) & 1) * 8")}
B_ADDR_X4 = {False: ("_kk * 16 + (_lane & 7) + ((_lane >> 3) & 1) * 8", "_wn0 + _np * 16 + (_lane >> 4) * 8"),
             True: ("_wn0 + _np * 16 + (_lane & 7) + (_lane >> 4) * 8", "_kk * 16 + ((_lane >> 3) & 1) * 8")}
B_ADDR_X2 = {False: ("_kk * 16 + (_lane & 7) + ((_lane >> 3) & 1) * 8", "_wn0 + _nt * 8"),
             True: ("_wn0 + _nt * 8 + (_lane & 7)", "_kk * 16 + ((_lane >> 3) & 1) * 8")}
# ldmatrix transposes when the operand's rows are not the mma fragment's rows: A stored [K, M], B [K, N].
A_TRANS_LDMATRIX = {False: False, True: True}
B_TRANS_LDMATRIX = {False: True, True: False}
# A from registers (an accumulator-layout fragment): a[q] packs registers (n tile 2*_kk + step, half h).
A_REG_PACK = ((0, 0), (0, 1), (1, 0), (1, 1))


def _addr(em, r: N.Region, row: str, col: str) -> str:
    b = r.buffer
    return (f"tilec::smem_u32(&{em.lvalue(b, (f'{em.ex(r.starts[0])} + {row}', f'{em.ex(r.starts[1])} + {col}'))})")


def _emit_mma(em, g: N.Gemm, m: int, n: int, k: int) -> None:
    lay: MmaLayout = em.layouts[g.c.buffer.name]
    mt, nt, wm_tile, wn_tile = lay.mt, lay.nt, lay.m // lay.wm, lay.n // lay.wn
    kind = "bf16" if g.a.buffer.dtype == "bfloat16" else "f16"
    c = cname(g.c.buffer.name)
    em.line(f"// tensor cores: mma.sync m16n8k16 {kind}, {lay.wm}x{lay.wn} warps, warp tile "
            f"{wm_tile}x{wn_tile}, {mt}x{nt} mma tiles per k step")
    if g.clear_accum:
        em.line("#pragma unroll")
        em.line(f"for (int _r = 0; _r < {lay.regs}; ++_r) {c}[_r] = 0.0f;")
    with em.block(""):
        em.line(f"const int _wm0 = (_warp / {lay.wn}) * {wm_tile};")
        em.line(f"const int _wn0 = (_warp % {lay.wn}) * {wn_tile};")
        em.line("#pragma unroll")
        with em.block(f"for (int _kk = 0; _kk < {k // 16}; ++_kk)"):
            em.line(f"unsigned _a[{mt}][4];")
            em.line(f"unsigned _b[{nt}][2];")
            _load_a(em, g, mt)
            _load_b(em, g, nt)
            em.line("#pragma unroll")
            with em.block(f"for (int _mt = 0; _mt < {mt}; ++_mt)"):
                em.line("#pragma unroll")
                with em.block(f"for (int _nt = 0; _nt < {nt}; ++_nt)"):
                    em.line(f"tilec::mma_{kind}(&{c}[(_mt * {nt} + _nt) * 4], _a[_mt], _b[_nt]);")


def _load_a(em, g: N.Gemm, mt: int) -> None:
    a = g.a.buffer
    em.line("#pragma unroll")
    with em.block(f"for (int _mt = 0; _mt < {mt}; ++_mt)"):
        if em.is_reg(a):
            alay: MmaLayout = em.layouts[a.name]
            pack = "tilec::pack_bf16x2" if a.dtype == "bfloat16" else "tilec::pack_f16x2"
            for q, (step, half) in enumerate(A_REG_PACK):
                base = f"(_mt * {alay.nt} + 2 * _kk + {step}) * 4 + {half * 2}"
                em.line(f"_a[_mt][{q}] = {pack}({cname(a.name)}[{base}], {cname(a.name)}[{base} + 1]);")
        else:
            fn = "ldmatrix_x4_trans" if A_TRANS_LDMATRIX[g.trans_a] else "ldmatrix_x4"
            em.line(f"tilec::{fn}(_a[_mt], {_addr(em, g.a, *A_ADDR[g.trans_a])});")


def _load_b(em, g: N.Gemm, nt: int) -> None:
    suffix = "_trans" if B_TRANS_LDMATRIX[g.trans_b] else ""
    em.line("#pragma unroll")
    if nt % 2 == 0:
        with em.block(f"for (int _np = 0; _np < {nt // 2}; ++_np)"):
            em.line("unsigned _t[4];")
            em.line(f"tilec::ldmatrix_x4{suffix}(_t, {_addr(em, g.b, *B_ADDR_X4[g.trans_b])});")
            em.line("_b[2 * _np][0] = _t[0]; _b[2 * _np][1] = _t[1];")
            em.line("_b[2 * _np + 1][0] = _t[2]; _b[2 * _np + 1][1] = _t[3];")
        return
    with em.block(f"for (int _nt = 0; _nt < {nt}; ++_nt)"):
        em.line(f"tilec::ldmatrix_x2{suffix}(_b[_nt], {_addr(em, g.b, *B_ADDR_X2[g.trans_b])});")


def view2(em, r: N.Region, row: str, col: str) -> list[str]:
    """Coordinates of element (row, col) of a region's 2-D view: its last two dims."""
    cs = [em.ex(s) for s in r.starts]
    cs[-2] = f"{cs[-2]} + {row}"
    cs[-1] = f"{cs[-1]} + {col}"
    return cs


def _operand(em, r: N.Region, row: str, col: str) -> str:
    """Compute-typed element (row, col) of a gemm operand's 2-D view."""
    return to_compute(r.buffer.dtype, em.lvalue(r.buffer, tuple(view2(em, r, row, col))))


def _emit_fma(em, g: N.Gemm, m: int, n: int, k: int) -> None:
    cb = g.c.buffer
    acc_t = compute_ctype(cb.dtype)
    em.line(f"// gemm on CUDA cores (FMA): {g.a.buffer.dtype} x {g.b.buffer.dtype} -> {cb.dtype}")

    def body(i: str, j: str, lv: str) -> None:
        init = "0" if g.clear_accum else to_compute(cb.dtype, lv)
        em.line(f"{acc_t} _acc = {init};")
        with em.block(f"for (int _k = 0; _k < {k}; ++_k)"):
            av = _operand(em, g.a, "_k", i) if g.trans_a else _operand(em, g.a, i, "_k")
            bv = _operand(em, g.b, j, "_k") if g.trans_b else _operand(em, g.b, "_k", j)
            em.line(f"_acc += {convert(av, g.a.buffer.dtype, cb.dtype)} * {convert(bv, g.b.buffer.dtype, cb.dtype)};")
        em.line(f"{lv} = {from_compute(cb.dtype, '_acc', cb.dtype)};")

    if em.is_reg(cb):
        with em.reg_loop(em.layouts[cb.name], "_i", "_j"):
            body("_i", "_j", f"{cname(cb.name)}[_r]")
        return
    with em.block(f"for (int _p = _tid; _p < {m * n}; _p += {em.threads})"):
        em.line(f"const int _i = _p / {n};")
        em.line(f"const int _j = _p % {n};")
        cs = view2(em, g.c, "_i", "_j")
        body("_i", "_j", em.lvalue(cb, tuple(cs)))
