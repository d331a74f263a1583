"""The ``cuda-emu`` target plugin (entry point ``tilec.targets``: ``tilec.backends.cuda.emu.target:CudaEmuTarget``).

``build(func, options)`` generates the same CUDA C++ as the ``cuda`` target (codegen.py, emulation flavour:
identical ``__global__`` kernels and helper names, the emulator's prelude and launch), compiles it with
g++ against ``include/tilec_emu`` (build.py, cached) and returns an executable that runs the kernels on
the CPU on numpy arrays in storage dtype (bfloat16 as uint16 bits, float8_e4m3 as uint8 bits), writing
outputs in place. Options: ``arch`` (default sm_80; sm_90a enables ``wgmma``), ``wgmma`` (bool),
``racecheck`` (bool: the shared-memory race and bounds checker, include/tilec_emu/racecheck.h; default
off, on where the environment sets ``TILEC_EMU_RACECHECK=1``); also read from ``pass_configs`` as
``tilec.cuda.arch`` / ``tilec.cuda.wgmma`` / ``tilec.cuda.racecheck``.
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Optional

import numpy as np

from tilec.errors import TilecError
from tilec.ir.nodes import Func
from tilec.targets import as_func

from ..codegen import CudaSource, generate
from .build import INCLUDE_DIR, EmuLibrary, load

DEFAULT_ARCH = "sm_80"
RACECHECK_ENV = "TILEC_EMU_RACECHECK"  # "1": racecheck on unless the options say otherwise


class CudaEmuExecutable:
    """A built cuda-emu kernel: the generated CUDA source and the loaded emulator library."""

    def __init__(self, src: CudaSource, lib: EmuLibrary, arch: str):
        self.src = src
        self.source = src.text
        self.arch = arch
        self.lib = lib
        self.binary: Optional[bytes] = lib.path.read_bytes()  # the shared library (tilec compile -o)

    def get_kernel_source(self) -> str:
        return self.source

    def run(self, args: list[Any], dims: dict[str, int]) -> None:
        params = self.src.params
        if len(args) != len(params):
            raise TilecError(f"cuda-emu: kernel '{self.src.entry}' takes {len(params)} arrays, got {len(args)}")
        arrays = []
        for p, a in zip(params, args):
            if not isinstance(a, np.ndarray):
                raise TilecError(f"cuda-emu: parameter '{p.name}' needs a numpy array, got {type(a).__name__}")
            # the kernels move 16-byte vectors: give them a contiguous, 16-byte aligned copy when needed
            if not a.flags.c_contiguous or (a.size and a.ctypes.data % 16):
                a = _aligned_copy(a)
            arrays.append(a)
        missing = [d for d in self.src.dims if d not in dims]
        if missing:
            raise TilecError(f"cuda-emu: kernel '{self.src.entry}' needs the value of dimension(s) "
                             f"{', '.join(missing)}")
        self.lib.call(self.src.entry, arrays, [int(dims[d]) for d in self.src.dims], [p.name for p in params])
        for a, c in zip(args, arrays):
            if a is not c:
                a[...] = c


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    raw = np.empty(a.nbytes + 64, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64
    out = raw[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


class CudaEmuTarget:
    name = "cuda-emu"
    family = "cuda"   # runs the cuda target's kernels: tile choices key on the family (targets.family)
    description = "the CUDA target's C++ run on the CPU: fibers per thread, exact ldmatrix/mma/cp.async (g++)"
    array_kind = "numpy"
    source_suffix = ".cu"

    def available(self) -> tuple[bool, str]:
        if shutil.which("g++") is None:
            return False, "g++ not found (the CUDA emulator compiles the generated CUDA with g++)"
        if not (INCLUDE_DIR / "tilec_emu" / "isa.h").exists():
            return False, "the emulator's instruction semantics (tilec_emu/isa.h) are not installed"
        return True, ""

    def options(self, options: Optional[dict[str, Any]]) -> dict[str, Any]:
        options = dict(options or {})
        configs = options.get("pass_configs") or {}
        arch = options.get("arch") or configs.get("tilec.cuda.arch") or DEFAULT_ARCH
        wgmma = bool(options.get("wgmma") or configs.get("tilec.cuda.wgmma"))
        if wgmma and arch != "sm_90a":
            raise TilecError(f"cuda-emu: option wgmma needs arch sm_90a (got arch {arch})")
        if "racecheck" in options:
            racecheck = bool(options["racecheck"])
        elif "tilec.cuda.racecheck" in configs:
            racecheck = bool(configs["tilec.cuda.racecheck"])
        else:  # the emulator's tests turn it on for every build (tests/backends/cuda_emu/conftest.py)
            racecheck = os.environ.get(RACECHECK_ENV, "") not in ("", "0")
        return {"arch": arch, "wgmma": wgmma, "racecheck": racecheck}

    def generate(self, func: Func, options: Optional[dict[str, Any]] = None) -> CudaSource:
        """The emulation-flavoured CUDA source for ``func`` (no compilation)."""
        opts = self.options(options)
        return generate(as_func(func), opts["arch"], {"wgmma": opts["wgmma"], "emu": True})

    def build(self, func: Func, options: dict[str, Any]) -> CudaEmuExecutable:
        opts = self.options(options)
        src = self.generate(func, options)
        extra = ("-DTILEC_EMU_RACECHECK=1",) if opts["racecheck"] else ()
        return CudaEmuExecutable(src, load(src.text, opts["arch"], extra), opts["arch"])
