"""Symbolic sizes in kernel factories: ``T.dynamic("M")`` and the arithmetic a factory does with it.

The IR is plain data without operators, so the value a factory holds for a symbolic dimension is a
``SymInt``: a thin Python wrapper around an IR expression (``nodes.Var("M")``, then ``M * 4``,
``(M + 63) // 64``, ...). Its operators (``+ - * // %``, unary ``-``, with Python ints on either side)
build IR through the frontend's ``exprs.binop``, which folds constants, so ``M * 0`` is the int ``0``
and ``M + 1 - 1`` is ``M`` again. Pure builtins called in a factory (``T.ceildiv(M, 64)``,
``T.max(M, 8)``) return ``SymInt`` too. The frontend unwraps a ``SymInt`` to its expression wherever a
Python value enters a kernel (names, parameter shapes, loop bounds, extents).

A symbolic value has no Python truth value or integer value before a call binds it: ``if M > 4:``,
``range(M)`` and builtin ``min(M, 8)`` in a factory raise a ``TilecError`` (use ``T.min``/``T.max``,
or branch inside the kernel). Equality is structural (TVM's ``same_as``): ``M == M`` is true,
``M == 4`` is false, so factories taking ``T.dynamic`` values memoize under ``@tilec.jit``.
"""
from __future__ import annotations

from typing import Any, Optional

from ..errors import TilecError
from ..ir import nodes
from .surface import caller_loc


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
    import numpy as np
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
        from ..ir.printer import print_expr
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
        from ..frontend import exprs
        a, b = (o, self.expr) if reverse else (self.expr, o)
        try:
            # No location: the kernel that uses the value gives its nodes the location of the use.
            return wrap(exprs.binop(op, a, b, None))
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
        from ..frontend import exprs
        return wrap(exprs.unop("-", self.expr, None))

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


__all__ = ["SymInt", "wrap"]
