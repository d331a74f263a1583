"""Small tilec kernels the assembled model needs besides the kernel families in ``kernels/``.

These are the pieces between the big kernels (docs/deepseek_kernels.md §3.5-3.6) that DeepSeek's code
writes as one-line torch expressions; in ``model.py`` every one of them runs compiled:

- ``act_dequant_kernel``: ``bf16(fp32(y) * s[row, col // 128])``, the dequantize half of the FP8
  simulation of the MLA latent (``ref_ops.act_dequant``).
- ``head_gemm_kernel``: one GEMM per attention head against a slice of the absorbed ``wkv_b``
  (``q_abs = q_nope @ W_UK[h]`` and ``o = o_lat @ W_UV[h]^T``), fp32 accumulation, one bf16 rounding.
- ``index_weights_kernel``: the indexer's per-head weights ``((p * c1) * q_scale) * c2`` in fp32, in
  the reference's order of operations.
- ``silu_glu_kernel``: ``bf16(silu(fp32 a) * fp32 b)`` (``ref_ops.silu_glu``).
- ``cast_kernel``: a dtype conversion (the bf16 -> fp32 widening before the fp32 head and gate).

Every factory takes the token count as a symbolic dimension ``M`` so one build serves prefill and
decode. The MoE wrappers at the end build ``kernels/moe.py``'s kernels for a symbolic token count.
The sparse attention at the reference's rounding points (and why it is not ``kernels/sparse_mla.py``)
is in ``attention_kernels.py``; the specifications that name all of these factories live in
``specs.py``.
"""
from __future__ import annotations

import tilec.language as T

F32 = "float32"
BF16 = "bfloat16"
FP8 = "float8_e4m3"
BLOCK = 128


def act_dequant_kernel(N: int, block_M: int = 32, out_dtype: str = BF16):
    """Factory: ``main(Y[M, N] e4m3, S[M, N / 128] fp32, X[M, N] out_dtype)``; grid (M/32, N/128)."""
    assert N % BLOCK == 0, "act_dequant: the last dim must be a multiple of 128"
    M = T.dynamic("M")

    @T.prim_func
    def main(Y: T.Tensor((M, N), FP8), S: T.Tensor((M, N // BLOCK), F32), X: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(M, block_M), N // BLOCK, threads=128) as (bx, by):
            y = T.alloc_fragment((block_M, BLOCK), F32)
            s = T.alloc_fragment((block_M,), F32)
            x = T.alloc_fragment((block_M, BLOCK), out_dtype)
            T.copy(Y[bx * block_M, by * BLOCK], y)
            T.copy(S[bx * block_M:(bx + 1) * block_M, by], s)
            for i, j in T.Parallel(block_M, BLOCK):
                x[i, j] = y[i, j] * s[i]
            T.copy(x, X[bx * block_M, by * BLOCK])

    return main


def head_gemm_kernel(H: int, XK: int, x_off: int, K: int, N: int, WR: int, WC: int, w_off: int,
                     transpose_b: bool, block_M: int = 32, dtype: str = BF16):
    """Factory: ``main(X[M, H, XK], W[H, WR, WC], Y[M, H, N])``; with ``x = X[:, h, x_off:x_off + K]``:

    - ``transpose_b=False``: ``Y[:, h] = x @ W[h, w_off:w_off + K, 0:N]`` (so WC == N);
    - ``transpose_b=True``: ``Y[:, h] = x @ W[h, w_off:w_off + N, 0:K]^T`` (so WC == K).
    """
    M = T.dynamic("M")
    rows = N if transpose_b else K

    @T.prim_func
    def main(X: T.Tensor((M, H, XK), dtype), W: T.Tensor((H, WR, WC), dtype), Y: T.Tensor((M, H, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), H, threads=128) as (bx, h):
            x_s = T.alloc_shared((block_M, K), dtype)
            w_s = T.alloc_shared((rows, WC), dtype)
            acc = T.alloc_fragment((block_M, N), F32)
            T.copy(X[bx * block_M:(bx + 1) * block_M, h, x_off:x_off + K], x_s)
            T.copy(W[h, w_off:w_off + rows, 0:WC], w_s)
            if transpose_b:
                T.gemm(x_s, w_s, acc, transpose_B=True, clear_accum=True)
            else:
                T.gemm(x_s, w_s, acc, clear_accum=True)
            T.copy(acc, Y[bx * block_M:(bx + 1) * block_M, h, 0:N])

    return main


def index_weights_kernel(H: int, c1: float, c2: float, block_M: int = 64):
    """Factory: ``main(P[M, H] fp32, QS[M, H] fp32, W[M, H] fp32)``: ``W = ((P * c1) * QS) * c2``."""
    M = T.dynamic("M")

    @T.prim_func
    def main(P: T.Tensor((M, H), F32), QS: T.Tensor((M, H), F32), W: T.Tensor((M, H), F32)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            p = T.alloc_fragment((block_M, H), F32)
            q = T.alloc_fragment((block_M, H), F32)
            T.copy(P[bx * block_M, 0], p)
            T.copy(QS[bx * block_M, 0], q)
            for i, j in T.Parallel(block_M, H):
                p[i, j] = ((p[i, j] * c1) * q[i, j]) * c2
            T.copy(p, W[bx * block_M, 0])

    return main


def silu_glu_kernel(N: int, block_M: int = 16, block_N: int = 128, dtype: str = BF16):
    """Factory: ``main(A[M, N], B[M, N], Y[M, N])``: ``Y = dtype(silu(fp32 A) * fp32 B)``."""
    M = T.dynamic("M")

    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            a = T.alloc_fragment((block_M, block_N), F32)
            b = T.alloc_fragment((block_M, block_N), F32)
            y = T.alloc_fragment((block_M, block_N), dtype)
            T.copy(A[by * block_M, bx * block_N], a)
            T.copy(B[by * block_M, bx * block_N], b)
            for i, j in T.Parallel(block_M, block_N):
                y[i, j] = a[i, j] * T.sigmoid(a[i, j]) * b[i, j]
            T.copy(y, Y[by * block_M, bx * block_N])

    return main


def cast_kernel(N: int, src: str = BF16, dst: str = F32, block_M: int = 16, block_N: int = 256):
    """Factory: ``main(X[M, N] src, Y[M, N] dst)``: ``Y = dst(X)``."""
    M = T.dynamic("M")

    @T.prim_func
    def main(X: T.Tensor((M, N), src), Y: T.Tensor((M, N), dst)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            x = T.alloc_fragment((block_M, block_N), dst)
            T.copy(X[by * block_M, bx * block_N], x)
            T.copy(x, Y[by * block_M, bx * block_N])

    return main


# --- the MoE kernels of kernels/moe.py over a symbolic token count ---------------------------------
# The padded expert layout has NT = moe.max_tiles(T, K, E, block_M) tiles of block_M rows: an
# expression of the symbolic token count T (a bound on the data-dependent tile count), so one build
# serves every T. block_M is the one compile-time choice (specs.moe_block_M); the permutation
# (moe.permute_kernel at T.dynamic("T")) and these wrappers derive NT with the same rule.

def moe_up_layout_kernel(D: int, inter: int, E: int, K: int, fp8: bool, mma_dtype=None, block_M: int = 16):
    """``moe.moe_up_kernel`` for T tokens: X[T, D] binds T, Tok[NT * block_M] and TileE[NT] are checked."""
    from .kernels import moe
    n = T.dynamic("T")
    return moe.moe_up_kernel(n, D, inter, E, moe.max_tiles(n, K, E, block_M), fp8, block_M, moe.BLOCK_N, mma_dtype)


def moe_down_layout_kernel(D: int, inter: int, E: int, K: int, fp8: bool, mma_dtype=None, block_M: int = 16):
    """``moe.moe_down_kernel`` over any layout: no parameter has T, so the tile count is its own
    symbol NT (bound by TileE[NT]; H and Y are [NT * block_M, .]). K is unused (same arguments as up)."""
    from .kernels import moe
    return moe.moe_down_kernel(D, inter, E, T.dynamic("NT"), fp8, block_M, moe.BLOCK_N, mma_dtype)


def moe_combine_layout_kernel(K: int, D: int, E: int, block_M: int = 16, out_dtype: str = "bfloat16"):
    """``moe.combine_kernel`` (with the shared expert) for T tokens over the layout's NT * block_M rows;
    ``out_dtype`` float32 for a rank's partial sum under expert parallelism."""
    from .kernels import moe
    n = T.dynamic("T")
    return moe.combine_kernel(n, K, D, moe.max_tiles(n, K, E, block_M) * block_M, True, out_dtype=out_dtype)
