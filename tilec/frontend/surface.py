"""The objects behind the ``T.*`` names: builtins, dtype names, tensor annotations, macros.

``tilec.language`` (``T``) exports them; they live here, below it, because the frontend recognises them.

Kernels are never executed as Python: the frontend reads their source and, when an expression names
one of these objects, dispatches on it (``Builtin.name`` selects a handler in
``tilec.frontend.calls``). Outside a kernel the pure builtins (``T.ceildiv``, ``T.max``, ...) still work
on Python numbers and on symbolic sizes (``exprs.SymInt``), so kernel factories can use them to
compute sizes; the others raise a ``TilecError`` at the caller's line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import TilecError
from ..ir import nodes
from . import calls
from .exprs import SymInt, cast
from .source import caller_loc


class Builtin:
    """A ``T.<name>`` function. Inside a kernel the frontend handles the call; outside, see ``__call__``."""

    def __init__(self, name: str):
        self.name = name
        self.__name__ = name
        self.__qualname__ = name

    def __repr__(self) -> str:
        return f"T.{self.name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Pure builtins evaluate on Python values (and build IR on symbolic ones) outside kernels too.
        return calls.call_outside_kernel(self.name, args, kwargs, caller_loc())


class DTypeName(str):
    """A dtype spelled as ``T.float16``: a string usable wherever a dtype is, and a cast when called."""

    def __call__(self, value: Any = 0) -> Any:
        result = cast(str(self), value, caller_loc())
        return SymInt(result) if isinstance(value, SymInt) and not isinstance(result, nodes.Const) else result


@dataclass(frozen=True)
class TensorSpec:
    """The value of a ``T.Tensor(shape, dtype)`` annotation; the frontend turns it into a ``Buffer``."""
    shape: tuple
    dtype: Any
    scope: str = "global"


class TensorType:
    """``T.Tensor`` and friends: ``T.Tensor((M, K), dtype)`` or ``T.Tensor[(M, K), dtype]``."""

    def __init__(self, name: str, scope: str):
        self.name = name
        self.scope = scope

    def __repr__(self) -> str:
        return f"T.{self.name}"

    def __call__(self, shape: Any, dtype: Any = "float32", *rest: Any, **kwargs: Any) -> TensorSpec:
        if not isinstance(shape, (tuple, list)):
            shape = (shape,)
        return TensorSpec(tuple(shape), dtype, self.scope)

    def __getitem__(self, item: Any) -> TensorSpec:
        if not isinstance(item, tuple) or len(item) < 1:
            raise TilecError(f"T.{self.name}[...] expects [shape, dtype]", caller_loc())
        if len(item) == 2 and isinstance(item[0], (tuple, list)):
            return self(item[0], item[1])
        # T.Tensor[M, K, "float16"]: the last entry is the dtype when it is a string.
        if isinstance(item[-1], str):
            return self(tuple(item[:-1]), item[-1])
        return self(tuple(item))


class Macro:
    """A ``@T.macro`` helper: its body is inlined (re-parsed with the call's arguments) at each call."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "macro")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.parsed: Any = None  # the frontend caches the parsed source here

    def __repr__(self) -> str:
        return f"T.macro({self.__name__})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TilecError(f"macro '{self.__name__}' can only be called inside a @T.prim_func kernel",
                         caller_loc())


class GemmWarpPolicy:
    """TileLang's warp partition policies for ``T.gemm`` (a GPU hint; kept as the policy's name)."""
    Square = "Square"
    FullRow = "FullRow"
    FullCol = "FullCol"

    @classmethod
    def from_warp_partition(cls, m: int, n: int) -> str:  # TileLang has it; any name is accepted
        return cls.FullRow if m >= n else cls.FullCol


class Layout:
    """``T.Layout(shape, fn)`` / ``T.Fragment(...)``: a layout for ``T.annotate_layout`` (a GPU hint).

    tilec keeps only the fact that a layout was requested; the arguments are accepted and not used.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args
        self.kwargs = kwargs


@dataclass(frozen=True)
class LayoutMarker:
    """The value of ``T.make_swizzled_layout(buf)`` etc., only meaningful inside ``T.annotate_layout``."""
    kind: str
    buffer: str
