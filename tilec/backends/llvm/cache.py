"""The on-disk compile cache of the CPU backend (docs/design.md, decision 6).

Location: ``$TILEC_CACHE_DIR/cpu`` (default ``~/.cache/tilec/cpu``). The key is a SHA-256 of the
printed IR (without locations), the target name, the build options, the tilec version, this backend's
codegen version and the host CPU. An entry is a content-addressed shared library ``<key>-<hash>.so``,
its LLVM IR ``<key>.ll`` and a manifest ``<key>.json`` naming the library and its SHA-256; the
manifest is written last, so it is the commit point. Every file is written to a temporary name in
the same directory and ``os.replace``d, so readers see either nothing or a whole file, and concurrent
processes that build the same kernel write identical, independent files. A manifest that does not
parse, or a library whose hash does not match (a truncated write, a corrupt disk), is a miss: the
caller rebuilds and overwrites it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from tilec.runtime import cache as runtime_cache

CODEGEN_VERSION = "15"


def cache_dir() -> Path:
    return runtime_cache.cache_dir("cpu")


def enabled() -> bool:
    return os.environ.get("TILEC_NO_CACHE", "") in ("", "0")


def ir_text(func) -> str:
    try:
        from tilec.ir.printer import print_func
        return print_func(func, locs=False)
    except ImportError:
        return repr(func)


def host_id() -> str:
    """The host CPU as far as code generation cares: model name and flags from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read(8192)
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags", "Features"))]
        return "\n".join(lines[:2])
    except OSError:  # pragma: no cover - not Linux
        import platform
        return platform.processor() + platform.machine()


def make_key(func, target: str, options: dict[str, Any]) -> str:
    from tilec.version import __version__

    from . import gemm_forward
    codegen = CODEGEN_VERSION + ("" if gemm_forward.ENABLED else "-noforward")  # benchmarks compare both
    h = hashlib.sha256()
    for part in (ir_text(func), target, json.dumps(options, sort_keys=True, default=repr),
                 __version__, codegen, host_id()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:40]


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def lookup(key: str) -> Optional[tuple[dict, Path, bytes]]:
    """Return (manifest, library path, library bytes) of a valid entry, or None."""
    d = cache_dir()
    try:
        manifest = json.loads((d / f"{key}.json").read_text())
        lib = d / manifest["library"]
        data = lib.read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        return None
    runtime_cache.touch([d / f"{key}.json", lib, d / f"{key}.ll"])  # a hit: most recently used
    return manifest, lib, data


def store(key: str, library: bytes, meta: dict, llvm_ir: str) -> tuple[dict, Path]:
    d = cache_dir()
    digest = hashlib.sha256(library).hexdigest()
    lib = d / f"{key}-{digest[:16]}.so"
    atomic_write(lib, library)
    atomic_write(d / f"{key}.ll", llvm_ir.encode())
    manifest = {"library": lib.name, "sha256": digest, "meta": meta, "ir": f"{key}.ll"}
    atomic_write(d / f"{key}.json", json.dumps(manifest).encode())
    runtime_cache.committed([lib, d / f"{key}.json", d / f"{key}.ll"])  # trim the cache to TILEC_CACHE_MAX
    return manifest, lib


def read_ir(manifest: dict) -> str:
    try:
        return (cache_dir() / manifest["ir"]).read_text()
    except (OSError, KeyError):
        return ""
