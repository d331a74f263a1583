"""The state of one program being generated, and its random expressions (used by ``steps``).

``Gen`` holds the random stream, the tile sizes, the parameters and allocations made so far and which
fragments already hold values (only those may be read). Expressions are float32 trees over fragment
loads at the element's own index (or a neighbour, behind a ``select`` that keeps the load in range),
row/column statistics, a local scalar, constants and integer index arithmetic (``//``, ``%``, C ``/``,
bit operations on possibly negative values: the spots where targets get floor semantics wrong). Every
stored value is clamped to [-60, 60] so long programs stay finite in every dtype.
"""
from __future__ import annotations

import random
from typing import Callable, Optional

from ..ir import nodes as n

F32 = "float32"
HALF_TYPES = ("float16", "bfloat16")


def c(value, dtype: str = "int32") -> n.Const:
    return n.Const(value, dtype)


def f(value: float) -> n.Const:
    return n.Const(float(value), F32)


def b(op: str, x: n.Expr, y: n.Expr) -> n.BinOp:
    return n.BinOp(op, x, y)


def whole(buf: n.Buffer) -> n.Region:
    return n.Region(buf, tuple(c(0) for _ in buf.shape), buf.shape)


def as_f32(e: n.Expr) -> n.Expr:
    return e if e.dtype == F32 else n.Cast(F32, e)


class Gen:
    """One program under construction."""

    def __init__(self, seed: int):
        self.rng = r = random.Random(seed)
        self.count = 0
        self.features: list[str] = []
        self.bm, self.bn = r.choice((8, 16, 32)), r.choice((8, 16))
        self.m_val, self.n_val = r.choice((8, 16, 24, 37, 50, 64)), r.choice((8, 16, 20, 33, 48))
        self.dims: dict[str, int] = {}
        self.M: n.Expr = c(self.m_val)
        if r.random() < 0.3:
            self.M = n.Var("M")
            self.dims["M"] = self.m_val
            self.features.append("symbolic")
        self.N = c(self.n_val)
        self.in_dtype = r.choice((F32, F32, "float16", "bfloat16"))
        self.params: list[n.Buffer] = []
        self.allocs: list[n.Alloc] = []
        self.frags: list[n.Buffer] = []          # [bm, bn] fragments that hold values
        self.rows: Optional[n.Buffer] = None     # [bm] float32 row statistics, once computed
        self.cols: Optional[n.Buffer] = None     # [bn] float32 column statistics, once computed
        self.acc: Optional[n.Buffer] = None      # a local float32 scalar, once computed
        self.bx, self.by = n.Var("bx"), n.Var("by")

    # -- names and buffers ------------------------------------------------------------------------

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}{self.count}"

    def param(self, name: str, shape: tuple, dtype: str) -> n.Buffer:
        buf = n.Buffer(name, shape, dtype, "global")
        self.params.append(buf)
        return buf

    def alloc(self, base: str, shape: tuple, dtype: str, scope: str) -> n.Buffer:
        buf = n.Buffer(self.name(base), tuple(c(d) for d in shape), dtype, scope)
        self.allocs.append(n.Alloc(buf))
        return buf

    def frag(self, dtype: Optional[str] = None) -> n.Buffer:
        if dtype is None:
            dtype = F32 if self.rng.random() < 0.75 else self.rng.choice(HALF_TYPES)
            if dtype != F32:
                self.features.append("half_fragment")
        return self.alloc("F", (self.bm, self.bn), dtype, "fragment")

    def tile(self, buf: n.Buffer, row0: Optional[n.Expr] = None, col0: Optional[n.Expr] = None) -> n.Region:
        row0 = row0 if row0 is not None else b("*", self.bx, c(self.bm))
        col0 = col0 if col0 is not None else b("*", self.by, c(self.bn))
        return n.Region(buf, (row0, col0), (c(self.bm), c(self.bn)))

    # -- expressions -----------------------------------------------------------------------------

    def _index_leaf(self, i: n.Var, j: n.Var) -> n.Expr:
        r = self.rng
        d = b("-", i, j)
        e = r.choice((b("//", d, c(3)), b("%", d, c(3)), b("/", b("-", b("*", i, c(3)), j), c(4)),
                      b("&", b("^", i, j), c(3)), b(">>", b("+", d, c(64)), c(2)),
                      b("%", b("+", self.bx, i), c(-3))))
        self.features.append("int_arith")
        return n.Cast(F32, e)

    def _neighbour(self, i: n.Var, j: n.Var, avoid: Optional[n.Buffer]) -> Optional[n.Expr]:
        srcs = [x for x in self.frags if x is not avoid]
        if not srcs:
            return None
        src = self.rng.choice(srcs)
        self.features.append("guarded_load")
        if self.rng.random() < 0.5:
            return n.Select(b("<", b("+", i, c(1)), c(self.bm)), as_f32(n.Load(src, (b("+", i, c(1)), j))),
                            f(0.0))
        left = as_f32(n.Load(src, (i, b("-", j, c(1)))))
        return n.Select(b(">", j, c(0)), left, as_f32(n.Load(src, (i, j))))

    def leaf(self, i: n.Var, j: n.Var, dst: Optional[n.Buffer]) -> n.Expr:
        r = self.rng
        options: list[Callable[[], Optional[n.Expr]]] = [lambda: f(r.choice((0.5, -1.25, 2.0, 3.0, 0.125)))]
        options += [lambda: as_f32(n.Load(r.choice(self.frags), (i, j)))] * 4
        options += [lambda: self._index_leaf(i, j), lambda: self._neighbour(i, j, dst)]
        options.append(lambda: n.Cast(F32, r.choice((self.bx, self.by))))
        if self.rows is not None:
            options.append(lambda: n.Load(self.rows, (i,)))
        if self.cols is not None:
            options.append(lambda: n.Load(self.cols, (j,)))
        if self.acc is not None:
            options.append(lambda: n.Load(self.acc, ()))
        out = r.choice(options)()
        return out if out is not None else f(1.0)

    def expr(self, i: n.Var, j: n.Var, depth: int, dst: Optional[n.Buffer] = None) -> n.Expr:
        r = self.rng
        if depth == 0 or r.random() < 0.25:
            return self.leaf(i, j, dst)
        x = self.expr(i, j, depth - 1, dst)
        kind = r.randrange(10)
        if kind < 5:
            y = self.expr(i, j, depth - 1, dst)
            op = r.choice(("+", "-", "*", "max", "min", "/"))
            if op == "/":
                return b("/", x, b("+", n.Call("abs", (y,)), f(1.0)))
            return b(op, x, y)
        if kind < 8:
            fn = r.choice(("abs", "tanh", "sigmoid", "exp", "sqrt", "neg"))
            if fn == "exp":
                return n.Call("exp", (b("min", x, f(3.0)),))
            if fn == "sqrt":
                return n.Call("sqrt", (n.Call("abs", (x,)),))
            if fn == "neg":
                return n.UnaryOp("-", x)
            return n.Call(fn, (x,))
        y = self.expr(i, j, depth - 1, dst)
        cond = r.choice((b("<", i, j), b("==", b("%", b("+", self.bx, i), c(2)), c(0)),
                         b(">=", j, c(self.bn // 2))))
        self.features.append("select")
        return n.Select(cond, x, y)

    def clamp(self, e: n.Expr) -> n.Expr:
        # keeps values in a range every dtype holds, so long programs do not overflow float16
        return b("max", b("min", e, f(60.0)), f(-60.0))

    def map_stmt(self, dst: n.Buffer, depth: int = 3) -> n.Stmt:
        i, j = n.Var(self.name("i")), n.Var(self.name("j"))
        store = n.Store(dst, (i, j), self.clamp(self.expr(i, j, depth, dst)))
        inner = n.For(j, c(0), c(self.bn), "parallel", (store,))
        return n.For(i, c(0), c(self.bm), "parallel", (inner,))
