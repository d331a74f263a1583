"""Weights in safetensors files with DeepSeek's converted key names (specs/deepseek_v32.md §5.1).

``save_weights`` writes a model's parameters; ``load_weights`` reads them back into a model, checking
every tensor: a missing, unexpected or mis-shaped tensor is rejected with its name, dtypes are cast to
the parameter's (bf16 checkpoint tensors become fp32 ``head``/``weights_proj``), and Hugging Face names
are mapped to DeepSeek's first. safetensors never unpickles, so a weights file cannot run code.
"""
from __future__ import annotations

import os
import re
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

# Hugging Face path component -> DeepSeek's converted name (convert.py's mapping).
_HF_COMPONENTS = {
    "embed_tokens": "embed", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "q_a_proj": "wq_a", "q_a_layernorm": "q_norm", "q_b_proj": "wq_b", "kv_a_proj_with_mqa": "wkv_a",
    "kv_a_layernorm": "kv_norm", "kv_b_proj": "wkv_b", "o_proj": "wo", "gate_proj": "w1",
    "down_proj": "w2", "up_proj": "w3", "lm_head": "head",
}


class WeightsError(ValueError):
    """A weights file does not fit the model; the message names the tensor."""


def hf_to_deepseek(name: str, n_layers: int) -> str | None:
    """Map a Hugging Face tensor name to DeepSeek's; None for tensors the model drops (MTP layers)."""
    m = re.match(r"(model\.)?layers\.(\d+)\.", name)
    if m and int(m.group(2)) >= n_layers:
        return None
    if name.startswith("model."):
        name = name[len("model."):]
    name = name.replace("self_attn", "attn").replace("mlp", "ffn")
    name = name.replace("weight_scale_inv", "scale").replace("e_score_correction_bias", "bias")
    parts = name.split(".")
    if len(parts) >= 2 and "indexer" not in parts:
        parts[-2] = _HF_COMPONENTS.get(parts[-2], parts[-2])
    return ".".join(parts)


def _expected(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


def save_weights(model: nn.Module, path: str) -> None:
    """Write the model's parameters to ``path`` atomically (a temp file renamed into place)."""
    tensors = {k: v.detach().contiguous() for k, v in _expected(model).items()}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".safetensors.tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "producer": "tilec"})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_weights(model: nn.Module, paths: list[str] | str, n_layers: int | None = None) -> nn.Module:
    """Load safetensors files into ``model`` (strict: every parameter once, each with its shape)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    expected = _expected(model)
    seen: set[str] = set()
    n_layers = n_layers if n_layers is not None else getattr(getattr(model, "args", None), "n_layers", 10**9)
    for path in paths:
        if not os.path.isfile(path):
            raise WeightsError(f"weights file '{path}' does not exist")
        try:
            handle = safe_open(path, framework="pt")
        except Exception as exc:  # safetensors raises several types for a bad header
            raise WeightsError(f"'{path}' is not a readable safetensors file: {exc}") from None
        with handle as f:
            for raw in f.keys():
                name = raw if raw in expected else hf_to_deepseek(raw, n_layers)
                if name is None:
                    continue
                if name not in expected:
                    raise WeightsError(f"{path}: unexpected tensor '{raw}' (not a parameter of this model)")
                if name in seen:
                    raise WeightsError(f"{path}: tensor '{name}' appears twice")
                _copy_into(expected[name], f.get_tensor(raw), name, path)
                seen.add(name)
    missing = sorted(set(expected) - seen)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise WeightsError(f"missing tensor(s) {', '.join(missing[:5])}{more}")
    return model


def _copy_into(param: torch.Tensor, value: torch.Tensor, name: str, path: str) -> None:
    if tuple(value.shape) != tuple(param.shape):
        raise WeightsError(f"{path}: tensor '{name}' has shape {list(value.shape)}, "
                           f"the model expects {list(param.shape)}")
    is_fp8 = param.dtype == torch.float8_e4m3fn
    if is_fp8 != (value.dtype == torch.float8_e4m3fn):
        raise WeightsError(f"{path}: tensor '{name}' is {value.dtype}, the model expects {param.dtype}")
    with torch.no_grad():
        param.copy_(value.to(param.dtype))
