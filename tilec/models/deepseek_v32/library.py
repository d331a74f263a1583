"""The ahead-of-time model library: every kernel of a configuration in one shared library.

``kernel_specs(args)`` lists the kernels a ``ModelArgs`` needs (``specs.py`` names each one: factory,
arguments, outputs). Token counts, batch and cache lengths are symbolic (``T.dynamic``), so one build
serves prefill and decode at any batch and length; what stays compile-time is the model's widths.

``build_library(args, target, out_dir)`` compiles each kernel to an object file (LLVM, the cpu
target's code generator), links them all into ``libmodel.so`` (the cpu target's ``link_shared``) and
writes ``manifest.json``: kernel names, factories and arguments, signatures (dtypes, shapes with symbol
names), launch symbols, the target, the tilec version and sha256 hashes of the library and of every
kernel's IR. The folder is written whole or not at all (``tilec.runtime.artifacts.staged_output_dir``).

``load_library(dir)`` opens the library with ctypes and returns ``Library``, whose kernels are callables
on torch CPU tensors. Loading and calling import neither llvmlite nor the frontend or passes: only the
manifest, ctypes and the cpu backend's ctypes side (the cpu target's ``load_library``, found through
``tilec.targets``, and ``runtime.NativeKernel``, which runs the launches on the backend's thread pool).
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from tilec import targets as target_registry
from tilec.runtime.args import torch_dtype

from .config import ModelArgs
from .specs import KernelSpec, kernel_specs

FORMAT = "tilec-model-library"
FORMAT_VERSION = 1
LIB_NAME = "libmodel.so"
LAYOUT_MEMO = 4096   # checked shape bindings kept per kernel (decode adds one per cache length)


class LibraryError(RuntimeError):
    """A model library that is missing, corrupt, or does not hold a kernel the model asks for."""


# --- build -------------------------------------------------------------------------------------------

def _shape_entry(e: Any) -> Any:
    from tilec.ir import nodes
    from tilec.runtime.args import shape_text
    if isinstance(e, nodes.Const):
        return int(e.value)
    if isinstance(e, nodes.Var):
        return e.name
    return {"expr": shape_text([e])[1:-1]}


def _kernel_entry(spec: KernelSpec, options: dict) -> tuple[dict, bytes]:
    """Compile one spec: (its manifest entry, its object file)."""
    from tilec.ir.printer import print_func
    from tilec.runtime.kernel import run_tile_passes, verify
    func = build_spec(spec).func
    verify(func)
    func = run_tile_passes(func, options, "cpu")     # what tilec.compile would build for the cpu target
    obj, meta = target_registry.get("cpu").compile_object(func, options)
    ir = print_func(func, locs=False)
    entry = {**spec.to_json(), "kernel": func.name, "ir_sha256": hashlib.sha256(ir.encode()).hexdigest(),
             "params": [{"name": p.name, "dtype": p.dtype, "shape": [_shape_entry(e) for e in p.shape]}
                        for p in func.params],
             "meta": meta}
    return entry, obj


def build_spec(spec: KernelSpec) -> Any:
    """``spec.build()``, with a kernel factory's size assertion reported as a ``LibraryError`` naming
    the kernel and its arguments (``config.check_buildable`` catches the known limits first)."""
    try:
        return spec.build()
    except AssertionError as e:
        raise LibraryError(f"kernel {spec.name} ({spec.factory}{tuple(spec.args)}) does not fit this "
                           f"configuration: {e or 'a size assertion failed'}") from None


def build_library(args: ModelArgs, target: str, out_dir: str, config_name: str = "",
                  progress: Optional[Callable[[str], None]] = None, world: int = 1) -> dict:
    """Compile every kernel of ``args`` for ``target`` into ``out_dir`` (see the module docstring).

    ``progress(name)`` is called after each kernel is compiled. ``world``: the kernels of one rank of a
    tensor/expert-parallel run over that many processes (``parallel.py``; every rank loads the same
    library). Returns the manifest.
    """
    import tilec
    from tilec.runtime.artifacts import staged_output_dir
    from .config import check_buildable
    if target not in ("cpu", "auto"):
        raise LibraryError(f"model libraries are built for the cpu target (a shared library); got '{target}'")
    check_buildable(args, "cpu")
    from .parallel import check_parallel
    check_parallel(args, world)
    with staged_output_dir(out_dir) as tmp:
        objects: dict[str, bytes] = {}     # IR sha256 -> object (identical kernels are linked once)
        kernels: dict[str, dict] = {}
        for spec in kernel_specs(args, "cpu", world):
            kernels[spec.name], obj = _kernel_entry(spec, {"pass_configs": {}})
            objects.setdefault(kernels[spec.name]["ir_sha256"], obj)
            if progress is not None:
                progress(spec.name)
        lib = target_registry.get("cpu").link_shared(list(objects.values()))
        Path(tmp, LIB_NAME).write_bytes(lib)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "tilec_version": tilec.__version__,
                    "model": "deepseek_v32", "config": config_name, "args": dataclasses.asdict(args),
                    "max_batch_size": args.max_batch_size, "max_seq_len": args.max_seq_len,
                    "target": "cpu", "world_size": world, "library": LIB_NAME,
                    "sha256": {LIB_NAME: hashlib.sha256(lib).hexdigest()},
                    "kernels": kernels}
        Path(tmp, "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# --- load and call -----------------------------------------------------------------------------------

class LibKernel:
    """One kernel of a loaded library: ``kernel(*inputs)`` on torch CPU tensors returns the outputs.

    It checks and binds torch tensors (dtype, rank, contiguity, symbolic dims), allocates the outputs
    and hands the data addresses to the cpu backend's ``NativeKernel.call``, which runs the launches
    on its thread pool."""

    def __init__(self, name: str, entry: dict, path: str):
        self.name = name
        self.params = entry["params"]
        self.out_idx = list(entry["out_idx"])
        self.in_idx = [i for i in range(len(self.params)) if i not in self.out_idx]
        self.dim_names = list(entry["meta"]["dims"])
        self.dtypes = [torch_dtype(p["dtype"]) for p in self.params]
        self.in_dtypes = [self.dtypes[i] for i in self.in_idx]
        self.out_dtypes = [self.dtypes[i] for i in self.out_idx]
        self.native = target_registry.get("cpu").load_library(Path(path), entry["meta"])
        self._layouts: dict[tuple, tuple[list[int], list[list[int]]]] = {}

    def __repr__(self) -> str:
        return f"LibKernel({self.name})"

    def _bind(self, inputs: tuple) -> dict[str, int]:
        if len(inputs) != len(self.in_idx):
            raise LibraryError(f"kernel {self.name}: takes {len(self.in_idx)} inputs, got {len(inputs)}")
        dims: dict[str, int] = {}
        for i, x in zip(self.in_idx, inputs):
            p = self.params[i]
            if x.dtype != self.dtypes[i] or x.dim() != len(p["shape"]) or not x.is_contiguous():
                raise LibraryError(f"kernel {self.name}: parameter '{p['name']}' wants a contiguous "
                                   f"{p['dtype']}{p['shape']}, got {x.dtype}{list(x.shape)}"
                                   f"{'' if x.is_contiguous() else ' (not contiguous)'}")
            for want, got in zip(p["shape"], x.shape):
                if isinstance(want, str):
                    if dims.setdefault(want, got) != got:
                        raise LibraryError(f"kernel {self.name}: '{p['name']}' has {want}={got}, "
                                           f"bound to {dims[want]} before")
                elif isinstance(want, int) and want != got:
                    raise LibraryError(f"kernel {self.name}: parameter '{p['name']}' wants shape "
                                       f"{p['shape']}, got {list(x.shape)}")
        for i, x in zip(self.in_idx, inputs):     # expression dims, once every symbol is bound
            p = self.params[i]
            for want, got in zip(p["shape"], x.shape):
                if isinstance(want, dict) and _eval_dim(want, dims) != got:
                    raise LibraryError(f"kernel {self.name}: parameter '{p['name']}' wants a dim "
                                       f"{want['expr']} = {_eval_dim(want, dims)} at {dims}, got {list(x.shape)}")
        return dims

    def _layout(self, inputs: tuple) -> tuple[list[int], list[list[int]]]:
        """The checked binding of a set of input shapes: (dim values in the native order, output shapes)."""
        dims = self._bind(inputs)
        outs = [[_eval_dim(e, dims) for e in self.params[i]["shape"]] for i in self.out_idx]
        return [dims[n] for n in self.dim_names], outs

    def __call__(self, *inputs: torch.Tensor) -> Any:
        # A model calls each kernel with the same few shapes over and over: the binding of a shape
        # set is checked once and memoized; dtype and contiguity are checked on every call.
        key = tuple(x.shape for x in inputs)
        hit = self._layouts.get(key)
        if hit is None:
            if len(self._layouts) >= LAYOUT_MEMO:
                self._layouts.clear()
            hit = self._layouts[key] = self._layout(inputs)
        else:
            for x, dt in zip(inputs, self.in_dtypes):
                if x.dtype is not dt or not x.is_contiguous():
                    self._bind(inputs)                 # raises the full message
        dim_values, out_shapes = hit
        outs = [torch.empty(shape, dtype=dt) for shape, dt in zip(out_shapes, self.out_dtypes)]
        arrays: list[Any] = [None] * len(self.params)
        for i, x in zip(self.in_idx, inputs):
            arrays[i] = x
        for i, y in zip(self.out_idx, outs):
            arrays[i] = y
        self.native.call([a.data_ptr() for a in arrays], dim_values)
        return outs[0] if len(outs) == 1 else outs


def _eval_dim(e: Any, dims: dict[str, int]) -> int:
    """A shape entry of the manifest at bound symbols: an int, a symbol name, or ``{"expr": text}`` in
    the printer's syntax (``+ - * // %``, unary minus, ``min`` / ``max``: the MoE layout's
    ``(-(-T * 4 // 16) + min(16, T * 4)) * 16``)."""
    if isinstance(e, int):
        return e
    if isinstance(e, str):
        return dims[e]
    return int(eval(_shape_code(e["expr"]), {"__builtins__": {}, "min": min, "max": max}, dims))


@functools.lru_cache(maxsize=None)
def _shape_code(text: str) -> Any:
    """The checked, compiled form of a shape expression (cached: kernels evaluate it on every call,
    and parsing would cost more than a small kernel's run)."""
    import ast
    tree = ast.parse(text, mode="eval")
    allowed = (ast.Expression, ast.BinOp, ast.Name, ast.Constant, ast.Load, ast.Add, ast.Sub, ast.Mult,
               ast.FloorDiv, ast.Mod, ast.UnaryOp, ast.USub, ast.Call)
    for n in ast.walk(tree):
        if not isinstance(n, allowed) or (isinstance(n, ast.Call) and (
                not isinstance(n.func, ast.Name) or n.func.id not in ("min", "max") or n.keywords)):
            raise LibraryError(f"unsupported shape expression '{text}' in the manifest")
    return compile(tree, "<shape>", "eval")


class Library:
    """A loaded model library: ``lib.get(spec)`` / ``lib[name]`` return callables, ``lib.args`` the config."""

    def __init__(self, folder: str, manifest: dict, cdll: ctypes.CDLL):
        self.folder = folder
        self.manifest = manifest
        self.target = manifest["target"]
        self.args = ModelArgs(**manifest["args"])
        self.config_name = manifest.get("config", "")
        self.world = int(manifest.get("world_size", 1))      # ranks it was built for (``build --tp``)
        self.path = os.path.abspath(os.path.join(folder, manifest["library"]))
        self._cdll = cdll     # opened once at load, so a library that does not load fails there
        self._kernels: dict[str, LibKernel] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.manifest["kernels"]

    def __getitem__(self, name: str) -> LibKernel:
        hit = self._kernels.get(name)
        if hit is None:
            entry = self.manifest["kernels"].get(name)
            if entry is None:
                raise LibraryError(f"the model library {self.folder} has no kernel '{name}' "
                                   f"(built for another configuration?)")
            hit = self._kernels[name] = LibKernel(name, entry, self.path)
        return hit

    def get(self, spec: KernelSpec) -> LibKernel:
        entry = self.manifest["kernels"].get(spec.name)
        if entry is not None and (entry["factory"], entry["args"]) != (spec.factory, spec.to_json()["args"]):
            raise LibraryError(f"kernel '{spec.name}' in {self.folder} was built from {entry['factory']}"
                               f"{entry['args']}, this model asks for {spec.factory}{spec.to_json()['args']}: "
                               f"rebuild the library (`tilec model build`)")
        return self[spec.name]

    def names(self) -> list[str]:
        return list(self.manifest["kernels"])


def load_library(folder: str, verify_hash: bool = True) -> Library:
    """Open a library written by ``build_library`` (ctypes only; no compiler is imported)."""
    path = os.path.join(folder, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise LibraryError(f"{folder}: no manifest.json (build it with `tilec model build`)") from None
    except ValueError as e:
        raise LibraryError(f"{path}: not valid JSON: {e}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise LibraryError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} manifest")
    lib = os.path.join(folder, manifest["library"])
    if verify_hash:
        try:
            with open(lib, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            raise LibraryError(f"{folder}: the library {manifest['library']} is missing") from None
        if digest != manifest["sha256"][manifest["library"]]:
            raise LibraryError(f"{lib}: sha256 does not match the manifest (corrupt or replaced)")
    return Library(folder, manifest, ctypes.CDLL(os.path.abspath(lib)))
