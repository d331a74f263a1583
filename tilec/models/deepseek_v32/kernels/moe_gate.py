"""The MoE gate of DeepSeek-V3.2 (``Gate.forward``, docs/deepseek_kernels.md §3.8, §8 traps 4-5) as a tilec kernel.

Step 1 of the MoE pipeline (``moe.py`` holds the rest): ``s = sigmoid(fp32(x) @ fp32(Wg)^T)``;
``sb = s + bias`` (selection only); group score = sum of the top-2 of ``sb`` in each group; the
``n_limited_groups`` best groups stay, the others are masked to -inf; the top-k experts of the masked
``sb`` are chosen; their weights are the unbiased ``s`` normalized over the k, times ``route_scale``
(fp32). Ranks replace sorting: an expert's slot is the number of experts that beat it (higher score,
or equal score and lower index), so the order is the reference's (descending) and ties go to the
lower index, deterministically. The same rank rule picks the groups.

Tiling: a block scores ``block_T`` tokens against all E experts (one GEMM over ``block_K``-wide slabs
of the model dim) and keeps the ``[block_T, E]`` scores on chip for the selection.
"""
import torch

import tilec.language as T

from . import compiled

F32 = "float32"
I32 = "int32"
BF16 = "bfloat16"


@T.macro
def limit_groups(sb, m1, m2, grank, n_keep):
    """Mask to -inf the experts of ``sb[rows, E]`` outside the ``n_keep`` groups whose two best scores
    sum highest (``m1``, ``m2``, ``grank``: ``[rows, G]`` scratch; ties go to the lower group)."""
    rows, G = m1.shape
    EG = sb.shape[1] // G
    T.fill(m1, -T.infinity(F32))
    T.fill(m2, -T.infinity(F32))
    for m in T.serial(EG):
        for i, g in T.Parallel(rows, G):
            m2[i, g] = T.if_then_else(sb[i, g * EG + m] > m1[i, g], m1[i, g],
                                      T.max(m2[i, g], sb[i, g * EG + m]))
            m1[i, g] = T.max(m1[i, g], sb[i, g * EG + m])
    for i, g in T.Parallel(rows, G):
        m1[i, g] = m1[i, g] + m2[i, g]
    T.clear(grank)
    for h in T.serial(G):
        for i, g in T.Parallel(rows, G):
            grank[i, g] += T.if_then_else((m1[i, h] > m1[i, g]) or (m1[i, h] == m1[i, g] and h < g), 1, 0)
    for i, e in T.Parallel(rows, sb.shape[1]):
        sb[i, e] = T.if_then_else(grank[i, e // EG] < n_keep, sb[i, e], -T.infinity(F32))


@T.macro
def select_top_k(s, sb, rank, ow, oi):
    """Slot k of a row gets the expert of rank k in ``sb`` (``oi``) and its unbiased score ``s`` (``ow``)."""
    rows, E = sb.shape
    K = ow.shape[1]
    T.clear(rank)
    for f in T.serial(E):
        for i, e in T.Parallel(rows, E):
            rank[i, e] += T.if_then_else((sb[i, f] > sb[i, e]) or (sb[i, f] == sb[i, e] and f < e), 1, 0)
    T.clear(ow)
    T.clear(oi)
    for e in T.serial(E):
        for i, k in T.Parallel(rows, K):
            ow[i, k] = T.if_then_else(rank[i, e] == k, s[i, e], ow[i, k])
            oi[i, k] = T.if_then_else(rank[i, e] == k, e, oi[i, k])


def gate_tiles(E: int, block_T: int = 0, block_K: int = 0) -> tuple[int, int]:
    """(tokens, model-dim slab) of a gate block: 32 x 128, or 8 x 64 above 64 experts so the gate-weight
    tile and the [block_T, E] score tiles fit a GPU's shared memory."""
    return block_T or (32 if E <= 64 else 8), block_K or (128 if E <= 64 else 64)


def gate_launch(M, D: int, E: int, K: int, G: int, TG: int, route_scale: float, block_T: int = 0,
                block_K: int = 0, dtype: str = BF16):
    """The gate as one launch, a macro ``(X[M, D], Wg[E, D], bias[E], W[M, K], Idx[M, K])`` that a kernel
    of several launches (``moe.moe_kernel``) places first."""
    block_T, block_K = gate_tiles(E, block_T, block_K)
    assert E % G == 0 and TG * (E // G) >= K

    @T.macro
    def launch(X, Wg, bias, W, Idx):
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
                limit_groups(sb, m1, m2, grank, TG)
            select_top_k(s, sb, rank, ow, oi)
            T.reduce_sum(ow, wsum, dim=1)
            for i, k in T.Parallel(block_T, K):
                ow[i, k] = ow[i, k] / wsum[i] * route_scale
            T.copy(ow, W[bx * block_T, 0])
            T.copy(oi, Idx[bx * block_T, 0])

    return launch


def gate_kernel(D: int, E: int, K: int, G: int, TG: int, route_scale: float, block_T: int = 0,
                block_K: int = 0, dtype: str = BF16):
    """Factory: ``main(X[T, D], Wg[E, D], bias[E] fp32, W[T, K] fp32, Idx[T, K] int32)``.

    A block scores ``block_T`` tokens against all E experts (``gate_tiles``).
    """
    M = T.dynamic("T")
    launch = gate_launch(M, D, E, K, G, TG, route_scale, block_T, block_K, dtype)

    @T.prim_func
    def main(X: T.Tensor((M, D), dtype), Wg: T.Tensor((E, D), dtype), bias: T.Tensor((E,), F32),
             W: T.Tensor((M, K), F32), Idx: T.Tensor((M, K), I32)):
        launch(X, Wg, bias, W, Idx)

    return main


def gate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, args, target: str = "auto"):
    """``Gate.forward``: (weights fp32 [T, K], indices int32 [T, K]) for x [T, dim]."""
    d = x.size(-1)
    key = (d, args.n_routed_experts, args.n_activated_experts, args.n_expert_groups, args.n_limited_groups,
           float(args.route_scale))
    w, idx = compiled(gate_kernel, key, [3, 4], target)(x.reshape(-1, d).contiguous(), weight.contiguous(),
                                                         bias.float().contiguous())
    return w, idx
