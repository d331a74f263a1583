"""The PyTorch reference of DeepSeek-V3.2 against the facts of docs/deepseek_kernels.md."""
import dataclasses

import pytest
import torch

from tilec.models.deepseek_v32 import ref_ops as ops
from tilec.models.deepseek_v32.config import CONFIG_671B, CONFIG_TINY, get_config
from tilec.models.deepseek_v32.init import init_random_weights
from tilec.models.deepseek_v32.reference import Transformer


def test_config_derived_constants():
    assert CONFIG_671B.softmax_scale == pytest.approx(0.1352338, rel=1e-6)
    assert CONFIG_TINY.softmax_scale == pytest.approx(0.2704676, rel=1e-6)
    assert CONFIG_671B.n_params() == pytest.approx(671.9e9, rel=1e-3)
    assert CONFIG_TINY.n_params() == pytest.approx(5.05e6, rel=1e-2)
    with pytest.raises(ValueError, match="unknown model configuration 'huge'"):
        get_config("huge")


def _yarn_freqs(args):
    table = ops.precompute_freqs_cis(args)
    return torch.angle(table[1])  # theta at t=1 equals the per-dimension frequency


def test_yarn_ramp_tiny():
    args = CONFIG_TINY
    d = args.qk_rope_head_dim
    base = 1.0 / (args.rope_theta ** (torch.arange(0, d, 2).float() / d))
    smooth = torch.tensor([1, 2 / 3, 1 / 3, 0, 0, 0, 0, 0])
    expect = base / args.rope_factor * (1 - smooth) + base * smooth
    torch.testing.assert_close(_yarn_freqs(args), expect, rtol=1e-5, atol=1e-7)


def test_yarn_off_when_max_seq_len_small():
    args = dataclasses.replace(CONFIG_TINY, max_seq_len=64)
    d = args.qk_rope_head_dim
    base = 1.0 / (args.rope_theta ** (torch.arange(0, d, 2).float() / d))
    torch.testing.assert_close(_yarn_freqs(args), base, rtol=1e-5, atol=1e-7)
    assert args.softmax_scale == pytest.approx(48 ** -0.5)


def test_rope_layouts_pair_the_right_elements():
    x = torch.randn(1, 1, 1, 8)
    theta = torch.tensor([[0.3, 0.7, 1.1, 1.9]])
    freqs = torch.polar(torch.ones_like(theta), theta)
    c, s = theta.cos()[0], theta.sin()[0]
    y = ops.apply_rotary_emb(x, freqs, interleaved=True)[0, 0, 0]
    xv = x[0, 0, 0]
    torch.testing.assert_close(y[0::2], xv[0::2] * c - xv[1::2] * s)
    torch.testing.assert_close(y[1::2], xv[0::2] * s + xv[1::2] * c)
    y = ops.apply_rotary_emb(x, freqs, interleaved=False)[0, 0, 0]
    torch.testing.assert_close(y[:4], xv[:4] * c - xv[4:] * s)
    torch.testing.assert_close(y[4:], xv[:4] * s + xv[4:] * c)


def test_act_quant_ue8m0_scales_are_powers_of_two():
    x = torch.randn(4, 256) * 3
    y, s = ops.act_quant(x, 128, "ue8m0")
    assert y.dtype == torch.float8_e4m3fn and s.shape == (4, 2)
    assert torch.equal(torch.log2(s), torch.round(torch.log2(s)))
    back = ops.act_dequant(y, s, dtype=torch.float32)
    assert ((back - x).norm() / x.norm()).item() < 0.06


def test_ue8m0_rounding_is_exact_one_ulp_above_a_power_of_two():
    """``2^ceil(log2 s)`` by the kernels' bit rule: torch.log2 of 2^-5 * (1 + 2^-23) is exactly -5.0, so
    the float formula would round that scale down to 2^-5 where the kernels (and exact math) give 2^-4."""
    import math
    above = torch.tensor([2.0 ** -5 * (1 + 2.0 ** -23), 1.0 + 2.0 ** -23], dtype=torch.float32)
    assert ops.pow2_ceil(above).tolist() == [2.0 ** -4, 2.0]
    s = torch.rand(20000, generator=torch.Generator().manual_seed(3)) * 10 + 1e-6
    exact = [2.0 ** math.ceil(math.log2(v)) for v in s.double().tolist()]
    assert ops.pow2_ceil(s).double().tolist() == exact


def test_hadamard_is_orthonormal_and_symmetric():
    h = ops.hadamard_matrix(128)
    assert torch.equal(h, h.t())
    torch.testing.assert_close(h @ h.t() / 128, torch.eye(128))
    assert h[3, 5].item() == (-1) ** bin(3 & 5).count("1")


def test_fp8_gemm_matches_dequantized_matmul():
    a, b = torch.randn(8, 256), torch.randn(200, 256) * 0.1
    aq, as_ = ops.act_quant(a, 128, None)
    bq, bs = ops.weight_quant(b, 128, "ue8m0")
    assert bs.shape == (2, 2)
    ref = ops.act_dequant(aq, as_, dtype=torch.float32) @ ops.weight_dequant(bq, bs).float().t()
    out = ops.fp8_gemm(aq, as_, bq, bs).float()
    assert ((out - ref).norm() / ref.norm()).item() < 1e-2


def test_topk_indices_marks_invalid_with_minus_one():
    scores = torch.tensor([[0.5, float("-inf"), 2.0, float("-inf")]])
    idx = ops.topk_indices(scores, 3)
    assert idx.dtype == torch.int32
    assert idx.tolist() == [[2, 0, -1]]


@pytest.mark.parametrize("config", ["tiny", "tiny-fp8"])
def test_mla_prefill_and_decode_modes_agree(config):
    """Dense attention (top-k >= length): MHA prefill and absorbed MQA decode are the same math."""
    args = dataclasses.replace(get_config(config), index_topk=256)
    attn = init_random_weights(Transformer(args), 0).layers[0].attn
    x = torch.randn(2, 33, args.dim, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    freqs = ops.precompute_freqs_cis(args)
    mask = torch.full((33, 33), float("-inf"), dtype=torch.bfloat16).triu_(1)
    with torch.inference_mode():
        full = attn(x, 0, freqs[:33], mask)[:, -1].float()
        attn(x[:, :32], 0, freqs[:32], mask[:32, :32])
        step = attn(x[:, 32:], 32, freqs[32:33], None)[:, 0].float()
    assert torch.isfinite(full).all()
    assert ((full - step).norm() / full.norm()).item() < 0.02


def test_state_dict_uses_deepseek_names():
    keys = set(Transformer(CONFIG_TINY).state_dict())
    for k in ["embed.weight", "norm.weight", "head.weight", "layers.0.attn.wq_a.weight",
              "layers.0.attn.indexer.k_norm.bias", "layers.0.attn.indexer.weights_proj.weight",
              "layers.0.ffn.w1.weight", "layers.1.ffn.gate.bias", "layers.1.ffn.experts.15.w2.weight",
              "layers.2.ffn.shared_experts.w3.weight"]:
        assert k in keys, k
    fp8_keys = set(Transformer(get_config("tiny-fp8")).state_dict())
    assert "layers.0.attn.wkv_a.scale" in fp8_keys
    assert not any("cache" in k or "freqs" in k for k in fp8_keys)


def test_generate_greedy_with_prompts_of_different_lengths():
    from tilec.models.deepseek_v32.generate import generate
    from tilec.models.deepseek_v32.tokenizer import ByteTokenizer

    args = get_config("tiny")
    model = init_random_weights(Transformer(args), 0)
    tok = ByteTokenizer(args.vocab_size)
    prompts = [tok.encode("hello tilec"), tok.encode("hi")]
    out = generate(model, prompts, max_new_tokens=6, max_seq_len=args.max_seq_len, eos_id=-5)
    assert [len(o) for o in out] == [6, 6]
    # The same prompt alone gives the same greedy tokens (batching does not leak between rows).
    alone = generate(init_random_weights(Transformer(args), 0), prompts[1:], 6, args.max_seq_len, eos_id=-5)
    assert alone[0] == out[1]
    assert tok.decode(tok.encode("héllo", add_bos=True)) == "héllo"
