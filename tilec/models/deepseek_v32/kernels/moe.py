"""DeepSeek-V3.2's MoE layer and dense SwiGLU MLP as tilec kernels (spec §3.8, §8 traps 4-5).

The pipeline, one kernel per step:

1. ``gate``: ``s = sigmoid(fp32(x) @ fp32(Wg)^T)``; ``sb = s + bias`` (selection only); group score =
   sum of the top-2 of ``sb`` in each group; the ``n_limited_groups`` best groups stay, the others are
   masked to -inf; the top-k experts of the masked ``sb`` are chosen; their weights are the unbiased
   ``s`` normalized over the k, times ``route_scale`` (fp32). Ranks replace sorting: an expert's slot is
   the number of experts that beat it (higher score, or equal score and lower index), so the order is
   the reference's (descending) and ties go to the lower index, deterministically.
2. ``permute``: the (token, slot) pairs sorted by expert, in token order within an expert (the
   reference's ``torch.where`` order), into a "grouped contiguous" layout: every expert's segment is
   padded to a multiple of ``block_M`` rows, so a GEMM tile belongs to one expert and owns its rows.
   Outputs: ``tok[row]`` (-1 on padding), ``tile_expert[tile]`` (-1 for unused tiles), ``pos[t, k]``.
3. ``moe_up`` / ``moe_down``: per tile, the gathered token rows times the tile's
   expert weights: ``h = bf16(silu(bf16(x W1^T)) * bf16(x W3^T))``, then ``y = bf16(h W2^T)``; bf16 or
   FP8 (1x128 activation blocks, 128x128 weight blocks, fp32 per K slab).
4. ``combine``: ``out[t] = bf16(sum_k w[t, k] * y[pos[t, k]] + shared(x)[t])`` in fp32.

Shapes: T tokens, D = dim, I = moe_inter_dim, E experts, K active experts.
"""
import torch

import tilec.language as T

from . import compiled
from .quant import act_quant, fp8_gemm, linear_bf16

F32 = "float32"
I32 = "int32"
BF16 = "bfloat16"
BLOCK_N = 64     # output columns per grouped-GEMM block (divides the 128-wide FP8 scale block)


def gate_kernel(D: int, E: int, K: int, G: int, TG: int, route_scale: float, block_T: int = 0,
                block_K: int = 0, dtype: str = BF16):
    """Factory: ``main(X[T, D], Wg[E, D], bias[E] fp32, W[T, K] fp32, Idx[T, K] int32)``.

    A block scores ``block_T`` tokens against all E experts; with 256 experts the tiles shrink so the
    gate-weight tile and the [block_T, E] score tiles fit a GPU's shared memory.
    """
    block_T = block_T or (32 if E <= 64 else 8)
    block_K = block_K or (128 if E <= 64 else 64)
    assert E % G == 0 and TG * (E // G) >= K
    EG = E // G
    M = T.dynamic("T")

    @T.prim_func
    def main(X: T.Tensor((M, D), dtype), Wg: T.Tensor((E, D), dtype), bias: T.Tensor((E,), F32),
             W: T.Tensor((M, K), F32), Idx: T.Tensor((M, K), I32)):
        with T.Kernel(T.ceildiv(M, block_T), threads=128) as bx:
            x_s = T.alloc_shared((block_T, block_K), dtype)
            w_s = T.alloc_shared((E, block_K), dtype)
            s = T.alloc_fragment((block_T, E), F32)
            sb = T.alloc_fragment((block_T, E), F32)
            m1 = T.alloc_fragment((block_T, G), F32)
            m2 = T.alloc_fragment((block_T, G), F32)
            grank = T.alloc_fragment((block_T, G), I32)
            rank = T.alloc_fragment((block_T, E), I32)
            ow = T.alloc_fragment((block_T, K), F32)
            oi = T.alloc_fragment((block_T, K), I32)
            wsum = T.alloc_fragment((block_T,), F32)
            T.clear(s)
            for k in T.Pipelined(T.ceildiv(D, block_K), num_stages=2):
                T.copy(X[bx * block_T, k * block_K], x_s)
                T.copy(Wg[0, k * block_K], w_s)
                T.gemm(x_s, w_s, s, transpose_B=True)
            for i, e in T.Parallel(block_T, E):
                s[i, e] = T.sigmoid(s[i, e])
                sb[i, e] = s[i, e] + bias[e]
            if G > 1:
                # group score: the sum of each group's two largest biased scores
                T.fill(m1, -T.infinity(F32))
                T.fill(m2, -T.infinity(F32))
                for m in T.serial(EG):
                    for i, g in T.Parallel(block_T, G):
                        m2[i, g] = T.if_then_else(sb[i, g * EG + m] > m1[i, g], m1[i, g],
                                                  T.max(m2[i, g], sb[i, g * EG + m]))
                        m1[i, g] = T.max(m1[i, g], sb[i, g * EG + m])
                for i, g in T.Parallel(block_T, G):
                    m1[i, g] = m1[i, g] + m2[i, g]
                T.clear(grank)
                for h in T.serial(G):
                    for i, g in T.Parallel(block_T, G):
                        grank[i, g] += T.if_then_else((m1[i, h] > m1[i, g]) or (m1[i, h] == m1[i, g] and h < g), 1, 0)
                for i, e in T.Parallel(block_T, E):
                    sb[i, e] = T.if_then_else(grank[i, e // EG] < TG, sb[i, e], -T.infinity(F32))
            T.clear(rank)
            for f in T.serial(E):
                for i, e in T.Parallel(block_T, E):
                    rank[i, e] += T.if_then_else((sb[i, f] > sb[i, e]) or (sb[i, f] == sb[i, e] and f < e), 1, 0)
            T.clear(ow)
            T.clear(oi)
            for e in T.serial(E):
                for i, k in T.Parallel(block_T, K):
                    ow[i, k] = T.if_then_else(rank[i, e] == k, s[i, e], ow[i, k])
                    oi[i, k] = T.if_then_else(rank[i, e] == k, e, oi[i, k])
            T.reduce_sum(ow, wsum, dim=1)
            for i, k in T.Parallel(block_T, K):
                ow[i, k] = ow[i, k] / wsum[i] * route_scale
            T.copy(ow, W[bx * block_T, 0])
            T.copy(oi, Idx[bx * block_T, 0])

    return main


def max_tiles(n_tokens: int, K: int, E: int, block_M: int) -> int:
    """Upper bound on the tiles of the padded layout: sum_e ceil(c_e / bm) <= ceil(T K / bm) + #(c_e > 0),
    and at most min(E, T K) experts receive a row."""
    return -(-n_tokens * K // block_M) + min(E, n_tokens * K)


def pick_block_M(n_tokens: int, K: int, E: int) -> int:
    """Rows per grouped-GEMM tile: about the mean rows per expert, 16..64 (decode pads little)."""
    avg = n_tokens * K / E
    return 16 if avg <= 16 else (32 if avg <= 32 else 64)


def permute_kernel(n_tokens: int, K: int, E: int, block_M: int = 64):
    """Factory: ``main(Idx[T, K] int32, Cnt[E], Tok[R], TileE[NT], Pos[T, K])``, R = NT * block_M.

    Launch 1 counts each expert's (token, slot) pairs; launch 2 gives expert e the rows after the
    padded segments of experts < e and writes its tokens in (token, slot) order.
    """
    NT = max_tiles(n_tokens, K, E, block_M)
    R = NT * block_M

    @T.prim_func
    def main(Idx: T.Tensor((n_tokens, K), I32), Cnt: T.Tensor((E,), I32), Tok: T.Tensor((R,), I32),
             TileE: T.Tensor((NT,), I32), Pos: T.Tensor((n_tokens, K), I32)):
        with T.Kernel(E, threads=32) as e:
            c = T.alloc_var(I32, 0)
            for t in T.serial(n_tokens):
                for k in T.serial(K):
                    if Idx[t, k] == e:
                        c = c + 1
            Cnt[e] = c
        with T.Kernel(E, threads=32) as e:
            tile0 = T.alloc_var(I32, 0)
            r = T.alloc_var(I32, 0)
            for f in T.serial(e):
                tile0 = tile0 + (Cnt[f] + block_M - 1) // block_M
            ntile = (Cnt[e] + block_M - 1) // block_M
            for j in T.serial(ntile * block_M):
                Tok[tile0 * block_M + j] = -1
            for j in T.serial(ntile):
                TileE[tile0 + j] = e
            if e == E - 1:
                for j in T.serial(NT - tile0 - ntile):
                    TileE[tile0 + ntile + j] = -1
                for j in T.serial((NT - tile0 - ntile) * block_M):
                    Tok[(tile0 + ntile) * block_M + j] = -1
            r = tile0 * block_M
            for t in T.serial(n_tokens):
                for k in T.serial(K):
                    if Idx[t, k] == e:
                        Tok[r] = t
                        Pos[t, k] = r
                        r = r + 1

    return main


def _up_body(fp8: bool, D: int, I: int, block_M: int, block_N: int, block_K: int, mma_dtype: str):
    """The grouped SwiGLU up-projection launch (a macro shared by the bf16 and FP8 kernels)."""
    in_dtype = "float8_e4m3" if fp8 else BF16

    @T.macro
    def body(X, Xs, Tok, TileE, W1, S1, W3, S3, H, NT):
        with T.Kernel(T.ceildiv(I, block_N), NT, threads=128) as (bx, by):
            tk = T.alloc_fragment((block_M,), I32)
            a_s = T.alloc_shared((block_M, block_K), mma_dtype)
            w1_s = T.alloc_shared((block_N, block_K), in_dtype)
            w3_s = T.alloc_shared((block_N, block_K), in_dtype)
            w1_m = T.alloc_shared((block_N, block_K), mma_dtype)
            w3_m = T.alloc_shared((block_N, block_K), mma_dtype)
            sa = T.alloc_fragment((block_M,), F32)
            sl1 = T.alloc_fragment((block_M, block_N), F32)
            sl3 = T.alloc_fragment((block_M, block_N), F32)
            acc1 = T.alloc_fragment((block_M, block_N), F32)
            acc3 = T.alloc_fragment((block_M, block_N), F32)
            a1 = T.alloc_fragment((block_M, block_N), BF16)
            a3 = T.alloc_fragment((block_M, block_N), BF16)
            h = T.alloc_fragment((block_M, block_N), BF16)
            e = TileE[by]
            if e >= 0:
                T.copy(Tok[by * block_M:(by + 1) * block_M], tk)
                T.clear(acc1)
                T.clear(acc3)
                for k in T.Pipelined(T.ceildiv(D, block_K), num_stages=2):
                    # gather the tile's token rows (padding rows, tok = -1, read as zero)
                    for i, j in T.Parallel(block_M, block_K):
                        a_s[i, j] = T.if_then_else(tk[i] >= 0 and k * block_K + j < D,
                                                   X[T.max(tk[i], 0), T.min(k * block_K + j, D - 1)], 0.0)
                    T.copy(W1[e, bx * block_N:(bx + 1) * block_N, k * block_K:(k + 1) * block_K], w1_s)
                    T.copy(W3[e, bx * block_N:(bx + 1) * block_N, k * block_K:(k + 1) * block_K], w3_s)
                    if mma_dtype != in_dtype:
                        for i, j in T.Parallel(block_N, block_K):
                            w1_m[i, j] = w1_s[i, j]
                            w3_m[i, j] = w3_s[i, j]
                    if fp8:
                        for i in T.Parallel(block_M):
                            sa[i] = T.if_then_else(tk[i] >= 0, Xs[T.max(tk[i], 0), k], 0.0)
                        if mma_dtype != in_dtype:
                            T.gemm(a_s, w1_m, sl1, transpose_B=True, clear_accum=True)
                            T.gemm(a_s, w3_m, sl3, transpose_B=True, clear_accum=True)
                        else:
                            T.gemm(a_s, w1_s, sl1, transpose_B=True, clear_accum=True)
                            T.gemm(a_s, w3_s, sl3, transpose_B=True, clear_accum=True)
                        for i, j in T.Parallel(block_M, block_N):
                            acc1[i, j] += sl1[i, j] * (sa[i] * S1[e, bx * block_N // 128, k])
                            acc3[i, j] += sl3[i, j] * (sa[i] * S3[e, bx * block_N // 128, k])
                    else:
                        T.gemm(a_s, w1_s, acc1, transpose_B=True)
                        T.gemm(a_s, w3_s, acc3, transpose_B=True)
                # the reference's rounding points: bf16 linear outputs, then bf16(silu(a) * b) in fp32
                T.copy(acc1, a1)
                T.copy(acc3, a3)
                for i, j in T.Parallel(block_M, block_N):
                    h[i, j] = a1[i, j] / (1.0 + T.exp(-a1[i, j])) * a3[i, j]
                T.copy(h, H[by * block_M, bx * block_N])

    return body


def moe_up_kernel(n_tokens: int, D: int, I: int, E: int, NT: int, fp8: bool, block_M: int = 64,
                  block_N: int = 64, mma_dtype=None, block_K: int = 128):
    """Factory: grouped SwiGLU up-projection over the padded layout, ``H[R, I]`` bf16, R = NT * block_M.

    bf16: ``main(X[T, D], Tok[R], TileE[NT], W1[E, I, D], W3[E, I, D], H)``; FP8: ``main(Xq, Xs[T, D/128],
    Tok, TileE, W1, S1[E, I/128, D/128], W3, S3, H)`` with per-128-K-slab fp32 scaling.
    """
    R = NT * block_M
    block_K = 128 if fp8 else block_K        # FP8: one K slab per weight-scale block
    mma_dtype = mma_dtype or ("float8_e4m3" if fp8 else BF16)
    body = _up_body(fp8, D, I, block_M, block_N, block_K, mma_dtype)
    if fp8:
        assert D % 128 == 0 and 128 % block_N == 0
        SI, SD = -(-I // 128), D // 128
        FP8 = "float8_e4m3"

        @T.prim_func
        def main(Xq: T.Tensor((n_tokens, D), FP8), Xs: T.Tensor((n_tokens, SD), F32), Tok: T.Tensor((R,), I32),
                 TileE: T.Tensor((NT,), I32), W1: T.Tensor((E, I, D), FP8), S1: T.Tensor((E, SI, SD), F32),
                 W3: T.Tensor((E, I, D), FP8), S3: T.Tensor((E, SI, SD), F32), H: T.Tensor((R, I), BF16)):
            body(Xq, Xs, Tok, TileE, W1, S1, W3, S3, H, NT)
    else:
        @T.prim_func
        def main(X: T.Tensor((n_tokens, D), BF16), Tok: T.Tensor((R,), I32), TileE: T.Tensor((NT,), I32),
                 W1: T.Tensor((E, I, D), BF16), W3: T.Tensor((E, I, D), BF16), H: T.Tensor((R, I), BF16)):
            body(X, X, Tok, TileE, W1, W1, W3, W3, H, NT)
    return main


def moe_down_kernel(D: int, I: int, E: int, NT: int, fp8: bool, block_M: int = 64, block_N: int = 64,
                    mma_dtype=None, block_K: int = 128):
    """Factory: grouped down-projection ``Y[R, D] = bf16(H W2[e]^T)`` per tile of expert e.

    bf16: ``main(H[R, I], TileE[NT], W2[E, D, I], Y)``; FP8: ``main(Hq, Hs[R, I/128], TileE, W2, S2[E, D/128, I/128], Y)``.
    """
    R = NT * block_M
    block_K = 128 if fp8 else block_K
    FP8 = "float8_e4m3"
    in_dtype = FP8 if fp8 else BF16
    mma_dtype = mma_dtype or in_dtype
    SD, SI = -(-D // 128), -(-I // 128)

    @T.macro
    def body(Hm, Hs, TileE, W2, S2, Y):
        with T.Kernel(T.ceildiv(D, block_N), NT, threads=128) as (bx, by):
            h_s = T.alloc_shared((block_M, block_K), in_dtype)
            w_s = T.alloc_shared((block_N, block_K), in_dtype)
            h_m = T.alloc_shared((block_M, block_K), mma_dtype)
            w_m = T.alloc_shared((block_N, block_K), mma_dtype)
            sa = T.alloc_fragment((block_M,), F32)
            sl = T.alloc_fragment((block_M, block_N), F32)
            acc = T.alloc_fragment((block_M, block_N), F32)
            e = TileE[by]
            if e >= 0:
                T.clear(acc)
                for k in T.Pipelined(T.ceildiv(I, block_K), num_stages=2):
                    T.copy(Hm[by * block_M, k * block_K], h_s)
                    T.copy(W2[e, bx * block_N:(bx + 1) * block_N, k * block_K:(k + 1) * block_K], w_s)
                    if fp8:
                        T.copy(Hs[by * block_M:(by + 1) * block_M, k], sa)
                        if mma_dtype != in_dtype:
                            for i, j in T.Parallel(block_M, block_K):
                                h_m[i, j] = h_s[i, j]
                            for i, j in T.Parallel(block_N, block_K):
                                w_m[i, j] = w_s[i, j]
                            T.gemm(h_m, w_m, sl, transpose_B=True, clear_accum=True)
                        else:
                            T.gemm(h_s, w_s, sl, transpose_B=True, clear_accum=True)
                        for i, j in T.Parallel(block_M, block_N):
                            acc[i, j] += sl[i, j] * (sa[i] * S2[e, bx * block_N // 128, k])
                    else:
                        T.gemm(h_s, w_s, acc, transpose_B=True)
                T.copy(acc, Y[by * block_M, bx * block_N])

    if fp8:
        assert I % 128 == 0 and 128 % block_N == 0

        @T.prim_func
        def main(Hq: T.Tensor((R, I), FP8), Hs: T.Tensor((R, SI), F32), TileE: T.Tensor((NT,), I32),
                 W2: T.Tensor((E, D, I), FP8), S2: T.Tensor((E, SD, SI), F32), Y: T.Tensor((R, D), BF16)):
            body(Hq, Hs, TileE, W2, S2, Y)
    else:
        @T.prim_func
        def main(Hb: T.Tensor((R, I), BF16), TileE: T.Tensor((NT,), I32), W2: T.Tensor((E, D, I), BF16),
                 Y: T.Tensor((R, D), BF16)):
            body(Hb, Hb, TileE, W2, W2, Y)
    return main


def combine_kernel(n_tokens: int, K: int, D: int, R: int, shared: bool, block_T: int = 16,
                   block_D: int = 256, dtype: str = BF16):
    """Factory: ``main(Yp[R, D], Pos[T, K], W[T, K] fp32, [Sh[T, D],] Out[T, D])``.

    ``out = bf16(sum_k w[t, k] * Yp[pos[t, k]] + Sh[t])`` in fp32, the shared expert added last.
    """
    block_D = min(block_D, D)

    @T.macro
    def body(Yp, Pos, W, Sh, Out):
        with T.Kernel(T.ceildiv(D, block_D), T.ceildiv(n_tokens, block_T), threads=128) as (bx, by):
            acc = T.alloc_fragment((block_T, block_D), F32)
            o = T.alloc_fragment((block_T, block_D), dtype)
            p = T.alloc_fragment((block_T, K), I32)
            w = T.alloc_fragment((block_T, K), F32)
            T.copy(Pos[by * block_T, 0], p)
            T.copy(W[by * block_T, 0], w)
            T.clear(acc)
            for k in T.serial(K):
                for i, j in T.Parallel(block_T, block_D):
                    acc[i, j] += Yp[T.min(T.max(p[i, k], 0), R - 1), T.min(bx * block_D + j, D - 1)] * w[i, k]
            if shared:
                T.copy(Sh[by * block_T, bx * block_D], o)
                for i, j in T.Parallel(block_T, block_D):
                    acc[i, j] += o[i, j]
            T.copy(acc, o)
            T.copy(o, Out[by * block_T, bx * block_D])

    if shared:
        @T.prim_func
        def main(Yp: T.Tensor((R, D), dtype), Pos: T.Tensor((n_tokens, K), I32), W: T.Tensor((n_tokens, K), F32),
                 Sh: T.Tensor((n_tokens, D), dtype), Out: T.Tensor((n_tokens, D), dtype)):
            body(Yp, Pos, W, Sh, Out)
    else:
        @T.prim_func
        def main(Yp: T.Tensor((R, D), dtype), Pos: T.Tensor((n_tokens, K), I32), W: T.Tensor((n_tokens, K), F32),
                 Out: T.Tensor((n_tokens, D), dtype)):
            body(Yp, Pos, W, Out, Out)
    return main


# --- wrappers ------------------------------------------------------------------------------------

def gate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, args, target: str = "auto"):
    """``Gate.forward``: (weights fp32 [T, K], indices int32 [T, K]) for x [T, dim]."""
    d = x.size(-1)
    key = (d, args.n_routed_experts, args.n_activated_experts, args.n_expert_groups, args.n_limited_groups,
           float(args.route_scale))
    w, idx = compiled(gate_kernel, key, [3, 4], target)(x.reshape(-1, d).contiguous(), weight.contiguous(),
                                                         bias.float().contiguous())
    return w, idx


def permute(idx: torch.Tensor, n_experts: int, block_M: int = 64, target: str = "auto"):
    """(counts [E], tok [R], tile_expert [NT], pos [T, K]) of the padded grouped layout."""
    t, k = idx.shape
    return compiled(permute_kernel, (t, k, n_experts, block_M), [1, 2, 3, 4], target)(idx.int().contiguous())


def combine(yp: torch.Tensor, pos: torch.Tensor, w: torch.Tensor, shared=None, target: str = "auto"):
    t, k = pos.shape
    r, d = yp.shape
    if shared is None:
        return compiled(combine_kernel, (t, k, d, r, False), [3], target)(yp, pos, w.float().contiguous())
    return compiled(combine_kernel, (t, k, d, r, True), [4], target)(yp, pos, w.float().contiguous(),
                                                                       shared.contiguous())


def _mma(target: str, fp8: bool):
    return BF16 if (fp8 and target == "ascend") else None


def moe_up(x, tok, tile_e, w1, w3, s1=None, s3=None, xs=None, block_M: int = 64, target: str = "auto"):
    """Grouped SwiGLU up-projection: bf16 x, or FP8 x (``xs`` its scales) with FP8 weights."""
    fp8 = xs is not None
    nt, (e, i, d) = tile_e.numel(), w1.shape
    kern = compiled(moe_up_kernel, (x.size(0), d, i, e, nt, fp8, block_M, BLOCK_N, _mma(target, fp8)),
                    [8 if fp8 else 5], target)
    if fp8:
        return kern(x, xs, tok, tile_e, w1, s1, w3, s3)
    return kern(x, tok, tile_e, w1, w3)


def moe_down(h, tile_e, w2, s2=None, hs=None, block_M: int = 64, target: str = "auto"):
    fp8 = hs is not None
    nt, (e, d, i) = tile_e.numel(), w2.shape
    kern = compiled(moe_down_kernel, (d, i, e, nt, fp8, block_M, BLOCK_N, _mma(target, fp8)), [5 if fp8 else 3], target)
    return kern(h, hs, tile_e, w2, s2) if fp8 else kern(h, tile_e, w2)


def mlp(x: torch.Tensor, w1, w2, w3, s1=None, s2=None, s3=None, scale_fmt=None, block_M: int = 0,
        target: str = "auto") -> torch.Tensor:
    """The dense SwiGLU MLP ``w2(bf16(silu(w1 x) * w3 x))`` (``reference.MLP``); FP8 when ``s1`` is given.

    The up-projection is the grouped kernel with one expert and every row in order.
    """
    shape = x.shape
    x2 = x.reshape(-1, shape[-1]).contiguous()
    m = x2.size(0)
    block_M = block_M or (16 if m <= 16 else 64)
    nt = -(-m // block_M)
    tok = torch.arange(nt * block_M, dtype=torch.int32)
    tok[m:] = -1
    tile_e = torch.zeros(nt, dtype=torch.int32)
    if s1 is None:
        h = moe_up(x2, tok, tile_e, w1[None], w3[None], block_M=block_M, target=target)[:m]
        y = linear_bf16(h, w2, target)
    else:
        xq, xs = act_quant(x2, 128, scale_fmt, target)
        h = moe_up(xq, tok, tile_e, w1[None], w3[None], s1[None], s3[None], xs, block_M, target)[:m]
        hq, hs = act_quant(h, 128, scale_fmt, target)
        y = fp8_gemm(hq, hs, w2, s2, target)
    return y.view(*shape[:-1], w2.size(0))


def moe(x: torch.Tensor, p: dict, args, target: str = "auto", block_M: int = 0) -> torch.Tensor:
    """``reference.MoE.forward`` on tilec kernels.

    ``p`` holds stacked expert weights: ``gate_w [E, D]``, ``gate_b [E]``, ``w1, w3 [E, I, D]``, ``w2 [E, D, I]``
    (float8 with ``s1, s3 [E, I/128, D/128]``, ``s2 [E, D/128, I/128]``, or bf16), and optionally the
    shared expert as ``shared`` (a dict of ``w1, w2, w3`` and, for FP8, ``s1, s2, s3``).
    """
    shape = x.shape
    x2 = x.reshape(-1, args.dim).contiguous()
    block_M = block_M or pick_block_M(x2.size(0), args.n_activated_experts, args.n_routed_experts)
    w, idx = gate(x2, p["gate_w"], p["gate_b"], args, target)
    _, tok, tile_e, pos = permute(idx, args.n_routed_experts, block_M, target)
    if p["w1"].dtype == torch.float8_e4m3fn:
        xq, xs = act_quant(x2, 128, args.scale_fmt, target)
        h = moe_up(xq, tok, tile_e, p["w1"], p["w3"], p["s1"], p["s3"], xs, block_M, target)
        hq, hs = act_quant(h, 128, args.scale_fmt, target)
        yp = moe_down(hq, tile_e, p["w2"], p["s2"], hs, block_M, target)
    else:
        h = moe_up(x2, tok, tile_e, p["w1"], p["w3"], block_M=block_M, target=target)
        yp = moe_down(h, tile_e, p["w2"], block_M=block_M, target=target)
    sh = None
    if p.get("shared") is not None:
        q = p["shared"]
        sh = mlp(x2, q["w1"], q["w2"], q["w3"], q.get("s1"), q.get("s2"), q.get("s3"), args.scale_fmt,
                 target=target)
    return combine(yp, pos, w, sh, target).view(shape)
