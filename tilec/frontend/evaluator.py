"""Evaluating kernel expressions: Python AST expression -> frontend value.

A frontend value is a Python object (a compile-time constant: number, string, tuple, dtype, ``T.*``
builtin, ...), an IR ``Expr``, a ``Buffer``, or an ``Access`` (a buffer subscript). A factory's symbolic
size (``SymInt``) becomes its expression as it enters (``eval``). Operations on
Python values run as Python; as soon as an IR value takes part, IR is built (``exprs``). Calls of
``T.*`` builtins go to their handlers (``calls``); calls of ``@T.macro`` helpers are inlined by the
statement builder. This is a mixin of ``builder.Builder``.
"""
from __future__ import annotations

import ast
import builtins
import dataclasses
from typing import Any, Optional

from ..errors import TilecError
from ..ir.nodes import Buffer, Const, Expr, Load, Loc, Var
from .exprs import SymInt
from .surface import Builtin, DTypeName, Macro
from . import calls, exprs
from .regions import Access, SliceItem, make_index

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
           ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
           ast.RShift: ">>"}
_CMPOPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_UNOPS = {ast.USub: "-", ast.UAdd: "+", ast.Not: "not", ast.Invert: "~"}

# Python builtins that mean the same as a T.* builtin once an IR value is involved.
_PY_TO_T = {builtins.max: "max", builtins.min: "min", builtins.abs: "abs", builtins.pow: "pow"}


_UNSUPPORTED = {
    "Lambda": "lambda expressions are", "ListComp": "list comprehensions are",
    "SetComp": "set comprehensions are", "DictComp": "dict comprehensions are",
    "GeneratorExp": "generator expressions (comprehensions) are", "Await": "await is",
    "Yield": "yield is", "YieldFrom": "yield is", "NamedExpr": "the walrus operator (:=) is",
    "Set": "set literals are", "Starred": "starred expressions here are",
}


def is_ir(v: Any) -> bool:
    return isinstance(v, (Expr, Buffer, Access))


class ExprEvaluator:
    """Mixin: ``self.eval(node)`` for the statement builder (which provides scopes, state and ``loc``)."""

    def loc(self, node: ast.AST) -> Loc:
        return self.frame.src.loc(node)  # type: ignore[attr-defined]

    def eval(self, node: ast.expr) -> Any:
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            kind = type(node).__name__
            what = _UNSUPPORTED.get(kind, f"this kind of expression ({kind})")
            raise TilecError(f"{what} not supported in kernels", self.loc(node))
        value = method(node)
        if isinstance(value, SymInt):  # a factory's symbolic size (a name, attribute, helper's result)
            value = self._symbolic(value.expr, node)
        return value

    def eval_expr(self, node: ast.expr, dtype: Optional[str] = None) -> Expr:
        return exprs.as_expr(self.eval(node), self.loc(node), dtype)

    # --- leaves ---------------------------------------------------------------------------------------

    def eval_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def eval_Name(self, node: ast.Name) -> Any:
        found, value = self.lookup(node.id)  # type: ignore[attr-defined]
        if found:
            return value
        value = self.frame.py.lookup(node.id)  # type: ignore[attr-defined]
        if not self.frame.py.has(value):  # type: ignore[attr-defined]
            self.unknown_name(node)  # type: ignore[attr-defined]
        if isinstance(value, Expr):  # built in Python (T.ceildiv(n, 8) on a bare Var)
            value = self._symbolic(value, node)
        return value

    def _as_sym(self, v: Any) -> Any:
        # While the parameter annotations are read, every name is a symbolic dimension (or an error).
        dims = None if self.reading_params else self.state.dims  # type: ignore[attr-defined]
        if isinstance(v, Expr) and not isinstance(v, Const) and _symbolic_only(v, dims):
            return SymInt(v)
        return v

    def _symbolic(self, e: Expr, node: ast.expr) -> Expr:
        """An expression built outside the kernel: its names must be the kernel's symbolic dimensions;
        its nodes get the location of this use."""
        if not self.reading_params:  # type: ignore[attr-defined]
            for name in exprs.var_names(e):
                if name not in self.state.dims:  # type: ignore[attr-defined]
                    raise TilecError(f"symbolic dimension '{name}' is not part of any parameter's shape",
                                     self.loc(node))
        return exprs.relocate(e, self.loc(node))

    def eval_Attribute(self, node: ast.Attribute) -> Any:
        base = self.eval(node.value)
        loc = self.loc(node)
        if isinstance(base, Buffer):
            if node.attr == "shape":
                return tuple(d.value if isinstance(d, Const) else d for d in base.shape)
            if node.attr in ("dtype", "name", "scope"):
                return getattr(base, node.attr)
            raise TilecError(f"buffer '{base.name}' has no attribute '{node.attr}'", loc)
        if isinstance(base, Expr):
            if node.attr == "dtype":
                return base.dtype
            raise TilecError(f"a scalar expression has no attribute '{node.attr}'", loc)
        try:
            return getattr(base, node.attr)
        except AttributeError:
            what = getattr(base, "__name__", None) or type(base).__name__
            raise TilecError(f"'{what}' has no attribute '{node.attr}'", loc) from None

    def eval_Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self._elements(node.elts))

    def eval_List(self, node: ast.List) -> list:
        return self._elements(node.elts)

    def _elements(self, elts: list[ast.expr]) -> list:
        out: list = []
        for e in elts:
            if isinstance(e, ast.Starred):
                out.extend(self._python_iterable(self.eval(e.value), self.loc(e)))
            else:
                out.append(self.eval(e))
        return out

    def eval_Dict(self, node: ast.Dict) -> dict:
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                extra = self.eval(v)
                if not isinstance(extra, dict):
                    raise TilecError(f"** needs a dict, got {exprs.describe(extra)}", self.loc(v))
                out.update(extra)
            else:
                out[self.eval(k)] = self.eval(v)
        return out

    def eval_JoinedStr(self, node: ast.JoinedStr) -> str:
        parts = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                value = self.eval(v.value)
                if is_ir(value):
                    raise TilecError("an f-string cannot format a kernel value", self.loc(v))
                parts.append(format(value))
            else:
                parts.append(self.eval(v))
        return "".join(parts)

    def _python_iterable(self, v: Any, loc: Loc) -> list:
        if is_ir(v) or not hasattr(v, "__iter__"):
            raise TilecError(f"cannot iterate over or unpack {exprs.describe(v)}", loc)
        return list(v)

    # --- operators ------------------------------------------------------------------------------------

    def eval_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise TilecError(f"unsupported operator {type(node.op).__name__}", self.loc(node))
        a, b = self.eval(node.left), self.eval(node.right)
        if not (is_ir(a) or is_ir(b)) and not (exprs.is_py(a) and exprs.is_py(b)):
            # Python objects (strings, tuples, lists) keep Python semantics.
            return calls_python(lambda: _python_binop(op, a, b), self.loc(node))
        return exprs.binop(op, a, b, self.loc(node))

    def eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        return exprs.unop(_UNOPS[type(node.op)], self.eval(node.operand), self.loc(node))

    def eval_BoolOp(self, node: ast.BoolOp) -> Any:
        op = "and" if isinstance(node.op, ast.And) else "or"
        result: Any = None
        for i, sub in enumerate(node.values):
            v = self.eval(sub)
            if i == 0:
                result = v
            elif not is_ir(result) and not is_ir(v):
                result = v  # Python: `a and b` is b once a was truthy (or falsy for `or`)
            else:
                result = exprs.binop(op, result, v, self.loc(node))
            # Python short-circuit on compile-time values (skips later operands, as Python does).
            if not is_ir(result):
                if (op == "and" and not result) or (op == "or" and result):
                    return result
        return result

    def eval_Compare(self, node: ast.Compare) -> Any:
        loc = self.loc(node)
        left = self.eval(node.left)
        result: Any = True
        for op, right_node in zip(node.ops, node.comparators):
            right = self.eval(right_node)
            if isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)):
                if is_ir(left) or is_ir(right):
                    raise TilecError(f"'{type(op).__name__}' needs compile-time operands", loc)
                part: Any = _python_compare(op, left, right)
            elif not is_ir(left) and not is_ir(right):
                part = calls_python(lambda: exprs._PY_OPS[_CMPOPS[type(op)]](left, right), loc)
            else:
                part = exprs.binop(_CMPOPS[type(op)], left, right, loc)
            if not is_ir(part) and not part:
                return False  # a compile-time false link makes the whole chain false
            if part is True:
                pass
            else:
                result = part if result is True else exprs.binop("and", result, part, loc)
            left = right
        return result

    def eval_IfExp(self, node: ast.IfExp) -> Any:
        cond = exprs.to_bool(self.eval(node.test), self.loc(node))
        if isinstance(cond, bool):
            return self.eval(node.body if cond else node.orelse)
        return calls.dispatch(self, "if_then_else", (cond, self.eval(node.body), self.eval(node.orelse)),
                              {}, self.loc(node))

    # --- subscripts -----------------------------------------------------------------------------------

    def eval_Subscript(self, node: ast.Subscript) -> Any:
        base = self.eval(node.value)
        loc = self.loc(node)
        if isinstance(base, Buffer):
            return Access(base, self._items(node.slice), loc)
        key = self._python_key(node.slice)
        if is_ir(key) or (isinstance(key, tuple) and any(is_ir(k) for k in key)):
            raise TilecError(f"cannot index {exprs.describe(base)} with a kernel value", loc)
        try:
            return base[key]
        except (IndexError, KeyError, TypeError) as e:
            raise TilecError(f"cannot index {exprs.describe(base)} with {key!r}: {e}", loc) from None

    def _python_key(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Slice):
            return slice(*(None if p is None else self.eval(p) for p in (node.lower, node.upper, node.step)))
        if isinstance(node, ast.Tuple):
            return tuple(self._python_key(e) for e in node.elts)
        return self.eval(node)

    def _items(self, node: ast.expr) -> tuple:
        elts = node.elts if isinstance(node, ast.Tuple) else [node]
        out: list = []
        for e in elts:
            loc = self.loc(e)
            if isinstance(e, ast.Slice):
                if e.step is not None:
                    raise TilecError("strided slices are not supported", loc)
                lo = None if e.lower is None else make_index(self.eval(e.lower), loc)
                hi = None if e.upper is None else make_index(self.eval(e.upper), loc)
                out.append(SliceItem(lo, hi))
                continue
            v = self.eval(e)
            if isinstance(v, (tuple, list)):  # A[idx] with idx a tuple of indices
                out.extend(make_index(x, loc) for x in v)
            else:
                out.append(make_index(v, loc))
        return tuple(out)

    # --- calls ----------------------------------------------------------------------------------------

    def eval_Call(self, node: ast.Call) -> Any:
        loc = self.loc(node)
        fn = self.eval(node.func)
        args: list = []
        arg_locs: list = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                extra = self._python_iterable(self.eval(a.value), self.loc(a))
                args.extend(extra)
                arg_locs.extend(self.loc(a) for _ in extra)
            else:
                args.append(self.eval(a))
                arg_locs.append(self.loc(a))
        kwargs: dict[str, Any] = {}
        kw_locs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                extra = self.eval(kw.value)
                if not isinstance(extra, dict):
                    raise TilecError("** needs a dict", self.loc(kw.value))
                kwargs.update(extra)
                kw_locs.update({k: self.loc(kw.value) for k in extra})
            else:
                kwargs[kw.arg] = self.eval(kw.value)
                kw_locs[kw.arg] = self.loc(kw.value)
        in_for = node is self.loop_iter  # type: ignore[attr-defined]
        if fn is builtins.range and not in_for and not any(is_ir(v) for v in args):
            return calls_python(lambda: range(*args, **kwargs), loc)  # a Python range, not a loop
        return self.call(fn, args, kwargs, loc, (arg_locs, kw_locs))

    def call(self, fn: Any, args: list, kwargs: dict, loc: Loc, arg_locs: Any = None) -> Any:
        if isinstance(fn, Builtin):
            return calls.dispatch(self, fn.name, tuple(args), kwargs, loc, arg_locs)
        if isinstance(fn, DTypeName):
            if len(args) != 1 or kwargs:
                raise TilecError(f"T.{fn}(value) takes one argument", loc)
            return exprs.cast(str(fn), args[0], loc)
        if isinstance(fn, Macro):
            return self.inline_macro(fn, args, kwargs, loc)  # type: ignore[attr-defined]
        if fn is builtins.range:
            return calls.dispatch(self, "range", tuple(args), kwargs, loc)
        values = list(args) + list(kwargs.values())
        if fn in _PY_TO_T and any(is_ir(v) for v in values):
            return calls.dispatch(self, _PY_TO_T[fn], tuple(args), kwargs, loc)
        if fn in (builtins.float, builtins.int, builtins.bool) and len(args) == 1 and is_ir(args[0]):
            return exprs.cast({float: "float32", int: "int32", bool: "bool"}[fn], args[0], loc)
        if not callable(fn):
            raise TilecError(f"{exprs.describe(fn)} is not callable", loc)
        # A size built from symbolic dimensions goes to a Python helper as the factory's SymInt.
        args = [self._as_sym(v) for v in args]
        kwargs = {k: self._as_sym(v) for k, v in kwargs.items()}
        values = list(args) + list(kwargs.values())
        if any(isinstance(v, (Expr, Access)) for v in values):  # buffers may go to Python helpers
            name = getattr(fn, "__name__", type(fn).__name__)
            raise TilecError(f"cannot call the Python function '{name}' with kernel values; make it a "
                             "@T.macro to inline it", loc)
        return calls_python(lambda: fn(*args, **kwargs), loc)


def _symbolic_only(e: Expr, dims: Optional[dict]) -> bool:
    """Whether ``e`` is built from constants and symbolic dimensions alone (no loads, no loop vars);
    ``dims`` None: any name counts as a symbolic dimension."""
    if isinstance(e, Var):
        return dims is None or e.name in dims
    if isinstance(e, Const):
        return True
    if isinstance(e, Load):
        return False
    children = []
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        children += [x for x in (v if isinstance(v, tuple) else (v,)) if isinstance(x, Expr)]
    return bool(children) and all(_symbolic_only(c, dims) for c in children)


def calls_python(thunk: Any, loc: Loc) -> Any:
    """Run compile-time Python; its exceptions become errors at the kernel's line."""
    try:
        return thunk()
    except TilecError as e:
        if e.loc is None:
            e.loc = loc
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the user's compile-time code is theirs
        raise TilecError(f"{type(e).__name__}: {e}", loc) from None


def _python_binop(op: str, a: Any, b: Any) -> Any:
    return exprs._PY_OPS[op](a, b)


def _python_compare(op: ast.cmpop, a: Any, b: Any) -> bool:
    if isinstance(op, ast.Is):
        return a is b
    if isinstance(op, ast.IsNot):
        return a is not b
    if isinstance(op, ast.In):
        return a in b
    return a not in b
