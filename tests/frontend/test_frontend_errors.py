"""User mistakes are TilecErrors at the construct's file:line:col, rendered with the source line and a
caret (never a Python traceback from inside tilec). The verifier's own corpus is tests/errors/."""
from __future__ import annotations

import pytest

import tilec.language as T
from tilec.errors import TilecError

from frontend_helpers import expect_error

HEADER = '''
import tilec.language as T

@T.prim_func
def k(A: T.Tensor((128, 64), "float16"), B: T.Tensor((128, 64), "float32")):
    with T.Kernel(2, threads=128) as bx:
'''


def kernel(body: str) -> str:
    lines = body.strip("\n").splitlines()
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
    return HEADER + "".join("        " + ln[indent:] + "\n" for ln in lines)


CASES = [
    # (body, construct the error points at, message fragment)
    ("S = T.alloc_shared((64, 32), 'float17')", "'float17'", "unknown dtype 'float17'"),
    ("T.copy(A[0, 0], B[0, 0])", "T.copy", "cannot deduce the tile size"),
    ("T.copy(A, 3)", "T.copy", "T.copy destination must be a buffer or a buffer tile"),
    ("T.fill(A, 1, 2)", "T.fill", "T.fill: too many positional arguments"),
    ("T.gemm(A, A, B, transpose_C=True)", "T.gemm", "transpose_C"),
    ("T.reduce_max(B, B, dim='x')", "'x'", "dim must be a compile-time int"),
    ("for k in T.Pipelined(4, num_stages=bx):\n    B[k, 0] = 1.0", "bx)", "num_stages"),
    ("x = B[0, 0]\nfor i in T.serial(4):\n    x = x + 1.0", "x = x", "cannot be reassigned inside it"),
    ("for i in T.serial(4):\n    break", "break", "`break` is not supported"),
    ("B[0, 0] = undefined_thing", "undefined_thing", "unknown name 'undefined_thing'"),
    ("B[0, 0] = T.expp(1.0)", "T.expp", "has no attribute 'expp'"),
    ("B[0:2, 0:a:2] = 0", "0:a:2", "strided slices are not supported"),
    ("with T.Kernel(2) as by:\n    pass", "with T.Kernel(2) as by", "cannot be nested"),
    ("B[0, 0] = sorted(bx)", "sorted(bx)", "make it a @T.macro"),
    ("B[0, 0] = 'text'", "'text'", "got str 'text'"),
    ("B = 1.0", "B = 1.0", "cannot assign to 'B': it names a buffer"),
    ("x = [1, 2][bx]", "[1, 2][bx]", "with a kernel value"),
    ("assert 1 == 2, 'sizes must match'", "assert", "sizes must match"),
    ("B[0, 0] = bx // 0", "bx // 0", "integer division by zero"),
    ("A[0, 0]", "A[0, 0]", "this expression has no effect"),
    ("T.Parallel(4)", "T.Parallel", "this expression has no effect"),
    ("for i in 5:\n    pass", "5:", "cannot iterate over or unpack int 5"),
    ("for i, j in T.Parallel(4):\n    pass", "i, j in", "this loop has 1 dimension(s) but binds 2"),
    ("x = A[1:2, 3] + 1", "A[1:2, 3]", "a slice of buffer 'A' is used as a scalar"),
    ("T.fill(A[0:2], 1)", "A[0:2]", "buffer 'A' has 2 dimension(s) but is subscripted with 1"),
    ("B[bx, 0] = T.log(-1.0)", "T.log", "math domain error"),
    ("S = T.alloc_shared((4, 4), 'float16', scope='global')", "T.alloc_shared", "unknown buffer scope"),
    ("T.gemm(A[0, 0], B, B)", "T.gemm", "not one element"),
]


@pytest.mark.parametrize("body,at,message", CASES, ids=[c[2][:30] for c in CASES])
def test_error_at_construct(tmp_path, body, at, message):
    expect_error(tmp_path, kernel(body), at, message)


def test_outside_kernel_and_parameter_errors(tmp_path):
    expect_error(tmp_path, '''
        import tilec.language as T

        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            T.fill(A, 0)
        ''', "T.fill", "can only be used inside a `with T.Kernel(...)` block")
    expect_error(tmp_path, '''
        import tilec.language as T

        @T.prim_func
        def k(A: T.Tensor((4,), "float32"), n: T.int32):
            with T.Kernel(1) as bx:
                A[0] = 1
        ''', "n: T.int32", "scalar parameter 'n' is not supported")
    expect_error(tmp_path, '''
        import tilec.language as T

        @T.prim_func
        def k(A):
            with T.Kernel(1) as bx:
                A[0] = 1
        ''', "A)", "needs a T.Tensor(shape, dtype) annotation")
    expect_error(tmp_path, '''
        import tilec.language as T

        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            pass
        ''', "def k", "has no `with T.Kernel(...)` block")
    expect_error(tmp_path, '''
        import tilec.language as T

        @T.prim_func
        def k(A: T.Tensor((4, 0), "float32")):
            with T.Kernel(1) as bx:
                A[0, 0] = 1
        ''', "A: T", "positive ints or T.dynamic")


def test_symbolic_dim_not_in_params(tmp_path):
    expect_error(tmp_path, '''
        import tilec.language as T

        n = T.dynamic("n")
        m = T.dynamic("m")

        @T.prim_func
        def k(A: T.Tensor((n,), "float32")):
            with T.Kernel(m) as bx:
                A[bx] = 1
        ''', "m) as bx", "symbolic dimension 'm' is not part of any parameter's shape")


def test_macro_errors_point_into_the_macro(tmp_path):
    expect_error(tmp_path, '''
        import tilec.language as T

        @T.macro
        def helper(buf, i):
            buf[i] = nonexistent

        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as bx:
                helper(A, bx)
        ''', "nonexistent", "unknown name 'nonexistent'")
    expect_error(tmp_path, '''
        import tilec.language as T

        @T.macro
        def helper(buf, i):
            buf[i] = 1

        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as bx:
                helper(A)
        ''', "helper(A)", "macro 'helper': missing a required argument: 'i'")


def test_factory_exceptions_become_diagnostics(tmp_path):
    err = expect_error(tmp_path, '''
        import tilec.language as T

        def make(sizes):
            @T.prim_func
            def k(A: T.Tensor((4,), "float32")):
                with T.Kernel(1) as bx:
                    A[0] = sizes["missing"]
            return k

        K = make({"present": 1})
        ''', 'sizes["missing"]', "cannot index")
    assert "Traceback" not in err.render()


def test_builtins_outside_kernels_report_the_callers_line():
    with pytest.raises(TilecError) as info:
        T.copy(1, 2)
    assert info.value.loc is not None and info.value.loc.file == __file__
    assert "inside a `with T.Kernel(...)` block" in info.value.message
