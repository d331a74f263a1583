"""Random weights for a configuration, in DeepSeek's tensor names and dtypes.

Linear weights are normal with std in_features^-0.5 (so activations keep unit scale through the
layers), quantized per 128x128 tile with ue8m0 scales for ``dtype="fp8"``; norm weights are near one;
the gate bias is small and random so that it changes expert selection (docs/deepseek_kernels.md §6 deviation 1).
"""
from __future__ import annotations

import torch

from . import ref_ops as ops
from .reference import Gate, LayerNorm, Linear, RMSNorm, Transformer


def init_random_weights(model: Transformer, seed: int = 0) -> Transformer:
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    for name, mod in sorted(model.named_modules(), key=lambda kv: kv[0]):
        if isinstance(mod, Linear):
            out_f, in_f = mod.weight.shape
            w = normal((out_f, in_f), in_f ** -0.5)
            if mod.scale is not None:
                q, s = ops.weight_quant(w, 128, "ue8m0")
                mod.weight.copy_(q)
                mod.scale.copy_(s)
            else:
                mod.weight.copy_(w.to(mod.weight.dtype))
        elif isinstance(mod, (RMSNorm, LayerNorm)):
            mod.weight.copy_(1.0 + normal(mod.weight.shape, 0.1))
            if isinstance(mod, LayerNorm):
                mod.bias.copy_(normal(mod.bias.shape, 0.1))
        elif isinstance(mod, Gate):
            mod.weight.copy_(normal(mod.weight.shape, mod.weight.shape[1] ** -0.5).to(mod.weight.dtype))
            mod.bias.copy_(normal(mod.bias.shape, 0.05))
    model.embed.weight.copy_(normal(model.embed.weight.shape, 1.0).to(torch.bfloat16))
    return model
