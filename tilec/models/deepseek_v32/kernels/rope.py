"""Rotary position embedding of DeepSeek-V3.2 (docs/deepseek_kernels.md §3.3, §8 trap 1) as a tilec kernel.

``y = x`` except on the ``rope_dim`` dims starting at ``rope_off`` of every head, which are rotated in
fp32 by the table row of the token's position and rounded back to the input dtype:

- interleaved (MLA ``q_pe`` / ``k_pe``, ``[nope | pe]``): pairs ``(x[2i], x[2i+1])``,
  ``y[2i] = x[2i] cos - x[2i+1] sin``, ``y[2i+1] = x[2i] sin + x[2i+1] cos``;
- non-interleaved (the indexer's q and k, ``[pe | nope]``): pairs ``(x[i], x[i + d/2])``.

The YaRN table is an input: ``torch.view_as_real(freqs_cis[P:P+S])``, fp32 ``[S, rope_dim/2, 2]``
(cos, sin) from ``ref_ops.precompute_freqs_cis``, so YaRN's static switch stays in one place.
Each output element is written by its own parallel iteration: ``y[j] = x[j] c + sgn (x[partner] s)``
with ``sgn = -1`` on the first member of a pair, which is exactly the complex product's rounding.
Tiling: a block owns ``block_H`` heads of one token; batch and sequence are symbolic dimensions.
"""
import torch

import tilec.language as T

from . import compiled

F32 = "float32"


def rope_kernel(H: int, D: int, rope_dim: int, rope_off: int, interleaved: bool, block_H: int = 16,
                dtype: str = "bfloat16"):
    """Factory: ``main(X[B, S, H, D], F[S, rope_dim/2, 2] fp32, Y[B, S, H, D])``; grid (H/block_H, S, B)."""
    assert rope_dim % 2 == 0 and rope_off + rope_dim <= D
    B, S = T.dynamic("B"), T.dynamic("S")
    half = rope_dim // 2
    block_H = min(block_H, H)

    @T.prim_func
    def main(X: T.Tensor((B, S, H, D), dtype), F: T.Tensor((S, half, 2), F32), Y: T.Tensor((B, S, H, D), dtype)):
        with T.Kernel(T.ceildiv(H, block_H), S, B, threads=128) as (bh, s, b):
            x = T.alloc_fragment((block_H, D), F32)
            y = T.alloc_fragment((block_H, D), dtype)
            f = T.alloc_fragment((half, 2), F32)
            T.copy(X[b, s, bh * block_H:(bh + 1) * block_H, 0:D], x)
            T.copy(F[s, 0:half, 0:2], f)
            for h, j in T.Parallel(block_H, D):
                y[h, j] = x[h, j]
            for h, j in T.Parallel(block_H, rope_dim):
                if interleaved:
                    y[h, rope_off + j] = (x[h, rope_off + j] * f[j // 2, 0]
                                          + T.if_then_else(j % 2 == 0, -1.0, 1.0)
                                          * (x[h, rope_off + (j ^ 1)] * f[j // 2, 1]))
                else:
                    y[h, rope_off + j] = (x[h, rope_off + j] * f[j % half, 0]
                                          + T.if_then_else(j < half, -1.0, 1.0)
                                          * (x[h, rope_off + (j + half) % rope_dim] * f[j % half, 1]))
            T.copy(y, Y[b, s, bh * block_H:(bh + 1) * block_H, 0:D])

    return main


def rope_table(freqs_cis: torch.Tensor) -> torch.Tensor:
    """complex64 ``[S, d/2]`` -> the kernel's fp32 ``[S, d/2, 2]`` (cos, sin)."""
    return torch.view_as_real(freqs_cis).contiguous()


def apply_rotary(x: torch.Tensor, freqs_cis: torch.Tensor, interleaved: bool = True, rope_off: int = 0,
                 rope_dim: int = 0, target: str = "auto") -> torch.Tensor:
    """Rotate ``x [B, S, H, D]`` (or ``[B, S, D]``) on dims ``[rope_off, rope_off + rope_dim)``.

    ``rope_dim`` defaults to ``2 * freqs_cis.size(-1)``; ``rope_dim == D`` and ``rope_off == 0`` is
    ``ref_ops.apply_rotary_emb(x, freqs_cis, interleaved)``.
    """
    x4 = x if x.dim() == 4 else x.unsqueeze(2)
    bsz, seqlen, h, d = x4.shape
    rope_dim = rope_dim or 2 * freqs_cis.size(-1)
    kern = compiled(rope_kernel, (h, d, rope_dim, rope_off, interleaved), [2], target)
    y = kern(x4.contiguous(), rope_table(freqs_cis[:seqlen]))
    return y.view(x.shape)
