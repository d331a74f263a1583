"""``T.gemm`` with Hopper's warpgroup MMA (``wgmma.mma_async``, sm_90a; opt-in with option ``wgmma``).

A warpgroup (4 consecutive warps) multiplies a 64 x N tile of A by an N-wide tile of B, both read from
shared memory through 64-bit matrix descriptors, into accumulators spread like mma.sync's (layout.py,
``MmaLayout(wg=True)``). Operands live in shared memory in CUTLASS's canonical swizzled layouts: the
contiguous dimension is cut into panels of 64 elements (128-byte rows, Swizzle<3,4,3>, descriptor mode
1) or of 32 (64-byte rows, Swizzle<2,4,3>, mode 2); ``smem.py`` lays such buffers out with
``tilec::swz_panel``. A is K-major (not transposed); B is K-major when transposed ([N, K]) and MN-major
([K, N]) otherwise. Descriptor offsets, in bytes: SBO = distance between 8-row groups (8 rows of one
panel), LBO = distance between panels along M/N (MN-major only; unused for swizzled K-major).

Ordering: shared memory written by threads (cp.async included) is published to the async proxy with
``fence.proxy.async.shared::cta`` before the barrier that precedes the wgmma; accumulators are fenced
for the compiler before ``wgmma.fence`` and after ``wgmma.wait_group 0``, so no register access moves
into the asynchronous window. Not run on a GPU yet: the GPU benchmark checks it against torch.
"""
from __future__ import annotations

import re
from typing import Optional

from tilec.errors import InternalError

from tilec.ir import nodes as N

from .cexpr import cname
from .layout import MmaLayout, gemm_dims, is_whole, mma_dtypes, static_shape

MAX_N = 256


def panel_width(b: N.Buffer) -> Optional[int]:
    """Panel width (elements) of a wgmma operand buffer, or None when its rows do not fit a panel."""
    shape = static_shape(b)
    if shape is None or len(shape) != 2 or shape[0] % 8:
        return None
    return 64 if shape[1] % 64 == 0 else (32 if shape[1] == 32 else None)


def qualifies(g: N.Gemm, warps: int) -> Optional[tuple[int, int]]:
    """The (warpgroups along M, along N) grid when ``g`` can run on wgmma, else None."""
    dims = gemm_dims(g)
    a, b, c = g.a.buffer, g.b.buffer, g.c.buffer
    if dims is None or not mma_dtypes(g) or warps % 4 or g.trans_a:
        return None
    if a.scope != "shared" or b.scope != "shared" or c.scope != "fragment" or len(c.shape) != 2:
        return None
    if not (is_whole(g.a) and is_whole(g.b) and is_whole(g.c)) or panel_width(a) is None \
            or panel_width(b) is None:
        return None
    m, n, k = dims
    if k % 16:
        return None
    groups = warps // 4
    best = None
    for gm in range(1, groups + 1):
        if groups % gm:
            continue
        gn = groups // gm
        wn_ = n // gn if n % gn == 0 else 0
        if m % (64 * gm) or not wn_ or wn_ % 8 or wn_ > MAX_N:
            continue
        if not g.trans_b and gn > 1 and wn_ % panel_width(b):  # MN-major B: start on a panel
            continue
        key = (gn, abs(m // gm - wn_))
        if best is None or key < best[0]:
            best = (key, (gm, gn))
    return best[1] if best else None


def layout_for(g: N.Gemm, warps: int) -> Optional[MmaLayout]:
    grid = qualifies(g, warps)
    dims = gemm_dims(g)
    if grid is None or dims is None:
        return None
    return MmaLayout(dims[0], dims[1], 4 * grid[0], grid[1], wg=True)


def uses_wgmma(em, g: N.Gemm) -> bool:
    lay = em.layouts.get(g.c.buffer.name)
    return bool(em.wgmma and isinstance(lay, MmaLayout) and lay.wg and lay == layout_for(g, em.threads // 32))


def operands(em) -> set[str]:
    out: set[str] = set()
    from .layout import walk
    for s in walk(em.launch.body):
        if isinstance(s, N.Gemm) and uses_wgmma(em, s):
            out |= {s.a.buffer.name, s.b.buffer.name}
    return out


def desc_fields(b: N.Buffer, mn_major: bool) -> tuple[int, int, int]:
    """(LBO bytes, SBO bytes, swizzle mode) of a descriptor for operand buffer ``b`` (16-bit, panelled)."""
    rows = static_shape(b)[0]  # type: ignore[index]
    p = panel_width(b)
    assert p is not None
    sbo = 8 * p * 2                           # next 8-row group of the same panel
    lbo = rows * p * 2 if mn_major else 16    # next panel along M/N; unused for swizzled K-major
    return lbo, sbo, (1 if p == 64 else 2)


def _desc(em, b: N.Buffer, row: str, col: str, mn_major: bool) -> str:
    lbo, sbo, mode = desc_fields(b, mn_major)
    return f"tilec::gmma_desc(&{em.lvalue(b, (row, col))}, {lbo}, {sbo}, {mode})"


def helper(n: int, kind: str, trans_b: int) -> tuple[str, str]:
    """(name, CUDA source) of the wrapper for one wgmma.m64n{n}k16 instruction."""
    name = f"wgmma_m64n{n}k16_{kind}_tb{trans_b}"
    regs = n // 2
    outs = ", ".join(f"%{i}" for i in range(regs))
    body = (f'      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{regs + 2}, 0;\\n"\n'
            f'      "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{kind}.{kind} {{{outs}}}, %{regs}, %{regs + 1}, '
            f'p, 1, 1, 0, {trans_b};\\n}}\\n"')
    cons = ", ".join(f'"+f"(d[{i}])' for i in range(regs))
    src = (f"__device__ __forceinline__ void {name}(float* d, unsigned long long da, unsigned long long db) {{\n"
           f"  asm volatile(\n{body}\n      : {cons}\n      : \"l\"(da), \"l\"(db), \"n\"(1));\n}}\n")
    return name, src


_HELPER_NAME = re.compile(r"wgmma_m64n(?P<n>\d+)k16_(?P<kind>f16|bf16)_tb(?P<tb>[01])")


def emu_helper(name: str) -> str:
    """The cuda-emu rendering of the wrapper ``name`` (from ``helper``): the same signature, calling the
    emulated ``wgmma.mma_async`` with the same descriptors (scale-d 1, imm-trans-a 0, imm-trans-b tb)."""
    m = _HELPER_NAME.fullmatch(name)
    if m is None:
        raise InternalError(f"cuda-emu: no emulation of helper '{name}'", "cuda.codegen")
    kind = "::tilec_emu::isa::AB::" + m.group("kind")
    return (f"__device__ __forceinline__ void {name}(float* d, unsigned long long da, unsigned long long db, "
            f"int line = __builtin_LINE()) {{\n"
            f"  ::tilec_emu::wgmma_async({kind}, {m.group('n')}, {m.group('tb')}, d, da, db, line);\n}}\n")


def emit(em, g: N.Gemm) -> None:
    lay: MmaLayout = em.layouts[g.c.buffer.name]
    m, n, k = gemm_dims(g)  # type: ignore[misc]
    gm, gn = lay.wm // 4, lay.wn
    wn_ = n // gn
    kind = "bf16" if g.a.buffer.dtype == "bfloat16" else "f16"
    name, src = helper(wn_, kind, 0 if g.trans_b else 1)
    em.helpers[name] = src
    c, a, b = cname(g.c.buffer.name), g.a.buffer, g.b.buffer
    em.line(f"// tensor cores: wgmma.m64n{wn_}k16 {kind} (sm_90a), {gm}x{gn} warpgroups, "
            f"{lay.mt} 64-row tile(s) per warpgroup")
    if not {a.name, b.name} <= em.fenced:
        em.line("tilec::fence_proxy_async();  // make this block's shared-memory writes visible to wgmma")
        em.barrier()
    if g.clear_accum:
        em.line("#pragma unroll")
        em.line(f"for (int _r = 0; _r < {lay.regs}; ++_r) {c}[_r] = 0.0f;")
    with em.block(""):
        em.line(f"const int _m0 = ((_warp >> 2) / {gn}) * {m // gm};")
        em.line(f"const int _n0 = ((_warp >> 2) % {gn}) * {wn_};")
        em.line("#pragma unroll")
        em.line(f"for (int _r = 0; _r < {lay.regs}; ++_r) tilec::reg_fence({c}[_r]);")
        em.line("tilec::wgmma_fence();")
        em.line("#pragma unroll")
        with em.block(f"for (int _kk = 0; _kk < {k // 16}; ++_kk)"):
            em.line("#pragma unroll")
            with em.block(f"for (int _mt = 0; _mt < {lay.mt}; ++_mt)"):
                da = _desc(em, a, "_m0 + _mt * 64", "_kk * 16", mn_major=False)
                db = _desc(em, b, "_n0", "_kk * 16", mn_major=False) if g.trans_b else \
                    _desc(em, b, "_kk * 16", "_n0", mn_major=True)
                em.line(f"tilec::{name}(&{c}[_mt * {lay.nt * 4}], {da}, {db});")
        em.line("tilec::wgmma_commit();")
        em.line("tilec::wgmma_wait<0>();")
        em.line("#pragma unroll")
        em.line(f"for (int _r = 0; _r < {lay.regs}; ++_r) tilec::reg_fence({c}[_r]);")
