"""FP8 block quantization and the linear layers of DeepSeek-V3.2 as tilec kernels (docs/deepseek_kernels.md §3.4, §4).

- ``act_quant``: one fp32 scale per 1x128 block along the last dim, ``s = amax / 448`` (amax clamped to
  1e-4), rounded up to a power of two for ``scale_fmt="ue8m0"`` with DeepSeek's exponent bit trick
  (``exp - 127 + (mantissa != 0)``), and ``y = e4m3(clamp(x / s, -448, 448))``.
- ``weight_dequant``: ``bf16(fp32(W) * s[i // 128, j // 128])``.
- ``fp8_gemm``: ``C = A @ B^T`` with per-(row, 128 K) activation scales and 128x128 weight scales;
  each 128-wide K slab is accumulated in fp32, scaled, and added to an fp32 total ("2xAcc"), C bf16.
- ``linear_bf16``: ``F.linear`` for bf16 weights, fp32 accumulation, one rounding to bf16.
- ``linear``: DeepSeek's ``linear`` dispatch (bf16 weight or act_quant + fp8_gemm).
- ``scaled_slab_gemm`` / ``widen_tile``: macros for one scaled K slab of an FP8 GEMM, shared with the
  MoE's grouped GEMMs (``moe.py``).

Every kernel takes the token count ``M`` as a symbolic dimension, so one build serves every batch.
``mma_dtype="bfloat16"`` widens the float8 GEMM operands first (exact: every e4m3 value is a bf16
value) for matrix units without FP8 (Ascend's Cube), and because the ascend backend cannot yet lower
a converting copy from float8 (element-wise loops are used for that widening).
"""
from typing import Optional

import torch

import tilec.language as T

from . import compiled, dtype_name, fp8_mma_dtype

FP8 = "float8_e4m3"
BF16 = "bfloat16"
F32 = "float32"
FP8_MAX = 448.0
BLOCK = 128


@T.macro
def widen_tile(src, dst):
    """``dst = src`` element by element: float8 operands widened to the GEMM dtype (exact in bf16);
    a loop rather than a converting ``T.copy`` for the ascend backend (see the module docstring)."""
    for i, j in T.Parallel(src.shape[0], src.shape[1]):
        dst[i, j] = src[i, j]


@T.macro
def scaled_slab_gemm(a, b, a_mma, b_mma, slab, acc, sa, sb):
    """One 128-deep K slab of a block-scaled FP8 GEMM (DeepGEMM's fp32 promotion per slab).

    ``slab = a @ b^T`` in fp32, then ``acc[i, j] += slab[i, j] * (sa[i] * sb)`` with ``sa`` the rows'
    activation scales and ``sb`` the slab's weight scale. An operand whose ``*_mma`` tile has another
    dtype (bfloat16 for Ascend's Cube) is widened into it first; pass the operand itself to skip that.
    """
    widen_a = a_mma.dtype != a.dtype
    widen_b = b_mma.dtype != b.dtype
    if widen_a:
        widen_tile(a, a_mma)
    if widen_b:
        widen_tile(b, b_mma)
    T.gemm(a_mma if widen_a else a, b_mma if widen_b else b, slab, transpose_B=True, clear_accum=True)
    for i, j in T.Parallel(slab.shape[0], slab.shape[1]):
        acc[i, j] += slab[i, j] * (sa[i] * sb)


def act_quant_launch(M, N: int, round_scale: bool, block_M: int = 32, in_dtype: str = BF16):
    """The act_quant launch as a macro ``(X[M, N] in_dtype, Y[M, N] e4m3, S[M, N / 128] fp32)`` over
    ``M`` rows (a number or a symbolic expression); grid (M/32, N/128). Also a step of kernels of
    several launches (the FP8 MoE layer)."""
    assert N % BLOCK == 0, "act_quant: the last dim must be a multiple of 128"

    @T.macro
    def launch(X, Y, S):
        with T.Kernel(T.ceildiv(M, block_M), N // BLOCK, threads=128) as (bx, by):
            x = T.alloc_fragment((block_M, BLOCK), F32)
            y = T.alloc_fragment((block_M, BLOCK), FP8)
            amax = T.alloc_fragment((block_M,), F32)
            s = T.alloc_fragment((block_M,), F32)
            T.copy(X[bx * block_M, by * BLOCK], x)
            T.reduce_absmax(x, amax, dim=1)
            for i in T.Parallel(block_M):
                if round_scale:
                    # 2^ceil(log2(amax / 448)) from the bits of the fp32 quotient
                    bits = T.reinterpret(T.max(amax[i], 1e-4) / FP8_MAX, "uint32")
                    e = T.cast((bits >> 23) & 255, "int32") - 127 + T.if_then_else((bits & 8388607) != 0, 1, 0)
                    s[i] = T.reinterpret(T.cast((e + 127) << 23, "uint32"), F32)
                else:
                    s[i] = T.max(amax[i], 1e-4) / FP8_MAX
            for i, j in T.Parallel(block_M, BLOCK):
                y[i, j] = T.clamp(x[i, j] / s[i], -FP8_MAX, FP8_MAX)
            T.copy(y, Y[bx * block_M, by * BLOCK])
            T.copy(s, S[bx * block_M:(bx + 1) * block_M, by])

    return launch


def act_quant_kernel(N: int, round_scale: bool, block_M: int = 32, in_dtype: str = BF16):
    """Factory: ``main(X[M, N] in_dtype, Y[M, N] e4m3, S[M, N / 128] fp32)``; grid (M/32, N/128)."""
    M = T.dynamic("M")
    launch = act_quant_launch(M, N, round_scale, block_M, in_dtype)

    @T.prim_func
    def main(X: T.Tensor((M, N), in_dtype), Y: T.Tensor((M, N), FP8), S: T.Tensor((M, N // BLOCK), F32)):
        launch(X, Y, S)

    return main


def weight_dequant_kernel(N: int, K: int, out_dtype: str = BF16):
    """Factory: ``main(W[N, K] e4m3, S[ceil(N/128), ceil(K/128)] fp32, Y[N, K] bf16)``; one 128x128 tile a block."""
    SN, SK = -(-N // BLOCK), -(-K // BLOCK)

    @T.prim_func
    def main(W: T.Tensor((N, K), FP8), S: T.Tensor((SN, SK), F32), Y: T.Tensor((N, K), out_dtype)):
        with T.Kernel(SK, SN, threads=128) as (bx, by):
            w = T.alloc_fragment((BLOCK, BLOCK), FP8)
            y = T.alloc_fragment((BLOCK, BLOCK), out_dtype)
            T.copy(W[by * BLOCK, bx * BLOCK], w)
            for i, j in T.Parallel(BLOCK, BLOCK):
                y[i, j] = w[i, j] * S[by, bx]
            T.copy(y, Y[by * BLOCK, bx * BLOCK])

    return main


def fp8_gemm_kernel(N: int, K: int, block_M: int = 32, block_N: int = BLOCK, num_stages: int = 4,
                    out_dtype: str = BF16, mma_dtype: str = FP8):
    """Factory: ``main(A[M,K] e4m3, As[M,K/128] fp32, B[N,K] e4m3, Bs[ceil(N/128),K/128] fp32, C[M,N])``."""
    assert K % BLOCK == 0, "fp8_gemm: K must be a multiple of 128"
    assert BLOCK % block_N == 0, "fp8_gemm: block_N must divide the 128-row weight scale block"
    M = T.dynamic("M")
    KB, SN = K // BLOCK, -(-N // BLOCK)

    @T.prim_func
    def main(A: T.Tensor((M, K), FP8), As: T.Tensor((M, KB), F32), B: T.Tensor((N, K), FP8),
             Bs: T.Tensor((SN, KB), F32), C: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            a_s = T.alloc_shared((block_M, BLOCK), FP8)
            b_s = T.alloc_shared((block_N, BLOCK), FP8)
            a_w = T.alloc_shared((block_M, BLOCK), mma_dtype)
            b_w = T.alloc_shared((block_N, BLOCK), mma_dtype)
            sa = T.alloc_fragment((block_M,), F32)
            slab = T.alloc_fragment((block_M, block_N), F32)
            acc = T.alloc_fragment((block_M, block_N), F32)
            T.use_swizzle(panel_size=10)
            T.clear(acc)
            for k in T.Pipelined(KB, num_stages=num_stages):
                T.copy(A[by * block_M, k * BLOCK], a_s)
                T.copy(B[bx * block_N, k * BLOCK], b_s)
                T.copy(As[by * block_M:(by + 1) * block_M, k], sa)
                scaled_slab_gemm(a_s, b_s, a_w, b_w, slab, acc, sa, Bs[bx * block_N // BLOCK, k])
            T.copy(acc, C[by * block_M, bx * block_N])

    return main


def linear_bf16_kernel(N: int, K: int, block_M: int = 64, block_N: int = 64, block_K: int = 128,
                       num_stages: int = 2, dtype: str = BF16, out_dtype: str = BF16):
    """Factory: ``main(X[M, K], W[N, K], Y[M, N])``: ``Y = X @ W^T``, fp32 accumulation, one rounding."""
    M = T.dynamic("M")

    @T.prim_func
    def main(X: T.Tensor((M, K), dtype), W: T.Tensor((N, K), dtype), Y: T.Tensor((M, N), out_dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            x_s = T.alloc_shared((block_M, block_K), dtype)
            w_s = T.alloc_shared((block_N, block_K), dtype)
            acc = T.alloc_fragment((block_M, block_N), F32)
            T.clear(acc)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                T.copy(X[by * block_M, k * block_K], x_s)
                T.copy(W[bx * block_N, k * block_K], w_s)
                T.gemm(x_s, w_s, acc, transpose_B=True)
            T.copy(acc, Y[by * block_M, bx * block_N])

    return main


# --- wrappers: torch tensors in, torch tensors out; leading dims are flattened into M ----------------

def act_quant(x: torch.Tensor, block_size: int = 128, scale_fmt: Optional[str] = None,
              target: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """``ref_ops.act_quant`` on a tilec kernel: (y e4m3 like x, s fp32 [..., n/128])."""
    assert block_size == BLOCK, "act_quant: tilec's kernel quantizes 1x128 blocks"
    n = x.size(-1)
    kern = compiled(act_quant_kernel, (n, scale_fmt is not None, 32, dtype_name(x.dtype)), [1, 2], target)
    y, s = kern(x.reshape(-1, n).contiguous())
    return y.view(x.shape), s.view(*x.shape[:-1], n // BLOCK)


def weight_dequant(w: torch.Tensor, s: torch.Tensor, target: str = "auto") -> torch.Tensor:
    kern = compiled(weight_dequant_kernel, tuple(w.shape), [2], target)
    return kern(w.contiguous(), s.float().contiguous())


def fp8_gemm(a: torch.Tensor, a_s: torch.Tensor, b: torch.Tensor, b_s: torch.Tensor,
             target: str = "auto") -> torch.Tensor:
    n, k = b.shape
    kern = compiled(fp8_gemm_kernel, (n, k, 32, BLOCK, 4, BF16, fp8_mma_dtype(target) or FP8), [4], target)
    c = kern(a.reshape(-1, k).contiguous(), a_s.reshape(-1, k // BLOCK).contiguous(), b.contiguous(),
             b_s.contiguous())
    return c.view(*a.shape[:-1], n)


def linear_bf16(x: torch.Tensor, w: torch.Tensor, target: str = "auto") -> torch.Tensor:
    n, k = w.shape
    kern = compiled(linear_bf16_kernel, (n, k), [2], target)
    return kern(x.reshape(-1, k).contiguous(), w.contiguous()).view(*x.shape[:-1], n)


def linear(x: torch.Tensor, weight: torch.Tensor, scale: Optional[torch.Tensor], scale_fmt: Optional[str],
           target: str = "auto") -> torch.Tensor:
    """DeepSeek's ``linear``: bf16 weights -> ``linear_bf16``; FP8 weights -> act_quant + fp8_gemm."""
    if weight.dtype != torch.float8_e4m3fn:
        return linear_bf16(x, weight, target)
    xq, xs = act_quant(x, BLOCK, scale_fmt, target)
    return fp8_gemm(xq, xs, weight, scale, target)
