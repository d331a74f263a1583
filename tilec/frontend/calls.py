"""Handlers for the ``T.*`` builtins: one function per name, registered in ``HANDLERS``.

A handler is called as ``handler(ctx, loc, *args, **kwargs)`` where ``ctx`` is the statement builder
(``None`` outside a kernel) and the arguments are frontend values (Python numbers, ``Expr``, ``Buffer``,
``Access``). Arguments are bound against the handler's own signature, so a wrong argument count or an
unknown keyword is a ``TilecError`` at the call. This module holds the expression builtins, loop and
launch specs; ``tileops`` holds allocation, tile operations and hints.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import TilecError
from ..ir import dtypes
from ..ir.nodes import Const, Expr, Loc, Reinterpret, Select
from . import exprs

Handler = Callable[..., Any]
HANDLERS: dict[str, Handler] = {}
NEEDS_KERNEL: set[str] = set()


def builtin(*names: str, kernel: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler under ``T.<name>``; ``kernel=True`` when it only makes sense inside a kernel."""
    def register(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
            if kernel:
                NEEDS_KERNEL.add(n)
        fn.__signature_for_users__ = inspect.signature(fn).replace(  # type: ignore[attr-defined]
            parameters=list(inspect.signature(fn).parameters.values())[2:])
        return fn
    return register


# The locations of the arguments of the builtin calls being handled (innermost last), by parameter name.
_arg_locs: list[dict[str, Any]] = []


def arg_loc(param: str, default: Optional[Loc]) -> Optional[Loc]:
    """Where the argument bound to ``param`` of the current builtin call was written (else ``default``)."""
    if _arg_locs:
        found = _arg_locs[-1].get(param)
        if isinstance(found, Loc):
            return found
    return default


def dispatch(ctx: Any, name: str, args: tuple, kwargs: dict, loc: Optional[Loc],
             arg_locs: Optional[tuple[list, dict]] = None) -> Any:
    """Call the handler of ``T.<name>``; ``arg_locs`` are (positional, keyword) argument locations."""
    handler = HANDLERS.get(name)
    if handler is None:
        raise TilecError(f"T.{name} is not supported by tilec", loc)
    sig = handler.__signature_for_users__  # type: ignore[attr-defined]
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        raise TilecError(f"T.{name}: {e}", loc) from None
    if name in NEEDS_KERNEL and (ctx is None or not ctx.in_kernel):
        raise TilecError(f"T.{name} can only be used inside a `with T.Kernel(...)` block", loc)
    locs = dict(sig.bind(*arg_locs[0], **arg_locs[1]).arguments) if arg_locs else {}
    _arg_locs.append(locs)
    try:
        return handler(ctx, loc, *args, **kwargs)
    finally:
        _arg_locs.pop()


def call_outside_kernel(name: str, args: tuple, kwargs: dict, loc: Optional[Loc]) -> Any:
    """``T.<name>(...)`` run as plain Python (in a kernel factory): pure builtins only.

    A constant result comes back as a Python number, so factories can compute with it
    (``-T.infinity(dtype)``); inside a kernel it is then a literal like any other. A symbolic result
    (``T.ceildiv(M, 64)`` with ``M = T.dynamic("M")``) comes back as a ``SymInt``.
    """
    return exprs.wrap(dispatch(None, name, args, kwargs, loc))


# --- launch and loops --------------------------------------------------------------------------------

@dataclass
class KernelSpec:
    grid: tuple[Expr, ...]
    threads: int
    loc: Optional[Loc]

    def describe(self) -> str:
        return "a T.Kernel(...) launch (use it as `with T.Kernel(...) as bx:`)"


@dataclass
class LoopSpec:
    """What a ``for`` iterates over: one ``(start, stop, step)`` per loop variable, of one kind."""
    kind: str
    ranges: list[tuple[Any, Any, int]]
    stages: int = 0
    loc: Optional[Loc] = None
    names: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"a {self.kind} loop range (use it as `for i in ...:`)"


def _index(v: Any, loc: Optional[Loc], what: str) -> Expr:
    e = exprs.as_expr(v, loc, dtypes.INDEX)
    if not dtypes.is_int(e.dtype):
        raise TilecError(f"{what} must be an integer, got {e.dtype}", loc)
    return exprs.cast(dtypes.INDEX, e, loc)


@builtin("Kernel")
def _kernel(ctx: Any, loc: Optional[Loc], *grid: Any, threads: Any = 128, prelude: Any = None,
            is_cpu: bool = False) -> KernelSpec:
    if not 1 <= len(grid) <= 3:
        raise TilecError(f"T.Kernel takes 1 to 3 grid extents, got {len(grid)}", loc)
    if isinstance(threads, (list, tuple)):
        threads = math.prod(int(t) for t in threads)
    if not isinstance(exprs.normalize_py(threads), int) or isinstance(threads, bool) or threads <= 0:
        raise TilecError(f"T.Kernel: threads must be a positive Python int, got {exprs.describe(threads)}",
                         loc)
    dims = tuple(_index(g, loc, "a grid extent") for g in grid)
    for d in dims:
        if isinstance(d, Const) and d.value <= 0:
            raise TilecError(f"T.Kernel: grid extent must be positive, got {d.value}", loc)
    return KernelSpec(dims, int(threads), loc)


def _range_args(loc: Optional[Loc], what: str, start: Any, stop: Any, step: Any) -> tuple[Any, Any, int]:
    if stop is None:
        start, stop = 0, start
    step = exprs.normalize_py(step)
    if not isinstance(step, int) or isinstance(step, bool) or step == 0:
        raise TilecError(f"{what}: step must be a nonzero Python int, got {exprs.describe(step)}", loc)
    for v in (start, stop):
        if exprs.is_py(v):
            if not isinstance(exprs.normalize_py(v), int):
                raise TilecError(f"{what}: bounds must be integers, got {v!r}", loc)
        else:
            _index(v, loc, f"{what} bound")
    return exprs.normalize_py(start), exprs.normalize_py(stop), step


@builtin("serial", "range")
def _serial(ctx: Any, loc: Optional[Loc], start: Any, stop: Any = None, step: Any = 1,
            annotations: Any = None) -> LoopSpec:
    return LoopSpec("serial", [_range_args(loc, "range", start, stop, step)], loc=loc)


@builtin("unroll")
def _unroll(ctx: Any, loc: Optional[Loc], start: Any, stop: Any = None, step: Any = 1,
            explicit: bool = False, unroll_factor: Any = None, annotations: Any = None) -> LoopSpec:
    return LoopSpec("unrolled", [_range_args(loc, "T.unroll", start, stop, step)], loc=loc)


@builtin("vectorized")
def _vectorized(ctx: Any, loc: Optional[Loc], start: Any, stop: Any = None) -> LoopSpec:
    return LoopSpec("parallel", [_range_args(loc, "T.vectorized", start, stop, 1)], loc=loc)


@builtin("Pipelined")
def _pipelined(ctx: Any, loc: Optional[Loc], start: Any, stop: Any = None, num_stages: Any = 0,
               order: Any = None, stage: Any = None, sync: Any = None, group: Any = None) -> LoopSpec:
    num_stages = exprs.normalize_py(num_stages)
    if not isinstance(num_stages, int) or isinstance(num_stages, bool):
        raise TilecError(f"T.Pipelined: num_stages must be a compile-time int, got "
                         f"{exprs.describe(num_stages)}", arg_loc("num_stages", loc))
    return LoopSpec("pipelined", [_range_args(loc, "T.Pipelined", start, stop, 1)], num_stages, loc)


@builtin("Parallel")
def _parallel(ctx: Any, loc: Optional[Loc], *extents: Any, coalesced_width: Any = None,
              loop_layout: Any = None) -> LoopSpec:
    if not extents:
        raise TilecError("T.Parallel needs at least one extent", loc)
    return LoopSpec("parallel", [_range_args(loc, "T.Parallel", e, None, 1) for e in extents], loc=loc)


@builtin("grid")
def _grid(ctx: Any, loc: Optional[Loc], *extents: Any) -> LoopSpec:
    if not extents:
        raise TilecError("T.grid needs at least one extent", loc)
    return LoopSpec("serial", [_range_args(loc, "T.grid", e, None, 1) for e in extents], loc=loc)


# --- expressions -------------------------------------------------------------------------------------

def _unary(name: str) -> None:
    @builtin(name)
    def handler(ctx: Any, loc: Optional[Loc], x: Any) -> Any:
        return exprs.intrinsic(name, (x,), loc)


for _n in ("abs", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos", "floor",
           "ceil", "round", "trunc", "isnan", "isinf"):
    _unary(_n)


@builtin("pow")
def _pow(ctx: Any, loc: Optional[Loc], x: Any, y: Any) -> Any:
    return exprs.intrinsic("pow", (x, y), loc)


@builtin("max")
def _max(ctx: Any, loc: Optional[Loc], a: Any, b: Any, *rest: Any) -> Any:
    out = exprs.binop("max", a, b, loc)
    for r in rest:
        out = exprs.binop("max", out, r, loc)
    return out


@builtin("min")
def _min(ctx: Any, loc: Optional[Loc], a: Any, b: Any, *rest: Any) -> Any:
    out = exprs.binop("min", a, b, loc)
    for r in rest:
        out = exprs.binop("min", out, r, loc)
    return out


@builtin("clamp")
def _clamp(ctx: Any, loc: Optional[Loc], x: Any, lo: Any, hi: Any) -> Any:
    return exprs.binop("min", exprs.binop("max", x, lo, loc), hi, loc)


def _value_and_dtype(a: Any, b: Any) -> tuple[Any, Any]:
    """TileLang has both T.cast(value, dtype) and T.Cast(dtype, value): the string is the dtype."""
    if isinstance(a, str) and not isinstance(b, str):
        return b, a
    return a, b


@builtin("cast", "Cast")
def _cast(ctx: Any, loc: Optional[Loc], a: Any, b: Any) -> Any:
    value, dtype = _value_and_dtype(a, b)
    where = arg_loc("b", loc) if dtype is b else arg_loc("a", loc)
    return exprs.cast(exprs.canonical_dtype(dtype, where), value, loc)


@builtin("reinterpret")
def _reinterpret(ctx: Any, loc: Optional[Loc], a: Any, b: Any) -> Any:
    value, dtype = _value_and_dtype(a, b)
    dtype = exprs.canonical_dtype(dtype, loc)
    e = exprs.as_expr(value, loc)  # a width mismatch is the verifier's to report
    return e if e.dtype == dtype else Reinterpret(dtype, e, loc)


_FLOAT_MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38, "float8_e4m3": 448.0,
              "float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}


@builtin("infinity")
def _infinity(ctx: Any, loc: Optional[Loc], dtype: Any) -> Const:
    d = exprs.canonical_dtype(dtype, loc)
    if not dtypes.is_float(d) or d == "float8_e4m3":
        raise TilecError(f"T.infinity: {d} has no infinity", loc)
    return Const(math.inf, d, loc)


def _limits(d: str) -> tuple[Any, Any]:
    info = dtypes.info(d)
    if info.kind == "float":
        return -_FLOAT_MAX[d], _FLOAT_MAX[d]
    if info.kind == "uint":
        return 0, 2 ** info.bits - 1
    if info.kind == "bool":
        return False, True
    return -2 ** (info.bits - 1), 2 ** (info.bits - 1) - 1


@builtin("max_value")
def _max_value(ctx: Any, loc: Optional[Loc], dtype: Any) -> Const:
    d = exprs.canonical_dtype(dtype, loc)
    return exprs.const(_limits(d)[1], d, loc)


@builtin("min_value")
def _min_value(ctx: Any, loc: Optional[Loc], dtype: Any) -> Const:
    d = exprs.canonical_dtype(dtype, loc)
    return exprs.const(_limits(d)[0], d, loc)


@builtin("ceildiv")
def _ceildiv(ctx: Any, loc: Optional[Loc], a: Any, b: Any) -> Any:
    a, b = exprs.normalize_py(a), exprs.normalize_py(b)
    if exprs.is_py(b) and not exprs.is_py(a):
        return exprs.binop("//", exprs.binop("+", a, b - 1, loc), b, loc)
    return exprs.binop("//", exprs.binop("-", exprs.binop("+", a, b, loc), 1, loc), b, loc)


@builtin("floordiv")
def _floordiv(ctx: Any, loc: Optional[Loc], a: Any, b: Any) -> Any:
    return exprs.binop("//", a, b, loc)


@builtin("floormod")
def _floormod(ctx: Any, loc: Optional[Loc], a: Any, b: Any) -> Any:
    return exprs.binop("%", a, b, loc)


@builtin("truncdiv")
def _truncdiv(ctx: Any, loc: Optional[Loc], a: Any, b: Any) -> Any:
    if exprs.is_py(a) and exprs.is_py(b):
        return exprs._trunc_div(int(a), int(b))
    return exprs.binop("/", *exprs.unify(a, b, loc), loc)


@builtin("truncmod")
def _truncmod(ctx: Any, loc: Optional[Loc], a: Any, b: Any) -> Any:
    return exprs.binop("-", a, exprs.binop("*", _truncdiv(ctx, loc, a, b), b, loc), loc)


@builtin("if_then_else", "Select")
def _if_then_else(ctx: Any, loc: Optional[Loc], cond: Any, a: Any, b: Any) -> Any:
    c = exprs.to_bool(cond, loc)
    if isinstance(c, bool):
        return a if c else b
    ea, eb = exprs.unify(a, b, loc) if not (exprs.is_py(a) and exprs.is_py(b)) else \
        exprs.unify(exprs.as_expr(a, loc), b, loc)
    return Select(c, ea, eb, loc)


