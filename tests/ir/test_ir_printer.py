"""The printed form: the exact text of each construct, parentheses by precedence, constants, locations."""
from __future__ import annotations

import math

import pytest

from tilec.errors import InternalError
from tilec.ir import nodes as n
from tilec.ir.printer import print_expr, print_func, print_module, print_stmt

from .samples import buf, c, gemm_kernel, load, module, region, var, whole

a, b, d = var("a"), var("b"), var("d")


def B(op, x, y):
    return n.BinOp(op, x, y)


GEMM_TEXT = """\
kernel gemm(A: global float16[M, 1024], B: global float16[1024, 1024], C: global float16[M, 1024]) {  # k.py:5:1
  launch (bx: 16, by: (M + 63) // 64) threads=128 {  # k.py:6:5
    A_s = alloc shared float16[64, 32]  # k.py:7:5
    B_s = alloc shared float16[32, 64]  # k.py:8:5
    C_f = alloc fragment float32[64, 64]  # k.py:9:5
    fill C_f, 0.0  # k.py:10:5
    for k in pipelined(0, 32, stages=2) {  # k.py:11:5
      copy A[by * 64 +: 64, k * 32 +: 32] -> A_s  # k.py:12:9
      copy B[k * 32 +: 32, bx * 64 +: 64] -> B_s  # k.py:13:9
      gemm A_s, B_s -> C_f  # k.py:14:9
    }
    copy C_f -> C[by * 64 +: 64, bx * 64 +: 64]  # k.py:15:5
  }
}
"""


def test_gemm_text_is_exact():
    assert print_func(gemm_kernel()) == GEMM_TEXT


def test_locs_false_drops_every_comment():
    text = print_module(module(), locs=False)
    assert "#" not in text
    assert print_func(gemm_kernel(), locs=False).splitlines()[0].endswith("{")


def test_printing_is_deterministic_and_kernels_are_separated():
    first, second = print_module(module()), print_module(module())
    assert first == second
    assert first.count("\nkernel ") == 2 and first.startswith("kernel gemm(")
    assert "}\n\nkernel everything(" in first


@pytest.mark.parametrize("expr, text", [
    (B("+", B("+", a, b), d), "a + b + d"),
    (B("+", a, B("+", b, d)), "a + (b + d)"),
    (B("-", a, B("-", b, d)), "a - (b - d)"),
    (B("*", B("+", a, b), d), "(a + b) * d"),
    (B("+", a, B("*", b, d)), "a + b * d"),
    (B("//", B("*", a, b), d), "a * b // d"),
    (B("%", a, B("//", b, d)), "a % (b // d)"),
    (B("<", B("+", a, c(1)), b), "a + 1 < b"),
    (B("==", B("<", a, b), c(True, "bool")), "(a < b) == true"),
    (B("<", a, B("<", b, d)), "a < (b < d)"),
    (B("and", B("or", a, b), d), "(a or b) and d"),
    (B("or", a, B("and", b, d)), "a or b and d"),
    (B("or", B("or", a, b), d), "a or b or d"),
    (n.UnaryOp("not", B("<", a, b)), "not a < b"),
    (B("<", n.UnaryOp("not", a), b), "(not a) < b"),
    (B("and", n.UnaryOp("not", a), n.UnaryOp("not", b)), "not a and not b"),
    (n.UnaryOp("not", B("and", a, b)), "not (a and b)"),
    (B("&", B("|", a, b), d), "(a | b) & d"),
    (B("|", a, B("^", b, B("&", d, c(1)))), "a | b ^ d & 1"),
    (B("<<", B("+", a, b), c(2)), "a + b << 2"),
    (B("+", a, B(">>", b, c(2))), "a + (b >> 2)"),
    (B("&", B("<<", a, c(1)), b), "a << 1 & b"),
    (n.UnaryOp("-", B("*", a, b)), "-(a * b)"),
    (B("*", n.UnaryOp("-", a), b), "-a * b"),
    (n.UnaryOp("-", n.UnaryOp("-", a)), "--a"),
    (n.UnaryOp("~", a), "~a"),
    (n.UnaryOp("-", c(3)), "-(3)"),
    (n.UnaryOp("-", c(-3)), "-(-3)"),
    (n.UnaryOp("-", c(1.5, "float16")), "-(1.5:f16)"),
    (B("-", a, c(-3)), "a - -3"),
    (B("*", c(-3), a), "-3 * a"),
    (B("min", B("+", a, b), c(4)), "min(a + b, 4)"),
    (B("*", B("max", a, b), c(2)), "max(a, b) * 2"),
    (n.Call("pow", (a, c(2.0, "float32"))), "pow(a, 2.0)"),
    (n.Cast("float16", B("+", a, b)), "cast<float16>(a + b)"),
    (n.Reinterpret("uint32", a), "reinterpret<uint32>(a)"),
    (n.Select(B("<", a, b), a, b), "select(a < b, a, b)"),
    (load(buf("X", (4, 4)), a, B("+", b, c(1))), "X[a, b + 1]"),
    (load(buf("s", ())), "s[]"),
    (var("copy"), "$copy"),
])
def test_expression_text(expr, text):
    assert print_expr(expr) == text


@pytest.mark.parametrize("const, text", [
    (c(3), "3"), (c(-3), "-3"), (c(0), "0"),
    (c(1.5, "float32"), "1.5"), (c(2, "float32"), "2.0"), (c(1e-05, "float32"), "1e-05"),
    (c(1e30, "float32"), "1e+30"), (c(-0.0, "float32"), "-0.0"),
    (c(math.inf, "float32"), "inf"), (c(-math.inf, "float32"), "-inf"), (c(math.nan, "float32"), "nan"),
    (c(float("nan"), "bfloat16"), "nan:bf16"), (c(-math.inf, "float16"), "-inf:f16"),
    (c(True, "bool"), "true"), (c(False, "bool"), "false"),
    (c(3, "int64"), "3:i64"), (c(-2, "int8"), "-2:i8"), (c(4294967295, "uint32"), "4294967295:u32"),
    (c(0.5, "bfloat16"), "0.5:bf16"), (c(1, "float16"), "1.0:f16"), (c(448.0, "float8_e4m3"), "448.0:f8e4m3"),
    (c(0.1, "float64"), "0.1:f64"), (c(0.1, "float32"), "0.1"),
])
def test_constant_text(const, text):
    assert print_expr(const) == text


def test_region_prints_bare_name_only_when_whole():
    X = buf("X", (var("M"), 64))
    assert print_stmt(n.Copy(whole(X), whole(X))) == "copy X -> X"
    part = region(X, (0, var("M")), (0, 32))
    assert print_stmt(n.Fill(part, c(0.0, "float32"))) == "fill X[0 +: M, 0 +: 32], 0.0"
    shifted = region(X, (1, var("M")), (0, 64))
    assert print_stmt(n.Fill(shifted, c(1))) == "fill X[1 +: M, 0 +: 64], 1"


def test_statement_flags():
    S = buf("S", (8, 8), scope="fragment")
    m = buf("m", (8,), scope="fragment")
    assert print_stmt(n.Gemm(whole(S), whole(S), whole(S), trans_a=True, policy="Square")) == \
        "gemm S, S -> S transpose_a policy=Square"
    assert print_stmt(n.Reduce("abssum", whole(S), whole(m), 0, clear=False)) == \
        "reduce abssum S -> m dim=0 noclear"
    assert print_stmt(n.Cumsum(whole(m), whole(m), 0, reverse=True)) == "cumsum m -> m dim=0 reverse"
    assert print_stmt(n.Hint("use_swizzle", (10, "A_s", 1.0, False))) == 'hint use_swizzle(10, "A_s", 1.0, false)'


def test_nested_statement_text():
    i = var("i")
    s = buf("s", (), "int32", "local")
    loop = n.For(i, c(0), c(4), "unrolled", (
        n.If(B("==", i, c(0)), (n.Store(s, (), c(1), n.Loc("x.py", 3, 9)),), (n.Store(s, (), i),)),
    ), loc=n.Loc("x.py", 2, 5))
    assert print_stmt(loop) == (
        "for i in unrolled(0, 4) {  # x.py:2:5\n"
        "  if (i == 0) {\n"
        "    s[] = 1  # x.py:3:9\n"
        "  } else {\n"
        "    s[] = i\n"
        "  }\n"
        "}")
    assert print_stmt(n.While(B("<", load(s), c(3)), ())) == "while (s[] < 3) {\n}"


def test_unprintable_nodes_are_internal_errors():
    with pytest.raises(InternalError):
        print_expr(n.BinOp("**", a, b))
    with pytest.raises(InternalError):
        print_expr(var("not an identifier"))
    with pytest.raises(InternalError):
        print_stmt(n.Hint("h", (None,)))
    with pytest.raises(InternalError, match="block variables are int32"):
        print_stmt(n.Launch((c(4),), (var("bx", "int64"),), 1, ()))
    with pytest.raises(InternalError, match="symbolic dimensions are int32"):
        print_func(n.Func("f", (buf("A", (var("M", "int64"),)),), ()))
