"""tilec: a tile-level kernel language (TileLang dialect) and its compiler.

The package root is the user's entry point and mirrors TileLang's, so ``import tilec as tilelang`` works:
``tilec.compile(prim_func, out_idx=..., target=...)`` builds a kernel for a target and returns a callable
``JITKernel``; ``@tilec.jit(...)`` does the same for a kernel factory, memoized on its arguments;
``tilec.language`` is the ``T`` namespace kernels are written in. The heavy pieces (frontend, targets,
torch) load on first use, so ``import tilec`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import InternalError, TilecError
from .runtime import JITKernel, compile, jit  # noqa: A004
from .version import __version__

__all__ = ["__version__", "compile", "jit", "JITKernel", "language", "TilecError", "InternalError", "autotune",
           "autotuner", "TensorSupplyType"]


def __getattr__(name: str) -> Any:
    # `tilec.language` is imported on first access: it pulls in the frontend.
    if name == "autotune":
        from .autotuner import autotune
        return autotune
    if name == "TensorSupplyType":
        from .profiler import TensorSupplyType
        return TensorSupplyType
    if name in ("language", "autotuner", "profiler"):
        module = importlib.import_module("." + name, __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tilec' has no attribute '{name}'")
