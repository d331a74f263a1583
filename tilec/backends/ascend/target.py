"""The "ascend" target: Tile IR -> AscendC C++ (codegen.py) -> g++ against the emulation -> ctypes call.

``AscendTarget.build(func, options)`` returns an ``AscendExecutable`` whose ``source`` is the generated
.cpp and whose ``run(args, dims)`` executes it through the emulated NPU on numpy arrays in storage dtype
(bfloat16 as uint16 bits, float8_e4m3 as uint8 bits), writing outputs in place. A hardware-rule
violation inside the kernel is raised as a TilecError carrying the emulation's "rule N (...)" message.
"""
from __future__ import annotations

import ctypes
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from tilec.errors import TilecError
from tilec.ir.nodes import Func
from tilec.runtime import cache as runtime_cache

from .build import CompileError, compile_source
from .codegen import generate, symbolic_dims


class AscendExecutable:
    def __init__(self, func: Func, source: str, build: Callable[[], Path]):
        """``build``: finds or builds the cached library (``runtime_cache.open_library``)."""
        self.func = func
        self.source = source
        self.binary: Optional[bytes] = None
        self._lib, path = runtime_cache.open_library(build)
        self.lib_path = str(path)
        self._fn = self._lib.tilec_launch
        self._fn.restype = ctypes.c_int
        self._dims = symbolic_dims(func)

    def run(self, args: list[Any], dims: dict[str, int]) -> None:
        if len(args) != len(self.func.params):
            raise TilecError(f"ascend: kernel '{self.func.name}' takes {len(self.func.params)} arguments, "
                             f"got {len(args)}")
        arrays = [np.ascontiguousarray(a) for a in args]
        n = max(len(arrays), 1)
        ptrs = (ctypes.c_void_p * n)(*[a.ctypes.data for a in arrays])
        sizes = (ctypes.c_int64 * n)(*[a.nbytes for a in arrays])
        dvals = (ctypes.c_int32 * max(len(self._dims), 1))(*[int(dims[d]) for d in self._dims])
        err = ctypes.create_string_buffer(4096)
        rc = self._fn(ptrs, sizes, dvals, err, len(err))
        if rc != 0:
            raise TilecError(f"ascend emulation stopped kernel '{self.func.name}': "
                             f"{err.value.decode(errors='replace')}")
        for a, c in zip(args, arrays):
            if a is not c:
                a[...] = c


class AscendTarget:
    name = "ascend"
    description = "AscendC C++ for Ascend 910B, run on the CPU against tilec's AscendC emulation (g++)"
    array_kind = "numpy"

    def available(self) -> tuple[bool, str]:
        if shutil.which("g++") is None:
            return False, "g++ not found (the Ascend emulation compiles generated AscendC with g++ >= 12)"
        return True, ""

    def build(self, func: Func, options: dict[str, Any]) -> AscendExecutable:
        from tilec.targets import as_func
        func = as_func(func)  # a @T.prim_func result works too
        source = generate(func)
        flags = tuple(options.get("ascend_cxxflags", ())) if options else ()

        def compile_library() -> Path:
            try:
                return compile_source(source, kind="shared", extra_flags=flags, name=func.name)
            except CompileError as e:
                raise TilecError(f"ascend target: the generated AscendC for '{func.name}' did not compile:\n{e}") from e

        return AscendExecutable(func, source, compile_library)
