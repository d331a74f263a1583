"""g++ driver of the cuda-emu target: generated CUDA C++ -> a cached shared library run on the CPU.

``build_library(text, arch, extra_flags=())`` compiles a CUDA translation unit (the output of
``codegen.generate(..., {"emu": True})``, or that text edited -- the seeded-bug tests mutate it) against
the emulation headers in ``include/tilec_emu`` and returns the path of the shared library; ``load(text,
arch, ...)`` also wraps it in an ``EmuLibrary`` whose ``call(entry, arrays, dims)`` runs the launcher.
Outputs are cached under ``$TILEC_CACHE_DIR/cuda-emu`` by a hash of the source, every emulation header,
the flags and the compiler version (tilec/runtime/cache.py writes entries atomically). Every
``include/tilec_emu/*.cpp`` is compiled into each library; the target's ``racecheck`` option adds
``-DTILEC_EMU_RACECHECK=1``. From a fiber, ``tilec_emu::fail(fmt, ...)`` (runtime.h) stops the block with
a message that ``call`` raises as a ``TilecError``.
"""
from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tilec.errors import InternalError, TilecError
from tilec.runtime import cache as runtime_cache

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
BASE_FLAGS = ("-O1", "-std=c++17", "-fPIC", "-shared", "-pthread", "-fno-strict-aliasing", "-fno-gnu-unique", "-w",
              "-x", "c++")
ARCHES = {"sm_80": 800, "sm_86": 860, "sm_89": 890, "sm_90": 900, "sm_90a": 900}


def gxx() -> str:
    path = shutil.which("g++")
    if path is None:
        raise TilecError("cuda-emu: g++ was not found (the CUDA emulator compiles the generated CUDA with g++)")
    return path


@lru_cache(maxsize=1)
def _compiler_version() -> str:
    out = subprocess.run([gxx(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _header_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(INCLUDE_DIR.rglob("*")):
        if p.is_file() and p.suffix in (".h", ".cpp"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def flags(arch: str, extra_flags: Sequence[str] = ()) -> list[str]:
    if arch not in ARCHES:
        raise TilecError(f"cuda-emu: unknown arch '{arch}' (known: {', '.join(ARCHES)})")
    return [*BASE_FLAGS, f"-DTILEC_EMU_ARCH={ARCHES[arch]}", *extra_flags]


def build_library(text: str, arch: str = "sm_80", extra_flags: Sequence[str] = ()) -> Path:
    """Compile a CUDA translation unit for the emulator into a cached shared library; return its path.

    A g++ failure is an ``InternalError`` (the generated code is tilec's) quoting g++'s first errors
    with the generated line each one points at."""
    fl = flags(arch, extra_flags)
    key = hashlib.sha256("\0".join([text, _header_digest(), *fl, _compiler_version()]).encode()).hexdigest()[:32]
    out = runtime_cache.cache_dir("cuda-emu") / f"{key}.so"
    extras = sorted(str(p) for p in INCLUDE_DIR.glob("tilec_emu/*.cpp"))

    def build(tmp: Path) -> None:
        src = tmp / "kernel.cu"
        src.write_text(text)
        cmd = [gxx(), *fl, "-I", str(INCLUDE_DIR), str(src), *(["-x", "c++", *extras] if extras else []),
               "-o", str(tmp / out.name)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise InternalError(_explain(proc.stderr, text), "cuda-emu.g++")

    return runtime_cache.cached_build(out, build)


def _explain(log: str, text: str, limit: int = 5) -> str:
    lines = text.splitlines()
    parts = ["g++ failed on the generated CUDA (cuda-emu):"]
    shown = 0
    for raw in log.splitlines():
        if shown >= limit:
            break
        m = re.search(r"kernel\.cu:(\d+):\d+: error", raw)
        if not m:
            continue
        shown += 1
        parts.append("  " + raw.strip())
        n = int(m.group(1))
        if 0 < n <= len(lines):
            parts.append(f"    generated line {n}: {lines[n - 1].strip()}")
    if shown == 0:
        parts.append(log[-3000:])
    return "\n".join(parts)


_LOC = re.compile(r"//\s+(\S+?\.py:\d+(?::\d+)?)\s")
_HEADER_LOC = re.compile(r"\((\S+?\.py:\d+(?::\d+)?)\)")
_GENERATED_LINE = re.compile(r"generated line (\d+)")


def python_loc(text: str, line: int) -> Optional[str]:
    """The kernel's Python ``file:line:col`` for generated line ``line``: the nearest ``// file:line`` comment
    at or above it inside its ``__global__`` function (the launch's header comment above the function when
    none), or None outside the kernels."""
    lines = text.splitlines()
    found: Optional[str] = None
    for n in range(min(line, len(lines)), 0, -1):
        s = lines[n - 1]
        if s.startswith("__global__"):
            break
        if s.startswith("}") or (s and not s[0].isspace() and not s.startswith("#")):
            return None  # the end of an earlier function, or code outside a kernel
        m = _LOC.search(s + " ")
        if m and found is None:
            found = m.group(1)
    else:
        return None
    if found:
        return found
    for k in range(n - 1, 0, -1):  # the launch's header comment
        if not lines[k - 1].startswith("//"):
            break
        m = _HEADER_LOC.search(lines[k - 1])
        if m:
            return m.group(1)
    return None


def with_locs(message: str, text: Optional[str]) -> str:
    """``message`` with each "generated line N" followed by the kernel's Python location of that line."""
    if not text:
        return message

    def sub(m: re.Match) -> str:
        loc = python_loc(text, int(m.group(1)))
        return f"{m.group(0)} ({loc})" if loc else m.group(0)
    return _GENERATED_LINE.sub(sub, message)


class EmuLibrary:
    """A loaded emulator library: ``call(entry, arrays, dims)`` runs ``tilec_launch_<kernel>``."""

    def __init__(self, build: Callable[[], Path], text: Optional[str] = None):
        """``build``: finds or builds the cached library (``runtime_cache.open_library``); ``text``: its
        generated source, to name the Python line of a generated line in error reports."""
        self._lib, self.path = runtime_cache.open_library(build)
        self._fns: dict[str, Any] = {}
        self.text = text

    def _set_args(self, arrays: list[np.ndarray], names: Optional[Sequence[str]]) -> None:
        """Tell the library which arrays the parameters are (the race checker's global bounds)."""
        fn = self._fns.get("tilec_emu_set_args")
        if fn is None:
            fn = self._lib.tilec_emu_set_args
            fn.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_longlong),
                           ctypes.POINTER(ctypes.c_char_p)]
            fn.restype = None
            self._fns["tilec_emu_set_args"] = fn
        n = len(arrays)
        names = list(names) if names is not None else [f"argument {i}" for i in range(n)]
        ptrs = (ctypes.c_void_p * max(1, n))(*[a.ctypes.data for a in arrays])
        sizes = (ctypes.c_longlong * max(1, n))(*[a.nbytes for a in arrays])
        cnames = (ctypes.c_char_p * max(1, n))(*[str(x).encode() for x in names])
        fn(n, ptrs, sizes, cnames)

    def call(self, entry: str, arrays: list[np.ndarray], dims: Sequence[int],
             names: Optional[Sequence[str]] = None) -> None:
        """Run ``entry`` on ``arrays`` (``names``: the parameters' names, for bounds reports)."""
        self._set_args(arrays, names)
        fn = self._fns.get(entry)
        if fn is None:
            fn = getattr(self._lib, entry)
            fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_longlong), ctypes.c_void_p,
                           ctypes.c_char_p, ctypes.c_int]
            fn.restype = ctypes.c_int
            self._fns[entry] = fn
        ptrs = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
        dvals = (ctypes.c_longlong * max(1, len(dims)))(*[int(d) for d in dims])
        err = ctypes.create_string_buffer(8192)
        rc = fn(ptrs, dvals, None, err, len(err))
        if rc != 0:
            raise TilecError(f"cuda-emu: {with_locs(err.value.decode(errors='replace'), self.text)}")


def load(text: str, arch: str = "sm_80", extra_flags: Sequence[str] = ()) -> EmuLibrary:
    """``build_library`` and load the result."""
    return EmuLibrary(lambda: build_library(text, arch, extra_flags), text)
