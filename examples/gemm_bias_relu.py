"""GEMM with a fused epilogue: D = relu(A @ B + bias), the bias add and ReLU applied to the accumulator tile.

The epilogue runs on the fragment in a ``T.Parallel`` loop before the single store, so the output is written
once; ragged edges are handled by ``T.copy`` (out-of-range elements are neither read nor written).
"""
import tilec.language as T


def gemm_bias_relu(M, N, K, block_M=64, block_N=64, block_K=32, num_stages=2, threads=128,
                   dtype="float16", accum_dtype="float32"):
    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), Bias: T.Tensor((N,), dtype),
             D: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            bias_shared = T.alloc_shared((block_N,), dtype)
            acc = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(A[by * block_M, k * block_K], A_shared)
                T.copy(B[k * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, acc)
            T.copy(Bias[bx * block_N], bias_shared)
            for i, j in T.Parallel(block_M, block_N):
                acc[i, j] = T.max(acc[i, j] + bias_shared[j], 0)
            T.copy(acc, D[by * block_M, bx * block_N])

    return main


KERNEL = gemm_bias_relu
DEFAULTS = dict(M=512, N=512, K=512)
RAGGED = dict(M=200, N=136, K=100)
OUT_IDX = [3]
TOLERANCE = 1e-2


def reference(A, B, Bias, **params):
    return (A.float() @ B.float() + Bias.float()).clamp_min(0).to(A.dtype)


def main():
    import torch

    import tilec
    p = DEFAULTS
    kernel = tilec.compile(gemm_bias_relu(**p), out_idx=OUT_IDX, target="interp")
    g = torch.Generator().manual_seed(0)
    A = torch.randn(p["M"], p["K"], generator=g).half()
    B = torch.randn(p["K"], p["N"], generator=g).half()
    Bias = torch.randn(p["N"], generator=g).half()
    D = kernel(A, B, Bias)
    ref = reference(A, B, Bias, **p).float()
    err = ((D.float() - ref).norm() / ref.norm()).item()
    print(f"gemm_bias_relu {p}: relative error {err:.3e} ({'ok' if err < TOLERANCE else 'FAIL'})")


if __name__ == "__main__":
    main()
