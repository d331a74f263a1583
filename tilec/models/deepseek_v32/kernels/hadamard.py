"""The Hadamard transform of the lightning indexer (``rotate_activation``, docs/deepseek_kernels.md §3.6)
as a tilec kernel.

``y = bf16((fp32(x) @ H_n) * n^-0.5)`` with the Sylvester matrix ``H[i, j] = (-1)^popcount(i & j)``
(symmetric), n = 128 in DeepSeek-V3.2. Each block builds H in a shared tile (its entries are +-1,
exact in bf16, so the GEMM runs on bf16 operands with fp32 accumulation like the reference's fp32
matmul of bf16 values) and transforms ``block_M`` rows with one ``T.gemm``: the same sum the
reference forms, on every target's matrix unit. Rows are a symbolic dimension.
"""
import torch

import tilec.language as T

from . import compiled

F32 = "float32"


def hadamard_kernel(n: int = 128, block_M: int = 64, dtype: str = "bfloat16"):
    """Factory: ``main(X[M, n], Y[M, n])``, n a power of two."""
    assert n > 0 and n & (n - 1) == 0, "hadamard: n must be a power of two"
    bits = n.bit_length() - 1
    scale = n ** -0.5
    M = T.dynamic("M")

    @T.prim_func
    def main(X: T.Tensor((M, n), dtype), Y: T.Tensor((M, n), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x_s = T.alloc_shared((block_M, n), dtype)
            h_s = T.alloc_shared((n, n), dtype)
            par = T.alloc_fragment((n, n), "int32")
            acc = T.alloc_fragment((block_M, n), F32)
            y = T.alloc_fragment((block_M, n), dtype)
            T.copy(X[bx * block_M, 0], x_s)
            T.clear(par)
            for b in T.serial(bits):
                for i, j in T.Parallel(n, n):
                    par[i, j] = par[i, j] ^ ((i & j) >> b)
            for i, j in T.Parallel(n, n):
                h_s[i, j] = T.if_then_else((par[i, j] & 1) == 0, 1.0, -1.0)
            T.gemm(x_s, h_s, acc, clear_accum=True)
            for i, j in T.Parallel(block_M, n):
                y[i, j] = acc[i, j] * scale
            T.copy(y, Y[bx * block_M, 0])

    return main


def hadamard(x: torch.Tensor, target: str = "auto") -> torch.Tensor:
    """``ref_ops.rotate_activation`` on a tilec kernel (the last dim is transformed)."""
    n = x.size(-1)
    y = compiled(hadamard_kernel, (n,), [1], target)(x.reshape(-1, n).contiguous())
    return y.view(x.shape)
