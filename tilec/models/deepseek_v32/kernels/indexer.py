"""Lightning-indexer logits (DeepSeek's ``fp8_index``) as a tilec kernel, with the causal mask.

``I[b, m, n] = k_s[b, n] * sum_h relu(q[b, m, h] . k[b, n]) * q_s[b, m, h]`` with q, k float8_e4m3 and
fp32 accumulation (docs/deepseek_kernels.md §3.6, §4). ``q_s`` is the per-head weight with the q scale
folded in. With ``causal_offset`` set, positions ``n > m + causal_offset`` get ``-inf`` (prefill at
start_pos P uses offset P); blocks wholly in the masked triangle skip their GEMM.

Tiling: a block owns ``block_M`` queries of one batch row and ``block_N`` keys. The queries' heads are
stacked into one ``[block_M * h, d]`` tile so one GEMM against the key tile computes every head's dot
products; the ReLU-weighted head sum then runs over that tile. The top-k step is ``topk.py``.
"""
from __future__ import annotations

from typing import Optional

import tilec.language as T

from . import compiled, fp8_mma_dtype, resolve_target, tile_family


def fp8_index_kernel(h: int, d: int, causal_offset: Optional[int] = None, block_M: Optional[int] = None,
                     block_N: int = 128, in_dtype: str = "float8_e4m3", mma_dtype: Optional[str] = None):
    """Factory: ``main(q[b,m,h,d], q_s[b,m,h], k[b,n,d], k_s[b,n], out[b,m,n] fp32)``.

    ``b``, ``m`` and ``n`` are symbolic (``T.dynamic``): one compiled kernel serves every batch, chunk
    and cache length, so a decode loop does not recompile as the cache grows.

    ``mma_dtype`` (default: ``in_dtype``) is the dtype the GEMM operands are widened to first, for
    hardware without an FP8 matrix unit (Ascend's Cube takes half/bfloat16/float/int8): every e4m3
    value is exact in bfloat16 and the products accumulate in fp32 either way, so results agree up to
    the GEMM's summation order.
    """
    mma_dtype = mma_dtype or in_dtype
    widen = mma_dtype != in_dtype
    if block_M is None:
        block_M = max(1, 64 // h)   # ~64 GEMM rows per block
    rows = block_M * h
    causal = causal_offset is not None
    offset = causal_offset if causal else 0
    accum = "float32"
    b, m, n = T.dynamic("b"), T.dynamic("m"), T.dynamic("n")

    @T.prim_func
    def main(q: T.Tensor((b, m, h, d), in_dtype), q_s: T.Tensor((b, m, h), accum),
             k: T.Tensor((b, n, d), in_dtype), k_s: T.Tensor((b, n), accum),
             out: T.Tensor((b, m, n), accum)):
        with T.Kernel(T.ceildiv(n, block_N), T.ceildiv(m, block_M), b, threads=128) as (bx, by, bz):
            q_sh = T.alloc_shared((rows, d), in_dtype)
            k_sh = T.alloc_shared((block_N, d), in_dtype)
            q_mma = T.alloc_shared((rows, d), mma_dtype)
            k_mma = T.alloc_shared((block_N, d), mma_dtype)
            logits = T.alloc_fragment((rows, block_N), accum)
            w = T.alloc_fragment((block_M, h), accum)
            ks = T.alloc_fragment((block_N,), accum)
            acc = T.alloc_fragment((block_M, block_N), accum)
            m0 = by * block_M
            n0 = bx * block_N
            if causal and n0 > m0 + block_M - 1 + offset:
                T.fill(acc, -T.infinity(accum))
            else:
                for i in T.serial(block_M):
                    T.copy(q[bz, m0 + i, 0:h, 0:d], q_sh[i * h:(i + 1) * h, 0:d])
                T.copy(k[bz, n0:n0 + block_N, 0:d], k_sh)
                T.copy(q_s[bz, m0:m0 + block_M, 0:h], w)
                T.copy(k_s[bz, n0:n0 + block_N], ks)
                if widen:
                    T.copy(q_sh, q_mma)
                    T.copy(k_sh, k_mma)
                    T.gemm(q_mma, k_mma, logits, transpose_B=True, clear_accum=True)
                else:
                    T.gemm(q_sh, k_sh, logits, transpose_B=True, clear_accum=True)
                T.clear(acc)
                for hh in T.serial(h):
                    for i, j in T.Parallel(block_M, block_N):
                        acc[i, j] += T.max(logits[i * h + hh, j], 0) * w[i, hh]
                for i, j in T.Parallel(block_M, block_N):
                    if causal:
                        acc[i, j] = T.if_then_else(n0 + j > m0 + i + offset, -T.infinity(accum), acc[i, j] * ks[j])
                    else:
                        acc[i, j] = acc[i, j] * ks[j]
            T.copy(acc, out[bz, m0:m0 + block_M, n0:n0 + block_N])

    return main


def fp8_index(q, q_s, k, k_s, causal_offset: Optional[int] = None, target: str = "auto", **tiles):
    """Indexer logits fp32 ``[b, m, n]`` from torch tensors (q, k float8_e4m3fn; q_s, k_s fp32)."""
    h, d = q.shape[2:]
    target = resolve_target(target)
    mma = fp8_mma_dtype(target)   # bfloat16 on ascend: no FP8 Cube instruction
    # 256 keys measured faster on the cpu; 128 on cuda (TileLang's chunk) and on ascend (at 64 heads,
    # 256 keys need 250 KiB of the 910B's 192 KiB Unified Buffer)
    block_N = tiles.get("block_N", 128 if tile_family(target) in ("cuda", "ascend") else 256)
    args = (h, d, causal_offset, tiles.get("block_M"), block_N, "float8_e4m3", mma)
    kernel = compiled(fp8_index_kernel, args, [4], target)
    return kernel(q.contiguous(), q_s.float().contiguous(), k.contiguous(), k_s.float().contiguous())
