"""A few short constructors for building Tile IR by hand in the interpreter tests."""
from __future__ import annotations

from typing import Union

from tilec.ir import nodes as N

L = N.Loc("test_kernel.py", 1, 1)
ExprLike = Union[N.Expr, int, float]


def c(v, t: str | None = None) -> N.Const:
    if t is None:
        t = "bool" if isinstance(v, bool) else "int32" if isinstance(v, int) else "float32"
    return N.Const(v, t)


def e(x: ExprLike) -> N.Expr:
    return x if isinstance(x, N.Expr) else c(x)


def v(name: str, t: str = "int32") -> N.Var:
    return N.Var(name, t)


def b(op: str, x: ExprLike, y: ExprLike) -> N.BinOp:
    return N.BinOp(op, e(x), e(y))


def buf(name: str, shape, dtype: str = "float32", scope: str = "global") -> N.Buffer:
    return N.Buffer(name, tuple(e(s) for s in shape), dtype, scope)


def load(bf: N.Buffer, *idx: ExprLike) -> N.Load:
    return N.Load(bf, tuple(e(i) for i in idx))


def store(bf: N.Buffer, idx, value: ExprLike, line: int = 1) -> N.Store:
    return N.Store(bf, tuple(e(i) for i in idx), e(value), loc=N.Loc("test_kernel.py", line, 5))


def reg(bf: N.Buffer, starts=None, extents=None) -> N.Region:
    if starts is None:
        starts = [0] * len(bf.shape)
    if extents is None:
        extents = bf.shape
    return N.Region(bf, tuple(e(s) for s in starts), tuple(e(x) for x in extents))


def pfor(var: str, stop: ExprLike, body, start: ExprLike = 0, kind: str = "parallel") -> N.For:
    return N.For(v(var), e(start), e(stop), kind, tuple(body), loc=L)


def sfor(var: str, stop: ExprLike, body, start: ExprLike = 0) -> N.For:
    return pfor(var, stop, body, start, kind="serial")


def alloc(bf: N.Buffer) -> N.Alloc:
    return N.Alloc(bf, loc=L)


def launch(grid, names, body, threads: int = 128) -> N.Launch:
    return N.Launch(tuple(e(g) for g in grid), tuple(v(n) for n in names), threads, tuple(body), loc=L)


def func(name: str, params, body) -> N.Func:
    return N.Func(name, tuple(params), tuple(body), loc=L)


def cdiv(a: ExprLike, n: int) -> N.Expr:
    return b("//", b("+", a, n - 1), n)
