"""The DeepSeek-V3.2-Exp model in plain PyTorch on the CPU: the oracle for the compiled model.

It follows DeepSeek's fixed inference code (docs/deepseek_kernels.md, "The model math by section") with the
deviations §6 requires for a CPU run: the gate bias always exists, the CUDA kernels are replaced by
the torch statements of ``ref_ops``, there is no process group. Module and parameter names are
DeepSeek's converted names (§5.1), so ``state_dict()`` keys match a converted checkpoint. On request
``Transformer.forward`` returns logits for every position, not just the last.
"""
from __future__ import annotations

import torch
from torch import nn

from . import ref_ops as ops
from .config import ModelArgs

BF16 = torch.bfloat16


class Linear(nn.Module):
    """A bias-free linear layer; FP8 weights carry a ``scale`` of 128x128 blocks."""

    def __init__(self, in_features: int, out_features: int, dtype: str, scale_fmt=None, fp32=False):
        super().__init__()
        self.scale_fmt = scale_fmt
        wdtype = torch.float32 if fp32 else (ops.FP8 if dtype == "fp8" else BF16)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=wdtype), requires_grad=False)
        if wdtype == ops.FP8:
            shape = (-(-out_features // 128), -(-in_features // 128))
            self.scale = nn.Parameter(torch.empty(shape, dtype=torch.float32), requires_grad=False)
        else:
            self.register_parameter("scale", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.dtype == torch.float32:
            return x.float() @ self.weight.t()
        return ops.linear(x, self.weight, self.scale, self.scale_fmt)


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.float32), requires_grad=False)

    def forward(self, x, residual=None):
        return ops.rms_norm(x, self.weight, 1e-6, residual)


class LayerNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.float32), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(dim, dtype=torch.float32), requires_grad=False)

    def forward(self, x):
        return ops.layer_norm(x, self.weight, self.bias)


class Indexer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.n_heads, self.head_dim, self.rope_dim = args.index_n_heads, args.index_head_dim, args.qk_rope_head_dim
        self.wq_b = Linear(args.q_lora_rank, self.n_heads * self.head_dim, args.dtype, args.scale_fmt)
        self.wk = Linear(args.dim, self.head_dim, args.dtype, args.scale_fmt)
        self.k_norm = LayerNorm(self.head_dim)
        self.weights_proj = Linear(args.dim, self.n_heads, args.dtype, fp32=True)
        b, s = args.max_batch_size, args.max_seq_len
        self.register_buffer("k_cache", torch.zeros(b, s, self.head_dim, dtype=ops.FP8), persistent=False)
        self.register_buffer("k_scale_cache", torch.zeros(b, s, self.head_dim // 128), persistent=False)

    def forward(self, x, qr, start_pos: int, freqs_cis, mask):
        bsz, seqlen, _ = x.shape
        end_pos = start_pos + seqlen
        q = self.wq_b(qr).view(bsz, seqlen, self.n_heads, self.head_dim)
        q_pe, q_nope = q.split([self.rope_dim, self.head_dim - self.rope_dim], dim=-1)
        q = torch.cat([ops.apply_rotary_emb(q_pe, freqs_cis, interleaved=False), q_nope], dim=-1)
        k = self.k_norm(self.wk(x))
        k_pe, k_nope = k.split([self.rope_dim, self.head_dim - self.rope_dim], dim=-1)
        k_pe = ops.apply_rotary_emb(k_pe.unsqueeze(2), freqs_cis, interleaved=False).squeeze(2)
        k = torch.cat([k_pe, k_nope], dim=-1)
        q, k = ops.rotate_activation(q), ops.rotate_activation(k)
        q_fp8, q_scale = ops.act_quant(q, 128, self.args.scale_fmt)
        k_fp8, k_scale = ops.act_quant(k, 128, self.args.scale_fmt)
        self.k_cache[:bsz, start_pos:end_pos] = k_fp8
        self.k_scale_cache[:bsz, start_pos:end_pos] = k_scale
        weights = self.weights_proj(x.float()) * self.n_heads ** -0.5
        weights = weights.unsqueeze(-1) * q_scale * self.head_dim ** -0.5
        scores = ops.fp8_index(q_fp8, weights.squeeze(-1), self.k_cache[:bsz, :end_pos],
                               self.k_scale_cache[:bsz, :end_pos].squeeze(-1))
        if mask is not None:
            scores = scores + mask
        # torch.topk orders ties arbitrarily, and after the ReLU many scores tie at exactly 0: a stable
        # descending sort gives ties to the lower position, the rule the tilec top-k kernel follows.
        k = min(self.args.index_topk, end_pos)
        return torch.sort(scores, dim=-1, descending=True, stable=True)[1][..., :k]


class MLA(nn.Module):
    """Multi-head latent attention with DeepSeek Sparse Attention (the indexer picks the keys)."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        a = self.args = args
        self.n_heads = a.n_heads
        self.wq_a = Linear(a.dim, a.q_lora_rank, a.dtype, a.scale_fmt)
        self.q_norm = RMSNorm(a.q_lora_rank)
        self.wq_b = Linear(a.q_lora_rank, a.n_heads * a.qk_head_dim, a.dtype, a.scale_fmt)
        self.wkv_a = Linear(a.dim, a.kv_lora_rank + a.qk_rope_head_dim, a.dtype, a.scale_fmt)
        self.kv_norm = RMSNorm(a.kv_lora_rank)
        self.wkv_b = Linear(a.kv_lora_rank, a.n_heads * (a.qk_nope_head_dim + a.v_head_dim), a.dtype, a.scale_fmt)
        self.wo = Linear(a.n_heads * a.v_head_dim, a.dim, a.dtype, a.scale_fmt)
        self.indexer = Indexer(a)
        b, s = a.max_batch_size, a.max_seq_len
        self.register_buffer("kv_cache", torch.zeros(b, s, a.kv_lora_rank, dtype=BF16), persistent=False)
        self.register_buffer("pe_cache", torch.zeros(b, s, a.qk_rope_head_dim, dtype=BF16), persistent=False)

    def forward(self, x, start_pos: int, freqs_cis, mask):
        a = self.args
        bsz, seqlen, _ = x.shape
        end_pos = start_pos + seqlen
        qr = self.q_norm(self.wq_a(x))
        q = self.wq_b(qr).view(bsz, seqlen, self.n_heads, a.qk_head_dim)
        q_nope, q_pe = q.split([a.qk_nope_head_dim, a.qk_rope_head_dim], dim=-1)
        q_pe = ops.apply_rotary_emb(q_pe, freqs_cis)
        kv, k_pe = self.wkv_a(x).split([a.kv_lora_rank, a.qk_rope_head_dim], dim=-1)
        kv = self.kv_norm(kv)
        k_pe = ops.apply_rotary_emb(k_pe.unsqueeze(2), freqs_cis)
        kv = ops.act_dequant(*ops.act_quant(kv, 128, a.scale_fmt))   # the FP8 KV-cache simulation
        self.kv_cache[:bsz, start_pos:end_pos] = kv
        self.pe_cache[:bsz, start_pos:end_pos] = k_pe.squeeze(2)
        topk = self.indexer(x, qr, start_pos, freqs_cis, mask)
        if mask is not None:
            o = self._prefill(q_nope, q_pe, kv, k_pe, topk, mask)
        else:
            o = self._decode(q_nope, q_pe, topk, bsz, end_pos)
        return self.wo(o.flatten(2))

    def _prefill(self, q_nope, q_pe, kv, k_pe, topk, mask):
        a = self.args
        bsz, seqlen = q_nope.shape[:2]
        q = torch.cat([q_nope, q_pe], dim=-1)
        kvb = self.wkv_b(kv).view(bsz, seqlen, self.n_heads, a.qk_nope_head_dim + a.v_head_dim)
        k_nope, v = kvb.split([a.qk_nope_head_dim, a.v_head_dim], dim=-1)
        k = torch.cat([k_nope, k_pe.expand(-1, -1, self.n_heads, -1)], dim=-1)
        scores = torch.einsum("bshd,bthd->bsht", q, k) * a.softmax_scale
        index_mask = torch.full((bsz, seqlen, seqlen), float("-inf"), dtype=BF16).scatter_(-1, topk, 0)
        scores = scores + (index_mask + mask).unsqueeze(2)
        return torch.einsum("bsht,bthd->bshd", scores.softmax(dim=-1), v)

    def dequant_wkv_b(self) -> torch.Tensor:
        w = self.wkv_b.weight
        w = ops.weight_dequant(w, self.wkv_b.scale) if w.dtype == ops.FP8 else w
        return w.view(self.n_heads, -1, self.args.kv_lora_rank)

    def _decode(self, q_nope, q_pe, topk, bsz, end_pos):
        a = self.args
        wkv_b = self.dequant_wkv_b()
        q_abs = torch.einsum("bshd,hdc->bshc", q_nope, wkv_b[:, :a.qk_nope_head_dim])
        kv, pe = self.kv_cache[:bsz, :end_pos], self.pe_cache[:bsz, :end_pos]
        scores = (torch.einsum("bshc,btc->bsht", q_abs, kv)
                  + torch.einsum("bshr,btr->bsht", q_pe, pe)) * a.softmax_scale
        index_mask = torch.full((bsz, 1, end_pos), float("-inf"), dtype=BF16).scatter_(-1, topk, 0)
        scores = scores + index_mask.unsqueeze(2)
        o = torch.einsum("bsht,btc->bshc", scores.softmax(dim=-1), kv)
        return torch.einsum("bshc,hdc->bshd", o, wkv_b[:, -a.v_head_dim:])


class MLP(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, inter_dim: int, args: ModelArgs):
        super().__init__()
        self.w1 = Linear(dim, inter_dim, args.dtype, args.scale_fmt)
        self.w2 = Linear(inter_dim, dim, args.dtype, args.scale_fmt)
        self.w3 = Linear(dim, inter_dim, args.dtype, args.scale_fmt)

    def forward(self, x):
        return self.w2(ops.silu_glu(self.w1(x), self.w3(x)))


class Gate(nn.Module):
    """Sigmoid routing with group-limited top-k; the bias selects experts but does not weigh them."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.weight = nn.Parameter(torch.empty(args.n_routed_experts, args.dim, dtype=BF16), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(args.n_routed_experts, dtype=torch.float32), requires_grad=False)

    def forward(self, x):
        a = self.args
        scores = x.float() @ self.weight.float().t()
        scores = scores.sigmoid() if a.score_func == "sigmoid" else scores.softmax(dim=-1)
        original = scores
        scores = scores + self.bias
        if a.n_expert_groups > 1:
            scores = scores.view(x.size(0), a.n_expert_groups, -1)
            group_scores = scores.topk(2, dim=-1)[0].sum(dim=-1)
            keep = group_scores.topk(a.n_limited_groups, dim=-1)[1]
            drop = torch.ones(x.size(0), a.n_expert_groups, dtype=torch.bool).scatter_(1, keep, False)
            scores = scores.masked_fill(drop.unsqueeze(-1), float("-inf")).flatten(1)
        indices = scores.topk(a.n_activated_experts, dim=-1)[1]
        weights = original.gather(1, indices)
        if a.score_func == "sigmoid":
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights * a.route_scale, indices


class MoE(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.gate = Gate(args)
        self.experts = nn.ModuleList(MLP(args.dim, args.moe_inter_dim, args) for _ in range(args.n_routed_experts))
        self.shared_experts = MLP(args.dim, args.n_shared_experts * args.moe_inter_dim, args)

    def forward(self, x):
        shape = x.shape
        x = x.view(-1, self.args.dim)
        weights, indices = self.gate(x)
        y = torch.zeros_like(x, dtype=torch.float32)
        for e in torch.unique(indices).tolist():
            rows, slot = torch.where(indices == e)
            y[rows] += self.experts[e](x[rows]) * weights[rows, slot, None]
        return (y + self.shared_experts(x)).to(x.dtype).view(shape)


class Block(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.attn_norm = RMSNorm(args.dim)
        self.attn = MLA(args)
        self.ffn_norm = RMSNorm(args.dim)
        self.ffn = MLP(args.dim, args.inter_dim, args) if layer_id < args.n_dense_layers else MoE(args)

    def forward(self, x, residual, start_pos, freqs_cis, mask):
        if residual is None:
            x, residual = self.attn_norm(x), x
        else:
            x, residual = self.attn_norm(x, residual)
        x = self.attn(x, start_pos, freqs_cis, mask)
        x, residual = self.ffn_norm(x, residual)
        return self.ffn(x), residual


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.embed = nn.Embedding(args.vocab_size, args.dim, dtype=BF16)
        self.embed.weight.requires_grad_(False)
        self.layers = nn.ModuleList(Block(i, args) for i in range(args.n_layers))
        self.norm = RMSNorm(args.dim)
        self.head = Linear(args.dim, args.vocab_size, args.dtype, fp32=True)
        self.register_buffer("freqs_cis", ops.precompute_freqs_cis(args), persistent=False)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, start_pos: int = 0, all_logits: bool = False):
        """Logits fp32 [B, vocab] for the last position, or [B, S, vocab] with ``all_logits``."""
        seqlen = tokens.size(1)
        freqs_cis = self.freqs_cis[start_pos:start_pos + seqlen]
        mask = torch.full((seqlen, seqlen), float("-inf"), dtype=BF16).triu_(1) if seqlen > 1 else None
        h, residual = self.embed(tokens), None
        for layer in self.layers:
            h, residual = layer(h, residual, start_pos, freqs_cis, mask)
        h, _ = self.norm(h, residual)
        h = h if all_logits else h[:, -1]
        return self.head(h)
