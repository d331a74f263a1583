"""Copy forwarding into gemm operands (backends/llvm/gemm_forward.py): which copies the analysis lets the
gemm read from their source, the cases it must refuse, and results bit-identical to plain copies (and to
the interpreter within float32 rounding) at regular and ragged sizes, over dtypes and transposes."""
import importlib.util
import pathlib

import numpy as np
import pytest

import tilec.language as T
from tilec.backends.llvm import gemm_forward
from tilec.backends.llvm.target import CpuTarget
from cpu_harness import check, poison, rand
from test_cpu_tileops import gemm_kernel
from tilec.ir import visitor

EXAMPLE = pathlib.Path(__file__).parents[3] / "examples" / "flash_attention.py"
JIT = {"cpu_build": "jit"}


def flash_attention(*args, **kw):
    spec = importlib.util.spec_from_file_location("tilec_forward_flash_attention", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.flash_attention(*args, **kw)


def forwarded(func) -> set[tuple[str, str]]:
    body = func.body[0].body
    ids = gemm_forward.plan(body)
    return {(x.src.buffer.name, x.dst.buffer.name) for x in visitor.walk(body) if id(x) in ids}


def run_cpu(func, args, out, enabled: bool, threads=None):
    old = gemm_forward.ENABLED
    gemm_forward.ENABLED = enabled
    try:
        exe = CpuTarget().build(func, dict(JIT, **({"num_threads": threads} if threads else {})))
    finally:
        gemm_forward.ENABLED = old
    got = [a.copy() for a in args]
    got[out] = poison(got[out], func.params[out].dtype)
    exe.run(got, {})
    return got[out]


def test_plan_forwards_gemm_and_attention_tiles():
    assert forwarded(gemm_kernel(128, 128, 64, 64, 64, 32, "float32", "float32", "float32").func) == \
        {("A", "A_s"), ("B", "B_s")}
    fa = flash_attention(1, 2, 128, 64, False, 64, 64, dtype="float32").func
    # Q_shared is copied once outside the k loop and read by every iteration's gemm: kept
    assert forwarded(fa) == {("K", "K_shared"), ("V", "V_shared"), ("acc_s", "acc_s_cast")}


def refused_kernel(case: str, M=64, N=64, K=64):
    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), B: T.Tensor((K, N), "float32"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(1, threads=32) as bx:
            A_s = T.alloc_shared((M, K), "float32")
            B_s = T.alloc_shared((K, N), "float32")
            H_s = T.alloc_shared((M, K), "float16")
            C_f = T.alloc_fragment((M, N), "float32")
            T.clear(C_f)
            T.copy(B, B_s)
            if case == "tile_read":        # the tile is also read element-wise
                T.copy(A, A_s)
                for i, j in T.Parallel(M, K):
                    A[i, j] = A_s[i, j] * 2.0
                T.gemm(A_s, B_s, C_f)
            elif case == "source_written":  # the source changes between the copy and the gemm
                T.copy(A, A_s)
                for i, j in T.Parallel(M, K):
                    A[i, j] = A[i, j] + 1.0
                T.gemm(A_s, B_s, C_f)
            elif case == "gemm_in_loop":    # one copy feeds gemms in a nested loop
                T.copy(A, A_s)
                for k in T.serial(2):
                    T.gemm(A_s, B_s, C_f)
            elif case == "copy_in_loop":    # the tile is rewritten in a nested body before the gemm
                T.copy(A, A_s)
                for k in T.serial(1):
                    T.copy(C[0, 0], A_s)
                T.gemm(A_s, B_s, C_f)
            elif case == "converting":      # a copy that rounds to float16 is not a move
                T.copy(A, H_s)
                T.gemm(H_s, B_s, C_f)
            elif case == "accumulates_source":  # C_f += C_f_copy @ B: the gemm updates the source
                T.copy(A, C_f)
                T.copy(C_f, A_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C)
    return main


@pytest.mark.parametrize("case", ["tile_read", "source_written", "gemm_in_loop", "copy_in_loop", "converting",
                                  "accumulates_source"])
def test_plan_refuses_unsafe_forwarding(case):
    rng = np.random.default_rng(30)
    func = refused_kernel(case).func
    fw = forwarded(func)
    assert fw == (set() if case == "gemm_in_loop" else {("B", "B_s")}), fw  # B_s too is read in the loop
    args = [rand((64, 64), "float32", rng), rand((64, 64), "float32", rng), rand((64, 64), "float32", rng)]
    check(func, args, [0, 2], 1e-5 if case == "converting" else 1e-6, options=JIT)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float16", 1e-3), ("bfloat16", 1e-2),
                                       ("float8_e4m3", 1e-5)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
@pytest.mark.parametrize("size", [(128, 128, 128), (100, 75, 61)])
def test_forwarded_gemm_is_bit_identical_to_plain_copies(dtype, tol, ta, tb, size):
    """Regular sizes forward every tile; ragged ones take the copy at the edges and forward inside."""
    M, N, K = size
    rng = np.random.default_rng(31)
    func = gemm_kernel(M, N, K, 64, 64, 32, dtype, "float32", "float32", ta, tb).func
    a = rand((K, M) if ta else (M, K), dtype, rng)
    b = rand((N, K) if tb else (K, N), dtype, rng)
    args = [a, b, rand((M, N), "float32", rng)]
    on, off = run_cpu(func, args, 2, True), run_cpu(func, args, 2, False)
    assert not np.isnan(on).any()
    assert np.array_equal(on.view(np.uint32), off.view(np.uint32))
    check(func, args, [2], tol, options=JIT)


def test_forwarded_results_do_not_depend_on_thread_count():
    M = N = K = 256
    rng = np.random.default_rng(32)
    func = gemm_kernel(M, N, K, 64, 64, 64, "float32", "float32", "float32").func
    args = [rand((M, K), "float32", rng), rand((K, N), "float32", rng), rand((M, N), "float32", rng)]
    one, two = run_cpu(func, args, 2, True, threads=1), run_cpu(func, args, 2, True, threads=2)
    assert np.array_equal(one.view(np.uint32), two.view(np.uint32))


def test_forwarded_attention_matches_interpreter_ragged():
    rng = np.random.default_rng(33)
    s = 100  # the last K/V tile runs past seq_len: copied (zeros), the others forwarded
    func = flash_attention(1, 2, s, 64, True, 64, 64, dtype="float32").func
    args = [rand((1, s, 2, 64), "float32", rng) for _ in range(4)]
    check(func, args, [3], 1e-5, options=JIT)
