"""DeepSeek-V3.2 attention kernels (issue 7) against their PyTorch oracles on every target.

Lightning-indexer logits, the DSL top-k selector, sparse MLA prefill, sparse and dense MLA decode:
each at tiny-config widths (docs/deepseek_kernels.md §6: H=4, top-k 16, 128 latent + 16 rope = 144) on
interp, cpu and ascend, once at a real V3.2 shape on cpu, and built for cuda (nvcc, no GPU).
Outputs are NaN-poisoned before each run; errors are ||out-ref||/||ref|| with the non-finite pattern
(-inf masks, +inf lse) required to match exactly.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from attention_helpers import (causal_mask, cuda_build, dense_decode_ref, have_nvcc,  # noqa: E402
                               indexer_inputs, random_indices, relerr, run_kernel, same_index_sets,
                               sparse_mla_ref, topk_lower_index_ref)
from kernel_common import gen  # noqa: E402

from tilec.models.deepseek_v32 import ref_ops  # noqa: E402
from tilec.models.deepseek_v32.config import CONFIG_TINY  # noqa: E402
from tilec.models.deepseek_v32.kernels import fp8_mma_dtype, indexer, mla_decode, sparse_mla, topk  # noqa: E402

from tilec import targets  # noqa: E402

_EMU = targets.get("cuda-emu").available()  # needs isa.h (branch isa)
TARGETS = ["interp", "cpu", "ascend",
           pytest.param("cuda-emu", marks=pytest.mark.skipif(not _EMU[0], reason=_EMU[1]))]
TINY_SCALE = CONFIG_TINY.softmax_scale
D_QK, D_V = CONFIG_TINY.kv_lora_rank + CONFIG_TINY.qk_rope_head_dim, CONFIG_TINY.kv_lora_rank  # 144, 128


# --- lightning indexer ---------------------------------------------------------------------------------

INDEXER_CASES = {                       # (b, m, n, h, d, causal_offset)
    "plain_ragged": (2, 19, 23, 4, 128, None),
    "causal_prefill": (2, 40, 40, 4, 128, 0),
    "causal_offset": (1, 5, 150, 4, 128, 140),   # later chunk: queries sit at positions 140..144
}


def indexer_case(name: str, target: str):
    b, m, n, h, d, off = INDEXER_CASES[name]
    q, w, k, ks = indexer_inputs(b, m, n, h, d, gen())
    ref = ref_ops.fp8_index(q, w, k, ks)
    if off is not None:
        ref = ref + causal_mask(m, n, off)
    mma = fp8_mma_dtype(target)      # what the wrapper picks: bf16 on ascend, FP8 on cuda and cuda-emu
    out = run_kernel(indexer.fp8_index_kernel, (h, d, off, None, 128, "float8_e4m3", mma), [4],
                     target, q, w, k, ks)
    return out, ref


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", sorted(INDEXER_CASES))
def test_indexer_logits(case, target):
    out, ref = indexer_case(case, target)
    assert out.dtype == torch.float32
    assert relerr(out, ref) < 1e-6


def test_indexer_wrapper_and_fp8_mma_equal_widened():
    """The wrapper (fp8 GEMM) and the widened variant (bf16 GEMM, for Ascend) agree up to summation order."""
    q, w, k, ks = indexer_inputs(1, 9, 130, 4, 128, gen(3))
    a = indexer.fp8_index(q, w, k, ks, causal_offset=121)   # target "auto": cpu without a GPU
    b = run_kernel(indexer.fp8_index_kernel, (4, 128, 121, None, 128, "float8_e4m3", "bfloat16"),
                   [4], "cpu", q, w, k, ks)
    assert torch.equal(torch.isinf(a), torch.isinf(b)) and relerr(b, a) < 1e-6
    assert relerr(a, ref_ops.fp8_index(q, w, k, ks) + causal_mask(9, 130, 121)) < 1e-6


@pytest.mark.slow   # real V3.2 widths: a few seconds; deselect with -m "not slow"
def test_indexer_real_shape_cpu():
    """One V3.2 indexer block width: 64 heads x 128 dims, 512 keys, causal."""
    b, m, n, h, d = 1, 32, 512, 64, 128
    q, w, k, ks = indexer_inputs(b, m, n, h, d, gen(1))
    out = indexer.fp8_index(q, w, k, ks, causal_offset=n - m, target="cpu")
    ref = ref_ops.fp8_index(q, w, k, ks) + causal_mask(m, n, n - m)
    assert relerr(out, ref) < 1e-6


# --- top-k ---------------------------------------------------------------------------------------------

def topk_scores(rows: int, n: int, seed: int = 0) -> torch.Tensor:
    """Distinct random scores (no ties), with a row partly -inf, a row wholly -inf and a causal row."""
    x = torch.randn(rows, n, generator=gen(seed))
    x[0, 5:] = float("-inf")
    x[1, :] = float("-inf")
    x[2, ::3] = float("-inf")
    return x


@pytest.mark.parametrize("target", TARGETS)
def test_topk_matches_torch_topk(target):
    rows, n, k = 7, 45, 16
    x = topk_scores(rows, n)
    out = run_kernel(topk.topk_kernel, (k, 64, 1, "float32"), [1], target, x)
    ref = ref_ops.topk_indices(x, k)
    assert out.dtype == torch.int32
    assert same_index_sets(out, ref)
    assert out[0].tolist() == [0, 1, 2, 3, 4] + [-1] * 11     # valid first, increasing, then -1
    assert out[1].tolist() == [-1] * k


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_topk_rows_per_block_and_k_above_n(target):
    """4 rows per block (a ragged last block); rows of 10 < k = 16 positions; one kernel (capacity 64)
    for several row lengths, the full capacity included."""
    x = topk_scores(6, 10, seed=2)
    out = run_kernel(topk.topk_kernel, (16, 64, 4, "float32"), [1], target, x)
    ref = torch.where(torch.isneginf(x), -1, torch.arange(10)).sort(-1, descending=True).values
    ref = torch.cat([ref, torch.full((6, 6), -1)], dim=1)
    assert same_index_sets(out, ref)
    for n in (1, 33, 64):
        x = topk_scores(5, n, seed=n)
        out = run_kernel(topk.topk_kernel, (16, 64, 4, "float32"), [1], target, x)
        assert same_index_sets(out, topk_lower_index_ref(x, 16))


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_topk_ties_lower_index_wins(target):
    x = torch.tensor([[1.0] * 12, [0.0, -0.0] * 6, [3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 2.0, 5.0, 2.0, 2.0, 2.0, 2.0]])
    out = run_kernel(topk.topk_kernel, (4, 16, 1, "float32"), [1], target, x)
    assert out.tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 7]]
    assert same_index_sets(out, topk_lower_index_ref(x, 4))


def test_topk_wrapper_shapes():
    x = topk_scores(8, 33, seed=4).view(2, 4, 33)
    out = topk.topk_indices(x, 8, target="cpu")
    assert out.shape == (2, 4, 8)
    assert same_index_sets(out, ref_ops.topk_indices(x, 8))


@pytest.mark.slow   # real V3.2 widths: a few seconds; deselect with -m "not slow"
def test_topk_real_k2048_cpu():
    """V3.2's k = 2048 over 8192 positions, one row causal-masked to 3000 valid."""
    x = torch.randn(3, 8192, generator=gen(5))
    x[2, 3000:] = float("-inf")
    out = topk.topk_indices(x, 2048, target="cpu")
    assert same_index_sets(out, ref_ops.topk_indices(x, 2048))


def test_indexer_topk_matches_reference_indexer_selection():
    """Kernel logits + kernel top-k = the reference Indexer's selection, -inf (future) picks as -1.

    ReLU makes exact ties (0.0) common in real logits; where torch.topk breaks them arbitrarily the
    contract is lower position first, so the oracle is a stable sort; rows without a tie at the k-th
    value also match torch.topk itself."""
    s, h, d, k = 40, 4, 128, 16
    q, w, kk, ks = indexer_inputs(1, s, s, h, d, gen(6))
    mask = causal_mask(s, s, 0)
    scores = ref_ops.fp8_index(q, w, kk, ks) + mask
    ref = scores.topk(k, dim=-1).indices
    ref = torch.where(torch.isneginf(scores.gather(-1, ref)), -1, ref)
    logits = indexer.fp8_index(q, w, kk, ks, causal_offset=0, target="cpu")
    assert relerr(logits, scores) < 1e-6
    out = topk.topk_indices(logits, k, target="cpu")
    assert same_index_sets(out, topk_lower_index_ref(logits, k))
    kth = scores.sort(-1, descending=True).values[..., k - 1:k]
    no_tie = ((scores == kth).sum(-1) == 1) | torch.isneginf(kth[..., 0])
    assert no_tie.sum() > s // 2
    assert same_index_sets(out[no_tie], ref[no_tie])


# --- sparse MLA prefill ------------------------------------------------------------------------------

def sparse_inputs(s_q: int, s_kv: int, h: int, topk_: int, seed: int, d_qk: int = D_QK):
    g = gen(seed)
    q = torch.randn(s_q, h, d_qk, generator=g).bfloat16()
    kv = torch.randn(s_kv, d_qk, generator=g).bfloat16()
    idx = random_indices(s_q, topk_, s_kv, g)
    idx[2] = -1                                   # a query with nothing valid: out 0, lse +inf
    idx[3, :] = torch.where(idx[3] >= 0, idx[3], 0)   # a row with all valid
    return q, kv, idx


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("block_I", [8, 64])      # several chunks with a ragged tail / one partial chunk
def test_sparse_mla_prefill(target, block_I):
    s_q, s_kv, h, k = 9, 40, 4, 20
    q, kv, idx = sparse_inputs(s_q, s_kv, h, k, seed=block_I)
    ref_o, ref_l = sparse_mla_ref(q, kv, idx, TINY_SCALE, D_V)
    args = (h, D_QK, D_V, TINY_SCALE, block_I, None, "bfloat16")
    out, lse = run_kernel(sparse_mla.sparse_mla_fwd_kernel, args, [3, 4], target, q[None], kv[None], idx[None])
    assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
    assert relerr(out[0], ref_o) < 1e-2
    assert relerr(lse[0], ref_l) < 1e-5
    assert torch.all(out[0, 2] == 0) and torch.all(torch.isposinf(lse[0, 2]))


def test_sparse_mla_wrapper_head_blocks():
    q, kv, idx = sparse_inputs(6, 50, 8, 16, seed=7)
    out, lse = sparse_mla.sparse_mla_fwd(q, kv[:, None], idx[:, None], TINY_SCALE, D_V, target="cpu",
                                         block_I=16, block_H=4)
    ref_o, ref_l = sparse_mla_ref(q, kv, idx, TINY_SCALE, D_V)
    assert out.shape == (6, 8, D_V) and lse.shape == (6, 8)
    assert relerr(out, ref_o) < 1e-2 and relerr(lse, ref_l) < 1e-5


@pytest.mark.slow   # real V3.2 widths: a few seconds; deselect with -m "not slow"
def test_sparse_mla_real_shape_cpu():
    """One V3.2 sparse-MLA block: H=128, d_qk 576 / d_v 512, top-k 2048, over a 4096-row cache."""
    s_q, s_kv, h, k = 2, 4096, 128, 2048
    g = gen(8)
    q = torch.randn(s_q, h, 576, generator=g).bfloat16()
    kv = torch.randn(s_kv, 576, generator=g).bfloat16()
    idx = random_indices(s_q, k, s_kv, g, invalid_frac=0.1)
    out, lse = sparse_mla.sparse_mla_fwd(q, kv, idx, 0.1352338, 512, target="cpu")
    ref_o, ref_l = sparse_mla_ref(q, kv, idx, 0.1352338, 512)
    assert relerr(out, ref_o) < 1e-2 and relerr(lse, ref_l) < 1e-5


@pytest.mark.slow
def test_real_widths_fit_ascend():
    """At V3.2 widths the wrappers pick tiles that fit the 910B's buffers (16 heads per sparse-MLA
    block, 128 keys per indexer block) and still match the oracles."""
    g = gen(13)
    q = torch.randn(1, 128, 576, generator=g).bfloat16()
    kv = torch.randn(300, 576, generator=g).bfloat16()
    idx = random_indices(1, 128, 300, g)
    out, lse = sparse_mla.sparse_mla_fwd(q, kv, idx, 0.1352338, 512, target="ascend")
    ref_o, ref_l = sparse_mla_ref(q, kv, idx, 0.1352338, 512)
    assert relerr(out, ref_o) < 1e-2 and relerr(lse, ref_l) < 1e-5
    qq, w, kk, ks = indexer_inputs(1, 4, 256, 64, 128, g)
    logits = indexer.fp8_index(qq, w, kk, ks, causal_offset=252, target="ascend")
    assert relerr(logits, ref_ops.fp8_index(qq, w, kk, ks) + causal_mask(4, 256, 252)) < 1e-6


# --- MLA decode ---------------------------------------------------------------------------------------

def decode_inputs(b: int, s_q: int, s_max: int, h: int, seed: int):
    g = gen(seed)
    return torch.randn(b, s_q, h, D_QK, generator=g).bfloat16(), torch.randn(b, s_max, D_QK, generator=g).bfloat16()


@pytest.mark.parametrize("target", TARGETS)
def test_sparse_mla_decode(target):
    b, s_q, s_max, h, k = 2, 2, 50, 4, 16
    q, kv = decode_inputs(b, s_q, s_max, h, seed=9)
    idx = torch.stack([random_indices(s_q, k, s_max, gen(10 + i)) for i in range(b)])
    idx[1, 1] = -1
    refs = [sparse_mla_ref(q[i], kv[i], idx[i], TINY_SCALE, D_V) for i in range(b)]
    ref_o, ref_l = torch.stack([r[0] for r in refs]), torch.stack([r[1].t() for r in refs])
    args = (h, D_QK, D_V, TINY_SCALE, 8, None, "bfloat16")
    out, lse = run_kernel(sparse_mla.sparse_mla_fwd_kernel, args, [3, 4], target, q, kv, idx)
    assert relerr(out, ref_o) < 1e-2 and relerr(lse.transpose(1, 2), ref_l) < 1e-5
    out2, lse2 = mla_decode.sparse_mla_decode(q, kv, idx, TINY_SCALE, D_V, target="cpu", block_I=8)
    assert lse2.shape == (b, h, s_q) and relerr(lse2, ref_l) < 1e-5 and relerr(out2, ref_o) < 1e-2


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("causal", [False, True])
def test_dense_mla_decode(target, causal):
    b, s_q, s_max, h = 3, 2, 50, 4
    q, kv = decode_inputs(b, s_q, s_max, h, seed=11)
    seqlens = torch.tensor([37, 0, 50], dtype=torch.int32)      # an empty cache row: out 0, lse +inf
    ref_o, ref_l = dense_decode_ref(q, kv, seqlens, TINY_SCALE, D_V, causal)
    args = (s_q, h, D_QK, D_V, TINY_SCALE, causal, 16, None, "bfloat16")
    out, lse = run_kernel(mla_decode.dense_mla_decode_kernel, args, [3, 4], target, q, kv, seqlens)
    assert relerr(out, ref_o) < 1e-2 and relerr(lse.transpose(1, 2), ref_l) < 1e-5


def test_absorbed_decode_matches_reference_mla_decode():
    """The sparse decode kernel inside the absorbed step equals reference.MLA._decode (tiny config)."""
    from tilec.models.deepseek_v32.reference import MLA
    a = CONFIG_TINY
    torch.manual_seed(12)
    mla = MLA(a)
    mla.wkv_b.weight.copy_(torch.randn_like(mla.wkv_b.weight, dtype=torch.float32).bfloat16() * 0.1)
    b, end = 2, 70
    mla.kv_cache[:b, :end] = torch.randn(b, end, a.kv_lora_rank).bfloat16()
    mla.pe_cache[:b, :end] = torch.randn(b, end, a.qk_rope_head_dim).bfloat16()
    q_nope = torch.randn(b, 1, a.n_heads, a.qk_nope_head_dim).bfloat16()
    q_pe = torch.randn(b, 1, a.n_heads, a.qk_rope_head_dim).bfloat16()
    top = torch.stack([torch.randperm(end)[:a.index_topk] for _ in range(b)])[:, None]
    ref = mla._decode(q_nope, q_pe, top, b, end)
    out = mla_decode.absorbed_decode(q_nope, q_pe, mla.dequant_wkv_b(), mla.kv_cache, mla.pe_cache, top,
                                     a.softmax_scale, end, a.qk_nope_head_dim, a.v_head_dim, target="cpu")
    assert out.shape == ref.shape and relerr(out, ref) < 1e-2


# --- cuda: every kernel builds -------------------------------------------------------------------------

CUDA_KERNELS = {
    "indexer": lambda: indexer.fp8_index_kernel(4, 128, 0),
    "topk": lambda: topk.topk_kernel(16, 64),
    "sparse_mla": lambda: sparse_mla.sparse_mla_fwd_kernel(4, D_QK, D_V, TINY_SCALE, 8),
    "dense_decode": lambda: mla_decode.dense_mla_decode_kernel(2, 4, D_QK, D_V, TINY_SCALE, True, 16),
}


@pytest.mark.skipif(not have_nvcc(), reason="nvcc is not installed")
@pytest.mark.parametrize("name", sorted(CUDA_KERNELS))
def test_builds_for_cuda(name):
    exe = cuda_build(CUDA_KERNELS[name]())
    assert "__global__" in exe.source and exe.binary
