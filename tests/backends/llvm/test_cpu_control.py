"""Control flow, scalars, symbolic dimensions, several launches, data-dependent indexing and thread-count
independence on the cpu target vs the interpreter; JIT and ahead-of-time builds agree."""
import numpy as np
import pytest

import tilec.language as T
from cpu_harness import check, check_exact, rand, run_both


def control_kernel(N):
    @T.prim_func
    def main(A: T.Tensor((N,), "int32"), O: T.Tensor((N,), "int32"), P: T.Tensor((N,), "float32")):
        with T.Kernel(N, threads=1) as bx:
            acc = T.alloc_var("int32")
            f = T.alloc_var("float32")
            acc = 0
            f = 1.0
            x = A[bx]
            for i in T.serial(x % 7):
                acc = acc + i * 3
            for j in T.unroll(4):
                if (x + j) % 2 == 0:
                    acc = acc + j
                else:
                    acc = acc - 1
            while acc > 50:
                acc = acc - 13
                f = f * 0.5
            O[bx] = acc
            P[bx] = f
    return main


def test_loops_and_scalars():
    rng = np.random.default_rng(20)
    N = 64
    func = control_kernel(N).func
    check_exact(func, [rng.integers(0, 100, N).astype(np.int32), np.zeros(N, np.int32),
                       np.zeros(N, np.float32)], [1, 2])


def dynamic_kernel():
    M = T.dynamic("M")
    N = T.dynamic("N")

    @T.prim_func
    def main(A: T.Tensor((M, N), "float32"), B: T.Tensor((M, N), "float32"), S: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, 16), threads=128) as bx:
            t = T.alloc_fragment((16, 64), "float32")
            s = T.alloc_fragment((16,), "float32")
            T.clear(s)
            for k in T.serial(T.ceildiv(N, 64)):
                T.copy(A[bx * 16, k * 64], t)
                for i, j in T.Parallel(16, 64):
                    t[i, j] = t[i, j] * 2.0 + 1.0
                T.copy(t, B[bx * 16, k * 64])
                T.reduce_sum(t, s, dim=1, clear=False)
            T.copy(s, S[bx * 16])
    return main


@pytest.mark.parametrize("M,N", [(32, 128), (45, 100), (1, 7)])
def test_symbolic_dims(M, N):
    rng = np.random.default_rng(21)
    func = dynamic_kernel().func
    # B's ragged tail columns hold (0*2+1) from the zero-filled source but are not written past N.
    check(func, [rand((M, N), "float32", rng), rand((M, N), "float32", rng), rand((M,), "float32", rng)],
          [1, 2], 1e-6, dims={"M": M, "N": N})


def two_launch_kernel(N):
    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), Idx: T.Tensor((N,), "int32"), B: T.Tensor((N,), "float32"),
             C: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, 32), threads=32) as bx:
            for i in T.Parallel(32):
                if bx * 32 + i < N:
                    B[bx * 32 + i] = A[Idx[bx * 32 + i]] * 3.0        # a gather
        with T.Kernel(T.ceildiv(N, 32), threads=32) as bx:          # sees what the first launch wrote
            for i in T.Parallel(32):
                if bx * 32 + i < N:
                    C[bx * 32 + i] = B[N - 1 - (bx * 32 + i)] + 1.0
    return main


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_launch_sequence_and_threads(threads):
    rng = np.random.default_rng(22)
    N = 1000
    func = two_launch_kernel(N).func
    args = [rand((N,), "float32", rng), rng.permutation(N).astype(np.int32), np.zeros(N, np.float32),
            np.zeros(N, np.float32)]
    check_exact(func, args, [2, 3], options={"num_threads": threads})


def test_jit_and_aot_agree():
    rng = np.random.default_rng(23)
    func = dynamic_kernel().func
    args = [rand((40, 70), "float32", rng), rand((40, 70), "float32", rng), rand((40,), "float32", rng)]
    dims = {"M": 40, "N": 70}
    _, jit = run_both(func, args, [1, 2], dims, {"cpu_build": "jit"})
    _, aot = run_both(func, args, [1, 2], dims, {"cpu_build": "aot"})
    for a, b in zip(jit, aot):
        assert np.array_equal(a, b)


def test_jit_kernels_with_the_same_name_do_not_collide():
    """Every example kernel is called ``main``: two different ones in one JIT engine stay distinct."""
    rng = np.random.default_rng(24)
    f1, f2 = control_kernel(16).func, control_kernel(32).func
    assert f1.name == f2.name
    for f, n in ((f1, 16), (f2, 32), (f1, 16)):
        check_exact(f, [rng.integers(0, 100, n).astype(np.int32), np.zeros(n, np.int32), np.zeros(n, np.float32)],
                    [1, 2], options={"cpu_build": "jit"})


def test_attention_bitwise_independent_of_thread_count():
    import pathlib
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).parents[3] / "examples"))
    import flash_attention
    from tilec.backends.llvm.target import CpuTarget
    func = flash_attention.flash_attention(1, 3, 200, 64, True, dtype="float32").func
    rng = np.random.default_rng(25)
    q, k, v = (rng.standard_normal((1, 200, 3, 64)).astype(np.float32) for _ in range(3))
    outs = []
    for threads in (1, 2, 5):
        o = np.full_like(q, np.nan)
        CpuTarget().build(func, {"num_threads": threads}).run([q, k, v, o], {})
        outs.append(o)
    assert not np.isnan(outs[0]).any()
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
