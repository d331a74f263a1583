"""Shared pieces of the linear / norm / MoE kernel tests (issue 7): inputs, oracles, error norms.

``relerr`` is ||out - ref|| / ||ref|| in float64 and is infinite when ``out`` holds a NaN, so a NaN
never passes. ``poisoned`` makes every kernel the wrappers build NaN-poison its outputs (so an element a
kernel forgot to write shows up). ``make_moe`` builds ``reference.MoE`` with random weights the way
``init.py`` does (FP8 weights quantized per 128x128 tile with ue8m0 scales, a small random gate bias)
and ``moe_params`` stacks its experts into the tensors ``kernels.moe.moe`` takes.
"""
from __future__ import annotations

import os
from dataclasses import replace

import torch
from kernel_common import cuda_build, gen, have_nvcc  # noqa: F401 - re-exported for the tests

from tilec.models.deepseek_v32 import ref_ops
from tilec.models.deepseek_v32.config import CONFIG_671B, CONFIG_TINY
from tilec.models.deepseek_v32.reference import MLP, Gate, Linear, MoE

TINY = CONFIG_TINY
TINY_FP8 = replace(CONFIG_TINY, dtype="fp8")
V32 = CONFIG_671B


def relerr(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    if torch.isnan(out).any() or torch.isnan(ref).any():
        return float("inf")
    return ((out - ref).norm() / ref.norm()).item()


_POISONED: dict = {}


def poisoned(monkeypatch) -> None:
    """Route the kernel wrappers' compile helper through ``tilec.compile(..., poison_outputs=True)``."""
    import tilec
    from tilec.models.deepseek_v32.kernels import hadamard, moe, moe_gate, norms, quant, rope

    def compiled(factory, args, out_idx, target="auto"):
        key = (factory.__module__, factory.__qualname__, args, target)
        if key not in _POISONED:
            _POISONED[key] = tilec.compile(factory(*args), out_idx=out_idx, target=target, poison_outputs=True)
        return _POISONED[key]
    for mod in (quant, norms, rope, hadamard, moe, moe_gate):
        monkeypatch.setattr(mod, "compiled", compiled)


def init_module(mod: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights like ``init.init_random_weights`` for a standalone MoE / MLP / Gate."""
    g = gen(seed)
    for _, m in sorted(mod.named_modules(), key=lambda kv: kv[0]):
        if isinstance(m, Linear):
            out_f, in_f = m.weight.shape
            w = torch.randn(out_f, in_f, generator=g) * in_f ** -0.5
            if m.scale is not None:
                q, s = ref_ops.weight_quant(w, 128, "ue8m0")
                m.weight.copy_(q)
                m.scale.copy_(s)
            else:
                m.weight.copy_(w.to(m.weight.dtype))
        elif isinstance(m, Gate):
            m.weight.copy_((torch.randn(m.weight.shape, generator=g) * m.weight.shape[1] ** -0.5).bfloat16())
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    return mod


def make_moe(args, seed: int = 0) -> MoE:
    return init_module(MoE(args), seed)


def make_mlp(args, dim: int, inter: int, seed: int = 0) -> MLP:
    return init_module(MLP(dim, inter, args), seed)


def _stack(mods, name):
    return torch.stack([getattr(m, name).weight for m in mods]).contiguous()


def _stack_scale(mods, name):
    return torch.stack([getattr(m, name).scale for m in mods]).contiguous()


def mlp_params(m: MLP) -> dict:
    p = {k: getattr(m, k).weight for k in ("w1", "w2", "w3")}
    if m.w1.scale is not None:
        p.update(s1=m.w1.scale, s2=m.w2.scale, s3=m.w3.scale)
    return p


def moe_params(moe: MoE) -> dict:
    ex = list(moe.experts)
    p = dict(gate_w=moe.gate.weight, gate_b=moe.gate.bias, w1=_stack(ex, "w1"), w2=_stack(ex, "w2"),
             w3=_stack(ex, "w3"), shared=mlp_params(moe.shared_experts))
    if ex[0].w1.scale is not None:
        p.update(s1=_stack_scale(ex, "w1"), s2=_stack_scale(ex, "w2"), s3=_stack_scale(ex, "w3"))
    return p


def slow_allowed() -> bool:
    return os.environ.get("TILEC_SKIP_SLOW", "0") != "1"
