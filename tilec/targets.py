"""The target registry: how a backend plugs into tilec (docs/design.md, decision 5).

A target is an object with a ``name``, a ``description``, and ``build(func, options) -> Executable``.
The core never imports a backend by name: targets come from the ``tilec.targets`` entry-point group
(see pyproject.toml) plus ``interp``, which is always first. ``build`` receives a verified ``Func`` and
runs the target's own pipeline; it raises ``TilecError`` naming the target and the op for an
unsupported feature.

An ``Executable`` is what the runtime calls: ``run(args, dims)`` with one array per kernel parameter
in parameter order (numpy arrays for host targets, torch tensors for ``cuda``; outputs already
allocated) and the bound symbolic dimensions. It writes outputs in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Optional, Protocol

from .errors import TilecError
from .ir.nodes import Func, Module


class Executable(Protocol):
    source: str       # generated source (get_kernel_source()); the IR text for interp
    binary: Optional[bytes]  # a shared library or object for targets that have one, else None

    def run(self, args: list[Any], dims: dict[str, int]) -> None: ...


class Target(Protocol):
    name: str
    description: str
    array_kind: str   # "numpy" (host memory) or "torch-cuda"
    # optional ``family``: the target whose generated code this one runs (``cuda-emu``: "cuda"); see family()

    def available(self) -> tuple[bool, str]: ...   # (usable here?, why not)

    def build(self, func: Func, options: dict[str, Any]) -> Executable: ...


@dataclass
class _Registry:
    factories: dict[str, Callable[[], Target]] = field(default_factory=dict)
    instances: dict[str, Target] = field(default_factory=dict)
    loaded: bool = False


_registry = _Registry()


def register(name: str, factory: Callable[[], Target]) -> None:
    """Register a target factory under ``name`` (called once, lazily, on first use)."""
    _registry.factories[name] = factory


def _load_entry_points() -> None:
    if _registry.loaded:
        return
    from .interp.target import InterpTarget
    _registry.factories.setdefault("interp", InterpTarget)
    _registry.loaded = True
    for ep in metadata.entry_points(group="tilec.targets"):
        if ep.name not in _registry.factories:
            _registry.factories[ep.name] = _lazy(ep)


def _lazy(ep: metadata.EntryPoint) -> Callable[[], Target]:
    def make() -> Target:
        return ep.load()()
    return make


def names() -> list[str]:
    """Registered target names, ``interp`` first."""
    _load_entry_points()
    rest = sorted(n for n in _registry.factories if n != "interp")
    return ["interp"] + rest


def get(name: str) -> Target:
    _load_entry_points()
    if name not in _registry.instances:
        if name not in _registry.factories:
            raise TilecError(f"unknown target '{name}' (known: {', '.join(names())})")
        _registry.instances[name] = _registry.factories[name]()
    return _registry.instances[name]


def family(name: str) -> str:
    """The family of target ``name``: the target whose generated code it runs, by its ``family``
    attribute (``cuda-emu`` executes the ``cuda`` target's CUDA C++ on the CPU, so its family is
    ``"cuda"``); a target without one, or a name that is not a registered target, is its own family.

    Choices that depend on the hardware a kernel is written for (tile sizes, the dtype a GEMM multiplies
    in) key on the family, so an emulating target builds exactly the kernels the real one ships."""
    _load_entry_points()
    if name not in _registry.factories:
        return name
    return getattr(get(name), "family", None) or name


def as_func(kernel: Any) -> Func:
    """The ``Func`` behind a ``T.prim_func`` result, a ``Func``, or a one-kernel ``Module``."""
    if isinstance(kernel, Func):
        return kernel
    inner = getattr(kernel, "func", None)
    if isinstance(inner, Func):
        return inner
    if isinstance(kernel, Module):
        if len(kernel.funcs) == 1:
            return kernel.funcs[0]
        names = ", ".join(f.name for f in kernel.funcs)
        raise TilecError(f"the module holds {len(kernel.funcs)} kernels ({names}); compile one of them")
    raise TilecError(f"tilec.compile expects a @T.prim_func kernel, got {type(kernel).__name__}"
                     + (" (a kernel factory? call it with its sizes first)" if callable(kernel) else ""))
