"""Writing a compiled kernel to a folder: ``tilec compile FILE --target T -o DIR``.

The folder holds the kernel's IR text (``<kernel>.tir``), the generated source (``<kernel>.<ext>``:
``.ll`` for cpu, ``.cu`` for cuda, ``.cpp`` for ascend, or the target's ``source_suffix``), the binary
when the target produces one (``<kernel>.so`` or the target's ``binary_suffix``), and ``manifest.json``
describing the kernel's signature, the files and their sha256. The folder is written whole or not at
all: everything goes to a temporary sibling first, which then replaces ``DIR`` by rename. An existing
``DIR`` is replaced only when it is empty or a previous tilec output (it has a manifest.json).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

from ..version import __version__
from ..errors import TilecError
from ..ir import nodes
from . import args as argmod

SOURCE_SUFFIX = {"interp": ".interp.txt", "cpu": ".ll", "cuda": ".cu", "ascend": ".cpp"}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return repr(v)


def _dim(e: nodes.Expr) -> Any:
    return int(e.value) if isinstance(e, nodes.Const) else argmod.shape_text([e])[1:-1]


def manifest(func: nodes.Func, target: str, out_idx: list[int], files: dict[str, str],
             digests: dict[str, str], source_file: str, params: dict[str, Any],
             options: dict[str, Any]) -> dict[str, Any]:
    return {
        "tilec_version": __version__,
        "kernel": func.name,
        "target": target,
        "source_file": source_file,
        "factory_args": _jsonable(params),
        "params": [{"name": p.name, "dtype": p.dtype, "shape": [_dim(e) for e in p.shape]}
                   for p in func.params],
        "symbolic_dims": argmod.symbols_of(func.params),
        "out_idx": out_idx,
        "files": files,
        "sha256": digests,
        "pass_configs": _jsonable(options.get("pass_configs", {})),
    }


def _binary_of(exe: Any) -> bytes | None:
    """The executable's binary; a cached build may hold only the path of its library (``library_path``)."""
    binary = getattr(exe, "binary", None)
    if binary:
        return bytes(binary)
    path = getattr(exe, "library_path", None)
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return None


def _check_replaceable(out_dir: str) -> None:
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise TilecError(f"-o {out_dir}: exists and is not a directory")
    if os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, "manifest.json")):
        raise TilecError(f"-o {out_dir}: the directory is not empty and is not a tilec output "
                         f"(no manifest.json); refusing to replace it")


@contextlib.contextmanager
def staged_output_dir(out_dir: str) -> Iterator[str]:
    """A fresh temporary sibling of ``out_dir`` to fill; when the block ends without an exception it
    replaces ``out_dir`` by rename, otherwise it is removed, so ``out_dir`` is whole or unchanged.
    ``out_dir`` must be absent, empty or a previous tilec output (checked before the block runs)."""
    out_dir = os.path.abspath(out_dir)
    _check_replaceable(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the output is an ordinary folder
    try:
        yield tmp
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_output_dir(out_dir: str, kernel: Any, ir_text: str, source_file: str,
                     params: dict[str, Any]) -> dict[str, Any]:
    """Write ``kernel`` (a ``JITKernel``) to ``out_dir`` atomically; return the manifest."""
    exe, target = kernel.executable, kernel.target
    name = kernel.func.name
    blobs: dict[str, bytes] = {"ir": ir_text.encode()}
    files = {"ir": f"{name}.tir"}
    suffix = getattr(target, "source_suffix", None) or SOURCE_SUFFIX.get(target.name, ".txt")
    blobs["source"] = (exe.source or "").encode()
    files["source"] = f"{name}{suffix}"
    binary = _binary_of(exe)
    if binary:
        blobs["binary"] = binary
        files["binary"] = f"{name}{getattr(target, 'binary_suffix', None) or '.so'}"
    digests = {k: hashlib.sha256(b).hexdigest() for k, b in blobs.items()}
    man = manifest(kernel.func, target.name, kernel.out_idx, files, digests, source_file, params,
                   kernel.options)
    with staged_output_dir(out_dir) as tmp:
        for key, blob in blobs.items():
            with open(os.path.join(tmp, files[key]), "wb") as f:
                f.write(blob)
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(man, f, indent=2)
            f.write("\n")
    return man


def _swap_in(tmp: str, out_dir: str) -> None:
    """Move ``tmp`` to ``out_dir``; a previous output is renamed away first and removed after."""
    old = None
    if os.path.exists(out_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
        os.rmdir(old)
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
