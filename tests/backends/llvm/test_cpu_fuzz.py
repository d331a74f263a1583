"""Differential fuzzing of scalar code: random expression trees, cpu vs the interpreter, bit for bit.

Only IEEE-exact float operations are drawn (+ - * / min max abs sqrt floor select and casts through the
narrow float types), so both sides must agree to the last bit (NaN compared as NaN). Integer trees
draw every integer operator; divisors are made nonzero and shift counts small (the interpreter
rejects division by zero).
"""
import numpy as np
import pytest

from cpu_harness import check_exact
from tilec.ir import nodes as n

N = 257


class Gen:
    def __init__(self, seed: int, leaves: dict):
        self.rng = np.random.default_rng(seed)
        self.leaves = leaves

    def pick(self, xs):
        return xs[int(self.rng.integers(len(xs)))]

    def float_expr(self, depth: int) -> n.Expr:
        if depth == 0 or self.rng.random() < 0.2:
            if self.rng.random() < 0.3:
                return n.Const(float(np.float32(self.rng.standard_normal() * 4)), "float32")
            return self.pick(self.leaves["float32"])
        kind = self.pick(["bin", "bin", "bin", "un", "sel", "cast"])
        a = self.float_expr(depth - 1)
        if kind == "bin":
            return n.BinOp(self.pick(["+", "-", "*", "/", "min", "max"]), a, self.float_expr(depth - 1))
        if kind == "un":
            f = self.pick(["abs", "sqrt", "floor", "ceil", "trunc", "round", "neg"])
            return n.UnaryOp("-", a) if f == "neg" else n.Call(f, (a,))
        if kind == "sel":
            cond = n.BinOp(self.pick(["<", "<=", ">", ">=", "==", "!="]), a, self.float_expr(depth - 1))
            return n.Select(cond, self.float_expr(depth - 1), self.float_expr(depth - 1))
        dt = self.pick(["float16", "bfloat16", "float8_e4m3"])
        return n.Cast("float32", n.Cast(dt, a))

    def int_expr(self, depth: int) -> n.Expr:
        if depth == 0 or self.rng.random() < 0.2:
            if self.rng.random() < 0.3:
                return n.Const(int(self.rng.integers(-100, 100)), "int32")
            return self.pick(self.leaves["int32"])
        a, b = self.int_expr(depth - 1), self.int_expr(depth - 1)
        op = self.pick(["+", "-", "*", "/", "//", "%", "&", "|", "^", "<<", ">>", "min", "max", "sel", "cast"])
        if op in ("/", "//", "%"):
            b = n.BinOp("+", n.BinOp("&", b, n.Const(7, "int32")), n.Const(1, "int32"))
            b = n.Select(n.BinOp("<", a, n.Const(0, "int32")), n.UnaryOp("-", b), b)
        if op in ("<<", ">>"):
            b = n.BinOp("&", b, n.Const(15, "int32"))
        if op == "sel":
            return n.Select(n.BinOp(self.pick(["<", ">=", "=="]), a, b), b, a)
        if op == "cast":
            return n.Cast("int32", n.Cast(self.pick(["int8", "int16", "uint8"]), a))
        return n.BinOp(op, a, b)


def fuzz_kernel(seed: int, count: int = 8):
    X, Y = (n.Buffer(nm, (n.Const(N),), "float32", "global") for nm in ("X", "Y"))
    I, J = (n.Buffer(nm, (n.Const(N),), "int32", "global") for nm in ("I", "J"))
    FO = n.Buffer("FO", (n.Const(count), n.Const(N)), "float32", "global")
    IO = n.Buffer("IO", (n.Const(count), n.Const(N)), "int32", "global")
    i = n.Var("i")
    leaves = {"float32": [n.Load(X, (i,)), n.Load(Y, (i,))], "int32": [n.Load(I, (i,)), n.Load(J, (i,))]}
    g = Gen(seed, leaves)
    body = []
    for k in range(count):
        body.append(n.Store(FO, (n.Const(k), i), g.float_expr(4)))
        body.append(n.Store(IO, (n.Const(k), i), g.int_expr(4)))
    loop = n.For(i, n.Const(0), n.Const(N), "parallel", tuple(body))
    launch = n.Launch((n.Const(1),), (n.Var("bx"),), 128, (loop,))
    return n.Func(f"fuzz{seed}", (X, Y, I, J, FO, IO), (launch,))


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("FUZZ_SEEDS", "12"))))
def test_random_scalar_programs(seed):
    rng = np.random.default_rng(1000 + seed)
    x = (rng.standard_normal(N) * 10 ** rng.uniform(-3, 3, N)).astype(np.float32)
    y = (rng.standard_normal(N) * 3).astype(np.float32)
    x[:4] = [0.0, -0.0, np.inf, np.nan]
    i = rng.integers(-2 ** 31, 2 ** 31 - 1, N, dtype=np.int64).astype(np.int32)
    j = rng.integers(-300, 300, N).astype(np.int32)
    func = fuzz_kernel(seed)
    with np.errstate(all="ignore"):
        check_exact(func, [x, y, i, j, np.zeros((8, N), np.float32), np.zeros((8, N), np.int32)], [4, 5])
