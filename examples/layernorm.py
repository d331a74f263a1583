"""LayerNorm over rows, Y = (X - mean) / sqrt(var + eps) * W + B, in float32.

Three passes over column tiles per block of rows: the mean, the variance around it (columns past ``N``
are excluded with ``T.if_then_else``: a zero-filled column would otherwise add ``mean^2``), and the
output, stored element by element straight to global memory under an explicit bounds ``if``.
"""
import tilec.language as T


def layernorm(M, N, eps=1e-5, block_M=32, block_N=128, threads=128, dtype="float32", accum_dtype="float32"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), dtype), B: T.Tensor((N,), dtype),
             Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=threads) as bx:
            x = T.alloc_fragment((block_M, block_N), accum_dtype)
            mean = T.alloc_fragment((block_M,), accum_dtype)
            rstd = T.alloc_fragment((block_M,), accum_dtype)
            num_tiles = T.ceildiv(N, block_N)
            T.clear(mean)
            for k in T.serial(num_tiles):
                T.copy(X[bx * block_M, k * block_N], x)
                T.reduce_sum(x, mean, dim=1, clear=False)
            for i in T.Parallel(block_M):
                mean[i] = mean[i] / N
            T.clear(rstd)
            for k in T.serial(num_tiles):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    d = x[i, j] - mean[i]
                    x[i, j] = T.if_then_else(k * block_N + j < N, d * d, 0)
                T.reduce_sum(x, rstd, dim=1, clear=False)
            for i in T.Parallel(block_M):
                rstd[i] = T.rsqrt(rstd[i] / N + eps)
            for k in T.serial(num_tiles):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    row = bx * block_M + i
                    col = k * block_N + j
                    if row < M and col < N:
                        Y[row, col] = (x[i, j] - mean[i]) * rstd[i] * W[col] + B[col]

    return main


KERNEL = layernorm
DEFAULTS = dict(M=512, N=1024)
RAGGED = dict(M=100, N=300)
OUT_IDX = [3]
TOLERANCE = 1e-5


def reference(X, W, B, eps=1e-5, **params):
    import torch
    return torch.nn.functional.layer_norm(X.float(), (X.shape[1],), W.float(), B.float(), eps).to(X.dtype)


def main():
    import torch

    import tilec
    p = DEFAULTS
    kernel = tilec.compile(layernorm(**p), out_idx=OUT_IDX, target="interp")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(p["M"], p["N"], generator=g)
    W = torch.randn(p["N"], generator=g)
    B = torch.randn(p["N"], generator=g)
    Y = kernel(X, W, B)
    ref = reference(X, W, B, **p)
    err = ((Y - ref).norm() / ref.norm()).item()
    print(f"layernorm {p}: relative error {err:.3e} ({'ok' if err < TOLERANCE else 'FAIL'})")


if __name__ == "__main__":
    main()
