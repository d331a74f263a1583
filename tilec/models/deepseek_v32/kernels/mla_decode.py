"""Weight-absorbed MLA decode (DeepSeek's "MQA mode", docs/deepseek_kernels.md §3.5 and §3.7).

In decode the per-head ``wkv_b`` is folded into the query: ``q = [q_nope @ W_UK | q_pe]`` (576 wide)
attends to the cached ``kv = [c | k_pe]`` (576 wide) and the value is the first ``d_v = 512`` columns
(the latent ``c``), so attention is MQA over one latent head. Two kernels:

- **sparse** (DSA, FlashMLA ``flash_mla_with_kvcache`` with ``indices``): each (batch, token) reads the
  rows its int32 indices name (``-1`` / ``>= s_kv`` skipped); the kernel is ``sparse_mla``'s batched
  form.
- **dense**: each batch row attends to its first ``E = cache_seqlens[b]`` cache rows (a run-time
  value, so one compiled kernel serves every decode step); with ``causal`` the ``s_q`` queries are the
  last ``s_q`` positions and query s sees rows ``t <= E - s_q + s``.

Both return ``out [b, s_q, h, d_v]`` and FlashMLA's ``lse [b, h, s_q]`` (natural log, +inf for a query
that saw no row). ``absorbed_decode`` is the whole attention of one decode step around the kernel
(absorb ``W_UK``, attend, apply ``W_UV``), the same computation as the reference's ``MLA._decode``.
"""
from __future__ import annotations

from typing import Optional

import torch

import tilec.language as T

from . import compiled, dtype_name, resolve_target
from .sparse_mla import (LOG2E, default_block_H, finish_rows, online_softmax_update, softmax_state,
                         sparse_mla_batched)


def sparse_mla_decode(q, kv, indices, sm_scale: float, d_v: int = 512, target: str = "auto", **tiles):
    """q [b, s_q, h, 576], kv [b, s_kv, 576], indices [b, s_q, topk] -> (out [b,s_q,h,d_v], lse [b,h,s_q])."""
    out, lse = sparse_mla_batched(q, kv, indices, sm_scale, d_v, target, **tiles)
    return out, lse.transpose(1, 2).contiguous()


def dense_mla_decode_kernel(s_q: int, h: int, d_qk: int, d_v: int, sm_scale: float, causal: bool = False,
                            block_N: int = 64, block_H: Optional[int] = None, dtype: str = "bfloat16"):
    """Factory: ``main(q[b,s_q,h,d_qk], kv[b,s_max,d_qk], cache_seqlens[b] int32, out[b,s_q,h,d_v],
    lse[b,s_q,h] fp32)``: attention over the first ``cache_seqlens[b]`` rows of ``kv[b]``. ``b`` and
    ``s_max`` are symbolic; ``s_q`` stays constant because the causal rule uses it."""
    block_H = block_H or h
    assert h % block_H == 0, "block_H must divide the head count"
    scale = sm_scale * LOG2E
    accum = "float32"
    batch, s_max = T.dynamic("batch"), T.dynamic("s_max")

    @T.prim_func
    def main(q: T.Tensor((batch, s_q, h, d_qk), dtype), kv: T.Tensor((batch, s_max, d_qk), dtype),
             cache_seqlens: T.Tensor((batch,), "int32"), out: T.Tensor((batch, s_q, h, d_v), dtype),
             lse: T.Tensor((batch, s_q, h), accum)):
        with T.Kernel(s_q, h // block_H, batch, threads=128) as (bx, by, bz):
            q_sh = T.alloc_shared((block_H, d_qk), dtype)
            kv_sh = T.alloc_shared((block_N, d_qk), dtype)
            s = T.alloc_fragment((block_H, block_N), accum)
            p = T.alloc_fragment((block_H, block_N), dtype)
            acc, m, m_prev, alpha, rowsum, denom, lse_f = softmax_state(block_H, d_v)
            h0 = by * block_H
            seqlen = T.min(cache_seqlens[bz], s_max)
            # rows this query may see: [0, last)
            last = T.min(seqlen - s_q + bx + 1, seqlen) if causal else seqlen
            T.copy(q[bz, bx, h0:h0 + block_H, 0:d_qk], q_sh)
            for c in T.serial(T.ceildiv(T.max(last, 0), block_N)):
                T.copy(kv[bz, c * block_N:(c + 1) * block_N, 0:d_qk], kv_sh)
                T.gemm(q_sh, kv_sh, s, transpose_B=True, clear_accum=True)
                for r, j in T.Parallel(block_H, block_N):
                    s[r, j] = T.if_then_else(c * block_N + j < last, s[r, j] * scale, -T.infinity(accum))
                online_softmax_update(s, p, m, m_prev, alpha, rowsum, denom, acc, block_H, block_N, d_v)
                T.gemm(p, kv_sh[0:block_N, 0:d_v], acc)
            finish_rows(acc, denom, m, lse_f, block_H, d_v)
            T.copy(acc, out[bz, bx, h0:h0 + block_H, 0:d_v])
            T.copy(lse_f, lse[bz, bx, h0:h0 + block_H])

    return main


def dense_mla_decode(q, kv, cache_seqlens, sm_scale: float, d_v: int = 512, causal: bool = False,
                     target: str = "auto", **tiles):
    """q [b, s_q, h, 576], kv [b, s_max, 576], cache_seqlens [b] -> (out [b,s_q,h,d_v], lse [b,h,s_q])."""
    s_q, h, d_qk = q.shape[1:]
    target = resolve_target(target)
    args = (s_q, h, d_qk, d_v, float(sm_scale), causal, tiles.get("block_N", 64),
            tiles.get("block_H", default_block_H(h, target)), dtype_name(q.dtype))
    kernel = compiled(dense_mla_decode_kernel, args, [3, 4], target)
    out, lse = kernel(q.contiguous(), kv.contiguous(), cache_seqlens.to(torch.int32).contiguous())
    return out, lse.transpose(1, 2).contiguous()


def absorbed_decode(q_nope, q_pe, wkv_b, kv_cache, pe_cache, topk, sm_scale: float, end_pos: int,
                    qk_nope_head_dim: int, v_head_dim: int, target: str = "auto"):
    """One decode step's attention, as ``reference.MLA._decode`` with the core on the sparse kernel.

    q_nope [b,1,h,nope], q_pe [b,1,h,rope], wkv_b [h, nope+v, c] (dequantized), kv_cache [B,S,c],
    pe_cache [B,S,rope], topk [b,1,k] positions (int64 or int32, -1 invalid) -> o [b,1,h,v] bf16.
    """
    b = q_nope.shape[0]
    q_abs = torch.einsum("bshd,hdc->bshc", q_nope, wkv_b[:, :qk_nope_head_dim])
    q = torch.cat([q_abs, q_pe], dim=-1)
    kv = torch.cat([kv_cache[:b, :end_pos], pe_cache[:b, :end_pos]], dim=-1)
    o_lat, _ = sparse_mla_decode(q, kv, topk.to(torch.int32), sm_scale, kv_cache.shape[-1], target)
    return torch.einsum("bshc,hdc->bshd", o_lat, wkv_b[:, -v_head_dim:])
