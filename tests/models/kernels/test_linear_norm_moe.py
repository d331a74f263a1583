"""DeepSeek-V3.2 linear / norm / RoPE / Hadamard / MoE kernels (issue 7) against the PyTorch oracle.

Each kernel runs on interp, cpu and ascend at tiny-config shapes (docs/deepseek_kernels.md §6: dim 256,
inter 512, moe_inter 128, 16 experts in 4 groups, top-2 groups, 4 active), bf16 and FP8 variants,
once on cpu at a real V3.2 per-layer shape, and is built for cuda (nvcc, no GPU). Every kernel the
wrappers build NaN-poisons its outputs; errors are ||out-ref||/||ref|| and a NaN never passes.
The quantizer, dequantizer, RoPE, residual and the gate's expert sets are compared exactly.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

import lnm_helpers as H  # noqa: E402

from tilec.models.deepseek_v32 import ref_ops  # noqa: E402
from tilec.models.deepseek_v32.kernels import hadamard, moe, norms, quant, rope  # noqa: E402

from tilec import targets  # noqa: E402

_EMU = targets.get("cuda-emu").available()  # needs isa.h (branch isa)
TARGETS = ["interp", "cpu", "ascend",
           pytest.param("cuda-emu", marks=pytest.mark.skipif(not _EMU[0], reason=_EMU[1]))]
BF16 = torch.bfloat16


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    H.poisoned(monkeypatch)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8) if t.dtype == ref_ops.FP8 else t


# --- FP8 quantization and linear layers -----------------------------------------------------------

def _quant_input(m: int, n: int) -> torch.Tensor:
    """Random rows plus the edge cases of the scale: an all-zero block (amax clamps to 1e-4), a block
    whose amax / 448 is exactly a power of two (no round-up), and large values."""
    x = torch.randn(m, n, generator=H.gen(1)) * 3
    x[1, :128] = 0.0
    x[2, :128] = x[2, :128].clamp(-1, 1)
    x[2, 5] = 448.0 / 64                # amax / 448 = 2^-6 exactly
    x[3, 128:256] *= 1e3
    return x.to(BF16)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("scale_fmt", [None, "ue8m0"])
def test_act_quant_bit_exact(target, scale_fmt):
    x = _quant_input(37, 256)
    y, s = quant.act_quant(x, 128, scale_fmt, target=target)
    yr, sr = ref_ops.act_quant(x, 128, scale_fmt)
    assert torch.equal(s, sr)
    assert torch.equal(_bits(y), _bits(yr))
    if scale_fmt == "ue8m0":
        assert torch.equal(torch.exp2(torch.log2(s).round()), s)     # powers of two


@pytest.mark.parametrize("target", TARGETS)
def test_weight_dequant_exact(target):
    w, s = ref_ops.weight_quant(torch.randn(576, 256, generator=H.gen(2)))   # wkv_a-like: 5 scale rows
    assert torch.equal(quant.weight_dequant(w, s, target=target), ref_ops.weight_dequant(w, s))


@pytest.mark.parametrize("target", TARGETS)
def test_fp8_gemm(target):
    xq, xs = ref_ops.act_quant(torch.randn(37, 256, generator=H.gen(3)).to(BF16), 128, "ue8m0")
    w, ws = ref_ops.weight_quant(torch.randn(576, 256, generator=H.gen(4)) * 256 ** -0.5)
    out = quant.fp8_gemm(xq, xs, w, ws, target=target)
    assert out.dtype == BF16 and out.shape == (37, 576)
    assert H.relerr(out, ref_ops.fp8_gemm(xq, xs, w, ws)) < 1e-2


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
def test_linear(target, dtype):
    x = torch.randn(2, 19, 256, generator=H.gen(5)).to(BF16)
    w = torch.randn(384, 256, generator=H.gen(6)) * 256 ** -0.5
    if dtype == "fp8":
        w, s = ref_ops.weight_quant(w)
    else:
        w, s = w.to(BF16), None
    out = quant.linear(x, w, s, "ue8m0", target=target)
    ref = ref_ops.linear(x, w, s, "ue8m0")
    assert out.shape == ref.shape and out.dtype == BF16
    assert H.relerr(out, ref) < 1e-2


# --- norms ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("n", [256, 200])          # 200: a ragged column tile
def test_rms_norm(target, n):
    x = (torch.randn(37, n, generator=H.gen(7)) * 3).to(BF16)
    w = 1 + 0.1 * torch.randn(n, generator=H.gen(8))
    assert H.relerr(norms.rms_norm(x, w, target=target), ref_ops.rms_norm(x, w)) < 1e-2


@pytest.mark.parametrize("target", TARGETS)
def test_rms_norm_fused_residual(target):
    x = (torch.randn(2, 19, 256, generator=H.gen(9)) * 3).to(BF16)
    r = torch.randn(2, 19, 256, generator=H.gen(10)).to(BF16)
    w = 1 + 0.1 * torch.randn(256, generator=H.gen(11))
    y, res = norms.rms_norm(x, w, residual=r, target=target)
    yr, resr = ref_ops.rms_norm(x, w, residual=r)
    assert torch.equal(res, resr)                      # bf16(fp32 x + fp32 r)
    assert H.relerr(y, yr) < 1e-2


@pytest.mark.parametrize("target", TARGETS)
def test_layer_norm(target):
    x = (torch.randn(37, 128, generator=H.gen(12)) * 2 + 0.5).to(BF16)
    w, b = 1 + 0.1 * torch.randn(128, generator=H.gen(13)), 0.1 * torch.randn(128, generator=H.gen(14))
    assert H.relerr(norms.layer_norm(x, w, b, target=target), ref_ops.layer_norm(x, w, b)) < 1e-2


# --- RoPE and Hadamard ----------------------------------------------------------------------------

FREQS = ref_ops.precompute_freqs_cis(H.TINY)      # YaRN on: 256 > 64


@pytest.mark.parametrize("target", TARGETS)
def test_rope_mla_interleaved(target):
    """MLA q: [nope 32 | pe 16] per head, interleaved pairs, positions 5..13 (decode-style offset)."""
    q = torch.randn(2, 9, 4, 48, generator=H.gen(15)).to(BF16)
    f = FREQS[5:14]
    out = rope.apply_rotary(q, f, True, rope_off=32, target=target)
    ref = torch.cat([q[..., :32], ref_ops.apply_rotary_emb(q[..., 32:], f, True)], -1)
    assert torch.equal(out[..., :32], q[..., :32])
    assert H.relerr(out, ref) < 1e-2


@pytest.mark.parametrize("target", TARGETS)
def test_rope_indexer_non_interleaved(target):
    """Indexer q [B,S,H,128] and k [B,S,128]: [pe 16 | nope 112], pairs (i, i+8)
    (docs/deepseek_kernels.md §8 trap 1)."""
    q = torch.randn(2, 9, 4, 128, generator=H.gen(16)).to(BF16)
    k = torch.randn(2, 9, 128, generator=H.gen(17)).to(BF16)
    f = FREQS[:9]
    out_q = rope.apply_rotary(q, f, False, target=target)
    out_k = rope.apply_rotary(k, f, False, target=target)
    ref_q = torch.cat([ref_ops.apply_rotary_emb(q[..., :16], f, False), q[..., 16:]], -1)
    ref_k = torch.cat([ref_ops.apply_rotary_emb(k[..., None, :16], f, False)[:, :, 0], k[..., 16:]], -1)
    assert H.relerr(out_q, ref_q) < 1e-2 and H.relerr(out_k, ref_k) < 1e-2
    wrong = torch.cat([ref_ops.apply_rotary_emb(q[..., :16], f, True), q[..., 16:]], -1)
    assert H.relerr(out_q, wrong) > 0.1                # the interleaved layout would be caught


@pytest.mark.parametrize("target", TARGETS)
def test_hadamard(target):
    x = torch.randn(70, 128, generator=H.gen(18)).to(BF16)
    assert H.relerr(hadamard.hadamard(x, target=target), ref_ops.rotate_activation(x)) < 1e-2


# --- MoE: gate, permutation, experts, combine; the dense MLP --------------------------------------

MOES = {"bf16": H.TINY, "fp8": H.TINY_FP8}


@pytest.fixture(scope="module")
def moes():
    return {k: H.make_moe(a, seed=3) for k, a in MOES.items()}


def _tokens(n: int, dim: int, seed: int = 20) -> torch.Tensor:
    return torch.randn(n, dim, generator=H.gen(seed)).to(BF16)


@pytest.mark.parametrize("target", TARGETS)
def test_gate_matches_reference(target, moes):
    m = moes["bf16"]
    x = _tokens(37, 256)
    w, idx = moe.gate(x, m.gate.weight, m.gate.bias, H.TINY, target=target)
    wr, ir = m.gate(x)
    assert idx.dtype == torch.int32 and torch.equal(idx.long(), ir)      # same experts, same order
    assert H.relerr(w, wr) < 1e-5


def test_gate_bias_selects_but_does_not_weigh(moes):
    """Spec §8 trap 4: a large bias forces expert 5 into every set, its weight stays the unbiased one."""
    m = moes["bf16"]
    x = _tokens(16, 256, seed=21)
    bias = m.gate.bias.clone()
    bias[5] = 10.0
    w, idx = moe.gate(x, m.gate.weight, bias, H.TINY, target="cpu")
    assert bool((idx == 5).any(-1).all())
    s = torch.sigmoid(x.float() @ m.gate.weight.float().t())
    picked = s.gather(1, idx.long())
    assert torch.allclose(w, picked / picked.sum(-1, keepdim=True) * 2.5, rtol=1e-5, atol=0)


def test_gate_ties_go_to_the_lower_index():
    """All scores equal (x = 0): groups 0 and 1 are kept and experts 0..3 chosen in that order."""
    wg = torch.randn(16, 256, generator=H.gen(22)).to(BF16)
    w, idx = moe.gate(torch.zeros(3, 256, dtype=BF16), wg, torch.zeros(16), H.TINY, target="cpu")
    assert idx.tolist() == [[0, 1, 2, 3]] * 3
    assert torch.allclose(w, torch.full((3, 4), 2.5 / 4))


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_permute_layout(target):
    t, k, e, bm = 45, 4, 16, 8
    idx = torch.stack([torch.randperm(e, generator=H.gen(30 + i))[:k] for i in range(t)]).int()
    idx[:20] = torch.tensor([3, 7, 1, 0], dtype=torch.int32)       # one crowded expert set
    cnt, tok, tile_e, pos = moe.permute(idx, e, bm, target=target)
    assert torch.equal(cnt.long(), torch.bincount(idx.flatten().long(), minlength=e))
    assert torch.equal(tok[pos.long()], torch.arange(t, dtype=torch.int32)[:, None].expand(t, k))
    assert torch.equal(tile_e[pos.long() // bm], idx)
    assert int((tok >= 0).sum()) == t * k                              # the rest is padding
    for ex in range(e):                                                # token order within an expert
        rows = tok[(tile_e[torch.arange(tok.numel()) // bm] == ex) & (tok >= 0)]
        assert torch.equal(rows, torch.sort(rows).values)
    used = int(sum((c + bm - 1) // bm for c in cnt.tolist()))
    assert bool((tile_e[used:] == -1).all()) and bool((tile_e[:used] >= 0).all())


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("variant", ["bf16", "fp8"])
def test_moe_layer(target, variant, moes):
    m, args = moes[variant], MOES[variant]
    x = _tokens(37, 256, seed=23)
    out = moe.moe(x, H.moe_params(m), args, target=target, block_M=16)
    assert out.dtype == BF16 and out.shape == x.shape
    assert H.relerr(out, m(x)) < 1e-2


@pytest.mark.parametrize("target", ["interp", "cpu"])
@pytest.mark.parametrize("scale_fmt", [None, "ue8m0"])
def test_fp8_moe_layer_is_the_padded_kernels_bit_for_bit(target, scale_fmt, moes):
    """The FP8 layer as one kernel (x and H quantized in launches of their own, 128-deep scaled slabs,
    ragged 16-row tiles, the shared expert as segments) gives exactly the padded kernels' output."""
    from dataclasses import replace
    m, args = moes["fp8"], replace(MOES["fp8"], scale_fmt=scale_fmt)
    p = H.moe_params(m)
    for t in (2, 45):
        x = _tokens(t, 256, seed=27 + t)
        fused = moe.moe(x, p, args, target=target, block_M=16)
        assert torch.equal(fused, moe.moe_padded(x, p, args, target=target, block_M=16))
        if scale_fmt == MOES["fp8"].scale_fmt:   # the reference module quantizes with its own format
            assert H.relerr(fused, m(x)) < 1e-2


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_moe_padded_layout_bf16(target, moes):
    """The padded layout's kernels (the FP8 path) with bf16 weights, as ``moe.moe`` ran them before the
    one-kernel layer: the same layer, the same answer."""
    m, args = moes["bf16"], MOES["bf16"]
    x = _tokens(37, 256, seed=26)
    assert H.relerr(moe.moe_padded(x, H.moe_params(m), args, target=target, block_M=16), m(x)) < 1e-2


@pytest.mark.parametrize("target", ["interp", "cpu"])
@pytest.mark.parametrize("variant", ["bf16", "fp8"])
def test_moe_decode_step(target, variant, moes):
    """Two tokens (a decode step at batch 2): 16-row tiles, most experts empty."""
    m, args = moes[variant], MOES[variant]
    x = _tokens(2, 256, seed=25)
    assert H.relerr(moe.moe(x, H.moe_params(m), args, target=target), m(x)) < 1e-2


def _routed_ref(m, x, w, idx, shared: bool) -> torch.Tensor:
    """``reference.MoE.forward`` after the gate, for a given routing (w, idx)."""
    y = torch.zeros(x.shape, dtype=torch.float32)
    for e in torch.unique(idx).tolist():
        rows, slot = torch.where(idx == e)
        y[rows] += m.experts[e](x[rows]) * w[rows, slot, None]
    return (y + m.shared_experts(x) if shared else y).to(x.dtype)


@pytest.mark.parametrize("target,shared,tiling", [("interp", True, "cpu"), ("cpu", True, "cpu"),
                                                  ("cpu", False, "cpu"), ("ascend", True, "ascend")])
def test_moe_kernel_layout_and_ragged_tiles(target, shared, tiling, moes):
    """The one-kernel bf16 MoE at 16-row tiles and 16-row shared segments, so experts span several
    tiles and the shared expert several segments, with the cpu tiles (ragged row tiles; on interp too)
    or the full tiles of the other targets: the compact layout (Start, Tok, Pos), the expert rows Y and
    the output against the reference for a fixed routing."""
    import tilec
    m, (t, k, e, d, i) = moes["bf16"], (45, 4, 16, 256, 128)
    idx = torch.stack([torch.randperm(e, generator=H.gen(30 + r))[:k] for r in range(t)]).int()
    idx[:20] = torch.tensor([3, 7, 1, 0], dtype=torch.int32)       # one crowded expert set
    w = torch.rand(t, k, generator=H.gen(31)) + 0.1
    x = _tokens(t, d, seed=32)
    tiles = dict(moe.moe_tiles(d, i, tiling, 16), shared_rows=16)
    kern = tilec.compile(moe.moe_kernel(d, i, e, k, shared, (), tuple(sorted(tiles.items()))),
                         out_idx=list(range(9, 15)), target=target, poison_outputs=True)
    p = H.moe_params(m)
    sw = [p["shared"][n] for n in ("w1", "w3", "w2")] if shared else [torch.zeros(1, 1, dtype=BF16)] * 3
    start, tok, pos, h, y, out = kern(x, w, idx, p["w1"], p["w3"], p["w2"], *sw)
    counts = torch.bincount(idx.flatten().long(), minlength=e)
    assert start.tolist() == [0] + torch.cumsum(counts, 0).tolist()
    assert torch.equal(tok[pos.long()], torch.arange(t, dtype=torch.int32)[:, None].expand(t, k))
    for ex in range(e):                                    # expert ex's rows, in token order
        rows = tok[start[ex]:start[ex + 1]]
        assert torch.equal(rows, torch.sort(rows).values) and bool((idx[rows.long()] == ex).any(-1).all())
    if shared:
        assert torch.equal(tok[t * k:], torch.arange(t, dtype=torch.int32))
        assert H.relerr(y[t * k:], m.shared_experts(x)) < 1e-2
    r = int(pos[5, 2])
    assert H.relerr(y[r], m.experts[int(idx[5, 2])](x[5:6])[0]) < 1e-2
    assert H.relerr(out, _routed_ref(m, x, w, idx, shared)) < 1e-2


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("variant", ["bf16", "fp8"])
def test_dense_mlp(target, variant):
    args = MOES[variant]
    m = H.make_mlp(args, 256, 512, seed=4)
    x = _tokens(2 * 19, 256, seed=24).view(2, 19, 256)
    out = moe.mlp(x, **H.mlp_params(m), scale_fmt=args.scale_fmt, target=target)
    assert out.shape == x.shape
    assert H.relerr(out, m(x)) < 1e-2


# --- real DeepSeek-V3.2 per-layer shapes on cpu ---------------------------------------------------

slow = pytest.mark.skipif(not H.slow_allowed(), reason="TILEC_SKIP_SLOW=1 skips the real-shape cases")
V32 = H.V32


@slow
def test_real_act_quant_and_fp8_gemm_wq_a():
    """wq_a: x [64, 7168] -> act_quant (ue8m0) -> fp8_gemm with W [1536, 7168], scale [12, 56]."""
    x = torch.randn(64, 7168, generator=H.gen(40)).to(BF16)
    xq, xs = quant.act_quant(x, 128, "ue8m0", target="cpu")
    xqr, xsr = ref_ops.act_quant(x, 128, "ue8m0")
    assert torch.equal(xs, xsr) and torch.equal(_bits(xq), _bits(xqr))
    w, ws = ref_ops.weight_quant(torch.randn(1536, 7168, generator=H.gen(41)) * 7168 ** -0.5)
    assert H.relerr(quant.fp8_gemm(xq, xs, w, ws, target="cpu"), ref_ops.fp8_gemm(xqr, xsr, w, ws)) < 1e-2


@slow
def test_real_norms_rope_hadamard():
    x = (torch.randn(64, 7168, generator=H.gen(42)) * 3).to(BF16)
    r = torch.randn(64, 7168, generator=H.gen(43)).to(BF16)
    w = 1 + 0.1 * torch.randn(7168, generator=H.gen(44))
    y, res = norms.rms_norm(x, w, residual=r, target="cpu")
    yr, resr = ref_ops.rms_norm(x, w, residual=r)
    assert torch.equal(res, resr) and H.relerr(y, yr) < 1e-2
    f = ref_ops.precompute_freqs_cis(V32)[100:104]                  # YaRN on (16384 > 4096)
    q = torch.randn(2, 4, 128, 192, generator=H.gen(45)).to(BF16)   # MLA q: [nope 128 | pe 64]
    ref = torch.cat([q[..., :128], ref_ops.apply_rotary_emb(q[..., 128:], f, True)], -1)
    assert H.relerr(rope.apply_rotary(q, f, True, rope_off=128, target="cpu"), ref) < 1e-2
    qi = torch.randn(2, 4, 64, 128, generator=H.gen(46)).to(BF16)   # indexer q: [pe 64 | nope 64]
    ref = torch.cat([ref_ops.apply_rotary_emb(qi[..., :64], f, False), qi[..., 64:]], -1)
    out = rope.apply_rotary(qi, f, False, target="cpu")
    assert H.relerr(out, ref) < 1e-2
    assert H.relerr(hadamard.hadamard(out, target="cpu"), ref_ops.rotate_activation(out)) < 1e-2


@slow
def test_real_gate_256_experts():
    """dim 7168, 256 experts in 8 groups, top-4 groups, top-8, route_scale 2.5."""
    from tilec.models.deepseek_v32.reference import Gate
    g = H.init_module(Gate(V32), seed=5)
    x = torch.randn(64, 7168, generator=H.gen(47)).to(BF16)
    w, idx = moe.gate(x, g.weight, g.bias, V32, target="cpu")
    wr, ir = g(x)
    assert torch.equal(idx.long(), ir) and H.relerr(w, wr) < 1e-5


@slow
def test_real_expert_mlp_fp8():
    """One expert (= the shared expert) at real width: dim 7168, inter 2048, FP8 weights."""
    m = H.make_mlp(V32, 7168, 2048, seed=6)
    x = torch.randn(16, 7168, generator=H.gen(48)).to(BF16)
    out = moe.mlp(x, **H.mlp_params(m), scale_fmt="ue8m0", target="cpu")
    assert H.relerr(out, m(x)) < 1e-2


@slow
def test_real_moe_kernel_bf16_slabs():
    """The one-kernel bf16 MoE at V3.2's expert shape (dim 7168, inter 2048; 2 experts, top-2, a shared
    expert): too wide for stationary weights on cpu, so the GEMMs stream 128-deep slabs (``moe_tiles``)."""
    import tilec
    from dataclasses import replace
    args = replace(V32, dtype="bf16", n_routed_experts=2, n_activated_experts=2, n_expert_groups=1,
                   n_limited_groups=1)
    m = H.make_moe(args, seed=5)
    t, d, i = 6, 7168, 2048
    x = _tokens(t, d, seed=49)
    idx = torch.tensor([[0, 1], [1, 0]] * 3, dtype=torch.int32)
    w = torch.rand(t, 2, generator=H.gen(50)) + 0.1
    tiles = moe.moe_tiles(d, i, "cpu")
    assert tiles["block_K"] == 128 and tiles["block_K2"] == 128
    kern = tilec.compile(moe.moe_kernel(d, i, 2, 2, True, (), tuple(sorted(tiles.items()))),
                         out_idx=list(range(9, 15)), target="cpu", poison_outputs=True)
    p = H.moe_params(m)
    out = kern(x, w, idx, p["w1"], p["w3"], p["w2"], *(p["shared"][n] for n in ("w1", "w3", "w2")))[-1]
    assert H.relerr(out, _routed_ref(m, x, w, idx, True)) < 1e-2


# --- cuda: every kernel builds with nvcc (no GPU here) --------------------------------------------

CUDA_KERNELS = {
    "act_quant": lambda: quant.act_quant_kernel(7168, True),
    "act_quant_plain": lambda: quant.act_quant_kernel(256, False),
    "weight_dequant": lambda: quant.weight_dequant_kernel(576, 256),
    "fp8_gemm": lambda: quant.fp8_gemm_kernel(1536, 7168),
    "linear_bf16": lambda: quant.linear_bf16_kernel(576, 256),
    "rms_norm": lambda: norms.rms_norm_kernel(1536, False),
    "rms_norm_residual": lambda: norms.rms_norm_kernel(7168, True),
    "layer_norm": lambda: norms.layer_norm_kernel(128),
    "rope_mla": lambda: rope.rope_kernel(128, 192, 64, 128, True),
    "rope_indexer": lambda: rope.rope_kernel(64, 128, 64, 0, False),
    "hadamard": lambda: hadamard.hadamard_kernel(128),
    "gate": lambda: moe.gate_kernel(7168, 256, 8, 8, 4, 2.5),
    "permute": lambda: moe.permute_kernel(64, 8, 256),
    "moe_up_fp8": lambda: moe.moe_up_kernel(64, 7168, 2048, 4, 12, True),
    "moe_up_bf16": lambda: moe.moe_up_kernel(37, 256, 128, 16, 12, False),
    "moe_down_fp8": lambda: moe.moe_down_kernel(7168, 2048, 4, 12, True),
    "moe_down_bf16": lambda: moe.moe_down_kernel(256, 128, 16, 12, False),
    "combine": lambda: moe.combine_kernel(64, 8, 7168, 12 * 64, True),
    "moe_layer_bf16": lambda: moe.moe_kernel(7168, 2048, 256, 8, True, (8, 4, 2.5),
                                             tuple(sorted(moe.moe_tiles(7168, 2048, "cuda").items()))),
    "moe_routed_bf16": lambda: moe.moe_kernel(256, 128, 16, 4, False, (),
                                              tuple(sorted(moe.moe_tiles(256, 128, "cuda").items()))),
}


@pytest.mark.skipif(not H.have_nvcc(), reason="nvcc is not installed")
@pytest.mark.parametrize("name", sorted(CUDA_KERNELS))
def test_cuda_builds(name):
    exe = H.cuda_build(CUDA_KERNELS[name]())
    assert exe.source and "__global__" in exe.source
