"""Lowering of the tile operations copy, fill, reduce, atomic and cumsum to CUDA C.

Each operation has a register path (an operand in a register layout: every thread handles its own
registers, see layout.py) and a shared-memory path (operands any thread can reach: thread-strided loops
over the region's elements, 16-byte vectors where the regions allow, cp.async for pipelined loads).
Reductions over register fragments combine within a quad by warp shuffles and across warps through a
small shared scratch; reductions in shared memory give each output to one warp (lanes stride over the
reduced axis, then a butterfly of shuffles). Out-of-range source elements read zero and out-of-range
destination elements are skipped, as the IR specifies.
"""
from __future__ import annotations

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as N

from .cexpr import cname, compute_ctype, ctype, const, convert, from_compute, to_compute
from .layout import LaneLayout, LaneRow, MmaLayout, RowLayout, is_tile
from .regions import coords, in_bounds, mapped_coords, total_str, vector_plan


def emit(em, s: N.Stmt) -> None:
    if isinstance(s, N.Atomic) and s.dst.buffer.scope == "local":
        raise TilecError(f"cuda: atomic on local buffer '{s.dst.buffer.name}' is not supported", s.loc)
    {N.Copy: copy, N.Fill: fill, N.Reduce: reduce, N.Atomic: atomic_region, N.Cumsum: cumsum}[type(s)](em, s)


def _each(em, r: N.Region, var: str, total: str) -> str:
    """Loop header over ``total`` items: split over the block's threads, or -- when the destination is a
    ``local`` buffer, which every thread holds its own copy of -- all of them in every thread."""
    if r.buffer.scope == "local":
        return f"for (int {var} = 0; {var} < {total}; ++{var})"
    return f"for (int {var} = _tid; {var} < {total}; {var} += {em.threads})"


def _regions(s: N.Stmt) -> list[N.Region]:
    if isinstance(s, N.Fill):
        return [s.dst]
    if isinstance(s, N.Atomic):
        return [s.dst] + ([s.value] if isinstance(s.value, N.Region) else [])
    return [s.src, s.dst]  # type: ignore[attr-defined]


def _guarded(em, cond: str, text: str) -> None:
    em.line(f"if ({cond}) {text}" if cond else text)


def _value(em, r: N.Region, cs: list[str]) -> str:
    """Compute-typed value of ``r`` at coordinates ``cs`` (in r's dtype), zero outside its buffer."""
    src = r.buffer
    v = to_compute(src.dtype, em.lvalue(src, tuple(cs)))
    ok = in_bounds(em, r, cs)
    return f"({ok} ? {v} : {const(0, src.dtype)})" if ok else v


def _converted(em, r: N.Region, cs: list[str], dtype: str) -> str:
    return convert(_value(em, r, cs), r.buffer.dtype, dtype)


# ---- copy ---------------------------------------------------------------------------------------
def copy(em, c: N.Copy, asynchronous: bool = False) -> None:
    rs, rd = em.is_reg(c.src.buffer), em.is_reg(c.dst.buffer)
    if rs or rd:
        _copy_registers(em, c, rs, rd)
        return
    plan = vector_plan(em, c) if c.dst.buffer.scope != "local" and c.src.buffer.scope != "local" else None
    if plan is None:
        _copy_scalar(em, c)
        return
    if plan.conds:
        with em.block(f"if ({plan.cond_text(em)})"):
            _copy_vector(em, c, plan.width, asynchronous)
        with em.block("else"):
            _copy_scalar(em, c)
    else:
        _copy_vector(em, c, plan.width, asynchronous)


def _copy_scalar(em, c: N.Copy) -> None:
    src, dst = c.src.buffer, c.dst.buffer
    with em.block(_each(em, c.dst, "_p", total_str(em, c.src))):
        sc = coords(em, c.src, "_p", "_s")
        dc = coords(em, c.dst, "_p", "_d")
        if src.dtype == dst.dtype:  # no conversion: move the stored bits
            ok = in_bounds(em, c.src, sc)
            raw = em.lvalue(src, tuple(sc))
            zero = from_compute(src.dtype, const(0, src.dtype), src.dtype)
            value = f"({ok} ? {raw} : static_cast<{ctype(src.dtype)}>({zero}))" if ok else raw
        else:
            value = from_compute(dst.dtype, _value(em, c.src, sc), src.dtype)
        store = f"{em.lvalue(dst, tuple(dc))} = {value};"
        _guarded(em, in_bounds(em, c.dst, dc), store)


def _copy_vector(em, c: N.Copy, width: int, asynchronous: bool) -> None:
    src, dst = c.src.buffer, c.dst.buffer
    chunks = f"{total_str(em, c.src)} / {width}"
    with em.block(f"for (int _v = _tid; _v < {chunks}; _v += {em.threads})"):
        em.line(f"const int _p = _v * {width};")
        sc = coords(em, c.src, "_p", "_s")
        dc = coords(em, c.dst, "_p", "_d")
        sok, dok = in_bounds(em, c.src, sc), in_bounds(em, c.dst, dc)
        saddr, daddr = f"&{em.lvalue(src, tuple(sc))}", f"&{em.lvalue(dst, tuple(dc))}"
        if asynchronous:
            ok = sok or "true"
            call = f"tilec::cp_async16({daddr}, {ok} ? (const void*)({saddr}) : (const void*){cname(src.name)}, {ok});"
            _guarded(em, dok, call)
        else:
            load = f"*reinterpret_cast<const uint4*>({saddr})"
            em.line(f"const uint4 _x = {f'{sok} ? {load} : make_uint4(0u, 0u, 0u, 0u)' if sok else load};")
            _guarded(em, dok, f"*reinterpret_cast<uint4*>({daddr}) = _x;")


def _reg_dims(em, b: N.Buffer) -> tuple[str, ...]:
    return ("_i", "_j") if is_tile(em.layouts[b.name]) else ("_i",)


def _copy_registers(em, c: N.Copy, rs: bool, rd: bool) -> None:
    src, dst = c.src.buffer, c.dst.buffer
    lay = em.layouts[src.name if rs else dst.name]
    with em.reg_loop(lay, "_i", "_j" if is_tile(lay) else ""):
        if rs and rd:
            v = to_compute(src.dtype, f"{cname(src.name)}[_r]")
            em.line(f"{cname(dst.name)}[_r] = {from_compute(dst.dtype, v, src.dtype)};")
        elif rs:
            dc = mapped_coords(em, c.dst, _reg_dims(em, src))
            v = to_compute(src.dtype, f"{cname(src.name)}[_r]")
            _guarded(em, in_bounds(em, c.dst, dc),
                     f"{em.lvalue(dst, tuple(dc))} = {from_compute(dst.dtype, v, src.dtype)};")
        else:
            sc = mapped_coords(em, c.src, _reg_dims(em, dst))
            em.line(f"{cname(dst.name)}[_r] = {from_compute(dst.dtype, _value(em, c.src, sc), src.dtype)};")


# ---- fill ---------------------------------------------------------------------------------------
def fill(em, f: N.Fill) -> None:
    b = f.dst.buffer
    value = from_compute(b.dtype, convert(em.ex(f.value), f.value.dtype, b.dtype), b.dtype)
    if em.is_reg(b):
        with em.reg_loop(em.layouts[b.name]):
            em.line(f"{cname(b.name)}[_r] = {value};")
        return
    with em.block(""):
        em.line(f"const {ctype(b.dtype)} _fv = {value};")
        with em.block(_each(em, f.dst, "_p", total_str(em, f.dst))):
            dc = coords(em, f.dst, "_p", "_d")
            _guarded(em, in_bounds(em, f.dst, dc), f"{em.lvalue(b, tuple(dc))} = _fv;")


# ---- reduce -------------------------------------------------------------------------------------
def _combine(kind: str, dtype: str, a: str, b: str) -> str:
    if kind in ("sum", "abssum"):
        return f"({a} + {b})"
    fn = "max" if kind in ("max", "absmax") else "min"
    if dtypes.is_float(dtype):
        return f"tilec::f{fn}_nan({a}, {b})"
    return f"tilec::{fn}_({a}, {b})"


def _identity(kind: str, dtype: str) -> str:
    if kind in ("sum", "abssum", "absmax"):
        return const(0, dtype)
    if dtypes.is_float(dtype):
        return const(float("-inf") if kind == "max" else float("inf"), dtype)
    info = dtypes.info(dtype)
    lo, hi = (-(2 ** (info.bits - 1)), 2 ** (info.bits - 1) - 1) if info.kind == "int" else (0, 2 ** info.bits - 1)
    return const(lo if kind == "max" else hi, dtype)


def _prepare(kind: str, dtype: str, v: str) -> str:
    if kind in ("absmax", "abssum"):
        if dtypes.is_float(dtype):
            return f"{'fabs' if dtype == 'float64' else 'fabsf'}({v})"
        return f"abs({v})" if dtypes.info(dtype).kind == "int" else v
    return v


# Register of column slot _c (0 .. 2*NT-1) of this thread's row _q (0 .. 2*MT-1) in an mma layout.
REDUCE_REG = "(((_q >> 1) * {nt} + (_c >> 1)) * 4 + (_q & 1) * 2 + (_c & 1))"


def reduce(em, r: N.Reduce) -> None:
    with em.block(""):
        if r.dst.buffer.scope == "local":
            _reduce_serial(em, r)
        elif isinstance(em.layouts.get(r.src.buffer.name), LaneLayout):
            _reduce_lanes(em, r)
        elif em.is_reg(r.src.buffer):
            _reduce_registers(em, r)
        else:
            _reduce_shared(em, r)


def _reduce_registers(em, r: N.Reduce) -> None:
    src, dst = r.src.buffer, r.dst.buffer
    lay: MmaLayout = em.layouts[src.name]
    row: RowLayout = em.layouts[dst.name]
    ct, dt = compute_ctype(dst.dtype), dst.dtype
    rows, cols = row.regs, lay.nt * 2
    em.line(f"{ct} _part[{rows}];")
    em.line("#pragma unroll")
    with em.block(f"for (int _q = 0; _q < {rows}; ++_q)"):
        em.line(f"{ct} _acc = {_identity(r.kind, dt)};")
        em.line("#pragma unroll")
        with em.block(f"for (int _c = 0; _c < {cols}; ++_c)"):
            reg = REDUCE_REG.format(nt=lay.nt)
            v = _prepare(r.kind, dt, convert(to_compute(src.dtype, f"{cname(src.name)}[{reg}]"), src.dtype, dt))
            em.line(f"_acc = {_combine(r.kind, dt, '_acc', v)};")
        for off in (1, 2):  # the 4 lanes of a quad hold the same row
            em.line(f"_acc = {_combine(r.kind, dt, '_acc', f'__shfl_xor_sync(0xffffffffu, _acc, {off})')};")
        em.line("_part[_q] = _acc;")
    if lay.wn > 1:  # the row is split over wn warps: combine through shared scratch
        scratch = f"reinterpret_cast<{ct}*>(smem + {em.smem.scratch_offset})"
        rowidx = f"tilec::row_row<{row.template_args()}>(_q, _warp, _lane)"
        em.line("#pragma unroll")
        with em.block(f"for (int _q = 0; _q < {rows}; ++_q)"):
            em.line(f"if ((_lane & 3) == 0) {scratch}[{row.col_group()} * {lay.m} + {rowidx}] = _part[_q];")
        em.line("__syncthreads();")
        em.line("#pragma unroll")
        with em.block(f"for (int _q = 0; _q < {rows}; ++_q)"):
            em.line(f"{ct} _acc = {_identity(r.kind, dt)};")
            with em.block(f"for (int _w = 0; _w < {lay.wn}; ++_w)"):
                em.line(f"_acc = {_combine(r.kind, dt, '_acc', f'{scratch}[_w * {lay.m} + {rowidx}]')};")
            em.line("_part[_q] = _acc;")
        em.line("__syncthreads();")
    em.line("#pragma unroll")
    with em.block(f"for (int _q = 0; _q < {rows}; ++_q)"):
        v = "_part[_q]" if r.clear else _combine(r.kind, dt, to_compute(dt, f"{cname(dst.name)}[_q]"), "_part[_q]")
        em.line(f"{cname(dst.name)}[_q] = {from_compute(dt, v, dt)};")


def _reduce_lanes(em, r: N.Reduce) -> None:
    """Rows of a LaneLayout: fold this lane's columns, then a 5-step butterfly over the warp."""
    src, dst = r.src.buffer, r.dst.buffer
    lay: LaneLayout = em.layouts[src.name]
    ct, dt = compute_ctype(dst.dtype), dst.dtype
    em.line("#pragma unroll")
    with em.block(f"for (int _q = 0; _q < {lay.rpw}; ++_q)"):
        em.line(f"{ct} _acc = {_identity(r.kind, dt)};")
        em.line("#pragma unroll")
        with em.block(f"for (int _c = 0; _c < {lay.nb}; ++_c)"):
            v = _prepare(r.kind, dt, convert(to_compute(src.dtype, f"{cname(src.name)}[_q * {lay.nb} + _c]"),
                                             src.dtype, dt))
            em.line(f"_acc = {_combine(r.kind, dt, '_acc', v)};")
        for off in (16, 8, 4, 2, 1):
            em.line(f"_acc = {_combine(r.kind, dt, '_acc', f'__shfl_xor_sync(0xffffffffu, _acc, {off})')};")
        v = "_acc" if r.clear else _combine(r.kind, dt, to_compute(dt, f"{cname(dst.name)}[_q]"), "_acc")
        em.line(f"{cname(dst.name)}[_q] = {from_compute(dt, v, dt)};")


def _reduce_serial(em, r: N.Reduce) -> None:
    """Into a ``local`` buffer: every thread computes every output for its own copy."""
    src, dst = r.src.buffer, r.dst.buffer
    dt, ct = dst.dtype, compute_ctype(dst.dtype)
    kept = N.Region(src, tuple(s for d, s in enumerate(r.src.starts) if d != r.dim),
                    tuple(e for d, e in enumerate(r.src.extents) if d != r.dim))
    with em.block(f"for (int _o = 0; _o < {total_str(em, kept) if kept.extents else '1'}; ++_o)"):
        kc = coords(em, kept, "_o", "_k") if kept.extents else []
        dc = coords(em, r.dst, "_o", "_d")
        em.line(f"{ct} _acc = {_identity(r.kind, dt)};")
        with em.block(f"for (int _l = 0; _l < {em.ex(r.src.extents[r.dim])}; ++_l)"):
            sc = list(kc)
            sc.insert(r.dim, f"{em.ex(r.src.starts[r.dim])} + _l")
            em.line(f"_acc = {_combine(r.kind, dt, '_acc', _prepare(r.kind, dt, _converted(em, r.src, sc, dt)))};")
        out = "_acc" if r.clear else _combine(r.kind, dt, to_compute(dt, em.lvalue(dst, tuple(dc))), "_acc")
        _guarded(em, in_bounds(em, r.dst, dc), f"{em.lvalue(dst, tuple(dc))} = {from_compute(dt, out, dt)};")


def _reduce_shared(em, r: N.Reduce) -> None:
    src, dst = r.src.buffer, r.dst.buffer
    dt, ct = dst.dtype, compute_ctype(dst.dtype)
    sext = list(r.src.extents)
    kept = N.Region(src, tuple(s for d, s in enumerate(r.src.starts) if d != r.dim),
                    tuple(e for d, e in enumerate(sext) if d != r.dim))
    length = em.ex(sext[r.dim])
    warps = em.threads // 32
    with em.block(f"for (int _o = _warp; _o < {total_str(em, kept) if kept.extents else '1'}; _o += {warps})"):
        kc = coords(em, kept, "_o", "_k") if kept.extents else []
        dc = coords(em, r.dst, "_o", "_d")
        em.line(f"{ct} _acc = {_identity(r.kind, dt)};")
        with em.block(f"for (int _l = _lane; _l < {length}; _l += 32)"):
            sc = list(kc)
            sc.insert(r.dim, f"{em.ex(r.src.starts[r.dim])} + _l")
            v = _prepare(r.kind, dt, _converted(em, r.src, sc, dt))
            em.line(f"_acc = {_combine(r.kind, dt, '_acc', v)};")
        for off in (16, 8, 4, 2, 1):
            em.line(f"_acc = {_combine(r.kind, dt, '_acc', f'__shfl_xor_sync(0xffffffffu, _acc, {off})')};")
        out = "_acc" if r.clear else _combine(r.kind, dt, to_compute(dt, em.lvalue(dst, tuple(dc))), "_acc")
        cond = " && ".join(x for x in ("_lane == 0", in_bounds(em, r.dst, dc)) if x)
        em.line(f"if ({cond}) {em.lvalue(dst, tuple(dc))} = {from_compute(dt, out, dt)};")


# ---- atomics and cumsum -------------------------------------------------------------------------
ATOMIC_DTYPES = {"add": ("float32", "float64", "float16", "bfloat16", "int32", "uint32", "int64"),
                 "max": ("float32", "float16", "bfloat16", "int32", "uint32", "int64"),
                 "min": ("float32", "float16", "bfloat16", "int32", "uint32", "int64")}


def _check_atomic(a: N.Atomic) -> None:
    dt = a.dst.buffer.dtype
    if dt not in ATOMIC_DTYPES[a.kind]:
        raise TilecError(f"cuda: atomic {a.kind} on {dt} is not supported (supported: "
                         f"{', '.join(ATOMIC_DTYPES[a.kind])})", a.loc)


def atomic_scalar(em, a: N.Atomic) -> None:
    _check_atomic(a)
    dst = a.dst.buffer
    dc = [em.ex(s) for s in a.dst.starts]
    value = convert(em.ex(a.value), a.value.dtype, dst.dtype)  # type: ignore[arg-type]
    _guarded(em, in_bounds(em, a.dst, dc), f"tilec::atomic_{a.kind}(&{em.lvalue(dst, tuple(dc))}, {value});")


def atomic_region(em, a: N.Atomic) -> None:
    _check_atomic(a)
    val: N.Region = a.value  # type: ignore[assignment]
    dst = a.dst.buffer
    if em.is_reg(val.buffer):
        lay = em.layouts[val.buffer.name]
        with em.reg_loop(lay, "_i", "_j" if is_tile(lay) else ""):
            dc = mapped_coords(em, a.dst, _reg_dims(em, val.buffer))
            v = convert(to_compute(val.buffer.dtype, f"{cname(val.buffer.name)}[_r]"), val.buffer.dtype, dst.dtype)
            if isinstance(lay, RowLayout):  # rows are replicated over a quad and wn warps: one adds
                em.line(f"if ((_lane & 3) != 0 || {lay.col_group()} != 0) continue;")
            elif isinstance(lay, LaneRow):  # rows are replicated over the warp's lanes
                em.line("if (_lane != 0) continue;")
            _guarded(em, in_bounds(em, a.dst, dc), f"tilec::atomic_{a.kind}(&{em.lvalue(dst, tuple(dc))}, {v});")
        return
    with em.block(f"for (int _p = _tid; _p < {total_str(em, val)}; _p += {em.threads})"):
        sc = coords(em, val, "_p", "_s")
        dc = coords(em, a.dst, "_p", "_d")
        v = _converted(em, val, sc, dst.dtype)
        _guarded(em, in_bounds(em, a.dst, dc), f"tilec::atomic_{a.kind}(&{em.lvalue(dst, tuple(dc))}, {v});")


def cumsum(em, c: N.Cumsum) -> None:
    src, dst = c.src.buffer, c.dst.buffer
    dt, ct = dst.dtype, compute_ctype(dst.dtype)
    ext = list(c.src.extents)
    zero = N.Const(0)
    lines = N.Region(src, tuple(zero for d in range(len(ext)) if d != c.dim),
                     tuple(e for d, e in enumerate(ext) if d != c.dim))
    length = em.ex(ext[c.dim])
    n_lines = total_str(em, lines) if lines.extents else "1"
    with em.block(_each(em, c.dst, "_o", n_lines)):
        rel = coords(em, lines, "_o", "_k") if lines.extents else []
        rel.insert(c.dim, "_t")
        em.line(f"{ct} _acc = {const(0, dt)};")
        with em.block(f"for (int _l = 0; _l < {length}; ++_l)"):
            em.line(f"const int _t = {f'{length} - 1 - _l' if c.reverse else '_l'};")
            sc = [f"{em.ex(st)} + {x}" for st, x in zip(c.src.starts, rel)]
            dc = [f"{em.ex(st)} + {x}" for st, x in zip(c.dst.starts, rel)]
            em.line(f"_acc = _acc + {_converted(em, c.src, sc, dt)};")
            _guarded(em, in_bounds(em, c.dst, dc), f"{em.lvalue(dst, tuple(dc))} = {from_compute(dt, '_acc', dt)};")
