"""The CUDA backend of tilec: Tile IR -> CUDA C++ (jinja2) -> nvcc shared library -> torch CUDA tensors.

Flow: ``infer`` (fragment layouts) -> ``emit`` with ``tileops``/``gemm``/``pipeline``/``sync`` (kernel
bodies) -> ``codegen`` (templates) -> ``build`` (nvcc, cache) -> ``launcher`` (ctypes). See
docs/backends/cuda.md.
"""
from .target import CudaTarget

__all__ = ["CudaTarget"]
