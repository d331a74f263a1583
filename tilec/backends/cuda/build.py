"""nvcc driver and compile cache of the CUDA backend.

``compile_source(text, arch)`` turns a generated translation unit into a shared library (and, on
request, a cubin or PTX for inspection) with ``nvcc -O3 -gencode=arch=compute_XX,code=sm_XX``. Results
are cached under ``$TILEC_CACHE_DIR/cuda`` (default ``~/.cache/tilec/cuda``) by a hash of the source,
flags and nvcc version; an entry is written to a temporary name and renamed into place, so concurrent
builds never see half a file. An nvcc error is an internal error of tilec (the generated code is
ours): it is reported with the offending generated line and the kernel source line it came from.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from tilec.errors import InternalError, TilecError, source_line
from tilec.runtime import cache as runtime_cache

ARCHES = ("sm_80", "sm_86", "sm_89", "sm_90", "sm_90a")
_LOC_COMMENT = re.compile(r"//\s+(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+)\s")
_NVCC_DIAG = re.compile(r"\.cu\((?P<line>\d+)\): (?P<kind>error|warning)")


def nvcc_path() -> str:
    path = os.environ.get("TILEC_NVCC") or shutil.which("nvcc")
    if not path:
        for cand in ("/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc"):
            if os.path.exists(cand):
                return cand
        raise TilecError("cuda: nvcc was not found (set TILEC_NVCC or put nvcc on PATH)")
    return path


@functools.lru_cache(maxsize=None)
def nvcc_version() -> str:
    out = subprocess.run([nvcc_path(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[-1] if out.stdout else "unknown"


def gencode(arch: str) -> str:
    if arch not in ARCHES:
        raise TilecError(f"cuda: unknown arch '{arch}' (known: {', '.join(ARCHES)})")
    num = arch[3:]
    return f"-gencode=arch=compute_{num},code={arch}"


def default_arch() -> str:
    """The present GPU's architecture (sm_90a on Hopper), else sm_90a."""
    try:
        import torch
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            arch = f"sm_{major}{minor}" + ("a" if (major, minor) == (9, 0) else "")
            if arch in ARCHES:
                return arch
    except Exception:  # a broken CUDA install must not stop codegen
        pass
    return "sm_90a"


def cache_dir() -> Path:
    return runtime_cache.cache_dir("cuda")


def flags(arch: str, kind: str) -> list[str]:
    base = ["-O3", "-std=c++17", gencode(arch), "-lineinfo", "-diag-suppress=177,550"]
    if kind == "so":
        # cudart linked statically: the library needs only the driver, not a matching libcudart
        return base + ["--shared", "-Xcompiler", "-fPIC"]
    if kind == "cubin":
        return base + ["-cubin"]
    return ["-O3", "-std=c++17", f"-arch=compute_{arch[3:]}", "-ptx"]


def compile_source(text: str, arch: str, kind: str = "so") -> Path:
    """Compile ``text`` into a cached ``.so`` (kind "so"), ``.cubin`` or ``.ptx``; return its path."""
    fl = flags(arch, kind)
    key = hashlib.sha256("\0".join([text, kind, *fl, nvcc_version()]).encode()).hexdigest()[:32]
    out = cache_dir() / f"{key}.{kind}"

    def build(tmp: Path) -> None:
        src = tmp / "kernel.cu"
        src.write_text(text)
        target = tmp / out.name
        proc = subprocess.run([nvcc_path(), *fl, "-o", str(target), str(src)], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0 or not target.exists():
            raise InternalError(explain_nvcc_error(proc.stderr + proc.stdout, text), "cuda.nvcc")

    return runtime_cache.cached_build(out, build)


def cuobjdump_path() -> Optional[str]:
    """cuobjdump from $CUOBJDUMP, PATH, the CUDA install, or the nvidia-cuda-cuobjdump wheel; None if absent."""
    cands = [os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump"), "/usr/local/cuda/bin/cuobjdump"]
    try:
        import nvidia
        for base in nvidia.__path__:
            cands += [str(p) for p in sorted(Path(base).glob("cu*/bin/cuobjdump"))]
    except ImportError:
        pass
    return next((c for c in cands if c and os.path.exists(c)), None)


_RESOURCE_FN = re.compile(r"^\s*Function (?P<name>\S+):\s*$")
_RESOURCE_KV = re.compile(r"(?P<key>[A-Z]+(?:\[\d+\])?):(?P<value>\d+)")


def resource_usage(binary: Path) -> dict[str, dict[str, int]]:
    """What ptxas gave each kernel of a cubin or shared library, by function name (demangled to the
    kernel's name): ``REG`` registers per thread, ``STACK`` bytes of per-thread stack (local memory:
    register spills or arrays indexed at run time; 0 in a kernel that keeps everything in registers),
    ``SHARED`` static shared bytes, and cuobjdump's other counters. {} when cuobjdump is absent."""
    tool = cuobjdump_path()
    if tool is None:
        return {}
    out = subprocess.run([tool, "--dump-resource-usage", str(binary)], capture_output=True, text=True, check=False)
    usage: dict[str, dict[str, int]] = {}
    name = None
    for line in out.stdout.splitlines():
        m = _RESOURCE_FN.match(line)
        if m:
            name = _demangled_name(m.group("name"))
            continue
        if name is not None and "REG:" in line:
            usage[name] = {k.group("key"): int(k.group("value")) for k in _RESOURCE_KV.finditer(line)}
            name = None
    return usage


def _demangled_name(symbol: str) -> str:
    """``_Z11main_kernelPK6__half...`` -> ``main_kernel`` (Itanium length-prefixed name); else as is."""
    m = re.match(r"_Z(\d+)", symbol)
    return symbol[m.end():m.end() + int(m.group(1))] if m else symbol


def explain_nvcc_error(log: str, text: str, limit: int = 5) -> str:
    """nvcc's message with, for each error, the generated line and the kernel line it came from."""
    lines = text.splitlines()
    parts = ["nvcc failed on the generated CUDA:"]
    shown = 0
    for raw in log.splitlines():
        m = _NVCC_DIAG.search(raw)
        parts.append("  " + raw.strip())
        if not m or m.group("kind") != "error" or shown >= limit:
            continue
        shown += 1
        n = int(m.group("line"))
        if 0 < n <= len(lines):
            parts.append(f"    generated line {n}: {lines[n - 1].strip()}")
            origin = kernel_origin(lines, n)
            if origin:
                parts.append(f"    from the kernel at {origin}")
    return "\n".join(parts)


def kernel_origin(lines: list[str], n: int) -> Optional[str]:
    """The kernel source location of the statement that generated line ``n`` (1-based)."""
    for i in range(n - 1, -1, -1):
        m = _LOC_COMMENT.search(lines[i] + " ")
        if m:
            from tilec.ir.nodes import Loc
            loc = Loc(m.group("file"), int(m.group("line")), int(m.group("col")))
            src = source_line(loc).strip()
            return f"{loc}" + (f": {src}" if src else "")
    return None
