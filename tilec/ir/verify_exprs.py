"""Verifier checks for expressions, indices and regions (one small function per node kind).

Called by ``verifier.py`` for every expression a statement holds. Each check looks at one node and
recurses into its operands; ``EXPR_CHECKS`` maps a node class to its check. Errors are raised at the
expression's own location when it has one, else at the enclosing statement's (``Ctx.fail``).
"""
from __future__ import annotations

from typing import Callable

from . import dtypes
from . import nodes as N
from .verify_ctx import Ctx, expr_str, fold, interval, shape_str

# Intrinsics that only make sense on floating-point values (TVM rejects them on integers too).
_FLOAT_ONLY = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos", "pow")
_ARITY = {"pow": 2}
_BITWISE = ("&", "|", "^")
_SHIFTS = ("<<", ">>")


def check_dtype(name: object, ctx: Ctx, node: object, what: str) -> None:
    if not isinstance(name, str) or name not in dtypes.DTYPES:
        known = ", ".join(sorted(dtypes.DTYPES))
        ctx.fail(f"{what} has unknown dtype '{name}' (known: {known})", node)


def check_expr(e: object, ctx: Ctx) -> None:
    check = EXPR_CHECKS.get(type(e))
    if check is None:
        ctx.fail(f"expected a scalar expression, got {type(e).__name__}", e)
    check(e, ctx)


def check_index(e: N.Expr, ctx: Ctx, what: str) -> None:
    """An index, start, extent or loop bound: a scalar expression of integer dtype."""
    check_expr(e, ctx)
    if not dtypes.is_int(e.dtype):
        ctx.fail(f"{what} must be an integer, got a {e.dtype} value", e)


def check_bool(e: N.Expr, ctx: Ctx, what: str) -> None:
    check_expr(e, ctx)
    if e.dtype != "bool":
        ctx.fail(f"{what} must be a bool, got a {e.dtype} value (compare it, e.g. `x != 0`)", e)


def check_indices(buf: N.Buffer, indices: tuple, ctx: Ctx, node: object, verb: str) -> None:
    """The index list of a Load/Store: one integer per buffer dimension."""
    rank = len(buf.shape)
    if len(indices) != rank:
        shape = shape_str(buf.shape)
        plural = "index" if rank == 1 else "indices"
        ctx.fail(f"{verb} '{buf.name}' takes {rank} {plural} ({shape} buffer) but {len(indices)} "
                 f"{'was' if len(indices) == 1 else 'were'} given", node)
    for i, idx in enumerate(indices):
        check_index(idx, ctx, f"index {i} of '{buf.name}'")
        _check_in_bounds(buf, i, idx, ctx, node)


def _check_in_bounds(buf: N.Buffer, dim: int, idx: N.Expr, ctx: Ctx, node: object) -> None:
    """An on-chip access whose index provably leaves the buffer is a bug on every target.

    Only unguarded accesses of shared/fragment/local buffers are checked: global accesses may rely on
    TileLang's automatic bounds guards, and a guard (``if``, ``while``, ``T.if_then_else``) may keep
    the index in range in ways this interval reasoning does not see.
    """
    size = fold(buf.shape[dim])
    if ctx.guarded or buf.scope == "global" or size is None:
        return
    iv = interval(idx, ctx.ranges)
    if iv is None:
        return
    lo, hi = iv
    if hi >= size or lo < 0:
        reach = hi if hi >= size else lo
        ctx.fail(f"index {expr_str(idx)} of '{buf.name}' reaches {reach}, outside dimension {dim} of "
                 f"size {size}", node if isinstance(idx, N.Var) else idx)


def check_region(r: object, ctx: Ctx, role: str) -> None:
    """A tile operand: a visible buffer, one start and one extent per dimension, extents positive."""
    if not isinstance(r, N.Region):
        ctx.fail(f"{role} must be a buffer region, got {type(r).__name__}", r)
    buf = r.buffer
    ctx.use_buffer(buf, r, f"{role}: ")
    rank = len(buf.shape)
    if len(r.starts) != rank or len(r.extents) != rank:
        ctx.fail(f"{role}: region of '{buf.name}' has {len(r.starts)} starts and {len(r.extents)} "
                 f"extents but the buffer has {rank} dimensions ({shape_str(buf.shape)})", r)
    for i, s in enumerate(r.starts):
        check_index(s, ctx, f"{role}: start {i} of '{buf.name}'")
    for i, x in enumerate(r.extents):
        check_index(x, ctx, f"{role}: extent {i} of '{buf.name}'")
        v = fold(x)
        if v is not None and v <= 0:
            ctx.fail(f"{role}: extent {i} of '{buf.name}' is {v}; extents must be positive", r)


# ---------------------------------------------------------------------------------------------------
# Per-node checks


def _const(e: N.Const, ctx: Ctx) -> None:
    check_dtype(e.type, ctx, e, "constant")
    v, kind = e.value, dtypes.info(e.type).kind
    if kind == "bool":
        ok = isinstance(v, bool)
    elif kind in ("int", "uint"):
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if not ok:
        ctx.fail(f"constant {v!r} ({type(v).__name__}) cannot have dtype {e.type}", e)


def _var(e: N.Var, ctx: Ctx) -> None:
    bound = ctx.vars.get(e.name)
    if bound is None:
        ctx.fail(f"'{e.name}' is used before it is defined (not a loop variable, block index, "
                 f"symbolic dimension or earlier assignment in scope)", e)
    if bound.type != e.type:
        ctx.fail(f"'{e.name}' is used as {e.type} but was defined as {bound.type}", e)


def _binop(e: N.BinOp, ctx: Ctx) -> None:
    check_expr(e.a, ctx)
    check_expr(e.b, ctx)
    if e.op not in N.ARITH_OPS + N.COMPARE_OPS + N.LOGIC_OPS:
        ctx.fail(f"unknown binary operator '{e.op}'", e)
    ta, tb = e.a.dtype, e.b.dtype
    if ta != tb:
        ctx.fail(f"operands of '{e.op}' have different dtypes ({ta} and {tb}); cast one of them", e)
    if e.op in N.LOGIC_OPS and ta != "bool":
        ctx.fail(f"operands of '{e.op}' must be bool, got {ta}", e)
    if e.op in _SHIFTS and not dtypes.is_int(ta):
        ctx.fail(f"operands of '{e.op}' must be integers, got {ta}", e)
    if e.op in _BITWISE and dtypes.is_float(ta):
        ctx.fail(f"operands of '{e.op}' must be integers or bool, got {ta}", e)
    arith = e.op in N.ARITH_OPS and e.op not in _BITWISE
    if arith and ta == "bool":
        ctx.fail(f"arithmetic '{e.op}' on bool operands; cast them to a number first", e)


def _unary(e: N.UnaryOp, ctx: Ctx) -> None:
    check_expr(e.a, ctx)
    t = e.a.dtype
    if e.op == "not" and t != "bool":
        ctx.fail(f"operand of 'not' must be bool, got {t}", e)
    elif e.op == "-" and t == "bool":
        ctx.fail("operand of unary '-' must be a number, got bool", e)
    elif e.op == "~" and dtypes.is_float(t):
        ctx.fail(f"operand of '~' must be an integer or bool, got {t}", e)
    elif e.op not in N.UNARY_OPS:
        ctx.fail(f"unknown unary operator '{e.op}'", e)


def _call(e: N.Call, ctx: Ctx) -> None:
    if e.func not in N.INTRINSICS:
        ctx.fail(f"unknown intrinsic '{e.func}' (known: {', '.join(N.INTRINSICS)})", e)
    want = _ARITY.get(e.func, 1)
    if len(e.args) != want:
        ctx.fail(f"{e.func} takes {want} argument{'s' if want > 1 else ''}, got {len(e.args)}", e)
    for a in e.args:
        check_expr(a, ctx)
    types = {a.dtype for a in e.args}
    if len(types) > 1:
        ctx.fail(f"arguments of {e.func} have different dtypes ({', '.join(sorted(types))})", e)
    t = e.args[0].dtype
    if e.func in _FLOAT_ONLY and not dtypes.is_float(t):
        ctx.fail(f"{e.func} needs a floating-point argument, got {t}; cast it first", e)
    if t == "bool":
        ctx.fail(f"{e.func} of a bool value", e)


def _cast(e: N.Cast, ctx: Ctx) -> None:
    check_dtype(e.type, ctx, e, "cast")
    check_expr(e.value, ctx)


def _reinterpret(e: N.Reinterpret, ctx: Ctx) -> None:
    check_dtype(e.type, ctx, e, "reinterpret")
    check_expr(e.value, ctx)
    src, dst = dtypes.info(e.value.dtype).bits, dtypes.info(e.type).bits
    if src != dst:
        ctx.fail(f"reinterpret of a {src}-bit {e.value.dtype} value as {dst}-bit {e.type}; the widths "
                 f"must match", e)


def _select(e: N.Select, ctx: Ctx) -> None:
    check_bool(e.cond, ctx, "condition of if_then_else")
    branches = ctx if ctx.guarded else ctx.guarded_child()
    check_expr(e.a, branches)
    check_expr(e.b, branches)
    if e.a.dtype != e.b.dtype:
        ctx.fail(f"branches of if_then_else have different dtypes ({e.a.dtype} and {e.b.dtype})", e)


def _load(e: N.Load, ctx: Ctx) -> None:
    ctx.use_buffer(e.buffer, e)
    check_indices(e.buffer, e.indices, ctx, e, "load from")


EXPR_CHECKS: dict[type, Callable[..., None]] = {
    N.Const: _const, N.Var: _var, N.BinOp: _binop, N.UnaryOp: _unary, N.Call: _call,
    N.Cast: _cast, N.Reinterpret: _reinterpret, N.Select: _select, N.Load: _load,
}
