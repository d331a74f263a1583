"""The ``cpu`` target: Tile IR -> LLVM IR -> native code, run on a thread pool (docs/design.md, decision 5).

``CpuTarget.build(func, options)`` generates LLVM IR (codegen_module.py), optimizes it at O3 with the
vectorizers on for the host CPU (llvm_env.py) and produces native code one of two ways:
- ``aot`` (default when a C compiler exists): object file -> shared library (aot.py), kept in the
  on-disk compile cache (cache.py) and loaded with ctypes; a cached kernel loads without llvmlite.
- ``jit``: the object file (from the on-disk object cache, else compiled and stored there) is added to
  the process's one MCJIT engine; no C compiler needed.
Options: ``cpu_build`` ("aot" | "jit", also ``TILEC_CPU_BUILD``), ``num_threads`` (else
``TILEC_NUM_THREADS``/the machine), ``cpu_bf16dot`` (default on). The returned ``CpuExecutable`` runs
the kernel on numpy arrays in storage dtype (``run(args, dims)``) and carries the LLVM IR as ``source``.
``export_library``/``load_exported`` put several kernels in one shared library (the model library).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Union

from tilec.ir import nodes as n
from tilec.runtime import cache as runtime_cache

from . import cache
from .aot import c_compiler, link_shared
from .runtime import NativeKernel, entry_symbols

_BUILD_KEYS = ("cpu_build",)


def generate_llvm_ir(func: n.Func, options: Optional[dict] = None) -> tuple[str, dict]:
    """LLVM IR text (with the host function attributes patched in) and the kernel metadata.

    ``options["cpu_bf16dot"]`` (default True) lets bfloat16 GEMMs use AVX512-BF16 where the host has it.
    """
    import hashlib

    from . import gemm_bf16, llvm_env
    from .codegen_module import build_module
    host = llvm_env.host()
    tag = hashlib.sha256(cache.ir_text(func).encode()).hexdigest()[:12]
    bf16dot = bool((options or {}).get("cpu_bf16dot", True)) and gemm_bf16.available(host.features, host.vector_floats)
    module, meta = build_module(func, host.vector_floats, tag, bf16dot)
    from .gemm_bf16 import render
    text = llvm_env.patch_function_attributes(render(module), max(128, host.vector_floats * 32))
    return text, meta.to_json()


def assembly(func: n.Func, options: Optional[dict] = None) -> str:
    """Optimized host assembly of ``func`` (for tests and ``get_kernel_source``-style inspection)."""
    from . import llvm_env
    text, _ = generate_llvm_ir(func, options)
    return llvm_env.emit_assembly(llvm_env.optimize(text))


def build_library(func: n.Func, options: Optional[dict] = None) -> tuple[bytes, dict, str]:
    """Ahead-of-time: (shared library bytes, metadata, LLVM IR text)."""
    from . import llvm_env
    text, meta = generate_llvm_ir(func, options)
    obj = llvm_env.emit_object(llvm_env.optimize(text))
    return link_shared(obj), meta, text


def compile_object(func: n.Func, options: Optional[dict] = None, jit: bool = False) -> tuple[bytes, dict]:
    """(object file, kernel metadata) of ``func``, from the on-disk object cache when it has them
    (``$TILEC_CACHE_DIR/cpu-object``, or ``cpu-jit-object`` for ``jit``; same key and integrity rules as the
    library cache). The model library links the position-independent objects into one library; the JIT
    path loads large-code-model objects (``jit=True``, see llvm_env) into its engine."""
    import hashlib
    kind = "cpu-jit-object" if jit else "cpu-object"
    key = cache.make_key(func, kind, {k: v for k, v in (options or {}).items() if k != "num_threads"})
    folder = cache.cache_dir().parent / kind
    obj_path, meta_path = folder / f"{key}.o", folder / f"{key}.json"
    if cache.enabled() and obj_path.is_file() and meta_path.is_file():
        try:
            entry = json.loads(meta_path.read_text())
            data = obj_path.read_bytes()
            if hashlib.sha256(data).hexdigest() == entry["sha256"]:
                runtime_cache.touch([obj_path, meta_path])
                return data, entry["meta"]
        except (OSError, ValueError, KeyError, TypeError):
            pass                                   # a corrupt entry is a miss: rebuild and overwrite
    from . import llvm_env
    text, meta = generate_llvm_ir(func, options)
    obj = llvm_env.emit_object(llvm_env.optimize(text), jit=jit)
    if cache.enabled():
        cache.atomic_write(obj_path, obj)
        cache.atomic_write(meta_path, json.dumps({"sha256": hashlib.sha256(obj).hexdigest(), "meta": meta}).encode())
        runtime_cache.committed([obj_path, meta_path])
    return obj, meta


def export_library(funcs, path, options: Optional[dict] = None) -> dict:
    """Compile one kernel or several into ONE shared library at ``path`` plus ``<path>.json``.

    The manifest maps each kernel name to the metadata ``load_exported`` needs; loading uses ctypes
    only (no llvmlite), which is how a model library built ahead of time is shipped and used.
    """
    from . import llvm_env
    funcs = [funcs] if isinstance(funcs, n.Func) else list(funcs)
    names = [f.name for f in funcs]
    if len(set(names)) != len(names):
        from tilec.errors import TilecError
        raise TilecError(f"cpu target: kernels in one library need distinct names, got {names}")
    objs, metas = [], {}
    for f in funcs:
        text, meta = generate_llvm_ir(f, options)
        objs.append(llvm_env.emit_object(llvm_env.optimize(text)))
        metas[f.name] = meta
    lib = link_shared(objs)
    path = Path(path)
    cache.atomic_write(path, lib)
    manifest = {"library": path.name, "kernels": metas}
    cache.atomic_write(path.with_name(path.name + ".json"), json.dumps(manifest, indent=1).encode())
    return manifest


def load_exported(path, threads: Optional[int] = None) -> dict:
    """Load a library written by ``export_library``: kernel name -> ``CpuExecutable`` (ctypes only)."""
    path = Path(path)
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    return {name: CpuExecutable(load_library(path, meta), "", None, path, threads)
            for name, meta in manifest["kernels"].items()}


class CpuExecutable:
    """A compiled kernel: ``run(args, dims)`` on numpy arrays in storage dtype, outputs written in place."""

    def __init__(self, kernel: NativeKernel, source: Union[str, Callable[[], str]], binary: Optional[bytes],
                 path: Optional[Path], threads: Optional[int]):
        self.kernel = kernel
        self._source = source      # the LLVM IR, or a function that generates it when first asked
        self.binary = binary
        self.library_path = path
        self.threads = threads

    @property
    def source(self) -> str:
        if callable(self._source):
            self._source = self._source()
        return self._source

    def run(self, args: list[Any], dims: dict[str, int]) -> None:
        self.kernel.run(list(args), dims or {}, self.threads)


def load_library(path: Path, meta: dict, lib: Any = None) -> NativeKernel:
    """Load an ahead-of-time kernel library with ctypes only (``lib``: the library, already opened)."""
    import ctypes
    lib = ctypes.CDLL(str(path)) if lib is None else lib
    addrs = {sym: ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value for sym in entry_symbols(meta)}
    return NativeKernel(meta, addrs, keepalive=lib)


class CpuTarget:
    name = "cpu"
    description = "native CPU code through LLVM (llvmlite): vectorized, multi-threaded, JIT or shared library"
    array_kind = "numpy"

    def available(self) -> tuple[bool, str]:
        try:
            import llvmlite.binding  # noqa: F401
        except Exception as e:  # pragma: no cover - depends on the environment
            return False, f"llvmlite is not importable: {e}"
        return True, ""

    # Ahead-of-time interface (the model library links many kernels into one shared library through
    # these, reaching the backend through the target registry only).
    def compile_object(self, func: n.Func, options: Optional[dict] = None) -> tuple[bytes, dict]:
        return compile_object(func, options)

    def link_shared(self, objects: list[bytes]) -> bytes:
        from .aot import link_shared
        return link_shared(objects)

    def load_library(self, path: Path, meta: dict) -> "NativeKernel":
        return load_library(path, meta)

    def build(self, func: n.Func, options: Optional[dict[str, Any]] = None) -> CpuExecutable:
        from tilec.targets import as_func
        func = as_func(func)  # a @T.prim_func result works too
        import os
        options = dict(options or {})
        mode = options.get("cpu_build") or os.environ.get("TILEC_CPU_BUILD") or ("aot" if c_compiler() else "jit")
        threads = options.get("num_threads")
        if mode == "jit":
            return self._build_jit(func, threads, options)
        key_opts = {k: v for k, v in options.items() if k != "num_threads"}
        key = cache.make_key(func, self.name, key_opts)
        if cache.enabled():
            entry: dict = {}

            def find_or_build() -> Path:
                hit = cache.lookup(key)
                if hit is not None:
                    entry["manifest"], path, entry["data"] = hit
                    entry["text"] = cache.read_ir(entry["manifest"])
                    return path
                lib, meta, entry["text"] = build_library(func, options)
                entry["data"] = lib
                entry["manifest"], path = cache.store(key, lib, meta, entry["text"])
                return path

            cdll, path = runtime_cache.open_library(find_or_build)
            return CpuExecutable(load_library(path, entry["manifest"]["meta"], cdll), entry["text"], entry["data"],
                                 path, threads)
        import tempfile                            # no cache: a private temporary library
        lib, meta, text = build_library(func, options)
        fd, tmp = tempfile.mkstemp(suffix=".so", prefix="tilec-")
        os.write(fd, lib)
        os.close(fd)
        path = Path(tmp)
        return CpuExecutable(load_library(path, meta), text, lib, path, threads)

    def _build_jit(self, func: n.Func, threads, options: dict) -> CpuExecutable:
        """In-process: the object file (compiled, or from the object cache) joins the process's engine.
        The LLVM IR is generated only when asked for (``source``), as the AOT path reads it from the cache."""
        from . import llvm_env
        obj, meta = compile_object(func, options, jit=True)
        addrs = llvm_env.jit_add_object(obj, entry_symbols(meta))
        return CpuExecutable(NativeKernel(meta, addrs, keepalive=obj), lambda: generate_llvm_ir(func, options)[0],
                             None, None, threads)
