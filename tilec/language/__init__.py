"""``tilec.language``, imported as ``T``: the TileLang-dialect surface that kernels are written in.

Everything here is a marker the frontend (``tilec.frontend``) recognises when it reads a kernel's source;
``T.prim_func`` runs the frontend at decoration time and returns a ``PrimFunc`` holding the Tile IR. The
language reference is ``docs/language.md``. A kernel that worked with ``import tilelang.language as T`` works
with ``import tilec.language as T``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..errors import TilecError as _TilecError
from ..ir import dtypes as _dtypes
from ..ir import nodes as _nodes
from ..frontend.exprs import SymInt  # noqa: F401
from ..frontend.surface import (Builtin, DTypeName, GemmWarpPolicy, Layout, LayoutMarker, Macro,  # noqa: F401
                               TensorSpec, TensorType)

# --- kernels -----------------------------------------------------------------------------------------


def prim_func(fn: Optional[Callable[..., Any]] = None, **options: Any) -> Any:
    """Decorator: parse ``fn``'s source into a Tile IR kernel now and return a ``PrimFunc``.

    Names the body uses are looked up in ``fn``'s closure, the decorating frame's locals (where the
    parameter annotations were evaluated) and ``fn``'s globals.
    """
    import sys

    from ..frontend import prim_func_from
    frame = sys._getframe(1)
    outer = dict(frame.f_locals)

    def wrap(f: Callable[..., Any]) -> Any:
        return prim_func_from(f, outer)
    return wrap(fn) if fn is not None else wrap


def macro(fn: Optional[Callable[..., Any]] = None, **options: Any) -> Any:
    """Decorator: an inlined helper (``hygienic=`` and other TileLang options are accepted)."""
    if fn is None:
        return lambda f: Macro(f)
    return Macro(fn)


def dynamic(name: str, dtype: str = "int32") -> SymInt:
    """A symbolic dimension, bound from the argument shapes when the kernel is called.

    Factories compute with it in Python (``M * 4``, ``T.ceildiv(M, 64)``); see ``symbolic``. Symbolic
    dimensions are int32 (the index type) whatever ``dtype`` says.
    """
    if not isinstance(name, str) or not name.isidentifier():
        from ..frontend.source import caller_loc
        raise _TilecError(f"T.dynamic: the name must be an identifier, got {name!r}", caller_loc())
    return SymInt(_nodes.Var(name, _dtypes.INDEX))


symbolic = dynamic
var = dynamic
Fragment = Layout

Tensor = TensorType("Tensor", "global")
Buffer = TensorType("Buffer", "global")
SharedBuffer = TensorType("SharedBuffer", "shared")
FragmentBuffer = TensorType("FragmentBuffer", "fragment")
LocalBuffer = TensorType("LocalBuffer", "local")

# --- dtypes ------------------------------------------------------------------------------------------

float16 = DTypeName("float16")
float32 = DTypeName("float32")
float64 = DTypeName("float64")
bfloat16 = DTypeName("bfloat16")
float8_e4m3 = DTypeName("float8_e4m3")
float8_e4m3fn = DTypeName("float8_e4m3")
int8 = DTypeName("int8")
int16 = DTypeName("int16")
int32 = DTypeName("int32")
int64 = DTypeName("int64")
uint8 = DTypeName("uint8")
uint16 = DTypeName("uint16")
uint32 = DTypeName("uint32")
bool = DTypeName("bool")  # noqa: A001 - TileLang's name

# --- builtins the frontend handles (tilec/frontend/calls.py has one handler per name) ----------------

_BUILTINS = (
    # launch, memory, loops
    "Kernel", "alloc_shared", "alloc_fragment", "alloc_local", "alloc_var", "alloc_buffer",
    "Pipelined", "Parallel", "serial", "unroll", "grid", "vectorized",
    # tile operations
    "copy", "gemm", "fill", "clear", "reduce_max", "reduce_min", "reduce_sum", "reduce_absmax",
    "reduce_abssum", "atomic_add", "atomic_max", "atomic_min", "cumsum",
    # expressions
    "max", "min", "abs", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos",
    "floor", "ceil", "round", "trunc", "pow", "isnan", "isinf", "clamp", "cast", "Cast", "reinterpret",
    "infinity", "max_value", "min_value", "ceildiv", "floordiv", "floormod", "truncdiv", "truncmod",
    "if_then_else", "Select",
    # hints
    "use_swizzle", "annotate_layout", "annotate_padding", "annotate_l2_hit_ratio", "sync_threads",
    "no_set_max_nreg", "set_max_nreg", "disable_warp_group_reg_alloc", "make_swizzled_layout",
)

for _name in _BUILTINS:
    globals()[_name] = Builtin(_name)
del _name

__all__ = ["prim_func", "macro", "dynamic", "symbolic", "var", "SymInt", "Tensor", "Buffer", "SharedBuffer",
           "FragmentBuffer", "LocalBuffer", "GemmWarpPolicy", "Layout", "Fragment", *_BUILTINS]
