"""The parser: name resolution, symbolic dimensions, locations, and errors at the text's line:col."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from tilec.errors import TilecError
from tilec.ir import nodes as n
from tilec.ir import visitor
from tilec.ir.parser import parse, parse_func

KERNEL = """\
# a comment line, then a blank line

kernel k(A: global float32[M, 64], idx: global int32[M]) {  # k.py:1:1
  launch (bx: (M + 15) // 16) threads=64 {  # k.py:2:5
    t = alloc shared float32[16, 64]  # k.py:3:9
    # a comment between statements: ignored, and not a location
    let e: int32 = idx[bx]  # k.py:4:9
    for i in parallel(0, 16) {  # k.py:5:9
      t[i, 0] = A[e, i] * -2.0  # k.py:6:13
    }
    copy t -> A[bx * 16 +: 16, 0 +: 64]  # not a location
  }
}
"""


def test_names_resolve_to_their_bindings():
    f = parse_func(KERNEL, "k.tir")
    A, idx = f.params
    M = A.shape[0]
    assert M == n.Var("M") and idx.shape == (M,)
    launch = f.body[0]
    alloc, let, loop, copy = launch.body
    store = loop.body[0]
    assert store.buffer is alloc.buffer
    assert store.indices[0] is loop.var
    assert store.value.a.buffer is A and store.value.a.indices[0] is let.var
    assert let.value.indices[0] is launch.block_vars[0]
    assert copy.src.buffer is alloc.buffer and copy.src.extents == alloc.buffer.shape
    assert copy.dst.buffer is A
    assert store.value.b == n.Const(-2.0, "float32")


def test_symbolic_dims_are_int32_vars_free_in_the_kernel():
    f = parse_func("kernel f(A: global float16[M, N], B: global float16[N, min(M, 8)]) {\n}\n")
    assert visitor.free_vars(f) == [n.Var("M"), n.Var("N")]
    assert f.params[1].shape[1] == n.BinOp("min", n.Var("M"), n.Const(8))


def test_statement_and_expression_locations():
    f = parse_func(KERNEL, "k.tir")
    assert f.loc == n.Loc("k.py", 1, 1)
    launch = f.body[0]
    assert launch.loc == n.Loc("k.py", 2, 5)
    alloc, let, loop, copy = launch.body
    assert let.loc == n.Loc("k.py", 4, 9)
    store = loop.body[0]
    assert store.loc == n.Loc("k.py", 6, 13)
    assert store.value.loc == store.loc and store.value.a.loc == store.loc
    assert alloc.buffer.loc == alloc.loc
    assert copy.loc is None and copy.dst.loc is None


def test_module_with_several_kernels():
    text = "kernel a() {\n}\nkernel b(X: global int8[4]) {\n}\n\n\nkernel c() {\n}"
    m = parse(text)
    assert [f.name for f in m.funcs] == ["a", "b", "c"]
    assert m["b"].params[0].dtype == "int8"
    with pytest.raises(TilecError, match="expected one kernel, found 3"):
        parse_func(text)
    assert parse("") == n.Module(())


def test_constant_folding_of_negative_literals():
    f = parse_func("kernel f(A: global float32[4]) {\n  launch () threads=1 {\n"
                   "    A[0] = -3.5 + -(2.0) - -inf + nan\n    A[1] = -5:i8\n  }\n}\n")
    s0, s1 = f.body[0].body
    top = s0.value
    assert math.isnan(top.b.value)
    assert top.a.b == n.Const(-math.inf, "float32")
    assert top.a.a.a == n.Const(-3.5, "float32")
    assert top.a.a.b == n.UnaryOp("-", n.Const(2.0, "float32"))
    assert s1.value == n.Const(-5, "int8")


def test_keyword_names_use_a_dollar():
    f = parse_func("kernel copy($copy: global float32[4]) {\n  launch ($for: 4) threads=1 {\n"
                   "    $copy[$for] = 1.0\n    copy $copy[0 +: 2] -> $copy[2 +: 2]\n  }\n}\n")
    assert f.name == "copy" and f.params[0].name == "copy"
    assert f.body[0].block_vars[0].name == "for"


ERRORS = [
    ("    A[0] = y + 1.0", 3, 12, "unknown name 'y'"),
    ("    A[0] = + 1.0", 3, 12, "syntax error: unexpected '+'"),
    ("    A[0] = 1.0 @ 2", 3, 16, "unexpected character '@'"),
    ("    A[0] = A", 3, 12, "buffer 'A' used as a scalar"),
    ("    A[0] = foo(1)", 3, 12, "unknown function 'foo'"),
    ("    A[0] = min(1)", 3, 12, "'min' takes 2 arguments"),
    ("    A[0] = 1.5:i32", 3, 12, "not a constant of type int32"),
    ("    A[0] = 1.5:q8", 3, 16, "unknown dtype suffix 'q8'"),
    ("    A[0] = cast<half>(1)", 3, 17, "unknown dtype 'half'"),
    ("    A[0 +: 1] = 1.0", 3, 9, "syntax error: unexpected '+:'"),
    ("    A[0] = A[0 +: 2]", 3, 14, "a region ('+:') is not an expression"),
    ("    x = alloc shred float32[4]", 3, 15, "unknown scope 'shred'"),
    ("    for i in forever(0, 4) {\n    }", 3, 14, "unknown loop kind 'forever'"),
    ("    for i in pipelined(0, 4, stage=2) {\n    }", 3, 30, "expected 'stages='"),
    ("    reduce max A -> A dim=1 dim=2", 3, 29, "flag 'dim' given twice"),
    ("    reduce max A -> A", 3, 5, "missing 'dim='"),
    ("    reduce median A -> A dim=0", 3, 12, "unknown reduction 'median'"),
    ("    reduce max A -> A dim=x", 3, 27, "bad value 'x' for 'dim'"),
    ("    cumsum A -> A dim=0 backwards", 3, 25, "unknown flag 'backwards'"),
    ("    gemm A, A -> A clear=1", 3, 20, "flag 'clear' takes no value"),
    ("    atomic mul A[0 +: 1] <- 1.0", 3, 12, "unknown atomic kind 'mul'"),
    ("    copy A[0 +: 1, 0 +: 1] -> A", 3, 10, "region of 'A' has 2 dimensions"),
    ("    let i: int32 = 1\n    copy i -> A", 4, 10, "'i' is a scalar variable, not a buffer"),
    ("    hint h(x)", 3, 12, "unknown name 'x'"),
    ("    hint h(1:i64)", 3, 12, "a hint argument is"),
    ("    A[0] = 1.0\n  ", 5, 4, "syntax error: unexpected end of input"),
]


@pytest.mark.parametrize("line, row, col, message", ERRORS)
def test_errors_point_into_the_text(line, row, col, message):
    text = f"kernel f(A: global float32[4]) {{\n  launch (bx: 1) threads=1 {{\n{line}\n  }}\n}}\n"
    if "end of input" in message:
        text = text.rsplit("}", 1)[0]
    with pytest.raises(TilecError) as info:
        parse(text, "bad.tir")
    err = info.value
    assert message in err.message
    assert (err.loc.file, err.loc.line, err.loc.col) == ("bad.tir", row, col), err.render()


def test_error_renders_the_in_memory_source_line_with_a_caret():
    with pytest.raises(TilecError) as info:
        parse("kernel f(A: global float32[4]) {\n  launch () threads=1 {\n    A[0] = zz\n  }\n}\n", "mem.tir")
    assert info.value.render() == (
        "mem.tir:3:12: error: unknown name 'zz'\n"
        "        A[0] = zz\n"
        "               ^")


def test_kernel_level_errors():
    with pytest.raises(TilecError, match="unknown dtype 'float33'"):
        parse("kernel f(A: global float33[4]) {\n}\n")
    with pytest.raises(TilecError, match="expected 'threads='"):
        parse("kernel f() {\n  launch () thread=1 {\n  }\n}\n")
    with pytest.raises(TilecError, match="syntax error"):
        parse("kernel f() {\n  launch () threads=1 { }\n}\n")


def test_layout_variations_read_the_same():
    text = (Path(__file__).parent / "tir" / "misc.tir").read_text()
    m = parse(text)
    assert parse(text.replace("\n", "\r\n")) == m
    assert parse(text.replace("  ", "\t")) == m
    assert parse("# only comments\n\n# here\n") == n.Module(())
