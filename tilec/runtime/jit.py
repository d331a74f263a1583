"""``@tilec.jit``: compile a kernel factory on call, memoized on the factory's arguments.

TileLang's usage, unchanged::

    @tilec.jit(out_idx=[2], target="cpu")
    def matmul(M, N, K, block_M=64):
        @T.prim_func
        def main(A: T.Tensor((M, K), "float16"), ...): ...
        return main

    kernel = matmul(1024, 1024, 1024)   # builds once; the same arguments return the same JITKernel
    c = kernel(a, b)

``@tilec.jit`` also works without parentheses, and on a ``T.prim_func`` directly (compiled at once).
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Optional

from ..ir import nodes
from .kernel import JITKernel, compile


def _freeze(x: Any) -> Any:
    """A hashable key for a factory argument (lists, dicts and sets by value; others by repr if needed)."""
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(_freeze(v) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple(sorted((repr(k), _freeze(v)) for k, v in x.items())))
    if isinstance(x, (set, frozenset)):
        return ("set", tuple(sorted(repr(v) for v in x)))
    try:
        hash(x)
    except TypeError:
        return ("repr", type(x).__qualname__, repr(x))
    return (type(x).__qualname__, x)  # type keeps 1 and 1.0 and True apart


class JITFactory:
    """A kernel factory whose calls return compiled kernels, one build per distinct argument list."""

    def __init__(self, factory: Callable[..., Any], out_idx: Any, target: str,
                 pass_configs: Optional[dict[str, Any]], options: dict[str, Any]):
        functools.update_wrapper(self, factory)
        self.factory = factory
        self.out_idx = out_idx
        self.target = target
        self.pass_configs = pass_configs
        self.options = options
        self.cache: dict[Any, JITKernel] = {}
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> JITKernel:
        key = (_freeze(args), _freeze(kwargs))
        with self._lock:
            hit = self.cache.get(key)
        if hit is not None:
            return hit
        kernel = compile(self.factory(*args, **kwargs), out_idx=self.out_idx, target=self.target,
                         pass_configs=self.pass_configs, **self.options)
        with self._lock:
            return self.cache.setdefault(key, kernel)


def jit(func: Any = None, *, out_idx: Any = None, target: str = "auto",
        pass_configs: Optional[dict[str, Any]] = None, **options: Any) -> Any:
    """Decorate a kernel factory (or a ``T.prim_func``); see the module docstring."""
    def wrap(obj: Any) -> Any:
        if isinstance(obj, nodes.Func) or isinstance(getattr(obj, "func", None), nodes.Func):
            return compile(obj, out_idx=out_idx, target=target, pass_configs=pass_configs, **options)
        return JITFactory(obj, out_idx, target, pass_configs, options)
    if func is not None:
        return wrap(func)
    return wrap
