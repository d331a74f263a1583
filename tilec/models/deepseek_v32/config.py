"""``ModelArgs`` for DeepSeek-V3.2-Exp with DeepSeek's field names, and the named configurations.

``tiny`` keeps every structural feature of the 671B model (MLA with the FP8 latent simulation, the
lightning indexer with top-k sparsity, YaRN RoPE, dense and MoE layers with group-limited routing and
the gate bias) at about five million parameters (specs/deepseek_v32.md §6). ``671b`` is the released
configuration (§1); building it only computes its shapes, it allocates nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelArgs:
    max_batch_size: int = 8
    max_seq_len: int = 4096 * 4
    dtype: str = "bf16"              # "bf16" or "fp8" (FP8 e4m3 weights with 128x128 fp32 scales)
    scale_fmt: str | None = None     # "ue8m0": activation scales rounded up to powers of two
    vocab_size: int = 102400
    dim: int = 2048
    inter_dim: int = 10944
    moe_inter_dim: int = 1408
    n_layers: int = 27
    n_dense_layers: int = 1
    n_heads: int = 16
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    n_activated_experts: int = 6
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: str = "softmax"
    route_scale: float = 1.0
    q_lora_rank: int = 0
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    original_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_factor: float = 40
    beta_fast: int = 32
    beta_slow: int = 1
    mscale: float = 1.0
    index_n_heads: int = 64
    index_head_dim: int = 128
    index_topk: int = 2048

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def softmax_scale(self) -> float:
        """MLA scale: qk_head_dim^-0.5, times mscale^2 when YaRN is on (max_seq_len > original_seq_len)."""
        scale = self.qk_head_dim ** -0.5
        if self.max_seq_len > self.original_seq_len:
            m = 0.1 * self.mscale * math.log(self.rope_factor) + 1.0
            scale = scale * m * m
        return scale

    def n_params(self) -> int:
        """Parameter count of layers, embedding and head (scales of FP8 weights not counted)."""
        d, h = self.dim, self.n_heads
        attn = (d * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * h * self.qk_head_dim
                + d * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
                + self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim)
                + h * self.v_head_dim * d)
        indexer = (self.q_lora_rank * self.index_n_heads * self.index_head_dim + d * self.index_head_dim
                   + 2 * self.index_head_dim + d * self.index_n_heads)
        norms = 2 * d
        dense = 3 * d * self.inter_dim
        expert = 3 * d * self.moe_inter_dim
        moe = (self.n_routed_experts + self.n_shared_experts) * expert + d * self.n_routed_experts \
            + self.n_routed_experts
        layers = self.n_dense_layers * dense + (self.n_layers - self.n_dense_layers) * moe
        layers += self.n_layers * (attn + indexer + norms)
        return layers + 2 * self.vocab_size * d + d


CONFIG_671B = ModelArgs(
    vocab_size=129280, dim=7168, inter_dim=18432, moe_inter_dim=2048, n_layers=61, n_dense_layers=3,
    n_heads=128, n_routed_experts=256, n_shared_experts=1, n_activated_experts=8, n_expert_groups=8,
    n_limited_groups=4, score_func="sigmoid", route_scale=2.5, q_lora_rank=1536, kv_lora_rank=512,
    qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, dtype="fp8", scale_fmt="ue8m0",
    index_n_heads=64, index_head_dim=128, index_topk=2048)

CONFIG_TINY = ModelArgs(
    max_batch_size=2, max_seq_len=256, dtype="bf16", scale_fmt="ue8m0", vocab_size=1024, dim=256,
    inter_dim=512, moe_inter_dim=128, n_layers=3, n_dense_layers=1, n_heads=4, n_routed_experts=16,
    n_shared_experts=1, n_activated_experts=4, n_expert_groups=4, n_limited_groups=2,
    score_func="sigmoid", route_scale=2.5, q_lora_rank=128, kv_lora_rank=128, qk_nope_head_dim=32,
    qk_rope_head_dim=16, v_head_dim=32, original_seq_len=64, rope_theta=10000.0, rope_factor=40,
    beta_fast=32, beta_slow=1, mscale=1.0, index_n_heads=4, index_head_dim=128, index_topk=16)

CONFIGS = {"tiny": CONFIG_TINY, "tiny-fp8": replace(CONFIG_TINY, dtype="fp8"), "671b": CONFIG_671B}


def get_config(name: str) -> ModelArgs:
    if name not in CONFIGS:
        raise ValueError(f"unknown model configuration '{name}' (known: {', '.join(CONFIGS)})")
    return CONFIGS[name]
