"""Weights in safetensors files with DeepSeek's converted key names (docs/deepseek_kernels.md §5.1).

``save_weights`` writes a model's parameters; ``checkpoint.load_weights`` reads them back into a model
from files, a checkpoint folder or its index (``checkpoint.Checkpoint``), checking every tensor: a missing or
mis-shaped tensor is rejected with its name and file, dtypes are cast to the parameter's (bf16
checkpoint tensors become fp32 ``head``/``weights_proj``), Hugging Face names are mapped to DeepSeek's
first, and tensors the model does not use (the MTP layer, unknown names) are named in one warning.
safetensors never unpickles, so a weights file cannot run code.
"""
from __future__ import annotations

import os
import re
import tempfile

import torch
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


def hf_to_deepseek(name: str, n_layers: int | None = None) -> str | None:
    """Map a Hugging Face tensor name to DeepSeek's; None for layers at or above ``n_layers`` (the MTP
    layers convert.py drops) when it is given."""
    m = re.match(r"(model\.)?layers\.(\d+)\.", name)
    if n_layers is not None and m and int(m.group(2)) >= n_layers:
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
