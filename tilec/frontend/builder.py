"""The kernel builder: Python function -> ``nodes.Func``; owns scopes, names, assignments and macros.

``build(fn)`` parses ``fn``'s source (``source``), turns its annotated parameters into global
``Buffer``s, then walks the body with ``Builder``, which combines the expression evaluator
(``evaluator``) and the statement visitor (``statements``) and is the ``ctx`` the ``T.*`` handlers
emit through. Names are unique per kernel: a rebinding of a Python name gets a fresh IR name
(``x``, ``x_1``, ...). A name bound outside an IR loop or branch cannot be reassigned inside it (that
would need a mutable scalar: ``T.alloc_var``).
"""
from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import InternalError, TilecError
from ..ir import dtypes
from ..ir.nodes import BinOp, Buffer, Const, Expr, Fill, Func, Launch, Let, Loc, Stmt, Store, UnaryOp, Var
from .surface import DTypeName, Macro, TensorSpec
from . import exprs, regions
from .evaluator import ExprEvaluator
from .source import PyScope, Source, parse_function
from .statements import StmtVisitor, _Return

_MAX_MACRO_DEPTH = 64


@dataclass
class Scope:
    names: dict[str, Any]
    runtime: bool  # opened by an IR loop, branch or launch body


@dataclass
class Frame:
    """One function being read: the kernel itself or an inlined macro."""
    src: Source
    py: PyScope
    scopes: list[Scope]
    is_macro: bool = False
    expired: dict[str, Loc] = field(default_factory=dict)  # names whose IR body has ended -> where bound


@dataclass
class FuncState:
    """What the whole kernel shares across frames."""
    names: set[str] = field(default_factory=set)
    dims: dict[str, Var] = field(default_factory=dict)
    var_buffers: set[str] = field(default_factory=set)
    bodies: list[list[Stmt]] = field(default_factory=lambda: [[]])
    in_kernel: bool = False
    macro_depth: int = 0


class Builder(ExprEvaluator, StmtVisitor):
    def __init__(self, state: FuncState, frame: Frame):
        self.state = state
        self.frame = frame
        self.name_hint: Optional[str] = None
        self.hint_loc: Optional[Loc] = None
        self.stmt_loc: Optional[Loc] = None
        self.loop_iter: Optional[ast.expr] = None  # the iterable of the `for` being built
        self.reading_params = False  # annotations may name symbolic dims not registered yet

    # --- the ctx API used by handlers -----------------------------------------------------------------

    @property
    def in_kernel(self) -> bool:
        return self.state.in_kernel

    @property
    def var_buffers(self) -> set[str]:
        return self.state.var_buffers

    def emit(self, stmt: Stmt) -> None:
        if not self.state.in_kernel and not isinstance(stmt, Launch):
            raise TilecError("this statement must be inside a `with T.Kernel(...)` block",
                             getattr(stmt, "loc", None))
        self.state.bodies[-1].append(stmt)

    def fresh(self, name: str) -> str:
        base, n = name, 0
        while name in self.state.names:
            n += 1
            name = f"{base}_{n}"
        self.state.names.add(name)
        return name

    def take_name_hint(self, default: str, loc: Optional[Loc]) -> tuple[str, Optional[Loc]]:
        """The name (and statement location) of ``x = T.alloc_*(...)`` for the buffer being allocated."""
        hint, self.name_hint = self.name_hint, None
        return (hint, self.hint_loc) if hint else (default, loc)

    # --- scopes -----------------------------------------------------------------------------------------

    def lookup(self, name: str) -> tuple[bool, Any]:
        for scope in reversed(self.frame.scopes):
            if name in scope.names:
                return True, scope.names[name]
        return False, None

    def visit_block(self, stmts: list[ast.stmt], bindings: dict[str, Any]) -> tuple[Stmt, ...]:
        """Visit an IR body (loop, branch, launch) in a fresh runtime scope; return its statements."""
        self.frame.scopes.append(Scope(dict(bindings), runtime=True))
        self.state.bodies.append([])
        outer_stmt = self.stmt_loc
        try:
            self.visit_stmts(stmts)
        finally:
            scope = self.frame.scopes.pop()
            body = self.state.bodies.pop()
            self.stmt_loc = outer_stmt
        for name in scope.names:
            if not self.lookup(name)[0]:
                self.frame.expired[name] = outer_stmt  # type: ignore[assignment]
        return tuple(body)

    def unknown_name(self, node: ast.Name) -> None:
        if node.id in self.frame.expired:
            raise TilecError(f"'{node.id}' was defined inside an `if`, loop or kernel body that has ended "
                             "and is not visible here; define it before that block", self.stmt_loc)
        raise TilecError(f"unknown name '{node.id}'", self.loc(node))

    # --- assignment ---------------------------------------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        single = len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        self.name_hint = node.targets[0].id if single else None  # type: ignore[attr-defined]
        self.hint_loc = self.loc(node)
        try:
            value = self.eval(node.value)
        finally:
            self.name_hint = None
        for target in node.targets:
            self.assign(target, value, self.loc(node), self.loc(node.value))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        loc = self.loc(node)
        if node.value is None:
            raise TilecError("a declaration without a value is not supported; assign a value", loc)
        annotation = self.eval(node.annotation)
        value = self.eval(node.value)
        if isinstance(annotation, str):
            value = exprs.cast(annotation, value, loc)
        self.assign(node.target, value, loc, self.loc(node.value))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        from .evaluator import _BINOPS
        loc = self.loc(node)
        op = _BINOPS[type(node.op)]
        rhs = self.eval(node.value)
        if isinstance(node.target, ast.Subscript):
            access = self.eval(node.target)
            if not isinstance(access, regions.Access):
                raise TilecError("augmented assignment to a subscript needs a buffer element", loc)
            self._store(access, exprs.binop(op, access.to_expr(), rhs, loc), loc, loc)
            return
        if not isinstance(node.target, ast.Name):
            raise TilecError("unsupported augmented assignment target", loc)
        current = self.eval(node.target)
        self.assign(node.target, exprs.binop(op, current, rhs, loc), loc, loc)

    def assign(self, target: ast.expr, value: Any, loc: Loc, value_loc: Optional[Loc] = None) -> None:
        value_loc = value_loc or loc
        if isinstance(target, ast.Name):
            self.bind(target.id, value, loc, value_loc)
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = self._python_iterable(value, loc)
            if len(values) != len(target.elts):
                raise TilecError(f"cannot unpack {len(values)} value(s) into {len(target.elts)} name(s)", loc)
            for t, v in zip(target.elts, values):
                self.assign(t, v, loc, value_loc)
        elif isinstance(target, ast.Subscript):
            access = self.eval(target)
            if not isinstance(access, regions.Access):
                raise TilecError("assignment to a subscript needs a buffer", self.loc(target))
            self._store(access, value, loc, value_loc)
        else:
            raise TilecError(f"cannot assign to {type(target).__name__}", self.loc(target))

    def _store(self, access: regions.Access, value: Any, loc: Loc, value_loc: Loc) -> None:
        buf = access.buffer
        if not access.is_point:  # A[0:64, :] = v fills the tile
            region = regions.point_region(regions.operand(access, "assignment target", loc), loc)
            self.emit(Fill(region, exprs.as_expr(value, value_loc, buf.dtype), loc))
            return
        self.emit(Store(buf, access.indices(), exprs.as_expr(value, value_loc, buf.dtype), loc))

    def bind(self, name: str, value: Any, loc: Loc, value_loc: Optional[Loc] = None) -> None:
        owner = None
        for i in range(len(self.frame.scopes) - 1, -1, -1):
            if name in self.frame.scopes[i].names:
                owner = i
                break
        if owner is not None:
            old = self.frame.scopes[owner].names[name]
            is_var = isinstance(old, Buffer) and old.name in self.state.var_buffers
            if is_var and not isinstance(value, Buffer):  # x = ... on a T.alloc_var stores
                self.emit(Store(old, (), exprs.as_expr(value, value_loc or loc, old.dtype), loc))
                return
            if isinstance(old, Buffer) and not isinstance(value, Buffer):
                raise TilecError(f"cannot assign to '{name}': it names a buffer; write its elements "
                                 f"({name}[i, j] = ...) or use T.fill / T.copy", loc)
            if any(s.runtime for s in self.frame.scopes[owner + 1:]):
                raise TilecError(f"'{name}' is defined outside this loop or branch and cannot be reassigned "
                                 "inside it; use a T.alloc_var for a mutable scalar", loc)
        if isinstance(value, regions.Access) and value.is_point:
            value = value.to_expr()
        if isinstance(value, Expr) and self.state.in_kernel and not isinstance(value, (Var, Const)):
            var = Var(self.fresh(name), value.dtype, loc)
            self.emit(Let(var, value, loc))
            value = var
        self.frame.scopes[-1].names[name] = value

    # --- macros ---------------------------------------------------------------------------------------

    def inline_macro(self, macro: Macro, args: list, kwargs: dict, loc: Loc) -> Any:
        src = parse_function(macro.fn, "macro")
        try:
            bound = inspect.signature(macro.fn).bind(*args, **kwargs)
        except TypeError as e:
            raise TilecError(f"macro '{macro.__name__}': {e}", loc) from None
        bound.apply_defaults()
        if self.state.macro_depth >= _MAX_MACRO_DEPTH:
            raise TilecError(f"macro '{macro.__name__}' is nested too deeply (recursion?)", loc)
        frame = Frame(src, PyScope(macro.fn), [Scope(dict(bound.arguments), runtime=False)], is_macro=True)
        saved = self.frame
        self.frame = frame
        self.state.macro_depth += 1
        try:
            self.visit_stmts(src.tree.body)
        except _Return as r:
            return r.value
        finally:
            self.frame = saved
            self.state.macro_depth -= 1
        return None

    # --- parameters -----------------------------------------------------------------------------------

    def params(self, fn: Callable[..., Any]) -> tuple[Buffer, ...]:
        tree = self.frame.src.tree
        a = tree.args
        if a.vararg or a.kwarg:
            raise TilecError("kernel parameters cannot be *args or **kwargs", self.loc(tree))
        specs = []
        for arg in a.posonlyargs + a.args + a.kwonlyargs:
            specs.append((arg, self._param_spec(fn, arg)))
        shapes = [self._param_shape(arg, spec) for arg, spec in specs]
        for shape in shapes:  # symbolic dimensions first: parameters must not take their names
            for d in shape:
                for name in exprs.var_names(d):
                    self.state.dims.setdefault(name, Var(name, dtypes.INDEX))
                    self.state.names.add(name)
        _check_bindable(specs, shapes, lambda arg: self.loc(arg))
        out = []
        for (arg, spec), shape in zip(specs, shapes):
            loc = self.loc(arg)
            if arg.arg in self.state.names:
                raise TilecError(f"parameter '{arg.arg}' has the name of a symbolic dimension", loc)
            self.state.names.add(arg.arg)
            buf = Buffer(arg.arg, shape, exprs.canonical_dtype(spec.dtype, loc), "global", loc)
            self.frame.scopes[0].names[arg.arg] = buf
            out.append(buf)
        return tuple(out)

    def _param_spec(self, fn: Callable[..., Any], arg: ast.arg) -> TensorSpec:
        loc = self.loc(arg)
        if arg.annotation is None:
            raise TilecError(f"parameter '{arg.arg}' needs a T.Tensor(shape, dtype) annotation", loc)
        spec = getattr(fn, "__annotations__", {}).get(arg.arg)
        if spec is None or isinstance(spec, str):
            self.reading_params = True
            try:
                spec = self.eval(arg.annotation)
            finally:
                self.reading_params = False
        if isinstance(spec, DTypeName) or isinstance(spec, str):
            raise TilecError(f"scalar parameter '{arg.arg}' is not supported; pass sizes with T.dynamic "
                             "dimensions or as factory arguments", loc)
        if not isinstance(spec, TensorSpec):
            raise TilecError(f"parameter '{arg.arg}' must be annotated T.Tensor(shape, dtype), got "
                             f"{exprs.describe(spec)}", loc)
        if spec.scope != "global":
            raise TilecError(f"kernel parameter '{arg.arg}' must be a T.Tensor (global memory)", loc)
        return spec

    def _param_shape(self, arg: ast.arg, spec: TensorSpec) -> tuple[Expr, ...]:
        loc = self.loc(arg)
        shape = []
        for axis, d in enumerate(spec.shape):
            d = exprs.normalize_py(d)
            if isinstance(d, int) and not isinstance(d, bool) and d > 0:
                shape.append(exprs.const(d, dtypes.INDEX, loc))
            elif isinstance(d, Expr) and _shape_expr_ok(d):
                shape.append(exprs.relocate(d, loc))
            else:
                raise TilecError(f"parameter '{arg.arg}': shape entries must be positive ints or T.dynamic "
                                 f"symbols, or integer arithmetic on them (+ - * // % min max); entry {axis} "
                                 f"is {_shape_entry_text(d)}", loc)
        return tuple(shape)


def _shape_entry_text(d: Any) -> str:
    if isinstance(d, Expr):
        from ..ir.printer import print_expr
        return f"({print_expr(d)})"
    return exprs.describe(d)


_SHAPE_OPS = ("+", "-", "*", "//", "%", "min", "max")


def _shape_expr_ok(e: Expr) -> bool:
    """Integer arithmetic on symbols and constants: what the runtime evaluates from bound dims."""
    if isinstance(e, Var):
        return e.type == dtypes.INDEX
    if isinstance(e, Const):
        return dtypes.is_int(e.dtype) and not isinstance(e.value, bool)
    if isinstance(e, BinOp):
        return e.op in _SHAPE_OPS and _shape_expr_ok(e.a) and _shape_expr_ok(e.b)
    if isinstance(e, UnaryOp):
        return e.op == "-" and _shape_expr_ok(e.a)
    return False


def _check_bindable(specs: list, shapes: list, loc_of: Callable[[ast.arg], Loc]) -> None:
    """Every symbol must be a whole dimension of some parameter, so that a call binds it from an
    argument's shape; ``M * 4`` elsewhere is then checked against the bound ``M``."""
    bare = {d.name for shape in shapes for d in shape if isinstance(d, Var)}
    for (arg, _), shape in zip(specs, shapes):
        for axis, d in enumerate(shape):
            missing = [n for n in exprs.var_names(d) if n not in bare]
            if missing:
                from ..ir.printer import print_expr
                raise TilecError(f"parameter '{arg.arg}': dimension {axis} ({print_expr(d)}) uses the "
                                 f"symbolic dimension '{missing[0]}', which is no parameter's whole "
                                 f"dimension, so no argument's shape can bind it; give some parameter "
                                 f"the dimension {missing[0]} itself (or make ({print_expr(d)}) its own "
                                 f"T.dynamic symbol)", loc_of(arg))


def build(fn: Callable[..., Any], outer: Optional[dict[str, Any]] = None) -> Func:
    """Parse the Python function ``fn`` (a ``@T.prim_func`` body) into a ``Func``."""
    src = parse_function(fn, "kernel")
    builder = Builder(FuncState(), Frame(src, PyScope(fn, outer), [Scope({}, runtime=False)]))
    try:
        params = builder.params(fn)
        try:
            builder.visit_stmts(src.tree.body)
        except _Return:
            pass
    except TilecError:
        raise
    except RecursionError:
        raise TilecError("the kernel is nested too deeply", src.loc(src.tree)) from None
    except Exception as e:  # a bug in the frontend, not the user's mistake
        raise InternalError(f"{type(e).__name__}: {e}", pass_name="frontend") from e
    body = tuple(builder.state.bodies[0])
    if not body:
        raise TilecError(f"kernel '{fn.__name__}' has no `with T.Kernel(...)` block", src.loc(src.tree))
    return Func(fn.__name__, params, body, src.loc(src.tree))


__all__ = ["build", "Builder"]
