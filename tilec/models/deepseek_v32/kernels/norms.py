"""RMSNorm (optionally with the fused residual add) and LayerNorm of DeepSeek-V3.2 (docs/deepseek_kernels.md §3.2).

- ``RMSNorm(x; w) = bf16(w * xf * rsqrt(mean(xf^2) + eps))`` with ``xf = fp32(x)``; with a residual,
  ``xf = fp32(x) + fp32(res)``, the new residual is ``bf16(xf)`` and the norm is taken of the fp32
  ``xf`` (not of the rounded residual). Weights are fp32, eps 1e-6.
- ``LayerNorm(x; w, b) = bf16((xf - mean) * rsqrt(var + eps) * w + b)``, biased variance, fp32 stats
  (the indexer's ``k_norm``, d = 128).

Tiling: a block owns ``block_M`` rows and walks the row in ``block_N``-wide column tiles: a first pass
accumulates the statistics (and writes the new residual), a last pass normalizes and writes; the
row never has to fit in one tile, so d = 7168 works on every target. Rows are a symbolic dimension.
"""
from typing import Optional

import torch

import tilec.language as T

from . import compiled

F32 = "float32"


def _col_block(N: int) -> int:
    for b in (1024, 512, 256, 128):
        if N % b == 0:
            return b
    return min(1024, N)


def rms_norm_kernel(N: int, residual: bool, eps: float = 1e-6, block_M: int = 4,
                    block_N: Optional[int] = None, dtype: str = "bfloat16"):
    """Factory: ``main(X, W[N] fp32, Y)`` or, with ``residual``, ``main(X, R, W, Y, R_out)``; X [M, N]."""
    block_N = block_N or _col_block(N)
    M = T.dynamic("M")
    tiles = -(-N // block_N)

    @T.macro
    def load_sum(X, R, x, r, bx, k):
        T.copy(X[bx * block_M, k * block_N], x)
        if residual:
            T.copy(R[bx * block_M, k * block_N], r)
            for i, j in T.Parallel(block_M, block_N):
                x[i, j] = x[i, j] + r[i, j]

    @T.macro
    def body(X, R, W, Y, R_out):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, block_N), F32)
            r = T.alloc_fragment((block_M, block_N), F32)
            sq = T.alloc_fragment((block_M, block_N), F32)
            y = T.alloc_fragment((block_M, block_N), dtype)
            w = T.alloc_fragment((block_N,), F32)
            ss = T.alloc_fragment((block_M,), F32)
            T.clear(ss)
            for k in T.serial(tiles):
                load_sum(X, R, x, r, bx, k)
                if residual:
                    T.copy(x, R_out[bx * block_M, k * block_N])
                for i, j in T.Parallel(block_M, block_N):
                    sq[i, j] = x[i, j] * x[i, j]
                T.reduce_sum(sq, ss, dim=1, clear=False)
            for i in T.Parallel(block_M):
                ss[i] = T.rsqrt(ss[i] / N + eps)
            for k in T.serial(tiles):
                load_sum(X, R, x, r, bx, k)
                T.copy(W[k * block_N], w)
                for i, j in T.Parallel(block_M, block_N):
                    y[i, j] = w[j] * x[i, j] * ss[i]
                T.copy(y, Y[bx * block_M, k * block_N])

    if residual:
        @T.prim_func
        def main(X: T.Tensor((M, N), dtype), R: T.Tensor((M, N), dtype), W: T.Tensor((N,), F32),
                 Y: T.Tensor((M, N), dtype), R_out: T.Tensor((M, N), dtype)):
            body(X, R, W, Y, R_out)
    else:
        @T.prim_func
        def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), F32), Y: T.Tensor((M, N), dtype)):
            body(X, X, W, Y, Y)
    return main


def layer_norm_kernel(N: int, eps: float = 1e-6, block_M: int = 8, block_N: Optional[int] = None,
                      dtype: str = "bfloat16"):
    """Factory: ``main(X[M, N], W[N] fp32, B[N] fp32, Y[M, N])``; mean, then biased variance, then y."""
    block_N = block_N or _col_block(N)
    M = T.dynamic("M")
    tiles = -(-N // block_N)

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), F32), B: T.Tensor((N,), F32),
             Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, block_N), F32)
            d = T.alloc_fragment((block_M, block_N), F32)
            y = T.alloc_fragment((block_M, block_N), dtype)
            w = T.alloc_fragment((block_N,), F32)
            b = T.alloc_fragment((block_N,), F32)
            mean = T.alloc_fragment((block_M,), F32)
            var = T.alloc_fragment((block_M,), F32)
            T.clear(mean)
            T.clear(var)
            for k in T.serial(tiles):
                T.copy(X[bx * block_M, k * block_N], x)
                T.reduce_sum(x, mean, dim=1, clear=False)
            for i in T.Parallel(block_M):
                mean[i] = mean[i] / N
            for k in T.serial(tiles):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    # columns past N were zero-filled: keep them out of the variance
                    d[i, j] = T.if_then_else(k * block_N + j < N, (x[i, j] - mean[i]) * (x[i, j] - mean[i]), 0.0)
                T.reduce_sum(d, var, dim=1, clear=False)
            for i in T.Parallel(block_M):
                var[i] = T.rsqrt(var[i] / N + eps)
            for k in T.serial(tiles):
                T.copy(X[bx * block_M, k * block_N], x)
                T.copy(W[k * block_N], w)
                T.copy(B[k * block_N], b)
                for i, j in T.Parallel(block_M, block_N):
                    y[i, j] = (x[i, j] - mean[i]) * var[i] * w[j] + b[j]
                T.copy(y, Y[bx * block_M, k * block_N])

    return main


# --- wrappers ------------------------------------------------------------------------------------

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, residual: Optional[torch.Tensor] = None,
             target: str = "auto"):
    """``ref_ops.rms_norm`` on a tilec kernel: y, or (y, new residual) when ``residual`` is given."""
    n = x.size(-1)
    x2 = x.reshape(-1, n).contiguous()
    w = weight.float().contiguous()
    if residual is None:
        y = compiled(rms_norm_kernel, (n, False, eps), [2], target)(x2, w)
        return y.view(x.shape)
    y, r = compiled(rms_norm_kernel, (n, True, eps), [3, 4], target)(x2, residual.reshape(-1, n).contiguous(), w)
    return y.view(x.shape), r.view(x.shape)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6,
               target: str = "auto") -> torch.Tensor:
    n = x.size(-1)
    y = compiled(layer_norm_kernel, (n, eps), [3], target)(x.reshape(-1, n).contiguous(),
                                                            weight.float().contiguous(), bias.float().contiguous())
    return y.view(x.shape)
