"""``ModelArgs`` for DeepSeek-V3.2-Exp with DeepSeek's field names, and the named configurations.

``tiny`` keeps every structural feature of the 671B model (MLA with the FP8 latent simulation, the
lightning indexer with top-k sparsity, YaRN RoPE, dense and MoE layers with group-limited routing and
the gate bias) at about five million parameters (docs/deepseek_kernels.md §6). ``671b`` is the released
configuration (§1); building it only computes its shapes, it allocates nothing.

``load_config(spec)`` takes a built-in name, a Hugging Face ``config.json`` (DeepSeek-V3.2 keys:
``hidden_size``, ``num_hidden_layers``, ``rope_scaling``, ``quantization_config``, ...; ``args_from_hf``), a
``ModelArgs`` JSON (DeepSeek's ``config_671B_v3.2.json`` style) or a checkpoint folder holding a config.json,
plus ``max_batch_size`` / ``max_seq_len`` overrides. ``check_buildable(args, target)`` names the first
limit of tilec's kernels a configuration breaks (``ConfigError``).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any


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


class ConfigError(ValueError):
    """A configuration that cannot be read, or that tilec's kernels cannot build; the message names the key."""


def get_config(name: str) -> ModelArgs:
    if name not in CONFIGS:
        raise ConfigError(f"unknown model configuration '{name}' (known: {', '.join(CONFIGS)}, or a config.json)")
    return CONFIGS[name]


def read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"'{path}' does not exist") from None
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None


SIZE_FIELDS = ("max_batch_size", "max_seq_len")     # cache sizes: set at build time, not by the weights


def load_config(spec: str, **overrides: Any) -> ModelArgs:
    """A built-in name, a config.json / ModelArgs JSON file, or a folder holding config.json;
    ``overrides`` (``max_batch_size``, ``max_seq_len``) replace fields."""
    if spec in CONFIGS:
        args = CONFIGS[spec]
    else:
        path = os.path.join(spec, "config.json") if os.path.isdir(spec) else spec
        if not os.path.isfile(path):
            raise ConfigError(f"'{spec}' is neither a configuration name ({', '.join(CONFIGS)}) nor a config.json"
                              + (" (the folder has no config.json)" if os.path.isdir(spec) else ""))
        data = read_json(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        args = args_from_hf(data, path) if "hidden_size" in data else args_from_json(data, path)
    return with_sizes(args, **overrides)


def with_sizes(args: ModelArgs, **overrides: Any) -> ModelArgs:
    bad = [k for k in overrides if k not in SIZE_FIELDS]
    if bad:
        raise ConfigError(f"only {', '.join(SIZE_FIELDS)} can be overridden, not {bad[0]}")
    for k, v in overrides.items():
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(f"{k} must be a positive integer, not {v!r}")
    return replace(args, **{k: v for k, v in overrides.items() if v is not None})


def _typed(value: Any, want: type, key: str, path: str) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{path}: '{key}' must be {want.__name__}, not {value!r}")
    return value


_TYPES = {"int": int, "float": float, "str": str}


def args_from_json(data: dict, path: str = "<json>") -> ModelArgs:
    """``ModelArgs`` from a JSON object of its fields (DeepSeek's inference config files)."""
    known = {f.name: f for f in fields(ModelArgs)}
    kw = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown key '{key}' (neither a Hugging Face config.json, which has "
                              f"'hidden_size', nor ModelArgs, whose fields are {', '.join(known)})")
        if key == "scale_fmt" and value is None:
            kw[key] = None
            continue
        kind = str(known[key].type).replace(" | None", "")
        kw[key] = _typed(value, _TYPES.get(kind, str), key, path)
    return ModelArgs(**kw)


# Hugging Face config.json key -> ModelArgs field (docs/deepseek_kernels.md §1)
_HF_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "dim", "intermediate_size": "inter_dim",
    "moe_intermediate_size": "moe_inter_dim", "num_hidden_layers": "n_layers",
    "first_k_dense_replace": "n_dense_layers",
    "num_attention_heads": "n_heads", "n_routed_experts": "n_routed_experts", "n_shared_experts": "n_shared_experts",
    "num_experts_per_tok": "n_activated_experts", "n_group": "n_expert_groups", "topk_group": "n_limited_groups",
    "scoring_func": "score_func", "routed_scaling_factor": "route_scale", "q_lora_rank": "q_lora_rank",
    "kv_lora_rank": "kv_lora_rank", "qk_nope_head_dim": "qk_nope_head_dim", "qk_rope_head_dim": "qk_rope_head_dim",
    "v_head_dim": "v_head_dim", "rope_theta": "rope_theta", "index_n_heads": "index_n_heads",
    "index_head_dim": "index_head_dim", "index_topk": "index_topk",
}
_HF_OPTIONAL = {"n_shared_experts": 0, "n_group": 1, "topk_group": 1, "rope_theta": 10000.0,
                "first_k_dense_replace": 0, "routed_scaling_factor": 1.0, "scoring_func": "sigmoid"}
# keys whose other values change the model in ways tilec does not implement: key -> accepted values
_HF_FIXED = {"hidden_act": ("silu",), "moe_layer_freq": (1,), "topk_method": ("noaux_tc",),
             "norm_topk_prob": (True,), "tie_word_embeddings": (False,), "attention_bias": (False,)}


def args_from_hf(cfg: dict, path: str = "config.json") -> ModelArgs:
    """``ModelArgs`` from a Hugging Face DeepSeek-V3.2 ``config.json`` (the mapping of docs/deepseek_kernels.md §1).

    ``max_seq_len`` defaults to min(max_position_embeddings, 16384) (DeepSeek's default cache length),
    ``max_batch_size`` to 8; YaRN comes from ``rope_scaling``; FP8 weights from ``quantization_config``."""
    kw: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(ModelArgs)}
    for key, field_name in _HF_KEYS.items():
        if key not in cfg:
            if key in _HF_OPTIONAL:
                kw[field_name] = _HF_OPTIONAL[key]
                continue
            raise ConfigError(f"{path}: no '{key}' (a DeepSeek-V3.2 config.json has it"
                              + ("; DeepSeek-V3 without the lightning indexer is not supported)"
                                 if key.startswith("index_") else ")"))
        value = cfg[key]
        if key == "q_lora_rank" and value is None:
            raise ConfigError(f"{path}: 'q_lora_rank' is null; tilec's model needs the low-rank query (wq_a, wq_b)")
        kw[field_name] = _typed(value, _TYPES.get(str(types[field_name]).replace(" | None", ""), str), key, path)
    for key, accepted in _HF_FIXED.items():
        if key in cfg and cfg[key] not in accepted:
            raise ConfigError(f"{path}: '{key}': {cfg[key]!r} is not supported (tilec implements "
                              f"{' or '.join(map(repr, accepted))})")
    kv_heads = cfg.get("num_key_value_heads", kw["n_heads"])
    if kv_heads != kw["n_heads"]:
        raise ConfigError(f"{path}: 'num_key_value_heads' {kv_heads} differs from 'num_attention_heads' "
                          f"{kw['n_heads']} (MLA has one latent per token, not grouped heads)")
    max_pos = _typed(cfg.get("max_position_embeddings", 4096 * 4), int, "max_position_embeddings", path)
    kw["max_seq_len"] = min(max_pos, ModelArgs.max_seq_len)
    rs = cfg.get("rope_scaling")
    if rs:
        if not isinstance(rs, dict):
            raise ConfigError(f"{path}: 'rope_scaling' must be an object")
        kind = rs.get("type", rs.get("rope_type"))
        if kind != "yarn":
            raise ConfigError(f"{path}: rope_scaling type {kind!r} is not supported (DeepSeek uses 'yarn')")
        m, m_all = rs.get("mscale", 1.0), rs.get("mscale_all_dim", rs.get("mscale", 1.0))
        if m != m_all:
            raise ConfigError(f"{path}: rope_scaling mscale {m} != mscale_all_dim {m_all}: the cos/sin "
                              f"magnitude scaling this implies is not implemented")
        for key, field_name, kind_ in (("factor", "rope_factor", float), ("beta_fast", "beta_fast", int),
                                       ("beta_slow", "beta_slow", int), ("mscale", "mscale", float),
                                       ("original_max_position_embeddings", "original_seq_len", int)):
            if key in rs:
                kw[field_name] = _typed(rs[key], kind_, f"rope_scaling.{key}", path)
    else:   # no YaRN: the original length is the whole window (and a factor of 1 changes nothing)
        kw.update(original_seq_len=max_pos, rope_factor=1.0)
    q = cfg.get("quantization_config")
    if q:
        if q.get("quant_method") != "fp8" or q.get("fmt", "e4m3") != "e4m3" or \
                list(q.get("weight_block_size", [128, 128])) != [128, 128]:
            raise ConfigError(f"{path}: quantization_config {q} is not supported (tilec reads quant_method "
                              f"'fp8', fmt 'e4m3', weight_block_size [128, 128])")
        kw["dtype"], kw["scale_fmt"] = "fp8", q.get("scale_fmt")
        if kw["scale_fmt"] not in (None, "ue8m0"):
            raise ConfigError(f"{path}: quantization_config.scale_fmt {kw['scale_fmt']!r} is not supported")
    else:
        kw["dtype"], kw["scale_fmt"] = "bf16", None
    return ModelArgs(**kw)


def same_model(a: ModelArgs, b: ModelArgs) -> str:
    """'' when a and b are the same model (cache sizes aside), else the first differing fields."""
    diff = [f"{f.name}: {getattr(a, f.name)!r} vs {getattr(b, f.name)!r}" for f in fields(ModelArgs)
            if f.name not in SIZE_FIELDS and getattr(a, f.name) != getattr(b, f.name)]
    return ", ".join(diff[:3])


def check_buildable(a: ModelArgs, target: str = "cpu") -> None:
    """Raise ``ConfigError`` naming the first field whose value tilec's kernels cannot build."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ConfigError(f"configuration does not fit the {target} kernels: {what}")
    need(a.dtype in ("bf16", "fp8"), f"dtype must be 'bf16' or 'fp8', not {a.dtype!r}")
    need(a.scale_fmt in (None, "ue8m0"), f"scale_fmt must be null or 'ue8m0', not {a.scale_fmt!r}")
    need(a.score_func == "sigmoid", f"score_func {a.score_func!r}: the MoE gate kernel implements 'sigmoid'")
    for name in ("dim", "inter_dim", "moe_inter_dim", "n_layers", "n_heads", "n_routed_experts", "n_activated_experts",
                 "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                 "index_n_heads", "index_topk", "vocab_size", "max_batch_size", "max_seq_len"):
        need(getattr(a, name) > 0, f"{name} must be positive, not {getattr(a, name)}")
    need(0 <= a.n_dense_layers <= a.n_layers, f"n_dense_layers {a.n_dense_layers} must be in 0..n_layers")
    need(a.n_shared_experts >= 0, "n_shared_experts must be >= 0")
    need(a.kv_lora_rank % 128 == 0, f"kv_lora_rank {a.kv_lora_rank} must be a multiple of 128 (the FP8 "
                                     f"simulation of the latent quantizes 1x128 blocks)")
    need(a.index_head_dim == 128, f"index_head_dim {a.index_head_dim} must be 128 (one 1x128 FP8 block per "
                                  f"key, and the Hadamard transform)")
    need(a.qk_rope_head_dim % 2 == 0 and a.qk_rope_head_dim <= a.index_head_dim,
         f"qk_rope_head_dim {a.qk_rope_head_dim} must be even and <= index_head_dim")
    need(a.n_routed_experts % a.n_expert_groups == 0,
         f"n_routed_experts {a.n_routed_experts} must be a multiple of n_expert_groups {a.n_expert_groups}")
    per_group = a.n_routed_experts // a.n_expert_groups
    need(a.n_expert_groups == 1 or per_group >= 2, "each expert group needs >= 2 experts (top-2 group score)")
    need(1 <= a.n_limited_groups <= a.n_expert_groups and a.n_limited_groups * per_group >= a.n_activated_experts,
         f"n_limited_groups {a.n_limited_groups} x {per_group} experts per group must hold n_activated_experts "
         f"{a.n_activated_experts}")
    if a.dtype == "fp8":
        ins = {"dim": a.dim, "q_lora_rank": a.q_lora_rank, "n_heads * v_head_dim": a.n_heads * a.v_head_dim,
               "inter_dim": a.inter_dim, "moe_inter_dim": a.moe_inter_dim,
               "n_heads * (qk_nope_head_dim + v_head_dim)": a.n_heads * (a.qk_nope_head_dim + a.v_head_dim)}
        for name, v in ins.items():
            need(v % 128 == 0, f"{name} = {v} must be a multiple of 128 with FP8 weights (1x128 activation "
                               f"and 128x128 weight scale blocks)")
