"""Building typed IR expressions from frontend values: literal promotion, casts and constant folding.

The frontend's values are Python numbers (compile-time constants) or ``nodes.Expr`` (a factory's
``SymInt`` is unwrapped to its expression by ``normalize_py``, which every entry point calls). A binary
operation on two Python numbers is computed by Python; otherwise a Python literal takes the other
operand's dtype (a float literal next to an integer makes both float32), two typed operands promote
with ``dtypes.promote`` and the narrower is ``Cast``. Integer constants fold, and ``x + 0``-style
identities disappear, so region starts and extents come out as written in TileLang.
"""
from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any, Optional

import numpy as np

from ..errors import TilecError
from ..ir import dtypes, nodes
from ..ir.printer import print_expr
from ..ir.nodes import BinOp, Buffer, Call, Cast, Const, Expr, Load, Loc, UnaryOp, Var
from .source import caller_loc

PyNum = (bool, int, float)


def normalize_py(v: Any) -> Any:
    """numpy scalars behave as the Python numbers they hold; a factory's ``SymInt`` is its expression."""
    if isinstance(v, SymInt):
        return v.expr
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def is_py(v: Any) -> bool:
    return isinstance(normalize_py(v), PyNum)


def literal_dtype(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int32" if -2**31 <= v < 2**31 else "int64"
    return "float32"


def const(value: Any, dtype: str, loc: Optional[Loc] = None) -> Const:
    """A ``Const`` of ``dtype`` holding ``value`` converted to that dtype's Python kind."""
    value = normalize_py(value)
    if dtypes.is_bool(dtype):
        return Const(bool(value), dtype, loc)
    if dtypes.is_int(dtype):
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise TilecError(f"cannot make an {dtype} constant from {value}", loc)
            value = int(value)
        info = dtypes.info(dtype)
        lo, hi = (0, 2 ** info.bits - 1) if info.kind == "uint" else \
            (-2 ** (info.bits - 1), 2 ** (info.bits - 1) - 1)
        if not lo <= int(value) <= hi:
            raise TilecError(f"the constant {int(value)} does not fit in {dtype}", loc)
        return Const(int(value), dtype, loc)
    return Const(float(value), dtype, loc)


def relocate(e: Expr, loc: Optional[Loc]) -> Expr:
    """``e`` with ``loc`` on every node that has none (expressions built in Python, outside a kernel)."""
    changes = {}
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if isinstance(v, Expr):
            changes[f.name] = relocate(v, loc)
        elif isinstance(v, tuple) and any(isinstance(x, Expr) for x in v):
            changes[f.name] = tuple(relocate(x, loc) if isinstance(x, Expr) else x for x in v)
    if getattr(e, "loc", 0) is None:
        changes["loc"] = loc
    return dataclasses.replace(e, **changes) if changes else e


def var_names(e: Expr) -> list[str]:
    """The names of the ``Var`` nodes in ``e``, in order of first appearance."""
    out: list[str] = []

    def visit(x: Any) -> None:
        if isinstance(x, Var):
            if x.name not in out:
                out.append(x.name)
            return
        for f in dataclasses.fields(x):
            v = getattr(x, f.name)
            for item in (v if isinstance(v, tuple) else (v,)):
                if isinstance(item, Expr):
                    visit(item)
    visit(e)
    return out


def scalar_load(buf: Buffer, loc: Optional[Loc]) -> Load:
    if buf.shape:
        raise TilecError(f"buffer '{buf.name}' is used as a scalar; index it (e.g. {buf.name}[i])", loc)
    return Load(buf, (), loc)


def as_expr(v: Any, loc: Optional[Loc] = None, dtype: Optional[str] = None) -> Expr:
    """An IR expression for a frontend value; a Python literal gets ``dtype`` (or its literal type)."""
    v = normalize_py(v)
    if isinstance(v, Expr):
        return v
    if isinstance(v, PyNum):
        if dtype is None or (isinstance(v, float) and not dtypes.is_float(dtype)):
            dtype = literal_dtype(v)  # never truncate a float literal silently
        return const(v, dtype, loc)
    if isinstance(v, Buffer):
        return scalar_load(v, loc)
    to_expr = getattr(v, "to_expr", None)  # frontend.regions.Access
    if to_expr is not None:
        return to_expr()
    raise TilecError(f"expected a scalar value, got {describe(v)}", loc)


def describe(v: Any) -> str:
    if isinstance(v, Buffer):
        return f"buffer '{v.name}'"
    if isinstance(v, Expr):
        return f"a {v.dtype} expression"
    name = getattr(v, "describe", None)
    if callable(name):
        return name()
    return f"{type(v).__name__} {v!r}"[:80]


def cast(dtype: Any, v: Any, loc: Optional[Loc] = None) -> Expr:
    dtype = canonical_dtype(dtype, loc)
    v = normalize_py(v)
    if isinstance(v, PyNum):
        return const(v, dtype, loc)
    e = as_expr(v, loc)
    if e.dtype == dtype:
        return e
    if isinstance(e, Const) and not (dtypes.is_int(dtype) and dtypes.is_float(e.dtype)):
        try:
            return const(e.value, dtype, loc)
        except TilecError:  # out of range: the Cast's wrap/saturate rule decides at run time
            pass
    return Cast(dtype, e, loc)


def canonical_dtype(d: Any, loc: Optional[Loc]) -> str:
    if not isinstance(d, str):
        text = str(d)
        if text.startswith("torch."):  # torch.float16 and friends
            d = text[len("torch."):]
        else:
            raise TilecError(f"expected a dtype name, got {describe(d)}", loc)
    try:
        return dtypes.canonical(str(d))
    except ValueError as e:
        raise TilecError(str(e), loc) from None


def to_bool(v: Any, loc: Optional[Loc]) -> Any:
    """A condition: Python values stay Python; integer expressions compare against zero.

    A float condition is left as it is, for the verifier to reject (``if x:`` on a float is a mistake).
    """
    v = normalize_py(v)
    if isinstance(v, PyNum):
        return bool(v)
    e = as_expr(v, loc)
    if not dtypes.is_int(e.dtype):
        return e
    return BinOp("!=", e, const(0, e.dtype, loc), loc)


def unify(a: Any, b: Any, loc: Optional[Loc]) -> tuple[Expr, Expr]:
    """Give two operands (at least one an ``Expr``) one dtype, following the literal rules above."""
    a, b = normalize_py(a), normalize_py(b)
    if isinstance(a, PyNum) and not isinstance(b, PyNum):
        eb, ea = unify(b, a, loc)
        return ea, eb
    ea = as_expr(a, loc)
    if isinstance(b, PyNum):
        if isinstance(b, float) and not isinstance(b, bool) and not dtypes.is_float(ea.dtype):
            return cast("float32", ea, loc), const(b, "float32", loc)
        if isinstance(b, int) and not isinstance(b, bool) and dtypes.is_bool(ea.dtype):
            return cast("int32", ea, loc), const(b, "int32", loc)
        return ea, const(b, ea.dtype, loc)
    eb = as_expr(b, loc)
    if ea.dtype == eb.dtype:
        return ea, eb
    t = dtypes.promote(ea.dtype, eb.dtype)
    return cast(t, ea, loc), cast(t, eb, loc)


_PY_OPS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "&": operator.and_,
    "|": operator.or_, "^": operator.xor, "<<": operator.lshift, ">>": operator.rshift,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "max": max, "min": min,
}

_INT_ONLY = ("&", "|", "^", "<<", ">>")


def py_binop(op: str, a: Any, b: Any, loc: Optional[Loc]) -> Any:
    try:
        return _PY_OPS[op](a, b)
    except (ArithmeticError, TypeError, ValueError) as e:
        raise TilecError(f"cannot compute {a!r} {op} {b!r}: {e}", loc) from None


def binop(op: str, a: Any, b: Any, loc: Optional[Loc] = None) -> Any:
    """``a op b`` on frontend values (op is a ``nodes`` operator name, ``**`` or a logic op)."""
    a, b = normalize_py(a), normalize_py(b)
    if isinstance(a, PyNum) and isinstance(b, PyNum):
        if op == "and":
            return a and b
        if op == "or":
            return a or b
        return py_binop(op, a, b, loc)
    if op == "**":
        return intrinsic("pow", (a, b), loc)
    if op in ("and", "or"):
        a, b = to_bool(a, loc), to_bool(b, loc)
        for known, other in ((a, b), (b, a)):
            if isinstance(known, bool):  # a compile-time side decides or drops out
                if op == "and":
                    return other if known else False
                return True if known else other
        return BinOp(op, a, b, loc)
    ea, eb = unify(a, b, loc)
    if op in _INT_ONLY and dtypes.is_float(ea.dtype):
        raise TilecError(f"operator '{op}' needs integer operands, got {ea.dtype}", loc)
    folded = fold(op, ea, eb, loc)
    return folded if folded is not None else BinOp(op, ea, eb, loc)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def fold(op: str, a: Expr, b: Expr, loc: Optional[Loc]) -> Optional[Expr]:
    """Fold integer constants and drop identities; None when nothing simplifies."""
    if not (dtypes.is_int(a.dtype) or dtypes.is_bool(a.dtype)):
        return None
    ca = a.value if isinstance(a, Const) else None
    cb = b.value if isinstance(b, Const) else None
    if op in ("/", "//", "%") and cb == 0:
        raise TilecError("integer division by zero", loc)
    if ca is not None and cb is not None:
        if op == "/":
            return const(_trunc_div(int(ca), int(cb)), a.dtype, loc)
        value = _PY_OPS[op](ca, cb)
        return Const(bool(value), "bool", loc) if isinstance(value, bool) else const(value, a.dtype, loc)
    if op == "+" and ca == 0 and not isinstance(ca, bool):
        return b
    if op in ("+", "-") and cb == 0 and not isinstance(cb, bool):
        return a
    if op == "*" and (ca == 1 or cb == 1):
        return b if ca == 1 else a
    if op == "*" and (ca == 0 or cb == 0):
        return const(0, a.dtype, loc)
    if op in ("//", "/") and cb == 1:
        return a
    if op in ("+", "-") and cb is not None and isinstance(a, BinOp) and a.op in ("+", "-") \
            and isinstance(a.b, Const):
        # (x + c1) + c2 -> x + (c1 + c2): keeps T.ceildiv and slice bounds readable.
        total = (a.b.value if a.op == "+" else -a.b.value) + (cb if op == "+" else -cb)
        if total == 0:
            return a.a
        return BinOp("+" if total > 0 else "-", a.a, const(abs(total), a.dtype, loc), loc)
    return None


def unop(op: str, v: Any, loc: Optional[Loc] = None) -> Any:
    v = normalize_py(v)
    if isinstance(v, PyNum):
        if op == "-":
            return -v
        if op == "+":
            return v
        if op == "not":
            return not v
        return ~v
    if op == "+":
        return as_expr(v, loc)
    if op == "not":
        return UnaryOp("not", as_expr(to_bool(v, loc), loc), loc)
    e = as_expr(v, loc)
    if op == "~" and not (dtypes.is_int(e.dtype) or dtypes.is_bool(e.dtype)):
        raise TilecError(f"operator '~' needs an integer operand, got {e.dtype}", loc)
    if isinstance(e, Const) and op == "-":
        return Const(-e.value, e.dtype, loc)
    return UnaryOp(op, e, loc)


# --- linear forms: exact differences of index expressions (slice extents) ---------------------------

def _linear(e: Expr, scale: int, terms: dict, consts: list) -> None:
    if isinstance(e, Const) and dtypes.is_int(e.dtype):
        consts[0] += scale * int(e.value)
    elif isinstance(e, BinOp) and e.op in ("+", "-"):
        _linear(e.a, scale, terms, consts)
        _linear(e.b, scale if e.op == "+" else -scale, terms, consts)
    elif isinstance(e, BinOp) and e.op == "*" and isinstance(e.b, Const):
        _linear(e.a, scale * int(e.b.value), terms, consts)
    elif isinstance(e, BinOp) and e.op == "*" and isinstance(e.a, Const):
        _linear(e.b, scale * int(e.a.value), terms, consts)
    elif isinstance(e, UnaryOp) and e.op == "-":
        _linear(e.a, -scale, terms, consts)
    else:
        terms[e] = terms.get(e, 0) + scale


def difference(stop: Expr, start: Expr, loc: Optional[Loc]) -> Expr:
    """``stop - start``, exact when both are linear in the same terms (``(k+1)*64 - k*64`` is 64)."""
    if not (dtypes.is_int(stop.dtype) and dtypes.is_int(start.dtype)):
        return binop("-", stop, start, loc)
    terms: dict = {}
    consts = [0]
    _linear(stop, 1, terms, consts)
    _linear(start, -1, terms, consts)
    if any(coef < 0 for coef in terms.values()):
        return binop("-", stop, start, loc)
    result: Any = 0
    for term, coef in terms.items():
        if coef == 0:
            continue
        piece = term if coef == 1 else binop("*", term, coef, loc)
        result = piece if is_py(result) and result == 0 else binop("+", result, piece, loc)
    result = binop("+", result, consts[0], loc)
    return as_expr(result, loc, stop.dtype)


# --- intrinsic calls ---------------------------------------------------------------------------------

_PY_MATH = {
    "exp": math.exp, "exp2": lambda x: 2.0 ** x, "log": math.log, "log2": math.log2, "sqrt": math.sqrt,
    "rsqrt": lambda x: 1.0 / math.sqrt(x), "tanh": math.tanh, "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)),
    "sin": math.sin, "cos": math.cos, "floor": math.floor, "ceil": math.ceil, "round": round,
    "trunc": math.trunc, "pow": math.pow, "isnan": math.isnan, "isinf": math.isinf, "abs": abs,
}


def intrinsic(name: str, args: tuple, loc: Optional[Loc]) -> Any:
    """An intrinsic call; on Python numbers it is computed now."""
    if all(is_py(a) for a in args):
        try:
            return _PY_MATH[name](*(normalize_py(a) for a in args))
        except (ValueError, OverflowError, ZeroDivisionError) as e:
            raise TilecError(f"T.{name}{tuple(args)}: {e}", loc) from None
    if len(args) == 2:
        a, b = unify(args[0], args[1], loc)
        items = [a, b]
    else:
        items = [as_expr(args[0], loc)]
    # An integer argument of a float function is left for the verifier to report (no silent cast).
    return Call(name, tuple(items), loc)


# --- symbolic sizes in kernel factories -------------------------------------------------------------
# Symbolic sizes in kernel factories: ``T.dynamic("M")`` and the arithmetic a factory does with it.
#
# The IR is plain data without operators, so the value a factory holds for a symbolic dimension is a
# ``SymInt``: a thin Python wrapper around an IR expression (``nodes.Var("M")``, then ``M * 4``,
# ``(M + 63) // 64``, ...). Its operators (``+ - * // %``, unary ``-``, with Python ints on either side)
# build IR through the frontend's ``exprs.binop``, which folds constants, so ``M * 0`` is the int ``0``
# and ``M + 1 - 1`` is ``M`` again. Pure builtins called in a factory (``T.ceildiv(M, 64)``,
# ``T.max(M, 8)``) return ``SymInt`` too. The frontend unwraps a ``SymInt`` to its expression wherever a
# Python value enters a kernel (names, parameter shapes, loop bounds, extents).
#
# A symbolic value has no Python truth value or integer value before a call binds it: ``if M > 4:``,
# ``range(M)`` and builtin ``min(M, 8)`` in a factory raise a ``TilecError`` (use ``T.min``/``T.max``,
# or branch inside the kernel). Equality is structural (TVM's ``same_as``): ``M == M`` is true,
# ``M == 4`` is false, so factories taking ``T.dynamic`` values memoize under ``@tilec.jit``.

def wrap(value: Any) -> Any:
    """A frontend value as a factory sees it: an ``Expr`` becomes a ``SymInt``, a ``Const`` its number."""
    if isinstance(value, nodes.Const):
        return value.value
    if isinstance(value, nodes.Expr):
        return SymInt(value)
    return value


def _operand(v: Any) -> Any:
    """The frontend value for the other operand, or None when the operation does not apply."""
    if isinstance(v, SymInt):
        return v.expr
    if isinstance(v, bool):
        return None
    if isinstance(v, int) or isinstance(v, nodes.Expr):
        return v
    if isinstance(v, np.integer):
        return int(v)
    return None


class SymInt:
    """A symbolic integer (an IR ``Expr`` built outside kernels); see the module docstring."""

    __slots__ = ("expr",)
    __array_ufunc__ = None  # numpy scalars on the left defer to our reflected operators

    def __init__(self, expr: nodes.Expr):
        if not isinstance(expr, nodes.Expr):
            raise TypeError(f"SymInt wraps an IR expression, got {type(expr).__name__}")
        object.__setattr__(self, "expr", expr)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SymInt is immutable")

    def __reduce__(self) -> tuple:  # copy and pickle rebuild it (the slot is read-only)
        return (SymInt, (self.expr,))

    # --- what it is -----------------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        return self.expr.dtype

    @property
    def name(self) -> str:
        """The symbol's name (TVM's ``Var.name``); an expression's text otherwise."""
        return self.expr.name if isinstance(self.expr, nodes.Var) else str(self)

    def __str__(self) -> str:
        return print_expr(self.expr)

    def __repr__(self) -> str:
        return f"SymInt({self})"

    def describe(self) -> str:
        return f"the symbolic value {self}"

    # --- arithmetic -----------------------------------------------------------------------------------

    def _binop(self, op: str, other: Any, reverse: bool = False) -> Any:
        o = _operand(other)
        if o is None:
            return NotImplemented
        a, b = (o, self.expr) if reverse else (self.expr, o)
        try:
            # No location: the kernel that uses the value gives its nodes the location of the use.
            return wrap(binop(op, a, b, None))
        except TilecError as e:
            if e.loc is None:
                e.loc = caller_loc(3)
            raise

    def __add__(self, o: Any) -> Any:
        return self._binop("+", o)

    def __radd__(self, o: Any) -> Any:
        return self._binop("+", o, True)

    def __sub__(self, o: Any) -> Any:
        return self._binop("-", o)

    def __rsub__(self, o: Any) -> Any:
        return self._binop("-", o, True)

    def __mul__(self, o: Any) -> Any:
        return self._binop("*", o)

    def __rmul__(self, o: Any) -> Any:
        return self._binop("*", o, True)

    def __floordiv__(self, o: Any) -> Any:
        return self._binop("//", o)

    def __rfloordiv__(self, o: Any) -> Any:
        return self._binop("//", o, True)

    def __mod__(self, o: Any) -> Any:
        return self._binop("%", o)

    def __rmod__(self, o: Any) -> Any:
        return self._binop("%", o, True)

    def __neg__(self) -> Any:
        return wrap(unop("-", self.expr, None))

    def __pos__(self) -> "SymInt":
        return self

    def __truediv__(self, o: Any) -> Any:
        raise TilecError(f"'/' on the symbolic size {self} is not supported: use // (floor division) "
                         "or T.ceildiv", caller_loc())

    __rtruediv__ = __truediv__

    # --- no value before the call ---------------------------------------------------------------------

    def _unknown(self, what: str) -> TilecError:
        return TilecError(f"{what} the symbolic size {self}: its value is not known until the kernel is "
                          "called; use T.min / T.max / T.ceildiv on it, or decide inside the kernel",
                          caller_loc(3))

    def __bool__(self) -> bool:
        raise self._unknown("a Python truth test (if, and, or, not) needs the value of")

    def __index__(self) -> int:
        raise self._unknown("a Python integer (range, int(), an index) needs the value of")

    __int__ = __index__

    def _compare(self, o: Any) -> bool:
        raise self._unknown("cannot compare (also in builtin min/max/sorted)")

    __lt__ = __le__ = __gt__ = __ge__ = _compare

    def __eq__(self, o: Any) -> bool:
        other: Optional[nodes.Expr] = o.expr if isinstance(o, SymInt) else o
        return isinstance(other, nodes.Expr) and other == self.expr

    def __ne__(self, o: Any) -> bool:
        return not self.__eq__(o)

    def __hash__(self) -> int:
        return hash(self.expr)
