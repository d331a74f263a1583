"""The DeepSeek-V3.2 kernel math in plain PyTorch on the CPU (docs/deepseek_kernels.md §3-4).

These are the oracles for the tilec kernels in ``kernels/`` and the building blocks of the reference
model in ``reference.py``. Each function states the rounding points of DeepSeek's inference code:
bf16 after every linear and norm, fp32 inside norms, RoPE, the gate and the indexer scores.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0


def pow2_ceil(s: torch.Tensor) -> torch.Tensor:
    """``2^ceil(log2 s)`` exactly, for positive fp32 ``s``: the kernels' bit rule (exponent, plus one when
    the mantissa is not zero). ``torch.log2`` rounds a value one ulp above a power of two down to the
    power's exact log, so ``exp2(ceil(log2 s))`` would round such a scale down and disagree with it."""
    m, e = torch.frexp(s)                      # s = m * 2^e, m in [0.5, 1)
    return torch.ldexp(torch.ones_like(s), torch.where(m == 0.5, e - 1, e))


def act_quant(x: torch.Tensor, block_size: int = 128, scale_fmt: str | None = None):
    """1x``block_size`` block quantization to e4m3 along the last dim -> (y fp8, s fp32 [..., n/bs])."""
    assert x.size(-1) % block_size == 0, "act_quant: the last dim must be a multiple of the block size"
    xs = x.float().unflatten(-1, (-1, block_size))
    s = xs.abs().amax(-1).clamp_min(1e-4) / FP8_MAX
    if scale_fmt is not None:
        s = pow2_ceil(s)
    y = (xs / s[..., None]).clamp(-FP8_MAX, FP8_MAX).to(FP8).flatten(-2)
    return y, s


def act_dequant(y: torch.Tensor, s: torch.Tensor, block_size: int = 128, dtype=torch.bfloat16):
    ys = y.float().unflatten(-1, (-1, block_size)) * s[..., None]
    return ys.flatten(-2).to(dtype)


def expand_block_scale(scale: torch.Tensor, rows: int, cols: int, block: int = 128) -> torch.Tensor:
    return scale.repeat_interleave(block, 0)[:rows].repeat_interleave(block, 1)[:, :cols]


def weight_dequant(w: torch.Tensor, s: torch.Tensor, block: int = 128) -> torch.Tensor:
    """``W_bf16 = (fp32(W) * s[i//128, j//128]).to(bf16)``."""
    return (w.float() * expand_block_scale(s, *w.shape, block)).to(torch.bfloat16)


def weight_quant(w: torch.Tensor, block: int = 128, scale_fmt: str | None = "ue8m0"):
    """Per 128x128 tile e4m3 quantization of a weight (used to make FP8 test weights)."""
    rows, cols = w.shape
    pr, pc = -rows % block, -cols % block
    wp = F.pad(w.float(), (0, pc, 0, pr)).view((rows + pr) // block, block, (cols + pc) // block, block)
    s = wp.abs().amax(dim=(1, 3)).clamp_min(1e-4) / FP8_MAX
    if scale_fmt is not None:
        s = pow2_ceil(s)
    q = (wp / s[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q.view(rows + pr, cols + pc)[:rows, :cols].contiguous(), s


def fp8_gemm(a, a_s, b, b_s, block: int = 128) -> torch.Tensor:
    """C = A·Bᵀ with per-(row, 128 K) activation scales and 128x128 weight scales, fp32 per K slab."""
    n, k = b.shape
    af = a.float() * a_s.repeat_interleave(block, -1)[..., :k]
    bf = b.float() * expand_block_scale(b_s, n, k, block)
    return (af @ bf.t()).to(torch.bfloat16)


def linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None, scale_fmt) -> torch.Tensor:
    """DeepSeek's ``linear``: bf16 weights use F.linear; FP8 weights quantize x per 1x128 first."""
    if weight.dtype != FP8:
        return F.linear(x, weight)
    xq, xs = act_quant(x, 128, scale_fmt)
    return fp8_gemm(xq, xs, weight, scale)


def rms_norm(x, weight, eps: float = 1e-6, residual=None):
    """RMSNorm in fp32; with ``residual`` the sum is the new residual (stored bf16) and is normalized."""
    xf = x.float() if residual is None else x.float() + residual.float()
    y = (weight * xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return y if residual is None else (y, xf.to(x.dtype))


def layer_norm(x, weight, bias, eps: float = 1e-6):
    return F.layer_norm(x.float(), (x.size(-1),), weight, bias, eps).to(x.dtype)


def precompute_freqs_cis(args) -> torch.Tensor:
    """YaRN-scaled rotary table, complex64 [max_seq_len, rope_dim/2] (§3.3)."""
    dim, base, factor = args.qk_rope_head_dim, args.rope_theta, args.rope_factor
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if args.max_seq_len > args.original_seq_len:
        def corr(rot):
            return dim * math.log(args.original_seq_len / (rot * 2 * math.pi)) / (2 * math.log(base))
        low = max(math.floor(corr(args.beta_fast)), 0)
        high = min(math.ceil(corr(args.beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        smooth = 1 - ramp
        freqs = freqs / factor * (1 - smooth) + freqs * smooth
    t = torch.arange(args.max_seq_len, dtype=torch.float32)
    return torch.polar(torch.ones(args.max_seq_len, dim // 2), torch.outer(t, freqs))


def apply_rotary_emb(x: torch.Tensor, freqs_cis: torch.Tensor, interleaved: bool = True):
    """Rotate x [B, S, H, d] by freqs_cis [S, d/2] in fp32. Interleaved pairs (2i, 2i+1); else (i, i+d/2)."""
    dtype, shape = x.dtype, x.shape
    xf = x.float()
    if not interleaved:
        xf = xf.view(*shape[:-1], 2, -1).transpose(-1, -2).contiguous()
    xc = torch.view_as_complex(xf.reshape(*shape[:-1], -1, 2))
    y = torch.view_as_real(xc * freqs_cis.view(1, xc.size(1), 1, xc.size(-1))).flatten(3)
    if not interleaved:
        y = torch.cat([y[..., 0::2], y[..., 1::2]], dim=-1)
    return y.to(dtype)


def hadamard_matrix(n: int) -> torch.Tensor:
    """Sylvester Hadamard matrix, H[i, j] = (-1)^popcount(i & j)."""
    i = torch.arange(n)
    bits = torch.bitwise_and(i[:, None], i[None, :])
    parity = torch.zeros_like(bits)
    while bool(bits.any()):
        parity ^= bits & 1
        bits = bits >> 1
    return (1 - 2 * parity).float()


def rotate_activation(x: torch.Tensor) -> torch.Tensor:
    """The 128-point Hadamard transform with scale n^-0.5, bf16 in and out."""
    n = x.size(-1)
    return (x.float() @ hadamard_matrix(n) * n ** -0.5).to(x.dtype)


def fp8_index(q, q_s, k, k_s) -> torch.Tensor:
    """Indexer logits: I[b,m,n] = k_s[b,n] * sum_h relu(q[b,m,h]·k[b,n]) * q_s[b,m,h], fp32."""
    logits = torch.einsum("bmhd,bnd->bmhn", q.float(), k.float()).relu()
    return (logits * q_s[..., None]).sum(2) * k_s[:, None, :]


def topk_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k positions of each row, int32, with -1 for entries whose score is -inf (invalid)."""
    vals, idx = scores.topk(k, dim=-1)
    return torch.where(torch.isneginf(vals), torch.full_like(idx, -1), idx).to(torch.int32)


def silu_glu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SwiGLU middle: bf16( silu(fp32 a) * fp32 b )."""
    return (F.silu(a.float()) * b.float()).to(a.dtype)
