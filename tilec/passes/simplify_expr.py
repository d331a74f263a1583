"""Expression rules of the ``simplify`` pass: constant folding, safe identities, index canonicalisation.

Each rule is a small function ``(expr, ranges) -> Expr | None`` in a table keyed by node type;
``simplify_expr`` applies them bottom-up until none fires. Constant folding evaluates with the
interpreter's own expression evaluator, so a folded constant is the value the oracle would compute (int32 wraparound,
floor ``//`` and ``%``, C ``/``, half types computed in float32). A half-type (float16/bfloat16/float8)
result is folded only when it is exactly representable in its dtype, because such expressions are not
rounded until a store or cast. Identities are the ones exact for the dtype: ``x * 1`` and ``x / 1.0``
always, ``x + 0`` for integers only (for floats ``-0.0 + 0.0`` is ``+0.0``, while ``x - 0.0`` and
``x + -0.0`` are exact and go). Integer ``+ - *`` trees are rewritten as a linear form (variables first, terms
sorted by their text, the constant last), which is exact under two's-complement wraparound.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

import numpy as np

from ..errors import TilecError
from ..ir import dtypes
from ..ir import nodes as n
from ..ir import visitor as v
from .analysis import Interval, compare, interval, may_trap

Ranges = Mapping[n.Var, Interval]
COMMUTATIVE = ("+", "*", "min", "max", "&", "|", "^", "==", "!=", "and", "or")


# ---------------------------------------------------------------------------------------------------
# Constant folding


def _is_const_tree(e: n.Expr) -> bool:
    return all(not isinstance(x, (n.Var, n.Load)) for x in v.walk(e))


def make_const(value, dtype: str) -> Optional[n.Const]:
    """A ``Const`` holding a computed value of ``dtype``, or None when no constant of the dtype
    denotes exactly that value (a float32 result of a half-type expression that needs rounding)."""
    value = np.asarray(value)[()]
    if dtypes.is_bool(dtype):
        return n.Const(bool(value), "bool")
    if dtypes.is_int(dtype):
        return n.Const(int(value), dtype)
    f = float(value)
    if dtype not in ("float32", "float64") and not math.isnan(f):
        from .. import numerics
        if float(numerics.round_to(np.asarray(f, np.float32), dtype)) != f:
            return None
    return n.Const(math.nan if math.isnan(f) else f, dtype)


def fold(e: n.Expr) -> Optional[n.Const]:
    """The constant value of a variable-free, load-free expression, or None (errors are not folded:
    an integer division by zero stays in the program to fail where it runs)."""
    if isinstance(e, n.Const) or not _is_const_tree(e):
        return None
    from ..interp.expr import Frame, evaluate
    try:
        with np.errstate(all="ignore"):
            value = evaluate(e, Frame())
    except TilecError:
        return None
    return make_const(value, e.dtype)


def _wrap(value: int, dtype: str) -> int:
    bits = dtypes.info(dtype).bits
    value &= (1 << bits) - 1
    if dtypes.info(dtype).kind == "int" and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


# ---------------------------------------------------------------------------------------------------
# Integer linear forms: sum(coef * term) + const, exact modulo 2**bits


def _linear(e: n.Expr, dtype: str) -> tuple[dict, int]:
    if isinstance(e, n.Const):
        return {}, int(e.value)
    if isinstance(e, n.BinOp) and e.op in ("+", "-"):
        ta, ca = _linear(e.a, dtype)
        tb, cb = _linear(e.b, dtype)
        sign = 1 if e.op == "+" else -1
        terms = dict(ta)
        for t, k in tb.items():
            terms[t] = terms.get(t, 0) + sign * k
        return terms, ca + sign * cb
    if isinstance(e, n.BinOp) and e.op == "*" and isinstance(e.b, n.Const):
        ta, ca = _linear(e.a, dtype)
        k = int(e.b.value)
        return {t: c * k for t, c in ta.items()}, ca * k
    if isinstance(e, n.UnaryOp) and e.op == "-":
        ta, ca = _linear(e.a, dtype)
        return {t: -c for t, c in ta.items()}, -ca
    return {e: 1}, 0


def _rebuild_linear(terms: dict, const: int, dtype: str) -> n.Expr:
    out: Optional[n.Expr] = None
    const = _wrap(const, dtype)
    ordered = sorted(terms.items(), key=lambda tk: _term_key(tk[0]))
    first = next((_wrap(k, dtype) for _, k in ordered if _wrap(k, dtype)), 0)
    if first < 0 and const != 0:
        out, const = n.Const(const, dtype), 0   # `3 - x`, not `x * -1 + 3`
    for t, k in sorted(terms.items(), key=lambda tk: _term_key(tk[0])):
        k = _wrap(k, dtype)
        if k == 0:
            continue
        neg = k < 0 and out is not None and _wrap(-k, dtype) > 0
        mag = _wrap(-k, dtype) if neg else k
        piece = t if mag == 1 else n.BinOp("*", t, n.Const(mag, dtype))
        out = piece if out is None else n.BinOp("-" if neg else "+", out, piece)
    const = _wrap(const, dtype)
    if out is None:
        return n.Const(const, dtype)
    if const == 0:
        return out
    if const < 0 and _wrap(-const, dtype) > 0:
        return n.BinOp("-", out, n.Const(-const, dtype))
    return n.BinOp("+", out, n.Const(const, dtype))


def _term_key(t: n.Expr) -> tuple:
    """Terms sort by their text (variables by name), so equal sums print alike whatever their order."""
    from ..ir.printer import print_expr
    return (not isinstance(t, n.Var), print_expr(t))


def _canonical_linear(e: n.BinOp, ranges: Ranges) -> Optional[n.Expr]:
    if not dtypes.is_int(e.dtype) or e.op not in ("+", "-", "*"):
        return None
    if e.op == "*" and not isinstance(e.b, n.Const):
        return None
    terms, const = _linear(e, e.dtype)
    dropped = [t for t, k in terms.items() if _wrap(k, e.dtype) == 0]
    if any(may_trap(t) for t in dropped):
        return None   # keep a cancelled term that could fault: its error is part of the program
    out = _rebuild_linear(terms, const, e.dtype)
    return None if out == e else out


# ---------------------------------------------------------------------------------------------------
# Rules


def _is(e: n.Expr, value) -> bool:
    return isinstance(e, n.Const) and not isinstance(e.value, bool) and e.value == value


def _is_pos_zero(e: n.Expr) -> bool:
    return isinstance(e, n.Const) and e.value == 0 and math.copysign(1.0, float(e.value)) > 0


def _is_neg_zero(e: n.Expr) -> bool:
    return isinstance(e, n.Const) and e.value == 0 and math.copysign(1.0, float(e.value)) < 0


def _int_identity(e: n.BinOp, ranges: Ranges) -> Optional[n.Expr]:
    a, b, op = e.a, e.b, e.op
    if op in ("+", "-", "<<", ">>", "|", "^") and _is(b, 0):
        return a
    if op in ("*", "/", "//") and _is(b, 1):
        return a
    if op in ("*", "&") and _is(b, 0) and not may_trap(a):
        return b
    if op == "%" and _is(b, 1) and not may_trap(a):
        return n.Const(0, e.dtype)
    if op in ("//", "%", "/") and isinstance(b, n.Const) and int(b.value) > 0:
        r = interval(a, ranges)
        if r.lo is not None and r.hi is not None and 0 <= r.lo and r.hi < int(b.value):
            return a if op == "%" else n.Const(0, e.dtype)
    return None


def _float_identity(e: n.BinOp, ranges: Ranges) -> Optional[n.Expr]:
    a, b, op = e.a, e.b, e.op
    if op in ("*", "/") and _is(b, 1.0):
        return a
    if (op == "-" and _is_pos_zero(b)) or (op == "+" and _is_neg_zero(b)):
        return a
    return None


def _binop(e: n.BinOp, ranges: Ranges) -> Optional[n.Expr]:
    if e.a.dtype != e.b.dtype:
        return None   # hand-written mixed IR: leave the conversion to the evaluator
    if e.op in COMMUTATIVE and isinstance(e.a, n.Const) and not isinstance(e.b, n.Const):
        return n.BinOp(e.op, e.b, e.a, e.loc)
    if e.op in ("min", "max") and e.a == e.b:
        return e.a
    if e.op in ("and", "or"):
        return _logic(e)
    if e.op in ("<", "<=", ">", ">=", "==", "!=") and dtypes.is_int(e.a.dtype):
        known = compare(e.op, interval(e.a, ranges), interval(e.b, ranges))
        if known is not None and not may_trap(e):
            return n.Const(known, "bool")
        return None
    if dtypes.is_int(e.dtype):
        return _int_identity(e, ranges) or _canonical_linear(e, ranges)
    if dtypes.is_float(e.dtype):
        return _float_identity(e, ranges)
    return None


def _logic(e: n.BinOp) -> Optional[n.Expr]:
    b = e.b
    if not isinstance(b, n.Const):
        return None
    neutral = e.op == "and"   # `x and true`, `x or false`
    if bool(b.value) == neutral:
        return e.a
    return None if may_trap(e.a) else b


def _unary(e: n.UnaryOp, ranges: Ranges) -> Optional[n.Expr]:
    if isinstance(e.a, n.UnaryOp) and e.a.op == e.op:
        return e.a.a   # not not x, - - x (exact under wraparound), ~~x
    if e.op == "-" and dtypes.is_int(e.dtype) and isinstance(e.a, n.BinOp):
        return _canonical_linear(n.BinOp("*", e.a, n.Const(-1, e.dtype)), ranges)
    return None


def _select(e: n.Select, ranges: Ranges) -> Optional[n.Expr]:
    if e.a.dtype != e.b.dtype:
        return None
    if isinstance(e.cond, n.Const):
        return e.a if e.cond.value else e.b
    if e.a == e.b:
        return e.a
    return None


def _cast(e: n.Cast, ranges: Ranges) -> Optional[n.Expr]:
    # A cast to the value's own dtype is the identity in the interpreter (rounding happens on store).
    return e.value if e.value.dtype == e.type else None


RULES: dict[type, list[Callable[[n.Expr, Ranges], Optional[n.Expr]]]] = {
    n.BinOp: [_binop], n.UnaryOp: [_unary], n.Select: [_select], n.Cast: [_cast],
}


def _step(e: n.Expr, ranges: Ranges) -> Optional[n.Expr]:
    folded = fold(e)
    if folded is not None:
        return None if folded == e and isinstance(e, n.Const) else folded
    for rule in RULES.get(type(e), ()):
        out = rule(e, ranges)
        if out is not None:
            return out
    return None


def simplify_expr(e: n.Expr, ranges: Ranges = {}) -> n.Expr:
    """``e`` with every rule applied bottom-up until none fires (each rule shrinks or canonicalises)."""
    def fn(x: n.Expr) -> Optional[n.Expr]:
        for _ in range(16):
            out = _step(x, ranges)
            if out is None:
                return x
            out = v.map_expr(out, fn) if out is not x and _has_children(out) else out
            if out == x:
                return x
            x = out
        return x
    return v.map_expr(e, fn)


def _has_children(e: n.Expr) -> bool:
    return any(True for _ in v.children(e))
