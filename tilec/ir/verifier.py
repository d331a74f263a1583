"""The Tile IR verifier: ``verify(func)`` accepts a well-formed kernel or raises ``TilecError``.

It runs after the frontend builds a ``Func`` (and after each pass when the pass manager asks), so that
later layers can trust the IR: every name is defined before use and never rebound, every buffer is used
inside the scope of its allocation with its declared type, ranks and dtypes agree, and the tile
operations obey the shape rules of docs/language.md. The walk is one pass in program order; the checks are small
functions in tables (``STMT_CHECKS`` here for statements, ``verify_exprs.EXPR_CHECKS`` for expressions,
``verify_tileops`` for tile operations), each raising at the offending node's location with what was
expected.

Scope rules: parameters are ``global``; allocations are ``shared``, ``fragment`` or ``local`` and live
until the end of the body that holds them; ``Launch`` appears only at the kernel's top level; an
allocation may not sit inside a ``T.Parallel`` loop (its body is one element's work).
"""
from __future__ import annotations

from typing import Callable

from . import dtypes
from . import nodes as N
from .verify_ctx import Ctx, fold, interval
from .verify_exprs import check_bool, check_dtype, check_expr, check_index, check_indices
from .verify_tileops import (check_atomic, check_copy, check_cumsum, check_fill, check_gemm,
                             check_reduce)

__all__ = ["verify"]


def verify(func: N.Func) -> None:
    """Check ``func``; raise ``TilecError`` at the first offending node's location."""
    if not isinstance(func, N.Func):
        raise TypeError(f"verify() expects a Func, got {type(func).__name__}")
    ctx = Ctx(func, loc=func.loc)
    _collect_allocs(func.body, ctx)
    _check_params(func, ctx)
    for stmt in func.body:
        if not isinstance(stmt, N.Launch):
            ctx.fail(f"a kernel body holds only T.Kernel launches, got {_stmt_name(stmt)} outside "
                     f"'with T.Kernel(...)'", stmt)
        check_body((stmt,), ctx)


def check_body(body: tuple, ctx: Ctx) -> None:
    """Check a statement list in its own scope (names it defines end with it)."""
    inner = ctx.child()
    for stmt in body:
        check = STMT_CHECKS.get(type(stmt))
        if check is None:
            inner.fail(f"expected a statement, got {type(stmt).__name__}", stmt)
        inner.loc = getattr(stmt, "loc", None) or ctx.loc
        check(stmt, inner)


def _stmt_name(stmt: object) -> str:
    return type(stmt).__name__.lower()


def _collect_allocs(body: tuple, ctx: Ctx) -> None:
    """Remember every allocation so a use before it (or outside its scope) can point at it."""
    for stmt in body:
        if isinstance(stmt, N.Alloc):
            ctx.allocs.setdefault(stmt.buffer.name, stmt)
        for child in _bodies(stmt):
            _collect_allocs(child, ctx)


def _bodies(stmt: object) -> tuple:
    if isinstance(stmt, (N.For, N.While, N.Launch)):
        return (stmt.body,)
    if isinstance(stmt, N.If):
        return (stmt.then_body, stmt.else_body)
    return ()


# ---------------------------------------------------------------------------------------------------
# Kernel parameters and buffers


def _check_buffer_decl(buf: N.Buffer, ctx: Ctx, node: object, scopes: tuple[str, ...], what: str) -> None:
    if not isinstance(buf.name, str) or not buf.name.isidentifier():
        ctx.fail(f"{what} has an invalid name {buf.name!r}", node)
    if buf.name in ctx.declared:
        first = ctx.declared[buf.name]
        at = f" at {ctx.where(first)}" if first else ""
        ctx.fail(f"buffer name '{buf.name}' is already used{at}; buffer names must be unique within a "
                 f"kernel", node)
    if buf.name in ctx.vars:
        ctx.fail(f"buffer '{buf.name}' has the name of a scalar that is in scope", node)
    if buf.scope not in scopes:
        ctx.fail(f"{what} '{buf.name}' has scope '{buf.scope}' but must be "
                 f"{' or '.join(repr(s) for s in scopes)}", node)
    check_dtype(buf.dtype, ctx, node, f"buffer '{buf.name}'")
    for i, dim in enumerate(buf.shape):
        check_index(dim, ctx, f"dimension {i} of '{buf.name}'")
        v = fold(dim)
        if v is not None and v <= 0:
            ctx.fail(f"dimension {i} of '{buf.name}' is {v}; dimensions must be positive", node)
    ctx.declared[buf.name] = getattr(node, "loc", None)
    ctx.buffers[buf.name] = buf


def _symbolic_vars(e: N.Expr, out: dict[str, N.Var]) -> None:
    if isinstance(e, N.Var):
        out.setdefault(e.name, e)
    for child in (getattr(e, "a", None), getattr(e, "b", None), getattr(e, "value", None)):
        if isinstance(child, N.Expr):
            _symbolic_vars(child, out)


def _check_params(func: N.Func, ctx: Ctx) -> None:
    """Parameters are global buffers; the names in their shapes are the kernel's symbolic dims."""
    dims: dict[str, N.Var] = {}
    for p in func.params:
        if not isinstance(p, N.Buffer):
            ctx.fail(f"kernel parameter must be a T.Tensor, got {type(p).__name__}")
        for e in p.shape:
            _symbolic_vars(e, dims)
    for v in dims.values():
        if v.type not in dtypes.DTYPES or not dtypes.is_int(v.type):
            ctx.fail(f"symbolic dimension '{v.name}' must be an integer, got {v.type}", v)
        ctx.vars[v.name] = v
    for p in func.params:
        _check_buffer_decl(p, ctx, p if p.loc else func, ("global",), "kernel parameter")


# ---------------------------------------------------------------------------------------------------
# Statement checks


def _alloc(s: N.Alloc, ctx: Ctx) -> None:
    if ctx.parallel is not None:
        ctx.fail(f"allocation of '{s.buffer.name}' inside a T.Parallel loop; allocate it before the "
                 f"loop", s)
    _check_buffer_decl(s.buffer, ctx, s, ("shared", "fragment", "local"), "allocation")


def _let(s: N.Let, ctx: Ctx) -> None:
    check_expr(s.value, ctx)
    check_dtype(s.var.type, ctx, s, f"'{s.var.name}'")
    if s.var.type != s.value.dtype:
        ctx.fail(f"'{s.var.name}' is declared {s.var.type} but its value is {s.value.dtype}", s)
    ctx.bind_var(s.var, "assignment to", s)
    known = interval(s.value, ctx.ranges) if dtypes.is_int(s.var.type) else None
    if known is not None:
        ctx.ranges[s.var.name] = known


def _store(s: N.Store, ctx: Ctx) -> None:
    ctx.use_buffer(s.buffer, s)
    check_indices(s.buffer, s.indices, ctx, s, "store to")
    check_expr(s.value, ctx)


def _for(s: N.For, ctx: Ctx) -> None:
    if s.kind not in N.LOOP_KINDS:
        ctx.fail(f"unknown loop kind '{s.kind}' (known: {', '.join(N.LOOP_KINDS)})", s)
    if not isinstance(s.stages, int) or s.stages < 0:
        ctx.fail(f"num_stages must be a non-negative integer, got {s.stages!r}", s)
    if s.stages and s.kind != "pipelined":
        ctx.fail(f"a {s.kind} loop has no stages (num_stages={s.stages}); only T.Pipelined does", s)
    check_index(s.start, ctx, "loop start")
    check_index(s.stop, ctx, "loop stop")
    if s.var.type not in dtypes.DTYPES or not dtypes.is_int(s.var.type):
        ctx.fail(f"loop variable '{s.var.name}' must be an integer, got {s.var.type}", s)
    for what, bound in (("start", s.start), ("stop", s.stop)):
        if bound.dtype != s.var.type:
            ctx.fail(f"loop {what} is {bound.dtype} but the loop variable '{s.var.name}' is "
                     f"{s.var.type}; cast the bound", s)
    inner = ctx.child()
    inner.bind_var(s.var, "loop variable", s)
    lo, hi = fold(s.start), fold(s.stop)
    if lo is not None and hi is not None and hi > lo:
        inner.ranges[s.var.name] = (lo, hi - 1)
    if s.kind == "parallel":
        inner.parallel = s
    check_body(s.body, inner)


def _while(s: N.While, ctx: Ctx) -> None:
    check_bool(s.cond, ctx, "while condition")
    check_body(s.body, ctx.guarded_child())


def _if(s: N.If, ctx: Ctx) -> None:
    check_bool(s.cond, ctx, "if condition")
    check_body(s.then_body, ctx.guarded_child())
    check_body(s.else_body, ctx.guarded_child())


def _hint(s: N.Hint, ctx: Ctx) -> None:
    if not isinstance(s.name, str) or not s.name:
        ctx.fail("hint without a name", s)
    for a in s.args:
        if not isinstance(a, (int, float, str, bool)):
            ctx.fail(f"hint {s.name}: argument {a!r} must be a constant or a buffer name", s)


def _launch(s: N.Launch, ctx: Ctx) -> None:
    if ctx.in_launch:
        ctx.fail("T.Kernel inside another T.Kernel; launches appear only at the top of a kernel", s)
    if not 1 <= len(s.grid) <= 3:
        ctx.fail(f"T.Kernel takes 1 to 3 grid extents, got {len(s.grid)}", s)
    if len(s.block_vars) != len(s.grid):
        ctx.fail(f"T.Kernel has {len(s.grid)} grid extents but binds {len(s.block_vars)} block "
                 f"indices; bind one name per extent", s)
    for i, g in enumerate(s.grid):
        check_index(g, ctx, f"grid extent {i}")
        v = fold(g)
        if v is not None and v <= 0:
            ctx.fail(f"grid extent {i} is {v}; it must be positive", s)
    if not isinstance(s.threads, int) or isinstance(s.threads, bool) or s.threads <= 0:
        ctx.fail(f"threads must be a positive integer, got {s.threads!r}", s)
    inner = ctx.child()
    inner.in_launch = True
    for v in s.block_vars:
        if v.type not in dtypes.DTYPES or not dtypes.is_int(v.type):
            ctx.fail(f"block index '{v.name}' must be an integer, got {v.type}", s)
        inner.bind_var(v, "block index", s)
    check_body(s.body, inner)


STMT_CHECKS: dict[type, Callable[..., None]] = {
    N.Alloc: _alloc, N.Let: _let, N.Store: _store, N.For: _for, N.While: _while, N.If: _if,
    N.Hint: _hint, N.Launch: _launch,
    N.Copy: check_copy, N.Gemm: check_gemm, N.Fill: check_fill, N.Reduce: check_reduce,
    N.Cumsum: check_cumsum, N.Atomic: check_atomic,
}
