"""Sparse MLA attention at the reference's bf16 rounding points: the model's default attention.

``reference.MLA`` (DeepSeek's inference code) attends in two modes, and ``model.py`` reproduces both
with the two kernels here (docs/deepseek_kernels.md §3.5):

- prefill, MHA mode (``mha_sparse_prefill_kernel``): every head has its own key ``[k_nope[h] | k_pe]``
  and value ``v[h]`` from the ``wkv_b`` up-projection of the latent;
- decode, the weight-absorbed MQA mode (``mqa_sparse_decode_kernel``): the query is absorbed into the
  latent space and every head reads the shared cache row ``[c | k_pe]``.

Why not ``kernels/sparse_mla.py`` / ``kernels/mla_decode.py`` (FlashMLA semantics, ``attention=
"flashmla"`` in the model): (1) the reference rounds where FlashMLA does not. Its einsums return bf16,
so the score is rounded to bf16, scaled and rounded again (decode: the latent and rope halves are each
rounded before the sum), the fp32 softmax is rounded to bf16 before the value product, and the output
is one bf16 rounding of an fp32 sum; FlashMLA keeps fp32 scores and an online softmax. On ``tiny`` that
difference alone takes the logit error against the reference from 1.2e-2 to 2.9e-2 and flips 13% of
the indexer's top-k rows (tests/models/test_model.py, ``test_flashmla_attention_mode``), because the
model's discrete choices amplify it. (2) MHA-mode prefill has per-head keys, which FlashMLA's single
latent head cannot express without absorbing ``wkv_b`` first, and absorbing changes the rounding.
With these kernels the prefill attention is bit-identical to ``reference.MLA._prefill``.

Tiling: one block takes one query token and ``block_H`` of its heads, holding a full row of ``K``
scores per head (the reference's softmax is not online, so the row's max and sum come first).
``block_H`` defaults to the most heads whose working set fits ``SMEM_BUDGET`` (the CUDA backend keeps
such fragments in shared memory; 96 KB fits every architecture it targets, sm_86's 99 KB included),
so the 671B shapes build for cuda too (128 heads, top-k 2048: 4 heads a block in prefill, 2 in
decode). Heads are independent, so ``block_H`` changes no result, only the grid.
"""
from __future__ import annotations

from typing import Optional

import tilec.language as T

F32 = "float32"
BF16 = "bfloat16"
SMEM_BUDGET = 96 * 1024


def heads_per_block(H: int, per_head_bytes: int, fixed_bytes: int, budget: int = SMEM_BUDGET) -> int:
    """The largest divisor of ``H`` whose block working set (``fixed + heads * per_head``) fits."""
    fits = [bh for bh in range(1, H + 1) if H % bh == 0 and fixed_bytes + bh * per_head_bytes <= budget]
    return max(fits, default=1)


@T.macro
def _attention_state(H, K, DV):
    """The fragments both kernels use: the gathered rows' clamped indices and validity, a row of ``K``
    scores per head in fp32 and in bf16, the bf16 probabilities, the row max and sum, and the fp32
    output accumulator of ``DV`` columns (rounded to bf16 on its way out)."""
    idx = T.alloc_fragment((K,), "int32")
    valid = T.alloc_fragment((K,), "int32")
    s = T.alloc_fragment((H, K), F32)
    sb = T.alloc_fragment((H, K), BF16)
    p = T.alloc_fragment((H, K), BF16)
    mx = T.alloc_fragment((H,), F32)
    sm = T.alloc_fragment((H,), F32)
    acc = T.alloc_fragment((H, DV), F32)
    return idx, valid, s, sb, p, mx, sm, acc


@T.macro
def _scale_and_softmax(s, sb, p, valid, mx, sm, scale, H, K):
    """``s`` holds fp32 dot products: round to bf16, scale in fp32 and round again (the reference's
    bf16 ``einsum(...) * softmax_scale``), then the row softmax over ``valid`` entries in fp32 with the
    probabilities rounded into ``p`` (``scores.softmax(dim=-1)`` on a bf16 tensor)."""
    T.copy(s, sb)
    for h, j in T.Parallel(H, K):
        s[h, j] = T.cast(sb[h, j], F32) * scale   # an fp32 scale (a bare constant would take bf16)
    T.copy(s, sb)
    T.copy(sb, s)
    for h, j in T.Parallel(H, K):
        s[h, j] = T.if_then_else(valid[j] > 0, s[h, j], -T.infinity(F32))
    T.reduce_max(s, mx, dim=1)
    for h, j in T.Parallel(H, K):
        s[h, j] = T.if_then_else(valid[j] > 0, T.exp(s[h, j] - mx[h]), 0.0)
    T.reduce_sum(s, sm, dim=1)
    for h, j in T.Parallel(H, K):
        p[h, j] = T.if_then_else(sm[h] > 0, s[h, j] / sm[h], 0.0)


def mha_sparse_prefill_kernel(H: int, D: int, DV: int, R: int, K: int, scale: float,
                              block_H: Optional[int] = None):
    """Factory: the reference's prefill attention (MHA mode) at its rounding points, sparse.

    ``main(Q[B, S, H, D + R], KV[B, S, H, D + DV], PE[B, SKV, R + X], Idx[B, S, K] int32, O[B, S, H, DV])``
    with ``D`` = qk_nope, ``R`` = rope dims: the key of head h at t is ``[KV[t, h, :D] | PE[t, X:]]``
    (``PE`` is the combined latent cache, ``X = PE.shape[-1] - R``), the value ``KV[t, h, D:]``. Query s
    attends to ``{Idx[s, j] : 0 <= Idx <= s}``. ``score = bf16(bf16(q.k) * scale)``, softmax in fp32
    rounded to bf16, ``O = bf16(sum p v)``: the reference's bf16 einsum / softmax / einsum.
    """
    QK = D + R
    block_H = block_H or heads_per_block(H, 4 * QK + 8 * K + 4 * DV + 8, 8 * K)
    assert H % block_H == 0, "block_H must divide the head count"
    B, S, SKV, PW = T.dynamic("B"), T.dynamic("S"), T.dynamic("SKV"), T.dynamic("PW")

    @T.prim_func
    def main(Q: T.Tensor((B, S, H, QK), BF16), KV: T.Tensor((B, S, H, D + DV), BF16),
             PE: T.Tensor((B, SKV, PW), BF16), Idx: T.Tensor((B, S, K), "int32"),
             O: T.Tensor((B, S, H, DV), BF16)):
        with T.Kernel(S, B, H // block_H, threads=128) as (s, b, hb):
            h0 = hb * block_H
            q = T.alloc_fragment((block_H, QK), F32)
            idx, valid, sc, sb, p, mx, sm, acc = _attention_state(block_H, K, DV)
            T.copy(Q[b, s, h0:h0 + block_H, 0:QK], q)
            for j in T.Parallel(K):
                idx[j] = T.max(T.min(Idx[b, s, j], s), 0)
                valid[j] = T.if_then_else(Idx[b, s, j] >= 0 and Idx[b, s, j] <= s, 1, 0)
            T.clear(sc)
            for d in T.serial(D):
                for h, j in T.Parallel(block_H, K):
                    sc[h, j] += q[h, d] * KV[b, idx[j], h0 + h, d]
            for d in T.serial(R):
                for h, j in T.Parallel(block_H, K):
                    sc[h, j] += q[h, D + d] * PE[b, idx[j], PW - R + d]
            _scale_and_softmax(sc, sb, p, valid, mx, sm, scale, block_H, K)
            T.clear(acc)
            for j in T.serial(K):
                for h, e in T.Parallel(block_H, DV):
                    acc[h, e] += p[h, j] * KV[b, idx[j], h0 + h, D + e]
            T.copy(acc, O[b, s, h0:h0 + block_H, 0:DV])

    return main


def mqa_sparse_decode_kernel(H: int, C: int, R: int, K: int, scale: float, block_H: Optional[int] = None):
    """Factory: the reference's absorbed decode attention at its rounding points, sparse.

    ``main(QA[B, H, C], QP[B, H, R], KV[B, SKV, C + R], Idx[B, K] int32, O[B, H, C])``:
    ``score = bf16(bf16(bf16(qa.c) + bf16(qp.pe)) * scale)`` over ``{Idx[j] : 0 <= Idx < E}``, softmax in
    fp32 rounded to bf16, ``O = bf16(sum p c)`` (``reference.MLA._decode``).
    """
    block_H = block_H or heads_per_block(H, 8 * C + 4 * R + 8 * K + 8, 8 * K)
    assert H % block_H == 0, "block_H must divide the head count"
    B, SKV = T.dynamic("B"), T.dynamic("SKV")

    @T.prim_func
    def main(QA: T.Tensor((B, H, C), BF16), QP: T.Tensor((B, H, R), BF16), KV: T.Tensor((B, SKV, C + R), BF16),
             Idx: T.Tensor((B, K), "int32"), O: T.Tensor((B, H, C), BF16)):
        with T.Kernel(B, H // block_H, threads=128) as (b, hb):
            h0 = hb * block_H
            qa = T.alloc_fragment((block_H, C), F32)
            qp = T.alloc_fragment((block_H, R), F32)
            idx, valid, s, sb, p, mx, sm, acc = _attention_state(block_H, K, C)
            T.copy(QA[b, h0:h0 + block_H, 0:C], qa)
            T.copy(QP[b, h0:h0 + block_H, 0:R], qp)
            for j in T.Parallel(K):
                idx[j] = T.max(T.min(Idx[b, j], SKV - 1), 0)
                valid[j] = T.if_then_else(Idx[b, j] >= 0 and Idx[b, j] < SKV, 1, 0)
            T.clear(s)
            for d in T.serial(C):
                for h, j in T.Parallel(block_H, K):
                    s[h, j] += qa[h, d] * KV[b, idx[j], d]
            T.copy(s, sb)                     # bf16(qa.c), kept while s takes the rope half
            T.clear(s)
            for d in T.serial(R):
                for h, j in T.Parallel(block_H, K):
                    s[h, j] += qp[h, d] * KV[b, idx[j], C + d]
            for h, j in T.Parallel(block_H, K):
                s[h, j] = T.cast(sb[h, j], F32) + T.cast(T.cast(s[h, j], BF16), F32)
            _scale_and_softmax(s, sb, p, valid, mx, sm, scale, block_H, K)
            T.clear(acc)
            for j in T.serial(K):
                for h, e in T.Parallel(block_H, C):
                    acc[h, e] += p[h, j] * KV[b, idx[j], e]
            T.copy(acc, O[b, h0:h0 + block_H, 0:C])

    return main
