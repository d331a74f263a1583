"""Flash attention forward, BSHD layout (batch, seq, heads, dim), with an optional causal mask.

TileLang's formulation: each block owns ``block_M`` query rows of one (batch, head) and streams K/V tiles
through a pipelined loop, keeping an online softmax (running max, running sum, rescaled output). Scores
are scaled by ``log2(e) / sqrt(dim)`` so the exponentials are ``exp2``. Keys past ``seq_len`` (a ragged
last tile) read as zero from ``T.copy`` and are masked to ``-inf`` explicitly.
"""
import math

import tilec.language as T


def flash_attention(batch, heads, seq_len, dim, is_causal=False, block_M=64, block_N=64, num_stages=1,
                    threads=128, dtype="float16", accum_dtype="float32"):
    scale = (1.0 / dim) ** 0.5 * 1.44269504  # 1/sqrt(dim) * log2(e)
    shape = [batch, seq_len, heads, dim]

    @T.macro
    def mask_scores(acc_s, bx, k):
        # Causal: key j may be seen by query i when i >= j. Always: keys past seq_len do not exist.
        for i, j in T.Parallel(block_M, block_N):
            if is_causal:
                acc_s[i, j] = T.if_then_else(
                    (bx * block_M + i >= k * block_N + j) and (k * block_N + j < seq_len), 0,
                    -T.infinity(acc_s.dtype))
            else:
                acc_s[i, j] = T.if_then_else(k * block_N + j < seq_len, 0, -T.infinity(acc_s.dtype))

    @T.macro
    def online_softmax(acc_s, acc_s_cast, scores_max, scores_max_prev, scores_scale, scores_sum, logsum):
        T.copy(scores_max, scores_max_prev)
        T.reduce_max(acc_s, scores_max, dim=1, clear=False)
        for i in T.Parallel(block_M):
            scores_scale[i] = T.exp2(scores_max_prev[i] * scale - scores_max[i] * scale)
        for i, j in T.Parallel(block_M, block_N):
            acc_s[i, j] = T.exp2(acc_s[i, j] * scale - scores_max[i] * scale)
        T.reduce_sum(acc_s, scores_sum, dim=1)
        for i in T.Parallel(block_M):
            logsum[i] = logsum[i] * scores_scale[i] + scores_sum[i]
        T.copy(acc_s, acc_s_cast)

    @T.prim_func
    def main(Q: T.Tensor(shape, dtype), K: T.Tensor(shape, dtype), V: T.Tensor(shape, dtype),
             Output: T.Tensor(shape, dtype)):
        with T.Kernel(T.ceildiv(seq_len, block_M), heads, batch, threads=threads) as (bx, by, bz):
            Q_shared = T.alloc_shared([block_M, dim], dtype)
            K_shared = T.alloc_shared([block_N, dim], dtype)
            V_shared = T.alloc_shared([block_N, dim], dtype)
            O_shared = T.alloc_shared([block_M, dim], dtype)
            acc_s = T.alloc_fragment([block_M, block_N], accum_dtype)
            acc_s_cast = T.alloc_fragment([block_M, block_N], dtype)
            acc_o = T.alloc_fragment([block_M, dim], accum_dtype)
            scores_max = T.alloc_fragment([block_M], accum_dtype)
            scores_max_prev = T.alloc_fragment([block_M], accum_dtype)
            scores_scale = T.alloc_fragment([block_M], accum_dtype)
            scores_sum = T.alloc_fragment([block_M], accum_dtype)
            logsum = T.alloc_fragment([block_M], accum_dtype)

            T.copy(Q[bz, bx * block_M:(bx + 1) * block_M, by, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum_dtype))

            loop_range = (
                T.min(T.ceildiv(seq_len, block_N), T.ceildiv((bx + 1) * block_M, block_N))
                if is_causal else T.ceildiv(seq_len, block_N))

            for k in T.Pipelined(loop_range, num_stages=num_stages):
                T.copy(K[bz, k * block_N:(k + 1) * block_N, by, :], K_shared)
                mask_scores(acc_s, bx, k)
                T.gemm(Q_shared, K_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                online_softmax(acc_s, acc_s_cast, scores_max, scores_max_prev, scores_scale, scores_sum,
                               logsum)
                for i, j in T.Parallel(block_M, dim):
                    acc_o[i, j] *= scores_scale[i]
                T.copy(V[bz, k * block_N:(k + 1) * block_N, by, :], V_shared)
                T.gemm(acc_s_cast, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)
            for i, j in T.Parallel(block_M, dim):
                acc_o[i, j] /= logsum[i]
            T.copy(acc_o, O_shared)
            T.copy(O_shared, Output[bz, bx * block_M:(bx + 1) * block_M, by, :])

    return main


KERNEL = flash_attention
DEFAULTS = dict(batch=1, heads=4, seq_len=512, dim=64, is_causal=True)
RAGGED = dict(batch=2, heads=2, seq_len=200, dim=64, is_causal=True)
OUT_IDX = [3]
TOLERANCE = 1e-2


def reference(Q, K, V, is_causal=False, **params):
    import torch
    q, k, v = (x.float() for x in (Q, K, V))
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if is_causal:
        s = q.shape[1]
        mask = torch.tril(torch.ones(s, s, dtype=torch.bool))
        scores = scores.masked_fill(~mask, float("-inf"))
    out = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores, dim=-1), v)
    return out.to(Q.dtype)


def main():
    import torch

    import tilec
    p = DEFAULTS
    kernel = tilec.compile(flash_attention(**p), out_idx=OUT_IDX, target="interp")
    g = torch.Generator().manual_seed(0)
    shape = (p["batch"], p["seq_len"], p["heads"], p["dim"])
    Q, K, V = (torch.randn(shape, generator=g).half() for _ in range(3))
    out = kernel(Q, K, V)
    ref = reference(Q, K, V, **p).float()
    err = ((out.float() - ref).norm() / ref.norm()).item()
    print(f"flash_attention {p}: relative error {err:.3e} ({'ok' if err < TOLERANCE else 'FAIL'})")


if __name__ == "__main__":
    main()
