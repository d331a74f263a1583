"""Running a compiled CUDA kernel: ctypes loading, argument checks, launch on the current torch stream.

``CudaExecutable`` is what ``CudaTarget.build`` returns (the ``Executable`` of tilec/targets.py). Its
``run(args, dims)`` takes one torch CUDA tensor per kernel parameter (outputs already allocated), checks
dtype, shape (binding symbolic dims that ``dims`` leaves out), contiguity, 16-byte alignment (the
kernels move 16-byte vectors) and device, then calls the library's ``extern "C"`` launcher with the
device pointers, the dims and ``torch.cuda.current_stream().cuda_stream``. A CUDA error reported by the
launcher becomes a ``TilecError`` carrying CUDA's message.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Callable, Optional

from tilec.errors import TilecError
from tilec.ir import nodes as N
from tilec.runtime import cache as runtime_cache

from .codegen import CudaSource
from .layout import static_int

TORCH_DTYPES = {
    "float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "float8_e4m3": "float8_e4m3fn",
    "float64": "float64", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "bool": "bool",
}


def torch_dtype(dtype: str) -> Any:
    import torch
    return getattr(torch, TORCH_DTYPES[dtype])


class CudaExecutable:
    """A built CUDA kernel: generated source, shared library, and the launcher call."""

    def __init__(self, src: CudaSource, build: Callable[[], Path], arch: str):
        """``build``: finds or builds the cached library (``runtime_cache.open_library``)."""
        self.src = src
        self.source = src.text
        self.arch = arch
        self._build = build
        self.binary: Optional[bytes]
        self.binary, self.library = runtime_cache.read_entry(build)
        self._fn: Any = None

    def get_kernel_source(self) -> str:
        return self.source

    def _function(self) -> Any:
        if self._fn is None:
            lib, self.library = runtime_cache.open_library(self._build)
            fn = getattr(lib, self.src.entry)
            fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_longlong),
                           ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
            fn.restype = ctypes.c_int
            self._lib, self._fn = lib, fn
        return self._fn

    def run(self, args: list[Any], dims: dict[str, int]) -> None:
        import torch
        bound = bind_args(self.src.params, args, dict(dims or {}))
        device = args[0].device if args else torch.device("cuda")
        fn = self._function()
        ptrs = (ctypes.c_void_p * max(1, len(args)))(*[t.data_ptr() for t in args])
        dvals = (ctypes.c_longlong * max(1, len(self.src.dims)))(*[bound[d] for d in self.src.dims])
        err = ctypes.create_string_buffer(1024)
        with torch.cuda.device(device):
            stream = torch.cuda.current_stream(device).cuda_stream
            rc = fn(ptrs, dvals, ctypes.c_void_p(stream), err, len(err))
        if rc != 0:
            raise TilecError(f"cuda: kernel '{self.src.entry}' failed: {err.value.decode(errors='replace')}")


def bind_args(params: tuple[N.Buffer, ...], args: list[Any], dims: dict[str, int],
              require_cuda: bool = True) -> dict[str, int]:
    """Check ``args`` against the parameters; return every symbolic dim's value.

    ``require_cuda=False`` lets the checks run on CPU tensors (tests on machines without a GPU).
    """
    import torch
    if len(args) != len(params):
        raise TilecError(f"cuda: the kernel takes {len(params)} tensors, got {len(args)}")
    device = None
    for p, t in zip(params, args):
        if not isinstance(t, torch.Tensor) or (require_cuda and not t.is_cuda):
            raise TilecError(f"cuda: parameter '{p.name}' needs a torch CUDA tensor, got "
                             f"{type(t).__name__}{'' if not isinstance(t, torch.Tensor) else ' on ' + str(t.device)}")
        device = device or t.device
        if t.device != device:
            raise TilecError(f"cuda: parameter '{p.name}' is on {t.device}, the others on {device}")
        want = torch_dtype(p.dtype)
        if t.dtype != want:
            raise TilecError(f"cuda: parameter '{p.name}' needs dtype {want}, got {t.dtype}")
        if t.dim() != len(p.shape):
            raise TilecError(f"cuda: parameter '{p.name}' needs {len(p.shape)} dims, got shape {tuple(t.shape)}")
        for d, (e, n) in enumerate(zip(p.shape, t.shape)):
            _bind_dim(p, d, e, int(n), dims)
        if not t.is_contiguous():
            raise TilecError(f"cuda: parameter '{p.name}' must be contiguous (call .contiguous())")
        if t.numel() and t.data_ptr() % 16:
            raise TilecError(f"cuda: parameter '{p.name}' must be 16-byte aligned (a view at an offset? "
                             "pass a .clone())")
    for name, value in dims.items():
        if not 0 <= value < 2**31:
            raise TilecError(f"cuda: dimension {name}={value} does not fit in int32")
    return dims


def _bind_dim(p: N.Buffer, d: int, e: N.Expr, n: int, dims: dict[str, int]) -> None:
    fixed = static_int(e)
    if fixed is not None:
        if fixed != n:
            raise TilecError(f"cuda: parameter '{p.name}' dim {d} must be {fixed}, got {n}")
        return
    if isinstance(e, N.Var):
        if e.name in dims and dims[e.name] != n:
            raise TilecError(f"cuda: parameter '{p.name}' dim {d} is {n} but {e.name}={dims[e.name]}")
        dims[e.name] = n
