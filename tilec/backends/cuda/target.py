"""The ``cuda`` target plugin (entry point ``tilec.targets``: ``tilec.backends.cuda.target:CudaTarget``).

``build(func, options)`` generates CUDA C++ (codegen.py), compiles it with nvcc into a cached shared
library (build.py) and returns a ``CudaExecutable`` (launcher.py) that runs on torch CUDA tensors.
Building needs only nvcc, so it works on machines without a GPU; ``available()`` says whether kernels
can also run here. Options: ``arch`` ("sm_80", "sm_90", "sm_90a", ...; default: the GPU present, else
sm_90a); ``wgmma`` (bool, sm_90a: eligible gemms use warpgroup MMA instead of mma.sync). The same two
are read from ``pass_configs`` as ``tilec.cuda.arch`` and ``tilec.cuda.wgmma``.
"""
from __future__ import annotations

from typing import Any

from tilec.ir.nodes import Func

from .build import compile_source, default_arch, nvcc_path
from .codegen import generate
from .launcher import CudaExecutable


class CudaTarget:
    name = "cuda"
    description = "CUDA C++ for NVIDIA GPUs: mma.sync tensor cores, cp.async pipelines (nvcc)"
    array_kind = "torch-cuda"

    def available(self) -> tuple[bool, str]:
        try:
            import torch
        except ImportError:
            return False, "torch is not installed"
        if not torch.cuda.is_available():
            return False, "torch.cuda is not available (no GPU, or a CPU-only torch build)"
        try:
            nvcc_path()
        except Exception as e:  # noqa: BLE001 - the reason is reported, not raised
            return False, str(e)
        return True, ""

    def build(self, func: Func, options: dict[str, Any]) -> CudaExecutable:
        from tilec.targets import as_func
        func = as_func(func)  # a @T.prim_func result works too
        options = dict(options or {})
        configs = options.get("pass_configs") or {}
        arch = options.get("arch") or configs.get("tilec.cuda.arch") or default_arch()
        options["wgmma"] = bool(options.get("wgmma") or configs.get("tilec.cuda.wgmma"))
        src = generate(func, arch, options)
        return CudaExecutable(src, lambda: compile_source(src.text, arch, "so"), arch)

    def generate(self, func: Func, arch: str = "") -> str:
        """The CUDA source for ``func`` without compiling it."""
        return generate(func, arch or default_arch()).text
