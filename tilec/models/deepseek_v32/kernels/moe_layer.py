"""DeepSeek-V3.2's MoE layer as one tilec kernel (docs/deepseek_kernels.md §3.8): gate, route, up, down, combine.

``moe.moe`` calls it for bf16 weights, and for FP8 ones on ``specs.FP8_LAYER_TARGETS`` (``kernels/moe.py``
re-exports ``moe_kernel`` and ``moe_tiles``; the padded-layout kernels stay there). One launch per
step, so a layer is one call:

- gate (optional, ``moe_gate.gate_launch``): per token the top-k experts and their weights.
- route: the T*K (token, slot) pairs grouped by expert, token order within an expert (the reference's
  ``torch.where`` order), with no padding: ``Start[e]`` (expert e's first row), ``Tok[row]``,
  ``Pos[t, k]``; with a shared expert its T rows follow (row T*K + t).
- up / down: a block owns a *segment* (an expert's rows, or ``shared_rows`` of the shared expert's)
  and a column chunk, so its weight chunk is copied on chip once and serves every row tile of the
  segment (weight-stationary); on cpu the last row tile is ragged, its GEMMs take only its rows.
- combine: ``out[t] = bf16(sum_k w[t, k] * Y[Pos[t, k]] + Y[T*K + t])`` in fp32, the shared expert last.

Rounding points are the reference's: bf16 after each linear, ``bf16(silu(a) * b)`` computed in fp32.
FP8 weights add an act_quant launch before up (x) and before down (H), and their GEMMs take 128-deep
K slabs scaled by the activation and weight block scales, exactly as ``moe.moe_padded`` computes.
"""
import tilec.language as T

from . import tile_family

F32 = "float32"
I32 = "int32"
BF16 = "bfloat16"
FP8 = "float8_e4m3"


# --- the compact layout and its segments -------------------------------------------------------------
# Rows of the compact layout: the T*K routed (token, slot) pairs grouped by expert (Start[e] ..
# Start[e+1], token order within an expert), then, with a shared expert, its T rows (row T*K + t).
# A "segment" is one expert's rows, or a ``shared_rows`` slice of the shared expert's; a block owns a
# segment and a column chunk, so a weight chunk is copied on chip once and serves all the segment's
# row tiles. With ``ragged`` the last row tile's GEMMs take only its rows: no work is padded, and
# there is no padding between experts.

def moe_tiles(D: int, I: int, target: str = "cpu", block_M: int = 0, fp8: bool = False) -> dict:  # noqa: E741
    """Tiles of ``moe_kernel``. cpu: whole weight rows stay on chip (``block_K = D``, ``block_K2 = I``:
    a weight chunk is copied once per segment) and 128-row ragged tiles; other targets: 128-deep K slabs
    and 64-wide chunks that fit shared memory / the Unified Buffer, full tiles. FP8: 128-deep K slabs
    (one weight scale each) and column chunks within one 128-row scale block."""
    cpu = tile_family(target) == "cpu"
    if fp8:
        return dict(block_M=block_M or (128 if cpu else 32), block_I=_fit(I, 128 if cpu else 64),
                    block_D=_fit(D, 128 if cpu else 64), block_K=128, block_K2=128, shared_rows=128,
                    ragged=cpu, block_T=16, block_C=_fit(D, 256))
    # stationary chunks within 1 MiB (up: W1 and W3 [128, D]) and 512 KiB (down: W2 [256, I]) of bf16
    return dict(block_M=block_M or (128 if cpu else 32), block_I=_fit(I, 128 if cpu else 64),
                block_D=_fit(D, 256 if cpu else 64), block_K=D if cpu and D <= 2048 else _fit(D, 128),
                block_K2=I if cpu and I <= 1024 else _fit(I, 128), shared_rows=128, ragged=cpu, block_T=16,
                block_C=_fit(D, 256))


def _fit(n: int, want: int) -> int:
    """The largest power of two <= ``want`` that divides ``n``."""
    b = want
    while b > 1 and n % b:
        b //= 2
    return b


def _pipeline(n, D: int, I: int, E: int, K: int, shared: bool, tl: dict, fp8: bool = False,  # noqa: E741
              round_scale: bool = False):
    """The launches after the gate, as one macro: bf16 ``(X, Wt, Idx, W1, W3, W2, S1, S3, S2, Start, Tok,
    Pos, H, Y, Out)``; FP8 ``(X, Wt, Idx, W1, SW1, W3, SW3, W2, SW2, S1, SS1, S3, SS3, S2, SS2, Start, Tok,
    Pos, Xq, Xs, H, Hq, Hs, Y, Out)`` (``SW*``/``SS*`` the 128x128 block scales of the routed / shared
    weights). ``n`` is the (symbolic) token count."""
    bm, bI, bD, bK, bK2, srows = (tl[k] for k in ("block_M", "block_I", "block_D", "block_K", "block_K2",
                                                   "shared_rows"))
    ragged, bT, bC = tl["ragged"], tl["block_T"], tl["block_C"]
    TK = n * K
    R = TK + (n if shared else 0)
    NSH = T.ceildiv(n, srows) if shared else 0

    @T.macro
    def route(Idx, Start, Tok, Pos):
        # block e < E: Start[e] = #pairs routed to experts < e, then expert e's pairs in (token, slot)
        # order (the reference's torch.where order); block E: Start[E] and the shared expert's rows
        with T.Kernel(E + 1, threads=32) as e:
            r = T.alloc_var(I32, 0)
            if e < E:
                for t in T.serial(n):
                    for k in T.serial(K):
                        if Idx[t, k] < e:
                            r = r + 1
                Start[e] = r
                for t in T.serial(n):
                    for k in T.serial(K):
                        if Idx[t, k] == e:
                            Tok[r] = t
                            Pos[t, k] = r
                            r = r + 1
            else:
                Start[E] = TK
                if shared:
                    for t in T.serial(n):
                        Tok[TK + t] = t

    @T.macro
    def segment(seg, Start, r0, cnt):
        if seg < NSH:      # a slice of the shared expert's rows
            r0 = TK + seg * srows
            cnt = T.min(srows, n - seg * srows)
        else:
            r0 = Start[seg - NSH]
            cnt = Start[seg - NSH + 1] - Start[seg - NSH]

    @T.macro
    def weight_tile(Wr, Ws, seg, row, col, dst):
        """The tile at (row, col) of the segment's expert weight (Wr[e]) or the shared one (Ws)."""
        if shared:
            if seg < NSH:
                T.copy(Ws[row, col], dst)
            else:
                T.copy(Wr[seg - NSH, row, col], dst)
        else:
            T.copy(Wr[seg, row, col], dst)

    @T.macro
    def store_swiglu(acc1, acc3, H, row, col, nr):
        # the reference's rounding points: bf16 linear outputs (the casts), then bf16(silu(a) * b)
        # computed in fp32 (the store); the tile's first nr rows
        for i, j in T.Parallel(bm, bI):
            if i < nr:
                H[row + i, col + j] = (T.cast(acc1[i, j], BF16) / (1.0 + T.exp(-T.cast(acc1[i, j], BF16)))
                                       * T.cast(acc3[i, j], BF16))

    in_dtype = FP8 if fp8 else BF16
    if fp8:
        # FP8 weights: x and H are quantized by launches of their own (act_quant: 1x128 blocks), and every
        # GEMM runs in 128-deep K slabs, each accumulated in fp32, scaled by its activation and weight
        # scales and added to the total (quant.scaled_slab_gemm, here with ragged row tiles)
        from .quant import act_quant_launch
        assert bK == bK2 == 128
        quant_x = act_quant_launch(n, D, round_scale)
        quant_h = act_quant_launch(R, I, round_scale)

    @T.macro
    def weight_scale(SWr, SWs, seg, row, col, sb):
        """The 128x128 block scale at (row, col) of the segment's expert weight or the shared one."""
        if shared:
            if seg < NSH:
                sb = SWs[row, col]
            else:
                sb = SWr[seg - NSH, row, col]
        else:
            sb = SWr[seg, row, col]

    @T.macro
    def slab_gemm(a, b, slab, acc, sa, sb, nr):
        if ragged:
            T.gemm(a[0:nr, :], b, slab[0:nr, :], transpose_B=True, clear_accum=True)
        else:
            T.gemm(a, b, slab, transpose_B=True, clear_accum=True)
        for i, j in T.Parallel(bm, slab.shape[1]):
            if i < nr:
                acc[i, j] += slab[i, j] * (sa[i] * sb)

    @T.macro
    def up(X, Xs, Tok, Start, W1, SW1, W3, SW3, S1, SS1, S3, SS3, H):
        # H[rows, chunk] = bf16(silu(bf16(x W1^T)) * bf16(x W3^T)) per (I chunk, segment); FP8: X is the
        # quantized x and Xs its scales, SW*/SS* the weights' block scales (bf16: unused)
        with T.Kernel(I // bI, NSH + E, threads=128) as (bx, seg):
            r0 = T.alloc_var(I32, 0)
            cnt = T.alloc_var(I32, 0)
            nr = T.alloc_var(I32, 0)
            tk = T.alloc_fragment((bm,), I32)
            x_s = T.alloc_shared((bm, bK), in_dtype)
            w1_s = T.alloc_shared((bI, bK), in_dtype)
            w3_s = T.alloc_shared((bI, bK), in_dtype)
            acc1 = T.alloc_fragment((bm, bI), F32)
            acc3 = T.alloc_fragment((bm, bI), F32)
            if fp8:
                sb = T.alloc_var(F32, 0.0)
                sa = T.alloc_fragment((bm,), F32)
                sl1 = T.alloc_fragment((bm, bI), F32)
                sl3 = T.alloc_fragment((bm, bI), F32)
            segment(seg, Start, r0, cnt)
            if cnt > 0:
                if bK == D:  # weights stationary: one copy serves every row tile of the segment
                    weight_tile(W1, S1, seg, bx * bI, 0, w1_s)
                    weight_tile(W3, S3, seg, bx * bI, 0, w3_s)
                for tt in T.serial(T.ceildiv(cnt, bm)):
                    nr = T.min(bm, cnt - tt * bm)
                    for i in T.Parallel(bm):
                        tk[i] = T.if_then_else(i < nr, Tok[T.min(r0 + tt * bm + i, R - 1)], 0)
                    if fp8 or D > bK:   # FP8 slabs add into the accumulators; one bf16 GEMM clears them
                        T.clear(acc1)
                        T.clear(acc3)
                    for k in T.serial(D // bK):
                        for i, j in T.Parallel(bm, bK):
                            x_s[i, j] = T.if_then_else(i < nr, X[tk[i], k * bK + j], 0.0)
                        if bK < D:
                            weight_tile(W1, S1, seg, bx * bI, k * bK, w1_s)
                            weight_tile(W3, S3, seg, bx * bI, k * bK, w3_s)
                        if fp8:
                            for i in T.Parallel(bm):
                                sa[i] = T.if_then_else(i < nr, Xs[tk[i], k], 0.0)
                            weight_scale(SW1, SS1, seg, bx * bI // 128, k, sb)
                            slab_gemm(x_s, w1_s, sl1, acc1, sa, sb, nr)
                            weight_scale(SW3, SS3, seg, bx * bI // 128, k, sb)
                            slab_gemm(x_s, w3_s, sl3, acc3, sa, sb, nr)
                        elif ragged:
                            T.gemm(x_s[0:nr, :], w1_s, acc1[0:nr, :], transpose_B=True, clear_accum=D == bK)
                            T.gemm(x_s[0:nr, :], w3_s, acc3[0:nr, :], transpose_B=True, clear_accum=D == bK)
                        else:
                            T.gemm(x_s, w1_s, acc1, transpose_B=True, clear_accum=D == bK)
                            T.gemm(x_s, w3_s, acc3, transpose_B=True, clear_accum=D == bK)
                    store_swiglu(acc1, acc3, H, r0 + tt * bm, bx * bI, nr)

    @T.macro
    def down(H, Hs, Start, W2, SW2, S2, SS2, Y):
        # Y[rows, chunk] = bf16(h W2^T) per (D chunk, segment); FP8: H is the quantized h and Hs its scales
        with T.Kernel(D // bD, NSH + E, threads=128) as (bx, seg):
            r0 = T.alloc_var(I32, 0)
            cnt = T.alloc_var(I32, 0)
            nr = T.alloc_var(I32, 0)
            h_s = T.alloc_shared((bm, bK2), in_dtype)
            w_s = T.alloc_shared((bD, bK2), in_dtype)
            acc = T.alloc_fragment((bm, bD), F32)
            if fp8:
                sb = T.alloc_var(F32, 0.0)
                sa = T.alloc_fragment((bm,), F32)
                sl = T.alloc_fragment((bm, bD), F32)
            segment(seg, Start, r0, cnt)
            if cnt > 0:
                if bK2 == I:
                    weight_tile(W2, S2, seg, bx * bD, 0, w_s)
                for tt in T.serial(T.ceildiv(cnt, bm)):
                    nr = T.min(bm, cnt - tt * bm)
                    if fp8 or I > bK2:
                        T.clear(acc)
                    for k in T.serial(I // bK2):
                        T.copy(H[r0 + tt * bm, k * bK2], h_s)   # rows past the segment are never stored
                        if bK2 < I:
                            weight_tile(W2, S2, seg, bx * bD, k * bK2, w_s)
                        if fp8:
                            for i in T.Parallel(bm):
                                sa[i] = T.if_then_else(i < nr, Hs[T.min(r0 + tt * bm + i, R - 1), k], 0.0)
                            weight_scale(SW2, SS2, seg, bx * bD // 128, k, sb)
                            slab_gemm(h_s, w_s, sl, acc, sa, sb, nr)
                        elif ragged:
                            T.gemm(h_s[0:nr, :], w_s, acc[0:nr, :], transpose_B=True, clear_accum=I == bK2)
                        else:
                            T.gemm(h_s, w_s, acc, transpose_B=True, clear_accum=I == bK2)
                    for i, j in T.Parallel(bm, bD):
                        if i < nr:
                            Y[r0 + tt * bm + i, bx * bD + j] = acc[i, j]   # the store rounds to bf16

    @T.macro
    def combine(Y, Pos, Wt, Out):
        # out = bf16(sum_k w[t, k] * y[pos[t, k]] + y[T*K + t]) in fp32, the shared expert last
        with T.Kernel(T.ceildiv(D, bC), T.ceildiv(n, bT), threads=128) as (bx, by):
            acc = T.alloc_fragment((bT, bC), F32)
            o = T.alloc_fragment((bT, bC), BF16)
            p = T.alloc_fragment((bT, K), I32)
            w = T.alloc_fragment((bT, K), F32)
            for i, k in T.Parallel(bT, K):
                p[i, k] = T.min(T.max(Pos[T.min(by * bT + i, n - 1), k], 0), R - 1)
                w[i, k] = Wt[T.min(by * bT + i, n - 1), k]
            T.clear(acc)
            for i in T.serial(bT):
                for k in T.serial(K):
                    for j in T.Parallel(bC):
                        acc[i, j] += Y[p[i, k], bx * bC + j] * w[i, k]
                if shared:
                    for j in T.Parallel(bC):
                        acc[i, j] += Y[T.min(TK + by * bT + i, R - 1), bx * bC + j]
            T.copy(acc, o)
            T.copy(o, Out[by * bT, bx * bC])

    @T.macro
    def body(X, Wt, Idx, W1, W3, W2, S1, S3, S2, Start, Tok, Pos, H, Y, Out):
        route(Idx, Start, Tok, Pos)
        up(X, X, Tok, Start, W1, W1, W3, W3, S1, S1, S3, S3, H)   # the scale slots are unused for bf16
        down(H, H, Start, W2, W2, S2, S2, Y)
        combine(Y, Pos, Wt, Out)

    @T.macro
    def body_fp8(X, Wt, Idx, W1, SW1, W3, SW3, W2, SW2, S1, SS1, S3, SS3, S2, SS2, Start, Tok, Pos,
                 Xq, Xs, H, Hq, Hs, Y, Out):
        route(Idx, Start, Tok, Pos)
        quant_x(X, Xq, Xs)
        up(Xq, Xs, Tok, Start, W1, SW1, W3, SW3, S1, SS1, S3, SS3, H)
        quant_h(H, Hq, Hs)
        down(Hq, Hs, Start, W2, SW2, S2, SS2, Y)
        combine(Y, Pos, Wt, Out)

    return (body_fp8 if fp8 else body), R


def moe_kernel(D: int, I: int, E: int, K: int, shared: bool, gate=(), tiles=(),  # noqa: E741
               target: str = "cpu", fp8: bool = False, round_scale: bool = False):
    """Factory: the MoE layer after (or, with ``gate``, including) the gate, as one kernel.

    bf16 weights: ``gate = (G, TG, route_scale)`` makes the gate the first launch: ``main(X[T, D],
    Wg[E, D], bias[E], W1, W3, W2, S1, S3, S2, Wt[T, K], Idx[T, K], Start[E+1], Tok[R], Pos[T, K],
    H[R, I], Y[R, D], Out[T, D])``; without it ``main(X, Wt, Idx, W1[E, I, D], W3[E, I, D], W2[E, D, I],
    S1, S3, S2, Start, Tok, Pos, H, Y, Out)``. S1, S3 [I, D] and S2 [D, I] are the shared expert
    (ignored [1, 1] tensors without one); R = T*K, plus T with a shared expert. Launches: [gate,] route,
    up (per I chunk and segment), down (per D chunk and segment), combine.

    ``fp8``: e4m3 weights, each followed by its fp32 block scales (``SW1, SW3 [E, I/128, D/128]``,
    ``SW2 [E, D/128, I/128]``; the shared expert's ``SS1, SS3 [I/128, D/128]``, ``SS2 [D/128, I/128]``);
    the inputs are ``X, [Wg, bias,] W1, SW1, W3, SW3, W2, SW2, S1, SS1, S3, SS3, S2, SS2``, then ``[Wt,
    Idx,] Start, Tok, Pos, Xq[T, D] e4m3, Xs[T, D/128], H, Hq[R, I] e4m3, Hs[R, I/128], Y, Out``. x and H
    are quantized by act_quant launches (``round_scale``: ue8m0 scales), the GEMMs take 128-deep scaled
    slabs, as ``moe_padded`` computes them. ``tiles``: ``moe_tiles(...)`` as sorted items, by default
    ``moe_tiles(D, I, target, fp8=fp8)`` (the model's specs name the target only).
    """
    from .moe_gate import gate_launch
    tl = dict(tiles) or moe_tiles(D, I, target, fp8=fp8)
    assert I % tl["block_I"] == 0 and D % tl["block_D"] == 0 and D % tl["block_K"] == 0
    assert I % tl["block_K2"] == 0 and D % tl["block_C"] == 0
    n = T.dynamic("T")
    body, R = _pipeline(n, D, I, E, K, shared, tl, fp8, round_scale)
    SI, SD = (I, D) if shared else (1, 1)
    if fp8:
        assert D % 128 == 0 and I % 128 == 0 and 128 % tl["block_I"] == 0 and 128 % tl["block_D"] == 0
        return _fp8_main(n, D, I, E, K, R, SI, SD, shared, body, gate_launch(n, D, E, K, *gate) if gate else None)

    if gate:
        glaunch = gate_launch(n, D, E, K, *gate)

        @T.prim_func
        def main(X: T.Tensor((n, D), BF16), Wg: T.Tensor((E, D), BF16), bias: T.Tensor((E,), F32),
                 W1: T.Tensor((E, I, D), BF16), W3: T.Tensor((E, I, D), BF16), W2: T.Tensor((E, D, I), BF16),
                 S1: T.Tensor((SI, SD), BF16), S3: T.Tensor((SI, SD), BF16), S2: T.Tensor((SD, SI), BF16),
                 Wt: T.Tensor((n, K), F32), Idx: T.Tensor((n, K), I32), Start: T.Tensor((E + 1,), I32),
                 Tok: T.Tensor((R,), I32), Pos: T.Tensor((n, K), I32), H: T.Tensor((R, I), BF16),
                 Y: T.Tensor((R, D), BF16), Out: T.Tensor((n, D), BF16)):
            glaunch(X, Wg, bias, Wt, Idx)
            body(X, Wt, Idx, W1, W3, W2, S1, S3, S2, Start, Tok, Pos, H, Y, Out)
    else:
        @T.prim_func
        def main(X: T.Tensor((n, D), BF16), Wt: T.Tensor((n, K), F32), Idx: T.Tensor((n, K), I32),
                 W1: T.Tensor((E, I, D), BF16), W3: T.Tensor((E, I, D), BF16), W2: T.Tensor((E, D, I), BF16),
                 S1: T.Tensor((SI, SD), BF16), S3: T.Tensor((SI, SD), BF16), S2: T.Tensor((SD, SI), BF16),
                 Start: T.Tensor((E + 1,), I32), Tok: T.Tensor((R,), I32), Pos: T.Tensor((n, K), I32),
                 H: T.Tensor((R, I), BF16), Y: T.Tensor((R, D), BF16), Out: T.Tensor((n, D), BF16)):
            body(X, Wt, Idx, W1, W3, W2, S1, S3, S2, Start, Tok, Pos, H, Y, Out)
    return main


def _fp8_main(n, D: int, I: int, E: int, K: int, R, SI: int, SD: int, shared: bool, body, glaunch):  # noqa: E741
    """The FP8 layer's ``main`` (see ``moe_kernel``), with or without the gate launch."""
    bi, bd = I // 128, D // 128                   # scale blocks of a weight
    ssi, ssd = (bi, bd) if shared else (1, 1)     # the shared expert's (ignored [1, 1] without one)

    if glaunch is not None:
        @T.prim_func
        def main(X: T.Tensor((n, D), BF16), Wg: T.Tensor((E, D), BF16), bias: T.Tensor((E,), F32),
                 W1: T.Tensor((E, I, D), FP8), SW1: T.Tensor((E, bi, bd), F32),
                 W3: T.Tensor((E, I, D), FP8), SW3: T.Tensor((E, bi, bd), F32),
                 W2: T.Tensor((E, D, I), FP8), SW2: T.Tensor((E, bd, bi), F32),
                 S1: T.Tensor((SI, SD), FP8), SS1: T.Tensor((ssi, ssd), F32),
                 S3: T.Tensor((SI, SD), FP8), SS3: T.Tensor((ssi, ssd), F32),
                 S2: T.Tensor((SD, SI), FP8), SS2: T.Tensor((ssd, ssi), F32),
                 Wt: T.Tensor((n, K), F32), Idx: T.Tensor((n, K), I32), Start: T.Tensor((E + 1,), I32),
                 Tok: T.Tensor((R,), I32), Pos: T.Tensor((n, K), I32),
                 Xq: T.Tensor((n, D), FP8), Xs: T.Tensor((n, bd), F32), H: T.Tensor((R, I), BF16),
                 Hq: T.Tensor((R, I), FP8), Hs: T.Tensor((R, bi), F32),
                 Y: T.Tensor((R, D), BF16), Out: T.Tensor((n, D), BF16)):
            glaunch(X, Wg, bias, Wt, Idx)
            body(X, Wt, Idx, W1, SW1, W3, SW3, W2, SW2, S1, SS1, S3, SS3, S2, SS2, Start, Tok, Pos,
                 Xq, Xs, H, Hq, Hs, Y, Out)
    else:
        @T.prim_func
        def main(X: T.Tensor((n, D), BF16), Wt: T.Tensor((n, K), F32), Idx: T.Tensor((n, K), I32),
                 W1: T.Tensor((E, I, D), FP8), SW1: T.Tensor((E, bi, bd), F32),
                 W3: T.Tensor((E, I, D), FP8), SW3: T.Tensor((E, bi, bd), F32),
                 W2: T.Tensor((E, D, I), FP8), SW2: T.Tensor((E, bd, bi), F32),
                 S1: T.Tensor((SI, SD), FP8), SS1: T.Tensor((ssi, ssd), F32),
                 S3: T.Tensor((SI, SD), FP8), SS3: T.Tensor((ssi, ssd), F32),
                 S2: T.Tensor((SD, SI), FP8), SS2: T.Tensor((ssd, ssi), F32),
                 Start: T.Tensor((E + 1,), I32), Tok: T.Tensor((R,), I32), Pos: T.Tensor((n, K), I32),
                 Xq: T.Tensor((n, D), FP8), Xs: T.Tensor((n, bd), F32), H: T.Tensor((R, I), BF16),
                 Hq: T.Tensor((R, I), FP8), Hs: T.Tensor((R, bi), F32),
                 Y: T.Tensor((R, D), BF16), Out: T.Tensor((n, D), BF16)):
            body(X, Wt, Idx, W1, SW1, W3, SW3, W2, SW2, S1, SS1, S3, SS3, S2, SS2, Start, Tok, Pos,
                 Xq, Xs, H, Hq, Hs, Y, Out)
    return main
