"""Kernel statements: Python statement AST -> IR statements appended to the current body.

``with T.Kernel`` becomes a ``Launch``; ``for`` over a ``T.*`` loop (or ``range``) inside a kernel becomes
``For`` nests, while ``for`` over a Python list/tuple is unrolled now; ``if``/``while`` on compile-time
values are decided now, on IR values they become ``If``/``While``. Assignments are in ``builder``. This is
a mixin of ``builder.Builder``.
"""
from __future__ import annotations

import ast
import itertools
from typing import Any

from ..errors import TilecError
from ..ir import dtypes
from ..ir.nodes import Expr, For, If, Launch, Let, Loc, Var, While
from . import exprs
from .calls import KernelSpec, LoopSpec
from .regions import Access

_MAX_BUILD_ITERATIONS = 100_000

_UNSUPPORTED = {"Try": "try", "TryStar": "try", "Raise": "raise", "Delete": "del", "Global": "global",
                "Nonlocal": "nonlocal", "Import": "import", "ImportFrom": "import", "ClassDef": "class",
                "FunctionDef": "def (a nested function; use @T.macro outside the kernel)",
                "AsyncFunctionDef": "async def", "AsyncFor": "async for", "AsyncWith": "async with",
                "Match": "match"}


class _Return(Exception):
    def __init__(self, value: Any):
        self.value = value


class StmtVisitor:
    """Mixin: ``visit_stmts`` and one ``visit_<Stmt>`` per supported statement."""

    def visit_stmts(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            method = getattr(self, "visit_" + type(s).__name__, None)
            if method is None:
                word = _UNSUPPORTED.get(type(s).__name__, type(s).__name__)
                raise TilecError(f"`{word}` is not supported in kernels", self.loc(s))  # type: ignore
            self.stmt_loc = self.loc(s)  # type: ignore[attr-defined]
            try:
                method(s)
            except TilecError as e:
                if e.loc is None:
                    e.loc = self.loc(s)  # type: ignore[attr-defined]
                raise

    def visit_Pass(self, node: ast.Pass) -> None:
        pass

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring
        value = self.eval(node.value)  # type: ignore[attr-defined]
        if isinstance(value, (LoopSpec, KernelSpec)) or (
                not isinstance(node.value, ast.Call) and isinstance(value, (Expr, Access))):
            raise TilecError("this expression has no effect (a statement must assign, call a tile "
                             "operation or loop)", self.loc(node))  # type: ignore[attr-defined]

    def visit_Return(self, node: ast.Return) -> None:
        value = None if node.value is None else self.eval(node.value)  # type: ignore[attr-defined]
        if not self.frame.is_macro and value is not None:  # type: ignore[attr-defined]
            raise TilecError("a kernel cannot return a value; write results to an output tensor",
                             self.loc(node))  # type: ignore[attr-defined]
        if any(s.runtime for s in self.frame.scopes):  # type: ignore[attr-defined]
            raise TilecError("`return` inside a kernel loop or branch is not supported",
                             self.loc(node))  # type: ignore[attr-defined]
        raise _Return(value)

    def visit_Assert(self, node: ast.Assert) -> None:
        cond = self.eval(node.test)  # type: ignore[attr-defined]
        if not exprs.is_py(cond):
            raise TilecError("assert needs a compile-time condition", self.loc(node))  # type: ignore
        if not cond:
            msg = "assertion failed" if node.msg is None else str(self.eval(node.msg))  # type: ignore
            raise TilecError(msg, self.loc(node))  # type: ignore[attr-defined]

    def _unsupported(self, node: ast.stmt, what: str) -> None:
        raise TilecError(f"{what} is not supported in kernels", self.loc(node))  # type: ignore

    def visit_Break(self, node: ast.Break) -> None:
        self._unsupported(node, "`break`")

    def visit_Continue(self, node: ast.Continue) -> None:
        self._unsupported(node, "`continue`")

    # --- launch ---------------------------------------------------------------------------------------

    def visit_With(self, node: ast.With) -> None:
        loc: Loc = self.loc(node)  # type: ignore[attr-defined]
        if len(node.items) != 1:
            raise TilecError("a `with` statement in a kernel takes exactly one T.Kernel(...)", loc)
        item = node.items[0]
        call_loc = self.loc(item.context_expr)  # type: ignore[attr-defined]
        try:
            spec = self.eval(item.context_expr)  # type: ignore[attr-defined]
        except TilecError as e:
            if e.loc == call_loc:  # a T.Kernel(...) mistake is reported at its `with`
                e.loc = loc
            raise
        if not isinstance(spec, KernelSpec):
            raise TilecError("only `with T.Kernel(...)` is supported in kernels", loc)
        if self.state.in_kernel:  # type: ignore[attr-defined]
            raise TilecError("T.Kernel blocks cannot be nested", loc)
        target = item.optional_vars
        count = len(target.elts) if isinstance(target, (ast.Tuple, ast.List)) else 1
        if target is not None and count != len(spec.grid):
            raise TilecError(f"T.Kernel has {len(spec.grid)} grid extents but `as` binds {count} name(s)",
                             loc)
        names = self._target_names(target, len(spec.grid), "T.Kernel")
        if not names:
            names = ["bx", "by", "bz"][:len(spec.grid)]
        block_vars = tuple(Var(self.fresh(n), dtypes.INDEX, loc) for n in names)  # type: ignore
        self.state.in_kernel = True  # type: ignore[attr-defined]
        try:
            body = self.visit_block(node.body, dict(zip(names, block_vars)))  # type: ignore
        finally:
            self.state.in_kernel = False  # type: ignore[attr-defined]
        self.emit(Launch(spec.grid, block_vars, spec.threads, body, loc))  # type: ignore

    def _target_names(self, target: Any, count: int, what: str) -> list[str]:
        if target is None:
            return []
        elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
        if not all(isinstance(e, ast.Name) for e in elts):
            raise TilecError(f"{what} binds plain names", self.loc(target))  # type: ignore[attr-defined]
        if len(elts) != count:
            raise TilecError(f"{what} has {count} dimension(s) but binds {len(elts)} name(s)",
                             self.loc(target))  # type: ignore[attr-defined]
        return [e.id for e in elts]

    # --- loops ----------------------------------------------------------------------------------------

    def visit_For(self, node: ast.For) -> None:
        loc: Loc = self.loc(node)  # type: ignore[attr-defined]
        if node.orelse:
            raise TilecError("`for ... else` is not supported in kernels", loc)
        self.loop_iter = node.iter  # `for i in range(n)` is a loop; range(n) elsewhere a Python range
        it = self.eval(node.iter)  # type: ignore[attr-defined]
        if isinstance(it, LoopSpec):
            if self.state.in_kernel:  # type: ignore[attr-defined]
                self._ir_loop(node, it, loc)
                return
            if it.kind != "serial" or not all(exprs.is_py(v) for r in it.ranges for v in r):
                raise TilecError("loops outside T.Kernel must have compile-time bounds", loc)
            ranges = [range(*r) for r in it.ranges]
            it = list(ranges[0]) if len(ranges) == 1 else list(itertools.product(*ranges))
        values = self._python_iterable(it, self.loc(node.iter))  # type: ignore[attr-defined]
        for v in values:
            self.assign(node.target, v, loc)  # type: ignore[attr-defined]
            self.visit_stmts(node.body)

    def _ir_loop(self, node: ast.For, spec: LoopSpec, loc: Loc) -> None:
        names = self._target_names(node.target, len(spec.ranges), "this loop")
        for name in names:
            found, _ = self.lookup(name)  # type: ignore[attr-defined]
            if found:
                raise TilecError(f"loop variable '{name}' rebinds a name already defined in the kernel; "
                                 "rename it", loc)
        bindings: dict[str, Any] = {}
        loops = []  # (loop var, start, stop, statements at the top of the loop body)
        for name, (start, stop, step) in zip(names, spec.ranges):
            lo = exprs.as_expr(start, loc, dtypes.INDEX)
            hi = exprs.as_expr(stop, loc, dtypes.INDEX)
            if step == 1:
                var = Var(self.fresh(name), dtypes.INDEX, loc)  # type: ignore[attr-defined]
                loops.append((var, lo, hi, ()))
                bindings[name] = var
                continue
            # range(a, b, s): iterate the trip count and bind the user's name to a + it * s.
            span = exprs.binop("-", hi, lo, loc) if step > 0 else exprs.binop("-", lo, hi, loc)
            trip = exprs.binop("//", exprs.binop("+", span, abs(step) - 1, loc), abs(step), loc)
            trip = exprs.binop("max", trip, 0, loc)
            it_var = Var(self.fresh(name + "_iter"), dtypes.INDEX, loc)  # type: ignore[attr-defined]
            user = Var(self.fresh(name), dtypes.INDEX, loc)  # type: ignore[attr-defined]
            offset = exprs.binop("*", it_var, abs(step), loc)
            value = exprs.as_expr(exprs.binop("+" if step > 0 else "-", lo, offset, loc), loc)
            loops.append((it_var, exprs.const(0, dtypes.INDEX, loc), exprs.as_expr(trip, loc),
                          (Let(user, value, loc),)))
            bindings[name] = user
        body = self.visit_block(node.body, bindings)  # type: ignore[attr-defined]
        stages = spec.stages if spec.kind == "pipelined" else 0
        for var, lo, hi, pre in reversed(loops):
            body = (For(var, lo, hi, spec.kind, pre + body, stages, loc),)
        for stmt in body:
            self.emit(stmt)  # type: ignore[attr-defined]

    def visit_While(self, node: ast.While) -> None:
        loc: Loc = self.loc(node)  # type: ignore[attr-defined]
        if node.orelse:
            raise TilecError("`while ... else` is not supported in kernels", loc)
        for _ in range(_MAX_BUILD_ITERATIONS):
            cond = exprs.to_bool(self.eval(node.test), loc)  # type: ignore[attr-defined]
            if not isinstance(cond, bool):
                break
            if not cond:
                return
            self.visit_stmts(node.body)  # a compile-time loop, run now
        else:
            raise TilecError("compile-time while loop did not finish", loc)
        if not self.state.in_kernel:  # type: ignore[attr-defined]
            raise TilecError("a runtime while loop must be inside T.Kernel", loc)
        body = self.visit_block(node.body, {})  # type: ignore[attr-defined]
        self.emit(While(cond, body, loc))  # type: ignore[attr-defined]

    def visit_If(self, node: ast.If) -> None:
        loc: Loc = self.loc(node)  # type: ignore[attr-defined]
        cond = exprs.to_bool(self.eval(node.test), loc)  # type: ignore[attr-defined]
        if isinstance(cond, bool):
            self.visit_stmts(node.body if cond else node.orelse)
            return
        if not self.state.in_kernel:  # type: ignore[attr-defined]
            raise TilecError("a runtime `if` must be inside T.Kernel", loc)
        then_body = self.visit_block(node.body, {})  # type: ignore[attr-defined]
        else_body = self.visit_block(node.orelse, {}) if node.orelse else ()  # type: ignore
        self.emit(If(cond, then_body, else_body, loc))  # type: ignore[attr-defined]
