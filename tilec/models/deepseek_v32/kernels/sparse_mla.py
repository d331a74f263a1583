"""Sparse MLA forward (FlashMLA's ``flash_mla_sparse_fwd`` semantics) as a tilec kernel.

docs/deepseek_kernels.md §3.7: for each query token, gather the ``topk`` latent rows its indices name
(``-1`` or ``>= s_kv`` is invalid and skipped), ``P = (q @ kv[idx]^T) * sm_scale`` over the full
``d_qk`` (576 = 512 latent + 64 rope), ``lse = logsumexp(P)`` (natural log), ``out = softmax(P) @
kv[idx][:, :d_v]``. A query with no valid index gets ``out = 0`` and ``lse = +inf``. This is MQA over a
single latent head: every head of a token reads the same gathered rows, so a block takes all (or
``block_H``) heads of one token and the gather is shared by them.

Tiling: the token's indices are walked in chunks of ``block_I``; each chunk is gathered into a shared
tile (a data-dependent gather in a ``T.Parallel`` loop, clamped so an invalid index reads a real row
that is then masked), scored with one GEMM, folded into a running max / sum / output (online softmax
in base 2) and multiplied into the output with a second GEMM over the first ``d_v`` columns. A chunk
without a valid index is skipped entirely (the top-k selector puts ``-1`` last, so a causal prefill's
early tokens skip most chunks). The batched form (``batch`` > 1, indices per batch row) is the decode
path in ``mla_decode.py``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

import tilec.language as T

from . import compiled, dtype_name, resolve_target, tile_family

LOG2E = 1.4426950408889634
LN2 = math.log(2.0)


@T.macro
def softmax_state(rows, width):
    """Allocate and start the online-softmax state of ``rows`` query rows with ``width`` output columns.

    Returns ``(acc, m, m_prev, alpha, rowsum, denom, lse_f)``: the fp32 output accumulator (zero), the
    running max (-inf) and the scratch of ``online_softmax_update``, the running softmax denominator
    (zero), and the lse tile ``finish_rows`` fills.
    """
    acc = T.alloc_fragment((rows, width), "float32")
    m = T.alloc_fragment((rows,), "float32")
    m_prev = T.alloc_fragment((rows,), "float32")
    alpha = T.alloc_fragment((rows,), "float32")
    rowsum = T.alloc_fragment((rows,), "float32")
    denom = T.alloc_fragment((rows,), "float32")
    lse_f = T.alloc_fragment((rows,), "float32")
    T.clear(acc)
    T.clear(denom)
    T.fill(m, -T.infinity("float32"))
    return acc, m, m_prev, alpha, rowsum, denom, lse_f


@T.macro
def online_softmax_update(s, p, m, m_prev, alpha, rowsum, denom, acc, rows, cols, width):
    """Fold a scored chunk ``s[rows, cols]`` (log2-domain, at least one finite per row) into m/denom/acc.

    Leaves ``p`` = exp2(s - m) in the value GEMM's dtype; ``acc`` is rescaled, not yet accumulated.
    """
    T.copy(m, m_prev)
    T.reduce_max(s, m, dim=1, clear=False)
    for r in T.Parallel(rows):
        alpha[r] = T.exp2(m_prev[r] - m[r])
    for r, c in T.Parallel(rows, cols):
        s[r, c] = T.exp2(s[r, c] - m[r])
    T.reduce_sum(s, rowsum, dim=1)
    for r in T.Parallel(rows):
        denom[r] = denom[r] * alpha[r] + rowsum[r]
    for r, c in T.Parallel(rows, width):
        acc[r, c] *= alpha[r]
    T.copy(s, p)


@T.macro
def finish_rows(acc, denom, m, lse_f, rows, width):
    """out = acc / denom and lse = ln(sum exp) per row; a row that saw nothing gets out 0, lse +inf."""
    for r, c in T.Parallel(rows, width):
        acc[r, c] = T.if_then_else(denom[r] > 0, acc[r, c] / denom[r], 0)
    for r in T.Parallel(rows):
        lse_f[r] = T.if_then_else(denom[r] > 0, (m[r] + T.log2(denom[r])) * LN2, T.infinity("float32"))


def sparse_mla_fwd_kernel(h: int, d_qk: int, d_v: int, sm_scale: float, block_I: int = 64,
                          block_H: Optional[int] = None, dtype: str = "bfloat16"):
    """Factory: ``main(q[batch,s_q,h,d_qk], kv[batch,s_kv,d_qk], indices[batch,s_q,topk] int32,
    out[batch,s_q,h,d_v], lse[batch,s_q,h] fp32)``; ``sm_scale`` is a compile-time constant and
    ``batch``, ``s_q``, ``s_kv``, ``topk`` are symbolic (one kernel for every length)."""
    block_H = block_H or h
    assert h % block_H == 0, "block_H must divide the head count"
    assert d_v <= d_qk
    scale = sm_scale * LOG2E          # scores in the log2 domain: exp2 instead of exp
    accum = "float32"
    batch, s_q, s_kv, topk = T.dynamic("batch"), T.dynamic("s_q"), T.dynamic("s_kv"), T.dynamic("topk")

    @T.prim_func
    def main(q: T.Tensor((batch, s_q, h, d_qk), dtype), kv: T.Tensor((batch, s_kv, d_qk), dtype),
             indices: T.Tensor((batch, s_q, topk), "int32"), out: T.Tensor((batch, s_q, h, d_v), dtype),
             lse: T.Tensor((batch, s_q, h), accum)):
        with T.Kernel(s_q, h // block_H, batch, threads=128) as (bx, by, bz):
            q_sh = T.alloc_shared((block_H, d_qk), dtype)
            kv_sh = T.alloc_shared((block_I, d_qk), dtype)
            idx = T.alloc_fragment((block_I,), "int32")
            valid = T.alloc_fragment((1, block_I), "int32")
            n_valid = T.alloc_fragment((1,), "int32")
            s = T.alloc_fragment((block_H, block_I), accum)
            p = T.alloc_fragment((block_H, block_I), dtype)
            acc, m, m_prev, alpha, rowsum, denom, lse_f = softmax_state(block_H, d_v)
            h0 = by * block_H
            T.copy(q[bz, bx, h0:h0 + block_H, 0:d_qk], q_sh)
            for c in T.serial(T.ceildiv(topk, block_I)):
                for i in T.Parallel(block_I):
                    idx[i] = indices[bz, bx, T.min(c * block_I + i, topk - 1)]
                    valid[0, i] = T.if_then_else(
                        c * block_I + i < topk and idx[i] >= 0 and idx[i] < s_kv, 1, 0)
                T.reduce_sum(valid, n_valid, dim=1)
                if n_valid[0] > 0:
                    for i, d in T.Parallel(block_I, d_qk):
                        kv_sh[i, d] = kv[bz, T.max(T.min(idx[i], s_kv - 1), 0), d]
                    T.gemm(q_sh, kv_sh, s, transpose_B=True, clear_accum=True)
                    for r, i in T.Parallel(block_H, block_I):
                        s[r, i] = T.if_then_else(valid[0, i] > 0, s[r, i] * scale, -T.infinity(accum))
                    online_softmax_update(s, p, m, m_prev, alpha, rowsum, denom, acc, block_H, block_I, d_v)
                    T.gemm(p, kv_sh[0:block_I, 0:d_v], acc)
            finish_rows(acc, denom, m, lse_f, block_H, d_v)
            T.copy(acc, out[bz, bx, h0:h0 + block_H, 0:d_v])
            T.copy(lse_f, lse[bz, bx, h0:h0 + block_H])

    return main


def sparse_mla_fwd(q, kv, indices, sm_scale: float, d_v: int = 512, target: str = "auto", **tiles):
    """FlashMLA sparse prefill: q [s_q, h, d_qk], kv [s_kv, d_qk] (or [s_kv, 1, d_qk]), indices
    [s_q, topk] (or [s_q, 1, topk]) int32 -> (out [s_q, h, d_v] bf16, lse [s_q, h] fp32)."""
    s_q, h, d_qk = q.shape
    kv = kv.reshape(kv.shape[0], d_qk)
    indices = indices.reshape(s_q, -1)
    out, lse = sparse_mla_batched(q[None], kv[None], indices[None], sm_scale, d_v, target, **tiles)
    return out[0], lse[0]


def sparse_mla_batched(q, kv, indices, sm_scale: float, d_v: int, target: str = "auto", **tiles):
    """The batched kernel on torch tensors: q [b, s_q, h, d_qk], kv [b, s_kv, d_qk], indices
    [b, s_q, topk] -> (out [b, s_q, h, d_v], lse [b, s_q, h])."""
    h, d_qk = q.shape[2:]
    target = resolve_target(target)
    args = (h, d_qk, d_v, float(sm_scale), tiles.get("block_I", 64),
            tiles.get("block_H", default_block_H(h, target)), dtype_name(q.dtype))
    kernel = compiled(sparse_mla_fwd_kernel, args, [3, 4], target)
    return kernel(q.contiguous(), kv.contiguous(), indices.to(torch.int32).contiguous())


def default_block_H(h: int, target: str) -> int:
    """Heads per block. cpu/interp: all (the gather is shared by them). cuda: at most 64, the output
    accumulator [block_H, 512] fp32 lives in registers. ascend: at most 16, so the tiles fit the 910B's
    192 KiB Unified Buffer at d_qk 576 / d_v 512 (32 heads need 221 KiB)."""
    return min(h, {"cuda": 64, "ascend": 16}.get(tile_family(target), h))
