"""Verifier checks of expressions: dtypes of operands, intrinsics, casts, loads."""
from __future__ import annotations

import pytest

from irb import A, BX, C, at, c, kernel, v
from tilec.errors import TilecError
from tilec.ir import nodes as N
from tilec.ir.verifier import verify

F = "float32"


def store(value: N.Expr, loc_line: int = 4) -> N.Func:
    """A kernel that stores ``value`` into C[0, 0]."""
    return kernel(N.Store(C, (c(0), c(0)), value, at(loc_line)))


def rejects(func: N.Func, text: str, line: int = 4, col: int = 5) -> TilecError:
    with pytest.raises(TilecError) as info:
        verify(func)
    err = info.value
    assert text in err.message, err.message
    assert (err.loc.line, err.loc.col) == (line, col), (err.loc, err.message)
    return err


X = N.Load(A, (c(0), c(0)))     # float16
Y = c(2.0, F)


GOOD = [
    N.BinOp("+", N.Cast(F, X), Y),
    N.BinOp("max", Y, Y),
    N.Select(N.BinOp("<", Y, Y), Y, c(0.0, F)),
    N.Call("exp2", (Y,)),
    N.Call("pow", (Y, Y)),
    N.Call("abs", (BX,)),
    N.Reinterpret("uint32", Y),
    N.Cast("float16", N.BinOp("and", N.BinOp("<", BX, c(1)), c(True, "bool"))),
    N.UnaryOp("-", Y),
    N.UnaryOp("~", BX),
    N.BinOp("<<", BX, c(2)),
    N.Const(float("inf"), F),
    N.Const(3, "int64"),
]


@pytest.mark.parametrize("expr", GOOD, ids=range(len(GOOD)))
def test_good_expressions(expr):
    verify(store(expr))


BAD = [
    (N.BinOp("+", X, Y), "operands of '+' have different dtypes (float16 and float32)"),
    (N.BinOp("and", BX, BX), "operands of 'and' must be bool"),
    (N.BinOp("<<", Y, Y), "operands of '<<' must be integers"),
    (N.BinOp("&", Y, Y), "operands of '&' must be integers or bool"),
    (N.BinOp("+", c(True, "bool"), c(False, "bool")), "arithmetic '+' on bool operands"),
    (N.BinOp("**", Y, Y), "unknown binary operator '**'"),
    (N.UnaryOp("not", Y), "operand of 'not' must be bool"),
    (N.UnaryOp("~", Y), "operand of '~' must be an integer or bool"),
    (N.Call("exp", (BX,)), "exp needs a floating-point argument, got int32"),
    (N.Call("erf", (Y,)), "unknown intrinsic 'erf'"),
    (N.Call("pow", (Y,)), "pow takes 2 arguments, got 1"),
    (N.Call("pow", (Y, X)), "arguments of pow have different dtypes"),
    (N.Cast("float12", Y), "cast has unknown dtype 'float12'"),
    (N.Reinterpret("uint16", Y), "reinterpret of a 32-bit float32 value as 16-bit uint16"),
    (N.Select(BX, Y, Y), "condition of if_then_else must be a bool"),
    (N.Select(N.BinOp("<", BX, c(0)), Y, BX), "branches of if_then_else have different dtypes"),
    (N.Const(1.5, "int32"), "constant 1.5 (float) cannot have dtype int32"),
    (N.Const(1, "bool"), "constant 1 (int) cannot have dtype bool"),
    (N.Const(1, "half"), "constant has unknown dtype 'half'"),
    (N.Load(A, (c(0),)), "load from 'A' takes 2 indices (Mx128 buffer) but 1 was given"),
    (N.Load(A, (c(0), Y)), "index 1 of 'A' must be an integer, got a float32"),
    (v("zz", F), "'zz' is used before it is defined"),
]


@pytest.mark.parametrize("expr,text", BAD, ids=[t[:30] for _, t in BAD])
def test_bad_expressions_fail_at_the_statement(expr, text):
    rejects(store(expr), text)


def test_expression_location_wins_over_statement():
    bad = N.BinOp("+", X, Y, N.Loc("k.py", 4, 17))
    rejects(store(N.Cast(F, bad)), "different dtypes", 4, 17)


def test_region_bounds_may_be_data():
    idx = N.Load(buf_i := N.Buffer("I", (c(8),), "int32", "global"), (BX,))
    body = N.Store(C, (idx, c(0)), c(1.0, F), at(4))
    verify(kernel(body, params=(A, C, buf_i)))


def test_var_errors_point_at_the_use_not_the_definition():
    defined_elsewhere = N.Var("bx", "int64", N.Loc("k.py", 2, 9))
    rejects(store(N.Cast(F, defined_elsewhere)), "'bx' is used as int64 but was defined as int32")
