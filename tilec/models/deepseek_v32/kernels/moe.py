"""DeepSeek-V3.2's MoE layer and dense SwiGLU MLP as tilec kernels (docs/deepseek_kernels.md §3.8, §8 traps 4-5).

Step 1, the gate, is ``moe_gate.py`` (``gate`` and ``gate_kernel`` are re-exported here). The rest:

- ``moe_kernel`` (bf16 weights; FP8 ones on ``specs.FP8_LAYER_TARGETS``, with act_quant launches for
  x and H and 128-deep scaled K slabs), the whole layer as one kernel of one launch per step: route (the
  (token, slot) pairs grouped by expert, token order within an expert, no padding), up
  (``h = bf16(silu(bf16(x W1^T)) * bf16(x W3^T))``), down (``y = bf16(h W2^T)``) and combine
  (``out[t] = bf16(sum_k w[t, k] * y[pos[t, k]] + shared(x)[t])`` in fp32). A block owns a segment
  (an expert's rows, or a slice of the shared expert's) and a column chunk, so each weight chunk is
  copied on chip once and serves all the segment's row tiles; on cpu the last tile is ragged (its
  GEMMs take only its rows). The shared expert is more segments of the same launches.
- ``moe_padded`` (FP8 weights on the other targets): the padded "grouped contiguous" layout of ``permute`` (every
  expert's segment padded to a multiple of ``block_M`` rows, ``tok[row]`` -1 on padding,
  ``tile_expert[tile]`` -1 for unused tiles, ``pos[t, k]``), the per-tile ``moe_up`` / ``moe_down``
  (1x128 activation blocks, 128x128 weight blocks, fp32 per K slab: ``quant.scaled_slab_gemm``), the
  shared expert as ``mlp`` and ``combine``.

``mlp`` (the dense SwiGLU MLP) reuses the grouped up-projection with one expert. Shapes: T tokens,
D = dim, I = moe_inter_dim, E experts, K active experts.
"""
import torch

import tilec.language as T

from . import compiled, fp8_mma_dtype, resolve_target, tile_family
from .moe_gate import gate, gate_kernel  # noqa: F401 - re-exported: step 1 of the pipeline
from .moe_layer import moe_kernel, moe_tiles  # noqa: F401 - re-exported: the bf16 layer in one kernel
from ..specs import FP8_LAYER_TARGETS
from .quant import act_quant, fp8_gemm, linear_bf16, scaled_slab_gemm

F32 = "float32"
I32 = "int32"
BF16 = "bfloat16"
BLOCK_N = 64     # output columns per grouped-GEMM block (divides the 128-wide FP8 scale block)


def max_tiles(n_tokens: int, K: int, E: int, block_M: int) -> int:
    """Upper bound on the tiles of the padded layout: sum_e ceil(c_e / bm) <= ceil(T K / bm) + #(c_e > 0),
    and at most min(E, T K) experts receive a row."""
    return -(-n_tokens * K // block_M) + T.min(E, n_tokens * K)   # T.min: n_tokens may be symbolic


def pick_block_M(n_tokens: int, K: int, E: int) -> int:
    """Rows per grouped-GEMM tile: about the mean rows per expert, 16..64 (decode pads little)."""
    avg = n_tokens * K / E
    return 16 if avg <= 16 else (32 if avg <= 32 else 64)


def permute_kernel(n_tokens: int, K: int, E: int, block_M: int = 64):
    """Factory: ``main(Idx[T, K] int32, Cnt[E], Tok[R], TileE[NT], Pos[T, K])``, R = NT * block_M.

    Launch 1 counts each expert's (token, slot) pairs; launch 2 gives expert e the rows after the
    padded segments of experts < e and writes its tokens in (token, slot) order. A pair whose expert is
    outside 0..E-1 (another rank's, under expert parallelism: ``parallel.py``) gets no row and ``Pos`` -1,
    which ``combine_kernel`` skips.
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
                for t in T.serial(n_tokens):
                    for k in T.serial(K):
                        if Idx[t, k] < 0 or Idx[t, k] >= E:
                            Pos[t, k] = -1
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
                    if fp8:
                        # a_s already holds the gathered rows in the GEMM dtype; only weights may widen
                        for i in T.Parallel(block_M):
                            sa[i] = T.if_then_else(tk[i] >= 0, Xs[T.max(tk[i], 0), k], 0.0)
                        scaled_slab_gemm(a_s, w1_s, a_s, w1_m, sl1, acc1, sa, S1[e, bx * block_N // 128, k])
                        scaled_slab_gemm(a_s, w3_s, a_s, w3_m, sl3, acc3, sa, S3[e, bx * block_N // 128, k])
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

    bf16: ``main(H[R, I], TileE[NT], W2[E, D, I], Y)``;
    FP8: ``main(Hq, Hs[R, I/128], TileE, W2, S2[E, D/128, I/128], Y)``.
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
                        scaled_slab_gemm(h_s, w_s, h_m, w_m, sl, acc, sa, S2[e, bx * block_N // 128, k])
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
                   block_D: int = 256, dtype: str = BF16, out_dtype: str = ""):
    """Factory: ``main(Yp[R, D], Pos[T, K], W[T, K] fp32, [Sh[T, D],] Out[T, D])``.

    ``out = bf16(sum_k w[t, k] * Yp[pos[t, k]] + Sh[t])`` in fp32, the shared expert added last; a pair
    with ``pos`` -1 (an expert of another rank) adds nothing. ``Out`` is ``out_dtype`` (default
    ``dtype``): fp32 for a rank's partial sum, reduced across ranks before the one rounding.
    """
    block_D = min(block_D, D)
    out_dtype = out_dtype or dtype

    @T.macro
    def body(Yp, Pos, W, Sh, Out):
        with T.Kernel(T.ceildiv(D, block_D), T.ceildiv(n_tokens, block_T), threads=128) as (bx, by):
            acc = T.alloc_fragment((block_T, block_D), F32)
            o = T.alloc_fragment((block_T, block_D), out_dtype)
            p = T.alloc_fragment((block_T, K), I32)
            w = T.alloc_fragment((block_T, K), F32)
            T.copy(Pos[by * block_T, 0], p)
            T.copy(W[by * block_T, 0], w)
            T.clear(acc)
            for k in T.serial(K):
                for i, j in T.Parallel(block_T, block_D):
                    acc[i, j] += T.if_then_else(
                        p[i, k] >= 0, Yp[T.min(T.max(p[i, k], 0), R - 1), T.min(bx * block_D + j, D - 1)] * w[i, k],
                        0.0)
            if shared:
                sh = T.alloc_fragment((block_T, block_D), dtype)
                T.copy(Sh[by * block_T, bx * block_D], sh)
                for i, j in T.Parallel(block_T, block_D):
                    acc[i, j] += sh[i, j]
            T.copy(acc, o)
            T.copy(o, Out[by * block_T, bx * block_D])

    if shared:
        @T.prim_func
        def main(Yp: T.Tensor((R, D), dtype), Pos: T.Tensor((n_tokens, K), I32), W: T.Tensor((n_tokens, K), F32),
                 Sh: T.Tensor((n_tokens, D), dtype), Out: T.Tensor((n_tokens, D), out_dtype)):
            body(Yp, Pos, W, Sh, Out)
    else:
        @T.prim_func
        def main(Yp: T.Tensor((R, D), dtype), Pos: T.Tensor((n_tokens, K), I32), W: T.Tensor((n_tokens, K), F32),
                 Out: T.Tensor((n_tokens, D), out_dtype)):
            body(Yp, Pos, W, Out, Out)
    return main


# --- wrappers ------------------------------------------------------------------------------------

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
    return fp8_mma_dtype(target) if fp8 else None


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
    shared expert as ``shared`` (a dict of ``w1, w2, w3`` and, for FP8, ``s1, s2, s3``). With at most one
    shared expert the layer is one kernel, ``moe_kernel`` (FP8 weights: on ``specs.FP8_LAYER_TARGETS``;
    elsewhere FP8 runs on the padded layout's kernels, ``moe_padded``). ``block_M``: rows per GEMM tile (0: the
    target's choice).
    """
    q = p.get("shared")
    target = resolve_target(target)
    fp8 = p["w1"].dtype == torch.float8_e4m3fn
    if (fp8 and tile_family(target) not in FP8_LAYER_TARGETS) or (
            q is not None and q["w1"].shape != p["w1"].shape[1:]):
        return moe_padded(x, p, args, target, block_M)
    shape = x.shape
    x2 = x.reshape(-1, args.dim).contiguous()
    e, i, d = p["w1"].shape
    tiles = tuple(sorted(moe_tiles(d, i, target, block_M, fp8).items()))
    gate_args = (args.n_expert_groups, args.n_limited_groups, float(args.route_scale))
    key = (d, i, e, args.n_activated_experts, q is not None, gate_args, tiles)
    if not fp8:
        kern = compiled(moe_kernel, key, list(range(9, 17)), target)
        sw = (q["w1"], q["w3"], q["w2"]) if q is not None else (_NO_SHARED,) * 3
        out = kern(x2, p["gate_w"], p["gate_b"].float(), p["w1"], p["w3"], p["w2"], *sw)[-1]
        return out.view(shape)
    kern = compiled(moe_kernel, key + (target, True, args.scale_fmt is not None), list(range(15, 27)), target)
    sw = [q[n] for n in ("w1", "s1", "w3", "s3", "w2", "s2")] if q is not None else [_NO_SHARED_FP8, _NO_SCALE] * 3
    out = kern(x2, p["gate_w"], p["gate_b"].float(), p["w1"], p["s1"], p["w3"], p["s3"], p["w2"], p["s2"], *sw)[-1]
    return out.view(shape)


_NO_SHARED = torch.zeros(1, 1, dtype=torch.bfloat16)
_NO_SHARED_FP8 = torch.zeros(1, 1, dtype=torch.float8_e4m3fn)
_NO_SCALE = torch.ones(1, 1, dtype=torch.float32)


def moe_padded(x: torch.Tensor, p: dict, args, target: str = "auto", block_M: int = 0) -> torch.Tensor:
    """``moe`` on the padded layout's kernels: gate, permute, act_quant + grouped up / down GEMMs,
    the shared expert as ``mlp``, combine (FP8 weights; bf16 ones too)."""
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
