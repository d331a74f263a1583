"""Verifier checks for tile operations: copy, gemm, fill, reduce, cumsum, atomic.

Called by ``verifier.py`` through its statement table. Each check validates the operand regions
(``check_region``), the scopes TileLang accepts, and the shape rules of docs/language.md / nodes.py, comparing
extents with ``same_extent`` so that symbolic tiles agree when they are the same expression.

Decisions (the verifier's reading of TileLang, kept here next to the checks that implement them):
- A tile op may not sit inside a ``T.Parallel`` loop: TileLang lowers tile operators for the whole
  block (each becomes its own thread-distributed loop nest), while a ``T.Parallel`` body is one
  element's work, so the nesting has no meaning. A scalar ``T.atomic_add(dst[i, j], v)`` is the
  exception (an element operation).
- ``T.copy`` is allowed between any two scopes, global to global included: TileLang lowers such a
  copy to an element-wise loop (``CopyNode::MakeSIMTLoop`` takes any scopes) and our IR semantics
  define it, so rejecting it would refuse valid TileLang programs.
- ``T.gemm``: A and B in shared or fragment memory (TileLang's gemm_ss / gemm_rs / gemm_sr / gemm_rr),
  never global; C in fragment or local. A and B have the same dtype.
- Reduce and cumsum work on shared/fragment/local tiles, not global tensors (TileLang raises
  "Invalid buffer scopes"); reduce's dst has src's shape without ``dim`` or with a 1 there.
"""
from __future__ import annotations

from . import nodes as N
from .verify_ctx import Ctx, is_unit, same_extent, same_shape, shape_str, squeeze, squeeze_to
from .verify_exprs import check_expr, check_region

_GEMM_AB_SCOPES = ("shared", "fragment")
_GEMM_C_SCOPES = ("fragment", "local")
_ON_CHIP = ("shared", "fragment", "local")


def _no_parallel(op: str, ctx: Ctx, node: N.Stmt) -> None:
    if ctx.parallel is not None:
        where = f" (the loop at {ctx.where(ctx.parallel.loc)})" if ctx.parallel.loc else ""
        ctx.fail(f"{op} inside a T.Parallel loop{where}: tile operations work on whole tiles and "
                 f"cannot be nested in T.Parallel; move it out of the loop or write the element-wise "
                 f"assignment", node)


def _ext(r: N.Region) -> tuple[N.Expr, ...]:
    return r.extents


def check_copy(s: N.Copy, ctx: Ctx) -> None:
    _no_parallel("T.copy", ctx, s)
    check_region(s.src, ctx, "copy source")
    check_region(s.dst, ctx, "copy destination")
    a, b = squeeze(_ext(s.src)), squeeze(_ext(s.dst))
    if not same_shape(a, b):
        ctx.fail(f"copy: source '{s.src.buffer.name}' tile is {shape_str(_ext(s.src))} but destination "
                 f"'{s.dst.buffer.name}' tile is {shape_str(_ext(s.dst))}; the shapes must agree once "
                 f"unit dimensions are dropped", s)


def _gemm_operand(r: N.Region, role: str, scopes: tuple[str, ...], ctx: Ctx, s: N.Gemm):
    check_region(r, ctx, f"gemm {role}")
    if r.buffer.scope not in scopes:
        ctx.fail(f"gemm: {role} ('{r.buffer.name}') is in {r.buffer.scope} memory but must be in "
                 f"{' or '.join(scopes)} memory; copy it there first", s)
    two = squeeze_to(_ext(r), 2)
    if two is None:
        ctx.fail(f"gemm: {role} ('{r.buffer.name}') must be a 2-D tile, got {shape_str(_ext(r))}", s)
    return two


def check_gemm(s: N.Gemm, ctx: Ctx) -> None:
    _no_parallel("T.gemm", ctx, s)
    if not isinstance(s.policy, str):
        ctx.fail(f"gemm: policy must be a warp policy name, got {s.policy!r}", s)
    a = _gemm_operand(s.a, "A", _GEMM_AB_SCOPES, ctx, s)
    b = _gemm_operand(s.b, "B", _GEMM_AB_SCOPES, ctx, s)
    c = _gemm_operand(s.c, "C", _GEMM_C_SCOPES, ctx, s)
    if s.a.buffer.dtype != s.b.buffer.dtype:
        ctx.fail(f"gemm: A is {s.a.buffer.dtype} but B is {s.b.buffer.dtype}; A and B must have the "
                 f"same dtype", s)
    m, k_a = (a[1], a[0]) if s.trans_a else (a[0], a[1])
    k_b, n = (b[1], b[0]) if s.trans_b else (b[0], b[1])
    sa, sb, sc = shape_str(a), shape_str(b), shape_str(c)
    if not same_extent(k_a, k_b):
        hint = _transpose_hint(a, b, c, s)
        ctx.fail(f"gemm: A is {sa} but B is {sb}: the reduction extents differ (K={shape_str((k_a,))} "
                 f"from A{' transposed' if s.trans_a else ''}, K={shape_str((k_b,))} from "
                 f"B{' transposed' if s.trans_b else ''}){hint}", s)
    if not same_extent(m, c[0]):
        ctx.fail(f"gemm: A is {sa} but C is {sc}: M={shape_str((m,))} from A but C has "
                 f"{shape_str((c[0],))} rows", s)
    if not same_extent(n, c[1]):
        ctx.fail(f"gemm: B is {sb} but C is {sc}: N={shape_str((n,))} from B but C has "
                 f"{shape_str((c[1],))} columns", s)


def _transpose_hint(a, b, c, s: N.Gemm) -> str:
    """Suggest the transpose flags that would make all of M, N and K agree, when some would."""
    for ta in (False, True):
        for tb in (False, True):
            if (ta, tb) == (s.trans_a, s.trans_b):
                continue
            m, ka = (a[1], a[0]) if ta else (a[0], a[1])
            kb, n = (b[1], b[0]) if tb else (b[0], b[1])
            if same_extent(ka, kb) and same_extent(m, c[0]) and same_extent(n, c[1]):
                flags = []
                if ta != s.trans_a:
                    flags.append(f"transpose_A={ta}")
                if tb != s.trans_b:
                    flags.append(f"transpose_B={tb}")
                return f"; did you mean {', '.join(flags)}?"
    return ""


def check_fill(s: N.Fill, ctx: Ctx) -> None:
    _no_parallel("T.fill (or T.clear)", ctx, s)
    if isinstance(s.value, (N.Region, N.Buffer)):
        ctx.fail("fill: the value must be a scalar, not a buffer or tile", s)
    check_region(s.dst, ctx, "fill destination")
    check_expr(s.value, ctx)


def _on_chip(r: N.Region, op: str, role: str, ctx: Ctx, s: N.Stmt) -> None:
    if r.buffer.scope not in _ON_CHIP:
        ctx.fail(f"{op}: {role} '{r.buffer.name}' is a {r.buffer.scope} tensor; {op} works on shared, "
                 f"fragment or local tiles, so copy it into one first", s)


def _check_dim(dim: object, rank: int, op: str, ctx: Ctx, s: N.Stmt) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool) or not 0 <= dim < rank:
        ctx.fail(f"{op}: dim {dim} is out of range for a {rank}-D source (valid: 0..{rank - 1})", s)


def check_reduce(s: N.Reduce, ctx: Ctx) -> None:
    op = f"reduce_{s.kind}"
    if s.kind not in N.REDUCE_KINDS:
        ctx.fail(f"unknown reduction '{s.kind}' (known: {', '.join(N.REDUCE_KINDS)})", s)
    _no_parallel(f"T.{op}", ctx, s)
    check_region(s.src, ctx, f"{op} source")
    check_region(s.dst, ctx, f"{op} destination")
    _on_chip(s.src, op, "source", ctx, s)
    _on_chip(s.dst, op, "destination", ctx, s)
    src, dst = _ext(s.src), _ext(s.dst)
    _check_dim(s.dim, len(src), op, ctx, s)
    dropped = src[:s.dim] + src[s.dim + 1:]
    kept = src[:s.dim] + (N.Const(1),) + src[s.dim + 1:]
    scalar_ok = not dropped and all(is_unit(e) for e in dst)
    if not (same_shape(dst, dropped) or same_shape(dst, kept) or scalar_ok):
        ctx.fail(f"{op}: destination '{s.dst.buffer.name}' is {shape_str(dst)} but reducing "
                 f"{shape_str(src)} along dim {s.dim} gives {shape_str(dropped)}", s)


def check_cumsum(s: N.Cumsum, ctx: Ctx) -> None:
    _no_parallel("T.cumsum", ctx, s)
    check_region(s.src, ctx, "cumsum source")
    check_region(s.dst, ctx, "cumsum destination")
    _on_chip(s.src, "cumsum", "source", ctx, s)
    _on_chip(s.dst, "cumsum", "destination", ctx, s)
    _check_dim(s.dim, len(_ext(s.src)), "cumsum", ctx, s)
    if not same_shape(squeeze(_ext(s.src)), squeeze(_ext(s.dst))):
        ctx.fail(f"cumsum: destination '{s.dst.buffer.name}' is {shape_str(_ext(s.dst))} but the source "
                 f"is {shape_str(_ext(s.src))}; a scan keeps the shape (unit dimensions aside)", s)


def check_atomic(s: N.Atomic, ctx: Ctx) -> None:
    op = f"atomic_{s.kind}"
    if s.kind not in N.ATOMIC_KINDS:
        ctx.fail(f"unknown atomic operation '{s.kind}' (known: {', '.join(N.ATOMIC_KINDS)})", s)
    check_region(s.dst, ctx, f"{op} destination")
    dst = _ext(s.dst)
    if isinstance(s.value, N.Region):
        _no_parallel(f"T.{op} of a tile", ctx, s)
        check_region(s.value, ctx, f"{op} value")
        if not same_shape(squeeze(dst), squeeze(_ext(s.value))):
            ctx.fail(f"{op}: destination tile is {shape_str(dst)} but the value tile is "
                     f"{shape_str(_ext(s.value))}; the shapes must agree once unit dimensions are "
                     f"dropped", s)
        return
    check_expr(s.value, ctx)
    if not all(is_unit(e) for e in dst):
        ctx.fail(f"{op}: a scalar value updates one element, but the destination is a "
                 f"{shape_str(dst)} tile of '{s.dst.buffer.name}'", s)
