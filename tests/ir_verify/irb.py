"""Small builders for hand-written Tile IR used by the verifier tests.

Every statement gets a distinct location (``at(n)`` is line n of ``k.py``) so a test can assert
which node an error points at.
"""
from __future__ import annotations

from tilec.ir import nodes as N


def at(line: int, col: int = 5) -> N.Loc:
    return N.Loc("k.py", line, col)


def c(v, t: str = "int32") -> N.Const:
    return N.Const(v, t)


def v(name: str, t: str = "int32") -> N.Var:
    return N.Var(name, t)


def buf(name: str, shape, dtype: str = "float16", scope: str = "global") -> N.Buffer:
    dims = tuple(c(d) if isinstance(d, int) else d for d in shape)
    return N.Buffer(name, dims, dtype, scope)


def whole(b: N.Buffer) -> N.Region:
    return N.Region(b, tuple(c(0) for _ in b.shape), b.shape)


def region(b: N.Buffer, starts, extents) -> N.Region:
    def wrap(e):
        return c(e) if isinstance(e, int) else e
    return N.Region(b, tuple(map(wrap, starts)), tuple(map(wrap, extents)))


def add(a, b):
    return N.BinOp("+", a, b)


def mul(a, b):
    return N.BinOp("*", a, b)


M = v("M")
BX, BY = v("bx"), v("by")
A = buf("A", (M, 128))
B = buf("B", (128, 128))
C = buf("C", (M, 128))
A_s = buf("A_s", (64, 32), scope="shared")
B_s = buf("B_s", (32, 64), scope="shared")
C_f = buf("C_f", (64, 64), "float32", "fragment")


def kernel(*stmts, params=(A, B, C), grid=None, block_vars=(BX, BY), threads=128) -> N.Func:
    """A kernel with one launch whose body is ``stmts``."""
    if grid is None:
        grid = (c(2), N.BinOp("//", add(M, c(63)), c(64)))
    launch = N.Launch(tuple(grid), tuple(block_vars), threads, tuple(stmts), at(2))
    return N.Func("k", tuple(params), (launch,), at(1, 1))


def gemm_body(gemm: N.Gemm | None = None, extra=()) -> tuple:
    """The body of a tiled GEMM (the docs/language.md example); ``gemm`` replaces its T.gemm."""
    k = v("k")
    g = gemm or N.Gemm(whole(A_s), whole(B_s), whole(C_f), loc=at(10))
    loop = N.For(k, c(0), c(4), "pipelined", (
        N.Copy(region(A, (mul(BY, c(64)), mul(k, c(32))), (64, 32)), whole(A_s), at(8)),
        N.Copy(region(B, (mul(k, c(32)), mul(BX, c(64))), (32, 64)), whole(B_s), at(9)),
        g,
    ), stages=2, loc=at(7))
    return (
        N.Alloc(A_s, at(3)), N.Alloc(B_s, at(4)), N.Alloc(C_f, at(5)),
        N.Fill(whole(C_f), c(0.0, "float32"), at(6)),
        loop,
        *extra,
        N.Copy(whole(C_f), region(C, (mul(BY, c(64)), mul(BX, c(64))), (64, 64)), at(11)),
    )
