"""g++ driver for the Ascend backend: compiles AscendC C++ against tilec's emulation header, cached.

Every build of the emulation header costs seconds, so outputs are cached by a hash of the source, all
emulation headers, the flags and the compiler version (docs/design.md, decision 6: a corrupt or partial entry
is never trusted; writes go through a temporary file and an atomic rename, so concurrent processes are
safe). Used by the target (shared libraries loaded with ctypes) and by the header's own C++ tests.
"""
from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

from tilec.runtime import cache as runtime_cache

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
BASE_FLAGS = ("-O2", "-std=c++17", "-pthread", "-fPIC")


class CompileError(RuntimeError):
    """g++ rejected a source; the message holds the compiler's diagnostics."""


def cache_dir() -> Path:
    return runtime_cache.cache_dir("ascend")


@lru_cache(maxsize=1)
def _header_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(INCLUDE_DIR.rglob("*.h")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _compiler_version() -> str:
    out = subprocess.run(["g++", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def compile_source(source: str, kind: str = "shared", extra_flags: tuple[str, ...] = (), name: str = "kernel") -> Path:
    """Compile ``source`` (C++ text) into a shared library (kind "shared") or executable ("exe").

    Returns the cached output path. Raises CompileError with g++'s messages on failure.
    """
    flags = BASE_FLAGS + tuple(extra_flags) + (("-shared",) if kind == "shared" else ())
    key = hashlib.sha256("\0".join([source, _header_digest(), " ".join(flags), _compiler_version(), kind]).encode())
    digest = key.hexdigest()[:24]
    suffix = ".so" if kind == "shared" else ".exe"
    out = cache_dir() / f"{name}-{digest}{suffix}"

    def build(tmp: Path) -> None:
        src = tmp / f"{name}.cpp"
        src.write_text(source)
        cmd = ["g++", *flags, "-I", str(INCLUDE_DIR), str(src), "-o", str(tmp / out.name)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CompileError(f"g++ failed ({' '.join(cmd)}):\n{proc.stderr[-6000:]}")

    return runtime_cache.cached_build(out, build)
