"""The frontend: a ``@T.prim_func``-decorated Python function -> Tile IR (``nodes.Func``).

The function is never run. Its source is parsed with ``ast``; names from the enclosing Python scope
(factory arguments, tile sizes, dtypes, flags) are compile-time constants, Python ``if``/``for`` over them
are evaluated now, and everything else becomes IR with a ``file:line:col`` location. A user's mistake is a
``TilecError`` at the offending construct. Modules: ``source`` (parsing, locations, scope), ``builder``
(kernel, scopes, assignment, macros), ``statements``, ``evaluator`` (expressions), ``exprs`` (typed IR
expressions), ``regions`` (subscripts and tiles), ``calls``/``tileops`` (the ``T.*`` builtins).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..errors import TilecError
from ..ir.nodes import Func
from . import tileops  # noqa: F401  (registers the tile-op, allocation and hint handlers in calls)
from .builder import build


class PrimFunc:
    """The result of ``@T.prim_func``: the built kernel (``.func``), ready for ``tilec.compile``."""

    def __init__(self, func: Func, pyfunc: Optional[Callable[..., Any]] = None):
        self.func = func
        self.pyfunc = pyfunc
        self.__name__ = func.name
        self.__doc__ = getattr(pyfunc, "__doc__", None)

    @property
    def name(self) -> str:
        return self.func.name

    @property
    def params(self) -> tuple:
        return self.func.params

    def script(self, locs: bool = False) -> str:
        """The kernel's IR in text form (TileLang's ``prim_func.script()``)."""
        from ..ir.printer import print_func
        return print_func(self.func, locs=locs)

    def __repr__(self) -> str:
        return f"<tilec PrimFunc {self.func.name}({', '.join(p.name for p in self.func.params)})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TilecError(f"kernel '{self.func.name}' is not callable directly; compile it first: "
                         f"kernel = tilec.compile({self.func.name}, out_idx=[...]); kernel(*inputs)")


def prim_func_from(fn: Callable[..., Any], outer: Optional[dict[str, Any]] = None) -> PrimFunc:
    """Build ``fn`` (with ``outer``: the decorating frame's locals) into a ``PrimFunc``."""
    return PrimFunc(build(fn, outer), fn)


__all__ = ["PrimFunc", "build", "prim_func_from"]
