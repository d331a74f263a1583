"""Top-k selection written in the tilec language: per row, the positions of the k largest scores.

Semantics (docs/deepseek_kernels.md §3.6 and §8 trap 3): ``out[r]`` holds the int32 positions of the k
largest entries of ``scores[r]``; an entry whose score is ``-inf`` is invalid and is never returned:
when a row has fewer than k finite scores, the remaining slots hold ``-1``. Ties at the k-th value are
broken deterministically, lower position first. The valid positions come first and in increasing
order (DeepSeek's reference sorts by score; the order carries no meaning there, and increasing
positions make the sparse-MLA gather walk the KV cache forwards).

Algorithm (a radix select by bisection, no sort): each score becomes an int32 key whose signed order is
the float order (negative floats get their magnitude bits flipped; ``+ 0.0`` folds -0 into +0); a block
holds two int32 rows of n (keys and a count scratch), 8n bytes per row. The
k-th largest key is found bit by bit from the top: 32 rounds, each a vectorized count of the keys >= a
candidate threshold. A final serial pass emits every key above the threshold and the first ``k - count
above`` keys equal to it.
"""
from __future__ import annotations

import tilec.language as T

from . import compiled

INT32_MIN = -2147483647 - 1
KEY_NEG_INF = -2139095041          # the key of -inf: bits 0xff800000 with the magnitude bits flipped


def topk_kernel(k: int, n_cap: int, block_R: int = 1, dtype: str = "float32"):
    """Factory: ``main(scores[rows, n] dtype, out[rows, k] int32)`` for any ``rows`` and ``n <= n_cap``.

    ``rows`` and ``n`` are symbolic; a block's tiles hold ``n_cap`` keys, positions ``n..n_cap`` are
    padding (the lowest key, never emitted), so one kernel serves every length up to ``n_cap``.
    """
    rows, n = T.dynamic("rows"), T.dynamic("n")

    @T.prim_func
    def main(scores: T.Tensor((rows, n), dtype), out: T.Tensor((rows, k), "int32")):
        with T.Kernel(T.ceildiv(rows, block_R), threads=128) as bx:
            key = T.alloc_fragment((block_R, n_cap), "int32")
            hit = T.alloc_fragment((block_R, n_cap), "int32")
            count = T.alloc_fragment((block_R,), "int32")
            thr = T.alloc_fragment((block_R,), "int32")
            cand = T.alloc_fragment((block_R,), "int32")
            sel = T.alloc_fragment((block_R, k), "int32")
            pos = T.alloc_var("int32")
            ties = T.alloc_var("int32")
            for r, i in T.Parallel(block_R, n_cap):
                # rows past the end (a ragged last block) read row rows-1 and are never written back
                x = scores[T.min(bx * block_R + r, rows - 1), T.min(i, n - 1)]
                bits = T.reinterpret(T.cast(x, "float32") + 0.0, "int32")
                key[r, i] = T.if_then_else(i < n, T.if_then_else(bits < 0, bits ^ 0x7FFFFFFF, bits), INT32_MIN)
            for r in T.Parallel(block_R):
                thr[r] = INT32_MIN
            # Bisection on the offset-binary bits of the k-th largest key: round 0 decides the sign
            # (candidate 0), round t > 0 tries setting bit 31 - t.
            for t in T.serial(32):
                for r in T.Parallel(block_R):
                    cand[r] = T.if_then_else(t == 0, 0, thr[r] + (1 << (31 - t)))
                for r, i in T.Parallel(block_R, n_cap):
                    hit[r, i] = T.if_then_else(key[r, i] >= cand[r], 1, 0)
                T.reduce_sum(hit, count, dim=1)
                for r in T.Parallel(block_R):
                    thr[r] = T.if_then_else(count[r] >= k, cand[r], thr[r])
            for r, i in T.Parallel(block_R, n_cap):
                hit[r, i] = T.if_then_else(key[r, i] > thr[r], 1, 0)
            T.reduce_sum(hit, count, dim=1)
            T.fill(sel, -1)
            for r in T.serial(block_R):
                pos = 0
                ties = k - count[r]      # how many keys equal to the threshold still fit
                for i in T.serial(T.min(n, n_cap)):
                    if key[r, i] > thr[r] or (key[r, i] == thr[r] and ties > 0):
                        if key[r, i] == thr[r]:
                            ties = ties - 1
                        if key[r, i] != KEY_NEG_INF:
                            sel[r, pos] = i
                            pos = pos + 1
            T.copy(sel, out[bx * block_R:(bx + 1) * block_R, 0:k])

    return main


def capacity(n: int) -> int:
    """The tile length for rows of n: the next power of two (at least 64), so a growing cache
    recompiles only when it doubles."""
    return max(64, 1 << max(n - 1, 0).bit_length())


def topk_indices(scores, k: int, target: str = "auto", block_R: int = 1):
    """int32 ``[..., k]`` positions of the k largest of each row of ``scores`` (torch, fp32), -1 if -inf."""
    lead, n = tuple(scores.shape[:-1]), scores.shape[-1]
    rows = 1
    for x in lead:
        rows *= x
    kernel = compiled(topk_kernel, (k, capacity(n), block_R, "float32"), [1], target)
    out = kernel(scores.float().reshape(rows, n).contiguous())
    return out.reshape(*lead, k)
