"""Handlers for allocation, tile operations and scheduling hints (``T.alloc_*``, ``T.copy``, ``T.gemm``, ...).

Each handler checks its operands, resolves them to ``Region`` nodes with explicit extents
(``regions.py``) and emits one statement through the builder ``ctx``. Checks that need only constant
shapes (tile shapes of a copy, gemm's M/N/K agreement, a reduction's output shape) are made here so the
user sees them at the call's line; the verifier repeats the general ones.
"""
from __future__ import annotations

from typing import Any, Optional

from ..errors import TilecError
from ..ir import dtypes
from ..ir.nodes import (Alloc, Atomic, Buffer, Const, Copy, Cumsum, Expr, Fill, Gemm, Hint, Loc, Reduce,
                        Region, Store)
from .surface import LayoutMarker
from . import exprs, regions
from .calls import arg_loc, builtin

# --- allocation --------------------------------------------------------------------------------------

_SCOPES = {"shared": "shared", "shared.dyn": "shared", "local.fragment": "fragment", "fragment": "fragment",
           "local": "local", "local.var": "local"}


def _shape(shape: Any, loc: Optional[Loc]) -> tuple[Expr, ...]:
    if not isinstance(shape, (tuple, list)):
        shape = (shape,)
    out = []
    for d in shape:
        e = exprs.as_expr(d, loc, dtypes.INDEX)
        if not dtypes.is_int(e.dtype):
            raise TilecError(f"shape entries must be integers, got {exprs.describe(d)}", loc)
        if not isinstance(e, Const):
            # Tiles live in registers / shared memory / a stack frame sized when the kernel is built.
            from ..ir.printer import print_expr
            raise TilecError(f"allocation shapes must be compile-time constants, got ({print_expr(e)}); "
                             "allocate the largest tile (a factory constant) and guard or clamp its use "
                             "by the symbolic size", loc)
        if e.value <= 0:
            raise TilecError(f"shape entries must be positive, got {e.value}", loc)
        out.append(exprs.cast(dtypes.INDEX, e, loc))
    return tuple(out)


def _alloc(ctx: Any, loc: Optional[Loc], shape: Any, dtype: Any, scope: str) -> Buffer:
    if scope not in _SCOPES:
        raise TilecError(f"unknown buffer scope '{scope}' (known: {', '.join(_SCOPES)})", loc)
    name, stmt_loc = ctx.take_name_hint("buf", loc)
    dtype = exprs.canonical_dtype(dtype, arg_loc("dtype", loc))
    buf = Buffer(ctx.fresh(name), _shape(shape, arg_loc("shape", loc)), dtype, _SCOPES[scope], stmt_loc)
    ctx.emit(Alloc(buf, stmt_loc))
    return buf


@builtin("alloc_shared", kernel=True)
def _alloc_shared(ctx: Any, loc: Optional[Loc], shape: Any, dtype: Any, scope: str = "shared.dyn") -> Buffer:
    return _alloc(ctx, loc, shape, dtype, scope)


@builtin("alloc_fragment", kernel=True)
def _alloc_fragment(ctx: Any, loc: Optional[Loc], shape: Any, dtype: Any,
                    scope: str = "local.fragment") -> Buffer:
    return _alloc(ctx, loc, shape, dtype, scope)


@builtin("alloc_local", kernel=True)
def _alloc_local(ctx: Any, loc: Optional[Loc], shape: Any, dtype: Any, scope: str = "local") -> Buffer:
    return _alloc(ctx, loc, shape, dtype, scope)


@builtin("alloc_buffer", kernel=True)
def _alloc_buffer(ctx: Any, loc: Optional[Loc], shape: Any, dtype: Any = "float32",
                  scope: str = "shared.dyn") -> Buffer:
    return _alloc(ctx, loc, shape, dtype, scope)


@builtin("alloc_var", kernel=True)
def _alloc_var(ctx: Any, loc: Optional[Loc], dtype: Any, init: Any = None,
               scope: str = "local.var") -> Buffer:
    buf = _alloc(ctx, loc, (), dtype, scope)
    ctx.var_buffers.add(buf.name)
    if init is not None:
        ctx.emit(Store(buf, (), exprs.as_expr(init, loc, buf.dtype), loc))
    return buf


# --- tile operations ---------------------------------------------------------------------------------

@builtin("copy", kernel=True)
def _copy(ctx: Any, loc: Optional[Loc], src: Any, dst: Any, coalesced_width: Any = None,
          disable_tma: bool = False, eviction_policy: Any = None, loop_layout: Any = None) -> None:
    s = regions.operand(src, "T.copy source", loc)
    d = regions.operand(dst, "T.copy destination", loc)
    rs, rd = regions.pair(s, d, "T.copy", loc)
    ctx.emit(Copy(rs, rd, loc))


def _gemm_region(v: Any, name: str, loc: Optional[Loc]) -> Region:
    o = regions.operand(v, f"T.gemm operand {name}", loc)
    if o.extents is None:
        raise TilecError(f"T.gemm operand {name} must be a buffer or a sliced tile, not one element", loc)
    return o.region()


@builtin("gemm", kernel=True)
def _gemm(ctx: Any, loc: Optional[Loc], A: Any, B: Any, C: Any, transpose_A: bool = False,
          transpose_B: bool = False, policy: Any = "", clear_accum: bool = False, k_pack: int = 1,
          wg_wait: int = 0, mbar: Any = None) -> None:
    # Shape, dtype and scope agreement is checked by the verifier (with transpose suggestions).
    a, b, c = (_gemm_region(v, n, loc) for v, n in ((A, "A"), (B, "B"), (C, "C")))
    if not isinstance(policy, str):
        raise TilecError(f"T.gemm: policy must be a T.GemmWarpPolicy, got {exprs.describe(policy)}", loc)
    ctx.emit(Gemm(a, b, c, bool(transpose_A), bool(transpose_B), bool(clear_accum), policy, loc))


def _whole(v: Any, what: str, loc: Optional[Loc]) -> Region:
    o = regions.operand(v, what, loc)
    return regions.point_region(o, loc)


@builtin("fill", kernel=True)
def _fill(ctx: Any, loc: Optional[Loc], buffer: Any, value: Any) -> None:
    r = _whole(buffer, "T.fill destination", loc)
    ctx.emit(Fill(r, exprs.as_expr(value, loc, r.buffer.dtype), loc))


@builtin("clear", kernel=True)
def _clear(ctx: Any, loc: Optional[Loc], buffer: Any) -> None:
    r = _whole(buffer, "T.clear destination", loc)
    ctx.emit(Fill(r, exprs.const(0, r.buffer.dtype, loc), loc))


def _reduce(kind: str) -> None:
    @builtin(f"reduce_{kind}", kernel=True)
    def handler(ctx: Any, loc: Optional[Loc], buffer: Any, out: Any, dim: int = -1,
                clear: bool = True, batch: int = 1, nan_propagate: bool = False) -> None:
        src = _whole(buffer, f"T.reduce_{kind} source", loc)
        dst = _whole(out, f"T.reduce_{kind} destination", loc)
        d = _axis(dim, len(src.extents), f"T.reduce_{kind}", arg_loc("dim", loc))
        ctx.emit(Reduce(kind, src, dst, d, bool(clear), loc))


def _axis(dim: Any, rank: int, what: str, loc: Optional[Loc]) -> int:
    """A compile-time axis; negative counts from the end. Out of range is the verifier's to report."""
    dim = exprs.normalize_py(dim)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TilecError(f"{what}: dim must be a compile-time int, got {exprs.describe(dim)}", loc)
    return dim + rank if -rank <= dim < 0 else dim


for _k in ("max", "min", "sum", "absmax", "abssum"):
    _reduce(_k)


def _atomic(kind: str) -> None:
    @builtin(f"atomic_{kind}", kernel=True)
    def handler(ctx: Any, loc: Optional[Loc], dst: Any, value: Any, memory_order: Any = None,
                return_prev: bool = False) -> None:
        d = regions.operand(dst, f"T.atomic_{kind} destination", loc)
        if isinstance(value, (Buffer, regions.Access)) and not (
                isinstance(value, regions.Access) and value.is_point):
            v = regions.operand(value, f"T.atomic_{kind} value", loc)
            rv, rd = regions.pair(v, d, f"T.atomic_{kind}", loc)
            ctx.emit(Atomic(kind, rd, rv, loc))
            return
        rd = regions.point_region(d, loc)
        ctx.emit(Atomic(kind, rd, exprs.as_expr(value, loc, rd.buffer.dtype), loc))


for _k in ("add", "max", "min"):
    _atomic(_k)


@builtin("cumsum", kernel=True)
def _cumsum(ctx: Any, loc: Optional[Loc], src: Any, dst: Any = None, dim: int = 0,
            reverse: bool = False) -> None:
    s = _whole(src, "T.cumsum source", loc)
    d = s if dst is None else _whole(dst, "T.cumsum destination", loc)
    ctx.emit(Cumsum(s, d, _axis(dim, len(s.extents), "T.cumsum", arg_loc("dim", loc)), bool(reverse), loc))


# --- hints ---------------------------------------------------------------------------------------------

def _hint_arg(v: Any, loc: Optional[Loc]) -> Any:
    v = exprs.normalize_py(v)
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, Buffer):
        return v.name
    if isinstance(v, Const):
        return v.value
    raise TilecError(f"hint arguments must be constants or buffers, got {exprs.describe(v)}", loc)


@builtin("use_swizzle", kernel=True)
def _use_swizzle(ctx: Any, loc: Optional[Loc], panel_size: Any = 8, order: str = "row",
                 enable: bool = True) -> None:
    if enable:
        args = (_hint_arg(panel_size, loc),) + (() if order == "row" else (_hint_arg(order, loc),))
        ctx.emit(Hint("use_swizzle", args, loc))


@builtin("annotate_layout", kernel=True)
def _annotate_layout(ctx: Any, loc: Optional[Loc], layout_map: Any) -> None:
    if not isinstance(layout_map, dict):
        raise TilecError("T.annotate_layout expects a dict {buffer: layout}", loc)
    names = []
    for key in layout_map:
        if not isinstance(key, Buffer):
            raise TilecError(f"T.annotate_layout keys must be buffers, got {exprs.describe(key)}", loc)
        names.append(key.name)
    ctx.emit(Hint("annotate_layout", tuple(names), loc))


@builtin("make_swizzled_layout")
def _make_swizzled_layout(ctx: Any, loc: Optional[Loc], buffer: Any, *args: Any, **kwargs: Any) -> Any:
    return LayoutMarker("swizzled", getattr(buffer, "name", "?"))


def _plain_hint(name: str) -> None:
    @builtin(name, kernel=True)
    def handler(ctx: Any, loc: Optional[Loc], *args: Any, **kwargs: Any) -> None:
        ctx.emit(Hint(name, tuple(_hint_arg(a, loc) for a in args if not isinstance(a, dict)), loc))


for _n in ("annotate_padding", "annotate_l2_hit_ratio", "sync_threads", "no_set_max_nreg", "set_max_nreg",
           "disable_warp_group_reg_alloc"):
    _plain_hint(_n)
