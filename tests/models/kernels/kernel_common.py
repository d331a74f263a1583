"""Helpers both kernel test modules share: seeded generators and the cuda build check.

The attention tests (``attention_helpers``) and the linear / norm / MoE tests (``lnm_helpers``) each
add their own inputs and oracles on top of these. The cuda checks build kernels with nvcc without a
GPU, so they run wherever nvcc is installed and are skipped elsewhere.
"""
from __future__ import annotations

import torch


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``: every test input is reproducible."""
    return torch.Generator().manual_seed(seed)


def have_nvcc() -> bool:
    try:
        from tilec.backends.cuda.build import nvcc_path
        nvcc_path()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no usable nvcc
        return False


def cuda_build(prim_func):
    """Build for the cuda target without running (nvcc, no GPU needed); returns the executable."""
    from tilec import targets
    return targets.get("cuda").build(prim_func.func, {})
