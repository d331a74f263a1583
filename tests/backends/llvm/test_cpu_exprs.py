"""Expressions and scalar semantics on the cpu target vs the interpreter: float math in float32/half
dtypes, integer division/modulo/bit ops, comparisons, selects, casts and reinterprets (bit-exact)."""
import numpy as np
import pytest

import tilec.language as T
from cpu_harness import check, check_exact, rand

FLOAT_EXPRS = 12


def float_kernel(M, N, dtype):
    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), O: T.Tensor((FLOAT_EXPRS, M, N), dtype)):
        with T.Kernel(T.ceildiv(N, 32), T.ceildiv(M, 16), threads=128) as (bx, by):
            for i, j in T.Parallel(16, 32):
                r = by * 16 + i
                c = bx * 32 + j
                if r < M and c < N:
                    a = A[r, c]
                    b = B[r, c]
                    O[0, r, c] = a * b + a / (T.abs(b) + 0.5) - b
                    O[1, r, c] = T.exp(a) + T.exp2(b)
                    O[2, r, c] = T.log(T.abs(a) + 0.1) + T.log2(T.abs(b) + 0.1)
                    O[3, r, c] = T.sqrt(T.abs(a)) + T.rsqrt(T.abs(b) + 0.01)
                    O[4, r, c] = T.tanh(a) + T.sigmoid(b)
                    O[5, r, c] = T.max(a, b) - T.min(a, b) * 2.0
                    O[6, r, c] = T.floor(a * 3.0) + T.ceil(b * 3.0) + T.round(a * 4.0) + T.trunc(b * 3.0)
                    O[7, r, c] = T.if_then_else(a > b, a, b * 0.5)
                    O[8, r, c] = T.sin(a) + T.cos(b)
                    O[9, r, c] = T.exp(a * 20.0) * 1e-8
                    O[10, r, c] = T.floordiv(a * 4.0, b) + T.floormod(a * 3.0, b)
                    O[11, r, c] = T.cast(T.cast(a * 100.0, "int32"), dtype) + T.cast(a > 0.0, dtype)
    return main


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float16", 1e-3), ("bfloat16", 1e-2)])
@pytest.mark.parametrize("M,N", [(32, 64), (37, 45)])
def test_float_exprs(dtype, tol, M, N):
    rng = np.random.default_rng(1)
    func = float_kernel(M, N, dtype).func
    args = [rand((M, N), dtype, rng), rand((M, N), dtype, rng), rand((FLOAT_EXPRS, M, N), dtype, rng)]
    check(func, args, [2], tol)


def int_kernel(M, N):
    @T.prim_func
    def main(A: T.Tensor((M, N), "int32"), B: T.Tensor((M, N), "int32"), O: T.Tensor((10, M, N), "int32")):
        with T.Kernel(T.ceildiv(M, 8), threads=32) as bx:
            for i, j in T.Parallel(8, N):
                r = bx * 8 + i
                if r < M:
                    a = A[r, j]
                    b = B[r, j]
                    O[0, r, j] = a // b + a % b * 7
                    O[1, r, j] = a / b
                    O[2, r, j] = (a & b) | (a ^ 5)
                    O[3, r, j] = (a << 2) + (a >> 1)
                    O[4, r, j] = T.max(a, b) * 3 - T.min(a, b)
                    O[5, r, j] = T.if_then_else(a >= b, a - b, b - a)
                    O[6, r, j] = T.abs(a) + T.floordiv(a, 3) + T.floormod(a, -4)
                    O[7, r, j] = T.cast(T.cast(a, "float32") * 0.37, "int32")
                    O[8, r, j] = T.cast(T.cast(a * 1000, "int8"), "int32")
                    O[9, r, j] = a * b - (a + b) * (a - b)
    return main


@pytest.mark.parametrize("M,N", [(16, 16), (13, 7)])
def test_int_exprs(M, N):
    rng = np.random.default_rng(2)
    func = int_kernel(M, N).func
    a = rng.integers(-1000, 1000, (M, N)).astype(np.int32)
    b = rng.integers(1, 9, (M, N)).astype(np.int32) * rng.choice([-1, 1], (M, N)).astype(np.int32)
    check_exact(func, [a, b, np.zeros((10, M, N), np.int32)], [2])


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.1, 1e-3, 3.14159, 65504.0, 70000.0, 448.0, 460.0, 480.0, 1e6,
                    -1e6, 2.0 ** -7, 2.0 ** -9, 2.0 ** -10, 3 * 2.0 ** -10, 1e-30, 1e-40, np.inf, -np.inf,
                    np.nan, -np.nan, 1.00390625, 1.0078125, 1.01171875, 0.33333334, 2.5, 3.5, -2.5, 1e10,
                    -3e9, 2147483520.0, 1.5e-5, 6e-8],
                   np.float32)


def cast_kernel(n, dst):
    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), Y: T.Tensor((n,), dst), Z: T.Tensor((n,), "float32")):
        with T.Kernel(1, threads=32) as bx:
            for i in T.Parallel(n):
                Y[i] = T.cast(X[i], dst)
                Z[i] = T.cast(T.cast(X[i], dst), "float32")
    return main


@pytest.mark.parametrize("dst", ["float16", "bfloat16", "float8_e4m3", "int32", "int8", "uint32", "int64", "bool"])
def test_casts_bit_exact(dst):
    rng = np.random.default_rng(3)
    wide = (rng.standard_normal(200) * 10 ** rng.uniform(-8, 8, 200)).astype(np.float32)
    x = np.concatenate([SPECIAL, -SPECIAL, wide])
    x = x.astype(np.float32)
    n = len(x)
    from tilec.ir import dtypes
    func = cast_kernel(n, dst).func
    check_exact(func, [x, np.zeros(n, dtypes.storage_numpy(dst)), np.zeros(n, np.float32)], [1, 2])


def reinterpret_kernel(n):
    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), Y: T.Tensor((n,), "uint32"), H: T.Tensor((n,), "bfloat16"),
             U: T.Tensor((n,), "uint16")):
        with T.Kernel(1, threads=32) as bx:
            for i in T.Parallel(n):
                Y[i] = T.reinterpret(X[i], "uint32") ^ T.cast(1, "uint32")
                U[i] = T.reinterpret(H[i], "uint16")
    return main


def test_reinterpret():
    rng = np.random.default_rng(4)
    n = 50
    x = rng.standard_normal(n).astype(np.float32)
    h = rng.integers(0, 65535, n).astype(np.uint16)
    func = reinterpret_kernel(n).func
    check_exact(func, [x, np.zeros(n, np.uint32), h, np.zeros(n, np.uint16)], [1, 3])
