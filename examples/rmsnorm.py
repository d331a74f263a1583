"""RMSNorm, Y = X * rsqrt(mean(X^2, dim=1) + eps) * W, half-precision data with float32 statistics.

Each block owns ``block_M`` rows. A first pass over column tiles accumulates the sum of squares
(``T.reduce_sum(..., clear=False)``); zero-filled columns past ``N`` add nothing, and the mean divides by
the true ``N``. A second pass scales each tile and writes it.
"""
import tilec.language as T


def rmsnorm(M, N, eps=1e-6, block_M=32, block_N=128, threads=128, dtype="float16", accum_dtype="float32"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=threads) as bx:
            x = T.alloc_fragment((block_M, block_N), accum_dtype)
            y = T.alloc_fragment((block_M, block_N), dtype)
            w = T.alloc_shared((block_N,), dtype)
            sum_sq = T.alloc_fragment((block_M,), accum_dtype)
            T.clear(sum_sq)
            for k in T.Pipelined(T.ceildiv(N, block_N), num_stages=2):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    x[i, j] = x[i, j] * x[i, j]
                T.reduce_sum(x, sum_sq, dim=1, clear=False)
            for i in T.Parallel(block_M):
                sum_sq[i] = T.rsqrt(sum_sq[i] / N + eps)
            for k in T.serial(T.ceildiv(N, block_N)):
                T.copy(X[bx * block_M, k * block_N], x)
                T.copy(W[k * block_N], w)
                for i, j in T.Parallel(block_M, block_N):
                    y[i, j] = x[i, j] * sum_sq[i] * w[j]
                T.copy(y, Y[bx * block_M, k * block_N])

    return main


KERNEL = rmsnorm
DEFAULTS = dict(M=512, N=1024)
RAGGED = dict(M=100, N=300)
OUT_IDX = [2]
TOLERANCE = 1e-2


def reference(X, W, eps=1e-6, **params):
    import torch
    x = X.float()
    return (x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps) * W.float()).to(X.dtype)


def main():
    import torch

    import tilec
    p = DEFAULTS
    kernel = tilec.compile(rmsnorm(**p), out_idx=OUT_IDX, target="interp")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(p["M"], p["N"], generator=g).half()
    W = torch.randn(p["N"], generator=g).half()
    Y = kernel(X, W)
    ref = reference(X, W, **p).float()
    err = ((Y.float() - ref).norm() / ref.norm()).item()
    print(f"rmsnorm {p}: relative error {err:.3e} ({'ok' if err < TOLERANCE else 'FAIL'})")


if __name__ == "__main__":
    main()
