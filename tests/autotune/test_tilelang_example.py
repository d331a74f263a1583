"""TileLang's autotuner example (examples/gemm/example_gemm_autotune.py's shape: ``@autotune(configs=...)``
over ``@jit``, the config space a function of the sizes), with only the imports changed."""
import itertools

import pytest
import torch

import tilec as tilelang
import tilec.language as T
from tilec.autotuner import autotune, set_autotune_inputs


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))


def get_configs(M, N, K):
    # A tiny space (the test's time budget); TileLang's example sweeps many more tiles and stages.
    return [dict(block_M=bm, block_N=bn, block_K=32, num_stages=st, thread_num=128, enable_rasteration=False)
            for bm, bn, st in itertools.product([32, 64], [32], [0, 2])]


@autotune(configs=get_configs, warmup=3, rep=20)
@tilelang.jit(out_idx=[-1], target="cpu")
def matmul(M, N, K, block_M=128, block_N=128, block_K=32, num_stages=0, thread_num=128, enable_rasteration=False):
    dtype = "float16"
    accum_dtype = "float"

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((N, K), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=thread_num) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_N, block_K), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            C_shared = T.alloc_shared((block_M, block_N), dtype)
            T.use_swizzle(panel_size=10, enable=enable_rasteration)
            T.clear(C_local)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(A[by * block_M, k * block_K], A_shared)
                T.copy(B[bx * block_N, k * block_K], B_shared)
                T.gemm(A_shared, B_shared, C_local, transpose_B=True)
            T.copy(C_local, C_shared)
            T.copy(C_shared, C[by * block_M, bx * block_N])

    return main


def ref_program(A, B):
    return (A.float() @ B.float().T).half()


def test_tilelang_autotune_example_runs():
    M = N = K = 64
    kernel = matmul(M, N, K)
    result = matmul.last_result
    assert result.config in get_configs(M, N, K) and result.latency > 0
    a, b = torch.randn(M, K).half(), torch.randn(N, K).half()
    c = kernel(a, b)
    ref = ref_program(a, b).float()
    assert ((c.float() - ref).norm() / ref.norm()).item() < 1e-2
    profiler = kernel.get_profiler(tensor_supply_type=tilelang.TensorSupplyType.Normal)
    profiler.assert_allclose(ref_program, rtol=0.01, atol=0.01)
    assert profiler.do_bench(warmup=1, rep=5) > 0
    # Tuning on given tensors (TileLang's set_autotune_inputs), other sizes: a new tuning run.
    with set_autotune_inputs(torch.randn(32, 64).half(), torch.randn(32, 64).half()):
        small = matmul(32, 32, 64)
    assert not matmul.last_result.cache_hit and small is not kernel
