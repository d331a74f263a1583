"""Tile ops on the cpu target vs the interpreter: copy (ragged, out-of-range, unit dims, conversions),
gemm (dtypes, transposes, ragged, clear, half accumulators), fill, reduce, cumsum and atomics."""
import numpy as np
import pytest

import tilec.language as T
from cpu_harness import check, check_exact, rand


def gemm_kernel(M, N, K, bm, bn, bk, dtype, accum, out_dtype, trans_a=False, trans_b=False):
    a_shape = (K, M) if trans_a else (M, K)
    b_shape = (N, K) if trans_b else (K, N)
    as_shape = (bk, bm) if trans_a else (bm, bk)
    bs_shape = (bn, bk) if trans_b else (bk, bn)

    @T.prim_func
    def main(A: T.Tensor(a_shape, dtype), B: T.Tensor(b_shape, dtype), C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared(as_shape, dtype)
            B_s = T.alloc_shared(bs_shape, dtype)
            C_f = T.alloc_fragment((bm, bn), accum)
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                if trans_a:
                    T.copy(A[k * bk, by * bm], A_s)
                else:
                    T.copy(A[by * bm, k * bk], A_s)
                if trans_b:
                    T.copy(B[bx * bn, k * bk], B_s)
                else:
                    T.copy(B[k * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f, transpose_A=trans_a, transpose_B=trans_b)
            T.copy(C_f, C[by * bm, bx * bn])
    return main


@pytest.mark.parametrize("dtype,accum,out,tol", [
    ("float32", "float32", "float32", 1e-6), ("float16", "float32", "float16", 1e-3),
    ("bfloat16", "float32", "bfloat16", 1e-2), ("float8_e4m3", "float32", "float32", 1e-5),
    ("float16", "float16", "float16", 1e-2), ("float32", "float64", "float32", 1e-6)])
@pytest.mark.parametrize("size", [(128, 128, 96), (100, 75, 61)])
def test_gemm_dtypes(dtype, accum, out, tol, size):
    M, N, K = size
    rng = np.random.default_rng(10)
    func = gemm_kernel(M, N, K, 64, 64, 32, dtype, accum, out).func
    check(func, [rand((M, K), dtype, rng), rand((K, N), dtype, rng), rand((M, N), out, rng)], [2], tol)


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (True, True)])
def test_gemm_transposes(ta, tb):
    M, N, K = 70, 90, 50
    rng = np.random.default_rng(11)
    func = gemm_kernel(M, N, K, 32, 64, 16, "float32", "float32", "float32", ta, tb).func
    a = rand((K, M) if ta else (M, K), "float32", rng)
    b = rand((N, K) if tb else (K, N), "float32", rng)
    check(func, [a, b, rand((M, N), "float32", rng)], [2], 1e-6)


def gemm_accumulate_kernel(M, N, K):
    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=128) as bx:
            A_s = T.alloc_shared((M, K), "float32")
            B_s = T.alloc_shared((K, N), "float32")
            C_f = T.alloc_fragment((M, N), "float32")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.copy(C, C_f)
            T.gemm(A_s, B_s, C_f)             # accumulates onto C's old values
            T.gemm(A_s, B_s, C_f, clear_accum=True)
            T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C)
    return main


def test_gemm_clear_and_accumulate():
    rng = np.random.default_rng(12)
    M, N, K = 9, 70, 13
    func = gemm_accumulate_kernel(M, N, K).func
    args = [rand((M, K), "float32", rng), rand((K, N), "float32", rng), rand((M, N), "float32", rng)]
    check(func, args, [], 0)
    from cpu_harness import run_both, rel_err
    ref, got = run_both(func, args, [])
    assert rel_err(got[2], ref[2], "float32") < 1e-6


def copy_kernel(M, N, sdt, ddt, r0, c0, tm, tn):
    """Tiles of A starting at (r0 + k*tm, c0 + j*tn): start negative and run past both ends."""
    gm, gn = (M - r0 + tm - 1) // tm + 1, (N - c0 + tn - 1) // tn + 1

    @T.prim_func
    def main(A: T.Tensor((M, N), sdt), B: T.Tensor((M, N), ddt), S: T.Tensor((gm * tm, gn * tn), ddt)):
        with T.Kernel(gn, gm, threads=32) as (bx, by):
            t = T.alloc_shared((tm, tn), ddt)
            T.copy(A[r0 + by * tm, c0 + bx * tn], t)       # out-of-range source reads zero
            T.copy(t, S[by * tm, bx * tn])
            T.copy(t, B[r0 + by * tm, c0 + bx * tn])       # out-of-range destination not written
    return main


@pytest.mark.parametrize("sdt,ddt", [("float32", "float32"), ("float32", "bfloat16"), ("float16", "float32"),
                                     ("float32", "float8_e4m3"), ("bfloat16", "float16"), ("int32", "float32")])
def test_copy_out_of_range(sdt, ddt):
    rng = np.random.default_rng(13)
    M, N, tm, tn = 37, 45, 16, 32
    func = copy_kernel(M, N, sdt, ddt, -5, -7, tm, tn).func
    gm, gn = func.params[2].shape[0].value, func.params[2].shape[1].value
    check_exact(func, [rand((M, N), sdt, rng), rand((M, N), ddt, rng), rand((gm, gn), ddt, rng)], [1, 2])


def unit_dim_kernel():
    @T.prim_func
    def main(A: T.Tensor((4, 8, 16), "float32"), B: T.Tensor((8, 4, 16), "float32"),
             C: T.Tensor((8, 4, 16), "float32")):
        with T.Kernel(4, threads=32) as bx:
            row = T.alloc_fragment((1, 16), "float32")
            flat = T.alloc_fragment((8, 16), "float32")
            for s in T.serial(8):
                T.copy(A[bx, s, 0:16], row)               # [1, 1, 16] -> [1, 16]
                T.copy(row, B[s, bx, 0:16])               # [1, 16] -> [1, 1, 16]
            T.copy(A[bx, 0:8, 0:16], flat)
            T.copy(flat, C[0:8, bx, 0:16])                # [8, 16] -> [8, 1, 16]
    return main


def test_copy_unit_dims_and_reshape():
    rng = np.random.default_rng(14)
    func = unit_dim_kernel().func
    check_exact(func, [rand((4, 8, 16), "float32", rng), rand((8, 4, 16), "float32", rng),
                       rand((8, 4, 16), "float32", rng)], [1, 2])


def reduce_kernel(M, N, kind, dim, clear, dtype, odt):
    out_n = M if dim == 1 else N

    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), O: T.Tensor((out_n,), odt), S: T.Tensor((M, N), odt)):
        with T.Kernel(1, threads=32) as bx:
            t = T.alloc_fragment((M, N), dtype)
            r = T.alloc_fragment((out_n,), odt)
            T.copy(A, t)
            T.fill(r, 0.5)
            if kind == "max":
                T.reduce_max(t, r, dim=dim, clear=clear)
            elif kind == "min":
                T.reduce_min(t, r, dim=dim, clear=clear)
            elif kind == "sum":
                T.reduce_sum(t, r, dim=dim, clear=clear)
            elif kind == "absmax":
                T.reduce_absmax(t, r, dim=dim, clear=clear)
            else:
                T.reduce_abssum(t, r, dim=dim, clear=clear)
            T.copy(r, O)
            T.cumsum(t, S, dim=dim, reverse=clear)
    return main


@pytest.mark.parametrize("kind", ["max", "min", "sum", "absmax", "abssum"])
@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("clear", [True, False])
def test_reduce_and_cumsum(kind, dim, clear):
    rng = np.random.default_rng(15)
    M, N = 13, 70
    func = reduce_kernel(M, N, kind, dim, clear, "float32", "float32").func
    check(func, [rand((M, N), "float32", rng), rand((M if dim else N,), "float32", rng),
                 rand((M, N), "float32", rng)], [1, 2], 1e-6)


@pytest.mark.parametrize("dtype,odt,tol", [("bfloat16", "float32", 1e-6), ("float16", "float16", 1e-3),
                                           ("int32", "int32", 0)])
def test_reduce_dtypes(dtype, odt, tol):
    rng = np.random.default_rng(16)
    func = reduce_kernel(16, 33, "sum", 1, True, dtype, odt).func
    check(func, [rand((16, 33), dtype, rng), rand((16,), odt, rng), rand((16, 33), odt, rng)], [1, 2], tol)


def atomic_kernel(M, N, dtype):
    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), S: T.Tensor((N,), dtype), X: T.Tensor((N,), dtype),
             Y: T.Tensor((2,), dtype)):
        with T.Kernel(M, threads=32) as bx:
            row = T.alloc_fragment((1, N), dtype)
            T.copy(A[bx, 0:N], row)
            T.atomic_add(S[0:N], row)
            T.atomic_max(X[0:N], row)
            T.atomic_add(Y[0], A[bx, 0])
            T.atomic_min(Y[1], A[bx, 1])
    return main


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("int32", 0), ("bfloat16", 2e-2), ("float16", 5e-3)])
def test_atomics(dtype, tol):
    rng = np.random.default_rng(17)
    M, N = 64, 40
    func = atomic_kernel(M, N, dtype).func
    s0 = np.zeros((N,), np.float32)
    from tilec import numerics
    from tilec.ir import dtypes
    def z(shape):
        if dtype == "int32":
            return np.zeros(shape, dtypes.storage_numpy(dtype))
        return numerics.from_float32(np.zeros(shape, np.float32), dtype)
    args = [rand((M, N), dtype, rng), z(N), rand((N,), dtype, rng), z(2)]
    check(func, args, [], 0)
    from cpu_harness import run_both, rel_err
    ref, got = run_both(func, args, [], options={"num_threads": 2})
    for i in (1, 2, 3):
        assert rel_err(got[i], ref[i], dtype) <= tol, i
    del s0


@pytest.mark.parametrize("bf16dot", [True, False])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("size,blocks", [((70, 90, 37), (32, 64, 15)), ((64, 128, 64), (64, 64, 32)),
                                         ((42, 100, 600), (48, 80, 600)),  # K > KC: kc-blocked
                                         ((50, 40, 70), (32, 16, 70)), ((50, 40, 64), (32, 48, 64)),  # narrow
                                         ((17, 50, 66), (17, 50, 66))])  # 50 columns: rounds up to the 4x64 tile
def test_gemm_bf16_inputs_fp32_out(ta, tb, size, blocks, bf16dot):
    """bfloat16 A/B with float32 C: the vdpbf16ps path on AVX512-BF16 hosts (odd K pads a zero pair),
    and the float32 packing path every host has."""
    M, N, K = size
    rng = np.random.default_rng(18)
    func = gemm_kernel(M, N, K, *blocks, "bfloat16", "float32", "float32", ta, tb).func
    a = rand((K, M) if ta else (M, K), "bfloat16", rng)
    b = rand((N, K) if tb else (K, N), "bfloat16", rng)
    check(func, [a, b, rand((M, N), "float32", rng)], [2], 1e-6, options={"cpu_bf16dot": bf16dot})


@pytest.mark.skipif("+avx512bf16" not in __import__("tilec.backends.llvm.llvm_env", fromlist=["host"]).host().features,
                    reason="host CPU lacks avx512bf16")
def test_gemm_bf16_dot_flushes_subnormal_inputs():
    """``vdpbf16ps`` reads bfloat16 subnormals as zero (documented in docs/backends/cpu.md): a GEMM whose
    A is all subnormal gives exactly 0 on the dot-product path, while the float32 path (cpu_bf16dot off)
    keeps the exact products, as the interpreter does. Normal inputs next to subnormal ones give the
    flushed sum to float32 rounding."""
    from cpu_harness import rel_err, run_both
    from tilec import numerics
    M = N = K = 64
    rng = np.random.default_rng(21)
    func = gemm_kernel(M, N, K, 32, 64, 32, "bfloat16", "float32", "float32").func
    sub = rng.integers(1, 0x80, (M, K)).astype(np.uint16) | (rng.integers(0, 2, (M, K)).astype(np.uint16) << 15)
    b = numerics.from_float32((rng.standard_normal((K, N)) * 2.0 ** 100).astype(np.float32), "bfloat16")
    c = rand((M, N), "float32", rng)
    ref, got = run_both(func, [sub, b, c], [2], options={"cpu_bf16dot": True})
    assert np.all(got[2] == 0.0)
    assert np.count_nonzero(ref[2]) > M * N // 2          # the exact products are not zero
    _, exact = run_both(func, [sub, b, c], [2], options={"cpu_bf16dot": False})
    assert rel_err(exact[2], ref[2], "float32") < 1e-6
    mixed = np.where(rng.random((M, K)) < 0.5, sub, rand((M, K), "bfloat16", rng))
    _, got = run_both(func, [mixed, b, c], [2], options={"cpu_bf16dot": True})
    flushed = np.where((mixed & 0x7F80) == 0, np.uint16(0), mixed)
    want = numerics.to_float32(flushed, "bfloat16").astype(np.float64) @ numerics.to_float32(b, "bfloat16")
    assert rel_err(got[2], want.astype(np.float32), "float32") < 1e-6


def mixed_gemm_kernel(M, N, K, bm, bn, bk, a_dt, b_dt, trans_b):
    @T.prim_func
    def main(A: T.Tensor((M, K), a_dt), B: T.Tensor((N, K) if trans_b else (K, N), b_dt),
             C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), a_dt)
            B_s = T.alloc_shared((bn, bk) if trans_b else (bk, bn), b_dt)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[by * bm, k * bk], A_s)
                T.copy(B[bx * bn, k * bk] if trans_b else B[k * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f, transpose_B=trans_b)
            T.copy(C_f, C[by * bm, bx * bn])
    return main


@pytest.mark.parametrize("a_dt,b_dt", [("float8_e4m3", "float8_e4m3"), ("bfloat16", "float8_e4m3"),
                                       ("float8_e4m3", "bfloat16")])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("size,blocks", [((70, 90, 37), (32, 64, 15)), ((64, 128, 320), (64, 64, 320))])
def test_gemm_fp8_inputs_on_bf16_dot(a_dt, b_dt, trans_b, size, blocks):
    """float8_e4m3 operands (alone or with bfloat16) convert to bfloat16 exactly while packing and run on
    the dot-product kernel: the interpreter's result to float32 rounding, fp8 subnormals included."""
    M, N, K = size
    rng = np.random.default_rng(22)
    func = mixed_gemm_kernel(M, N, K, *blocks, a_dt, b_dt, trans_b).func
    a = rand((M, K), a_dt, rng)
    b = rand((N, K) if trans_b else (K, N), b_dt, rng, scale=0.02)  # fp8 subnormals (< 2^-6) among them
    check(func, [a, b, rand((M, N), "float32", rng)], [2], 1e-6)
