"""Loading a kernel from a file for the ``tilec`` command: a Python example, a ``.tir`` file or stdin.

A ``.py`` file is imported as a module (its folder goes on ``sys.path`` so it can import neighbours). The
kernel is ``--kernel NAME`` (a factory or a ``T.prim_func``), else ``KERNEL``, else the one module-level
``T.prim_func``. A factory is called with the module's ``DEFAULTS`` overridden by ``--arg K=V`` values
(Python literals; a bare word is a string). ``OUT_IDX``, ``TOLERANCE``, ``reference`` and ``make_inputs``
come along for ``tilec run``. A ``.tir`` file (or ``-``, IR text on stdin) is parsed; there ``--arg
M=1000`` gives the size of the symbolic dimension ``M``.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Optional

from ..errors import TilecError, register_source
from ..ir import nodes


@dataclass
class LoadedKernel:
    """A kernel and what its file says about running it."""
    func: nodes.Func
    path: str
    params: dict[str, Any] = field(default_factory=dict)   # factory arguments used (.py) or dims (.tir)
    module: Optional[ModuleType] = None
    out_idx: Optional[list[int]] = None
    tolerance: Optional[float] = None
    reference: Optional[Callable[..., Any]] = None
    make_inputs: Optional[Callable[..., Any]] = None
    funcs: tuple[nodes.Func, ...] = ()   # every kernel of a .tir module
    factory: str = ""                    # the factory's name, when the kernel came from one

    @property
    def label(self) -> str:
        name = self.factory or self.func.name
        sizes = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in self.params.items())
        return f"{name}({sizes})" if sizes else name


def parse_arg(text: str) -> tuple[str, Any]:
    """``K=V`` -> (K, literal V). A value that is not a Python literal but a plain word is a string."""
    if "=" not in text:
        raise TilecError(f"--arg '{text}': expected NAME=VALUE, e.g. --arg M=1024 or --arg dtype=float16")
    key, _, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not key.isidentifier():
        raise TilecError(f"--arg '{text}': '{key}' is not a parameter name")
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if raw.replace("_", "").replace(".", "").isalnum() and not raw[:1].isdigit():
            return key, raw
        raise TilecError(f"--arg '{text}': the value '{raw}' is neither a Python literal nor a plain "
                         f"word") from None


def parse_args(items: Optional[list[str]]) -> dict[str, Any]:
    return dict(parse_arg(t) for t in (items or []))


def load(path: str, kernel: Optional[str] = None, arg_items: Optional[list[str]] = None) -> LoadedKernel:
    """Load the kernel ``path`` names (see the module docstring)."""
    overrides = parse_args(arg_items)
    if path == "-":
        return _load_tir(sys.stdin.read(), "<stdin>", kernel, overrides)
    if not os.path.exists(path):
        raise TilecError(f"FILE '{path}': no such file")
    if os.path.isdir(path):
        raise TilecError(f"FILE '{path}' is a directory; give a .py or .tir file")
    if path.endswith(".py"):
        return _load_py(path, kernel, overrides)
    with open(path) as f:
        text = f.read()
    return _load_tir(text, path, kernel, overrides)


def _load_tir(text: str, filename: str, kernel: Optional[str], dims: dict[str, Any]) -> LoadedKernel:
    from ..ir.parser import parse
    register_source(filename, text)
    module = parse(text, filename=filename)
    if not module.funcs:
        raise TilecError(f"{filename}: the file holds no kernel")
    if kernel is not None:
        try:
            func = module[kernel]
        except KeyError:
            names = ", ".join(f.name for f in module.funcs)
            raise TilecError(f"--kernel {kernel}: no kernel of that name in {filename} (it has: {names})") \
                from None
    else:
        func = module.funcs[0]  # `tilec ir` prints them all; run/compile ask for --kernel when several
    for k, v in dims.items():
        if not isinstance(v, int):
            raise TilecError(f"--arg {k}={v!r}: in a .tir file --arg sets a symbolic dimension, an integer")
    return LoadedKernel(func=func, path=filename, params=dict(dims), funcs=module.funcs)


def import_file(path: str) -> ModuleType:
    """Import the Python file ``path`` as a fresh module (its folder on ``sys.path``)."""
    absolute = os.path.abspath(path)
    folder = os.path.dirname(absolute)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    stem = os.path.splitext(os.path.basename(absolute))[0]
    # A unique name: two examples called e.g. "main.py" in different folders must not collide.
    name = f"tilec_user_{stem}_{hashlib.sha1(absolute.encode()).hexdigest()[:8]}"
    # The path as the user wrote it becomes the kernel's file in locations: `# examples/gemm.py:5:5`.
    spec = importlib.util.spec_from_file_location(name, os.path.normpath(path))
    if spec is None or spec.loader is None:
        raise TilecError(f"FILE '{path}': cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _is_kernel(obj: Any) -> bool:
    return isinstance(obj, nodes.Func) or isinstance(getattr(obj, "func", None), nodes.Func)


def _pick(module: ModuleType, path: str, kernel: Optional[str]) -> tuple[str, Any]:
    if kernel is not None:
        if not hasattr(module, kernel):
            raise TilecError(f"--kernel {kernel}: '{path}' has no attribute '{kernel}'")
        return kernel, getattr(module, kernel)
    if hasattr(module, "KERNEL"):
        return "KERNEL", module.KERNEL
    found = [(n, v) for n, v in vars(module).items() if _is_kernel(v)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise TilecError(f"'{path}' defines no KERNEL and no module-level @T.prim_func; "
                         f"name one with --kernel NAME")
    names = ", ".join(n for n, _ in found)
    raise TilecError(f"'{path}' has several kernels ({names}); choose one with --kernel NAME")


def _call_factory(name: str, factory: Callable[..., Any], params: dict[str, Any], path: str) -> Any:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
        for k in params:
            if not takes_any and k not in sig.parameters:
                accepted = ", ".join(sig.parameters)
                raise TilecError(f"--arg {k}: the kernel factory {name} in '{path}' has no parameter "
                                 f"'{k}' (it takes: {accepted})")
        missing = [p.name for p in sig.parameters.values()
                   if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   and p.name not in params]
        if missing:
            raise TilecError(f"the kernel factory {name} in '{path}' needs {', '.join(missing)}: "
                             f"give {' '.join(m + '=...' for m in missing)} with --arg or in DEFAULTS")
    try:
        return factory(**params)
    except TilecError as e:
        if not e.note:  # say which values the factory was called with: a bad --arg shows up here
            given = ", ".join(f"{k}={v!r}" for k, v in params.items())
            e.note = f"while building {name}({given})"
        raise


def _load_py(path: str, kernel: Optional[str], overrides: dict[str, Any]) -> LoadedKernel:
    module = import_file(path)
    name, obj = _pick(module, path, kernel)
    params: dict[str, Any] = {}
    factory = ""
    if _is_kernel(obj):
        if overrides:
            raise TilecError(f"--arg applies to a kernel factory, but {name} in '{path}' is already a "
                             f"kernel; give sizes in the file or use its factory")
        built = obj
    elif callable(obj):
        name = getattr(obj, "__name__", name)
        params = dict(getattr(module, "DEFAULTS", None) or {})
        params.update(overrides)
        built = _call_factory(name, obj, params, path)
        factory = name
        if not _is_kernel(built):
            raise TilecError(f"the kernel factory {name} in '{path}' returned {type(built).__name__}, "
                             f"not a @T.prim_func kernel")
    else:
        raise TilecError(f"{name} in '{path}' is {type(obj).__name__}, not a kernel or a kernel factory")
    func = built if isinstance(built, nodes.Func) else built.func
    out_idx = getattr(module, "OUT_IDX", None)
    if isinstance(out_idx, int):
        out_idx = [out_idx]
    return LoadedKernel(func=func, path=path, params=params, module=module,
                        out_idx=list(out_idx) if out_idx is not None else None,
                        tolerance=getattr(module, "TOLERANCE", None),
                        reference=getattr(module, "reference", None),
                        make_inputs=getattr(module, "make_inputs", None), factory=factory)
