"""Hand-built Tile IR used by the IR tests: kernels that together hold every node type, every loop and
tile-op flavour, every dtype's constants (with the edge cases inf, -inf, nan, 1e-05, negative numbers),
symbolic dimensions, several launches and several kernels in one module."""
from __future__ import annotations

import math

from tilec.ir import dtypes
from tilec.ir import nodes as n

F = "k.py"


def loc(line: int, col: int = 5) -> n.Loc:
    return n.Loc(F, line, col)


def c(value, dtype: str = "int32") -> n.Const:
    return n.Const(value, dtype)


def var(name: str, dtype: str = "int32") -> n.Var:
    return n.Var(name, dtype)


def buf(name: str, shape, dtype: str = "float32", scope: str = "global") -> n.Buffer:
    dims = tuple(c(d) if isinstance(d, int) else d for d in shape)
    return n.Buffer(name, dims, dtype, scope)


def whole(b: n.Buffer) -> n.Region:
    return n.Region(b, tuple(c(0) for _ in b.shape), b.shape)


def region(b: n.Buffer, *pairs) -> n.Region:
    starts = tuple(c(s) if isinstance(s, int) else s for s, _ in pairs)
    extents = tuple(c(e) if isinstance(e, int) else e for _, e in pairs)
    return n.Region(b, starts, extents)


def load(b: n.Buffer, *idx) -> n.Load:
    return n.Load(b, tuple(c(i) if isinstance(i, int) else i for i in idx))


def gemm_kernel() -> n.Func:
    """The GEMM of the language spec, with a symbolic M."""
    M = var("M")
    A, B, C = buf("A", (M, 1024), "float16"), buf("B", (1024, 1024), "float16"), buf("C", (M, 1024), "float16")
    bx, by, k = var("bx"), var("by"), var("k")
    A_s = buf("A_s", (64, 32), "float16", "shared")
    B_s = buf("B_s", (32, 64), "float16", "shared")
    C_f = buf("C_f", (64, 64), "float32", "fragment")
    grid_y = n.BinOp("//", n.BinOp("+", M, c(63)), c(64))
    body = (
        n.Alloc(A_s, loc(7)), n.Alloc(B_s, loc(8)), n.Alloc(C_f, loc(9)),
        n.Fill(whole(C_f), c(0.0, "float32"), loc(10)),
        n.For(k, c(0), c(32), "pipelined", (
            n.Copy(region(A, (n.BinOp("*", by, c(64)), 64), (n.BinOp("*", k, c(32)), 32)), whole(A_s), loc(12, 9)),
            n.Copy(region(B, (n.BinOp("*", k, c(32)), 32), (n.BinOp("*", bx, c(64)), 64)), whole(B_s), loc(13, 9)),
            n.Gemm(whole(A_s), whole(B_s), whole(C_f), loc=loc(14, 9)),
        ), stages=2, loc=loc(11)),
        n.Copy(whole(C_f), region(C, (n.BinOp("*", by, c(64)), 64), (n.BinOp("*", bx, c(64)), 64)), loc(15)),
    )
    launch = n.Launch((c(16), grid_y), (bx, by), 128, body, loc(6))
    return n.Func("gemm", (A, B, C), (launch,), loc(5, 1))


def constants() -> list[n.Const]:
    """Constants of every dtype, with the edge cases."""
    out = [c(0), c(3), c(-3), c(2**31 - 1), c(-2**31), c(True, "bool"), c(False, "bool"),
           c(1.5, "float32"), c(1e-05, "float32"), c(-2.0, "float32"), c(0.1, "float32"),
           c(1e30, "float32"), c(5e-324, "float32"), c(math.inf, "float32"), c(-math.inf, "float32"),
           c(-0.0, "float32"), c(0.5, "bfloat16"), c(-0.5, "bfloat16"), c(1.0, "float16"),
           c(math.inf, "float16"), c(-math.inf, "bfloat16"), c(448.0, "float8_e4m3"),
           c(math.nan, "float32"), c(math.nan, "float16")]  # math.nan: NaN != NaN unless the same object
    for name, info in dtypes.DTYPES.items():
        if info.kind == "float":
            out += [c(2.0, name), c(-1e-05, name)]
        elif info.kind in ("int", "uint"):
            out.append(c(7, name))
            if info.kind == "int":
                out += [c(2**(info.bits - 1) - 1, name), c(-(2**(info.bits - 1)), name), c(-1, name)]
            else:
                out.append(c(2**info.bits - 1, name))
    return out


def everything_kernel() -> n.Func:
    """One kernel holding every statement and expression node, with two launches."""
    N, K = var("N"), var("K")
    X = buf("X", (N, K))
    Y = buf("Y", (N,), "bfloat16")
    idx = buf("idx", (16,), "int32")
    out = buf("out", (N, 64))
    bx, i, j, w = var("bx"), var("i"), var("j"), var("w")
    e, f, cond = var("e"), var("f", "float32"), var("cond", "bool")
    S = buf("S", (64, 64), "float32", "fragment")
    m = buf("m", (64,), "float32", "fragment")
    acc = buf("acc", (), "float32", "local")
    cnt = buf("cnt", (), "int32", "local")
    kw = buf("copy", (4,), "float16", "shared")  # a name that is a keyword of the text form
    consts = constants()
    const_stores = tuple(n.Store(S, (c(k % 64), c(0)), v, loc(100 + k)) for k, v in enumerate(consts))
    exprs = n.BinOp("+", n.Call("exp2", (n.Cast("float32", load(acc)),)),
                    n.Select(n.BinOp("<", i, N), n.Reinterpret("float32", load(cnt)), c(-1.0, "float32")))
    first = (
        n.Alloc(S, loc(20)), n.Alloc(m, loc(21)), n.Alloc(acc, loc(22)), n.Alloc(cnt, loc(23)),
        n.Alloc(kw),
        n.Let(e, load(idx, bx), loc(24)),
        n.Let(f, n.UnaryOp("-", load(acc)), loc(25)),
        n.Let(var("g", "float32"), n.BinOp("-", n.UnaryOp("-", c(3.0, "float32")), n.UnaryOp("-", c(-2.0, "float32")))),
        n.Let(var("h", "int64"), n.UnaryOp("-", n.UnaryOp("~", c(-3, "int64")))),
        n.Let(cond, n.UnaryOp("not", n.BinOp("and", n.BinOp("<", e, N), n.BinOp(">=", e, c(0)))), loc(26)),
        n.Hint("use_swizzle", (10,), loc(27)),
        n.Hint("annotate_layout", ("S", -1, 2.5, True, math.inf, "a \"quoted\" name"), loc(28)),
        n.Hint("no_args", (), None),
        n.Fill(region(S, (0, 32), (0, 64)), n.Cast("float32", c(0.5, "bfloat16")), loc(29)),
        n.For(i, c(0), c(64), "parallel", (
            n.For(j, c(0), c(64), "parallel", (
                n.Store(S, (i, j), n.BinOp("max", load(S, i, j), n.BinOp("min", f, c(2.0, "float32"))),
                        loc(31, 13)),
            ), loc=loc(30, 9)),
        ), loc=loc(30)),
        n.For(i, c(0), n.BinOp("-", N, c(1)), "serial", (n.Store(acc, (), exprs, loc(33, 9)),), loc=loc(32)),
        n.For(j, c(2), c(6), "unrolled", (n.Store(kw, (n.BinOp("%", j, c(4)),), c(1.0, "float16")),)),
        n.For(var("w64", "int64"), c(0, "int64"), c(4, "int64"), "serial", ()),
        n.Reduce("max", whole(S), whole(m), 1, True, loc(34)),
        n.Reduce("sum", region(S, (0, 64), (0, 64)), whole(m), 0, False, loc(35)),
        n.Reduce("absmax", whole(S), whole(m), 1, False),
        n.Cumsum(whole(S), whole(S), 0, False, loc(36)),
        n.Cumsum(whole(m), whole(m), 0, True, loc(37)),
        n.Gemm(whole(S), region(S, (0, 64), (0, 64)), whole(S), True, True, True, "FullRow", loc(38)),
        n.Gemm(whole(S), whole(S), whole(S), False, True, False, "", loc(39)),
        n.Gemm(whole(S), whole(S), whole(S), policy="odd policy"),
        n.Atomic("add", region(out, (bx, 1), (0, 64)), region(S, (0, 1), (0, 64)), loc(40)),
        n.Atomic("max", region(out, (bx, 1), (c(3), 1)), n.BinOp("*", f, c(2.0, "float32")), loc(41)),
        n.Atomic("min", whole(out), whole(out), loc(42)),
        n.If(cond, (n.Store(cnt, (), n.BinOp("+", load(cnt), c(1))),), (), loc(43)),
        n.If(n.BinOp("or", cond, c(False, "bool")), (), (n.Store(cnt, (), c(0), loc(45)),), loc(44)),
        n.While(n.BinOp("<", load(cnt), c(10)), (
            n.Store(cnt, (), n.BinOp("<<", load(cnt), c(1)), loc(47)),
            n.Store(cnt, (), n.UnaryOp("~", n.BinOp("^", load(cnt), n.BinOp("&", c(3), c(5)))), loc(48)),
            n.Store(cnt, (), n.BinOp(">>", n.BinOp("|", load(cnt), c(1)), c(1)), loc(49)),
        ), loc(46)),
        n.Copy(region(X, (n.BinOp("*", bx, c(64)), 64), (0, 64)), whole(S), loc(50)),
    ) + const_stores
    launch1 = n.Launch((n.BinOp("//", n.BinOp("+", N, c(63)), c(64)),), (bx,), 128, first, loc(19))
    second = (n.For(w, c(0), K, "serial", (
        n.Store(Y, (w,), n.Cast("bfloat16", n.BinOp("/", load(X, var("bx"), w), c(3.0, "float32"))), loc(61)),
    ), loc=loc(60)),)
    launch2 = n.Launch((N,), (var("bx"),), 32, second, loc(59))
    launch3 = n.Launch((), (), 1, (), None)
    return n.Func("everything", (X, Y, idx, out), (launch1, launch2, launch3), loc(18, 1))


def module() -> n.Module:
    return n.Module((gemm_kernel(), everything_kernel(), n.Func("empty", (), (), None)))
