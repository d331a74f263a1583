"""Autotune config spaces for the DeepSeek kernels whose tiles are a free choice (``tilec.autotune``'s
``configs=``; each is a function of the factory's arguments returning a list of keyword dicts).

Only tiles that leave the kernel's inputs and outputs unchanged are tuned: in the MoE kernels ``block_M``
fixes the padded token layout (R = NT * block_M, chosen by ``moe.pick_block_M``), so it is an argument,
not a config; ``block_N`` / ``block_K`` (bf16; FP8 keeps K at its 128-wide scale block and N dividing 128)
are tuned. The Hadamard transform tunes its row tile.

    tuner = AutoTuner.from_kernel(moe.moe_up_kernel, tuning.moe_up_configs).set_kernel_parameters(
        (n_tokens, D, I, E, NT, False)).set_compile_args(out_idx=[-1], target="cpu")
"""
from __future__ import annotations

from typing import Any


def _divides(n: int, tiles: tuple[int, ...]) -> list[int]:
    return [t for t in tiles if n % t == 0] or [min(tiles)]


def moe_up_configs(n_tokens: int, D: int, I: int, E: int, NT: int, fp8: bool, **_: Any) -> list[dict]:  # noqa: E741
    ns = [b for b in _divides(I, (32, 64, 128)) if not fp8 or 128 % b == 0]
    ks = [128] if fp8 else _divides(D, (32, 64, 128))
    return [dict(block_N=n, block_K=k) for n in ns for k in ks]


def moe_down_configs(D: int, I: int, E: int, NT: int, fp8: bool, **_: Any) -> list[dict]:  # noqa: E741
    ns = [b for b in _divides(D, (32, 64, 128)) if not fp8 or 128 % b == 0]
    ks = [128] if fp8 else _divides(I, (32, 64, 128))
    return [dict(block_N=n, block_K=k) for n in ns for k in ks]


def hadamard_configs(n: int = 128, **_: Any) -> list[dict]:
    return [dict(block_M=m) for m in (16, 32, 64, 128)]


SPACES = {"moe_up_kernel": moe_up_configs, "moe_down_kernel": moe_down_configs,
          "hadamard_kernel": hadamard_configs}
