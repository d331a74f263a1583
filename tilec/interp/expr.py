"""Expression evaluation for the reference interpreter: one IR expression -> a numpy value.

Values are numpy scalars or arrays in the expression's *compute* dtype (``numerics.compute_numpy``:
float32 for float16/bfloat16/float8, the storage type otherwise). Inside a ``parallel`` loop nest the
loop variables are broadcast index arrays (one axis per loop), so one evaluation computes every
iteration at once. A ``Frame`` carries the variable bindings, the buffers, the active mask (the
conditions of enclosing ``If``s inside a parallel nest; ``None`` outside) and the current statement's
location for diagnostics. Element loads are range-checked wherever the mask is true and never fault
where it is false.

Semantic choices pinned here (backends must match): ``min``/``max`` propagate NaN; ``round`` rounds half
to even; integer ``/`` truncates, ``//`` and ``%`` floor, and any of them by zero is an error; int32
arithmetic wraps; in ``Select`` a lane evaluates both operands but a load in the operand it does not
take is not range-checked (TileLang's ``if_then_else`` is a C ternary, so guarded loads must not fault).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .. import numerics
from ..errors import InternalError, TilecError
from ..ir import dtypes
from ..ir import nodes as N


@dataclass
class Frame:
    """The interpreter's state while running one block."""
    env: dict[str, Any] = field(default_factory=dict)        # Var name -> value
    bufs: dict[str, np.ndarray] = field(default_factory=dict)  # Buffer name -> storage array
    mask: Optional[np.ndarray] = None                          # active lanes inside a parallel nest
    loc: Optional[N.Loc] = None                                # the statement being run
    depth: int = 0                                             # parallel loops enclosing this point

    def buffer(self, buf: N.Buffer) -> np.ndarray:
        try:
            return self.bufs[buf.name]
        except KeyError:
            raise TilecError(f"buffer '{buf.name}' is used before it is allocated", self.loc) from None


_CONSTS: dict[tuple, Any] = {}


def const_value(value: Any, dtype: str) -> Any:
    """A literal as a compute value of ``dtype`` (rounded to the dtype first, as a Cast would)."""
    # -0.0 == 0.0 (and hashes alike), so zeros are keyed by their spelling to keep the sign.
    key = (type(value), value if value else repr(value), dtype)
    hit = _CONSTS.get(key)
    if hit is None:
        hit = _const_value(value, dtype)
        if len(_CONSTS) < 4096:
            _CONSTS[key] = hit
    return hit


def _const_value(value: Any, dtype: str) -> Any:
    if dtypes.is_float(dtype) and dtype not in ("float32", "float64"):
        return numerics.round_to(np.asarray(value, np.float32), dtype)[()]
    if dtypes.is_int(dtype):
        return numerics.from_float32(np.asarray(value), dtype)[()]
    return numerics.compute_numpy(dtype).type(value)


def convert(value: Any, src: str, dst: str) -> Any:
    """``cast<dst>(value)`` where value is a compute value of ``src``."""
    if src == dst:
        return value
    if dtypes.is_float(dst) and dst not in ("float32", "float64"):
        return numerics.round_to(np.asarray(value, np.float32), dst)
    return numerics.from_float32(np.asarray(value), dst)


def reinterpret(value: Any, src: str, dst: str, loc: Optional[N.Loc] = None) -> Any:
    if dtypes.info(src).bits != dtypes.info(dst).bits:
        raise TilecError(f"reinterpret from {src} to {dst} changes the width", loc)
    bits = np.array(numerics.from_compute(np.asarray(value), src), order="C")
    return numerics.to_compute(bits.view(dtypes.storage_numpy(dst)), dst)


def _int_div(a: Any, b: Any) -> Any:
    """C division on integers: truncates toward zero."""
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


_FLOAT_BIN: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "//": np.floor_divide,
    "%": np.mod, "min": np.minimum, "max": np.maximum,
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
    ">=": np.greater_equal, "and": np.logical_and, "or": np.logical_or,
}
_INT_BIN: dict[str, Callable[[Any, Any], Any]] = {
    **_FLOAT_BIN, "/": _int_div, "&": np.bitwise_and, "|": np.bitwise_or, "^": np.bitwise_xor,
    "<<": np.left_shift, ">>": np.right_shift,
}


def _sigmoid(x: Any) -> Any:
    return 1 / (1 + np.exp(-x))


_CALLS: dict[str, Callable[..., Any]] = {
    "abs": np.abs, "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x), "tanh": np.tanh, "sigmoid": _sigmoid, "sin": np.sin,
    "cos": np.cos, "floor": np.floor, "ceil": np.ceil, "round": np.rint, "trunc": np.trunc,
    "pow": np.power, "isnan": np.isnan, "isinf": np.isinf,
}


def evaluate(e: N.Expr, f: Frame) -> Any:
    """The value of ``e`` in frame ``f`` (a numpy scalar or array in e's compute dtype)."""
    handler = _HANDLERS.get(type(e))
    if handler is None:
        raise InternalError(f"interpreter: unknown expression node {type(e).__name__}")
    return handler(e, f)


def _var(e: N.Var, f: Frame) -> Any:
    try:
        return f.env[e.name]
    except KeyError:
        raise TilecError(f"variable '{e.name}' has no value here", e.loc or f.loc) from None


def _binop(e: N.BinOp, f: Frame) -> Any:
    a, b = evaluate(e.a, f), evaluate(e.b, f)
    ta, tb = e.a.dtype, e.b.dtype
    if ta != tb:  # the frontend casts operands to one type; be tolerant of IR written by hand
        t = dtypes.promote(ta, tb)
        a, b, ta = convert(a, ta, t), convert(b, tb, t), t
    table = _FLOAT_BIN if dtypes.is_float(ta) else _INT_BIN
    if e.op not in table:
        raise TilecError(f"operator '{e.op}' is not defined on {ta}", e.loc or f.loc)
    if table is _INT_BIN and e.op in ("/", "//", "%"):
        zero = b == 0
        if np.any(zero if f.mask is None else (zero & f.mask)):
            raise TilecError(f"integer division by zero in '{e.op}'", e.loc or f.loc)
        b = np.where(zero, 1, b).astype(np.asarray(b).dtype) if np.any(zero) else b
    return table[e.op](a, b)


def _unary(e: N.UnaryOp, f: Frame) -> Any:
    a = evaluate(e.a, f)
    if e.op == "-":
        return np.negative(a)
    if e.op == "not":
        return np.logical_not(a)
    return np.invert(a)


def _call(e: N.Call, f: Frame) -> Any:
    args = [evaluate(a, f) for a in e.args]
    t = e.args[0].dtype
    args = [args[0]] + [convert(v, a.dtype, t) for v, a in zip(args[1:], e.args[1:])]
    if e.func not in _CALLS:
        raise TilecError(f"unknown intrinsic '{e.func}'", e.loc or f.loc)
    out = _CALLS[e.func](*args)
    if e.func in ("isnan", "isinf"):
        return out
    return np.asarray(out).astype(numerics.compute_numpy(t), copy=False)[()]


def _select(e: N.Select, f: Frame) -> Any:
    # Like TileLang's if_then_else (a C ternary on every target), a load in the branch that is not
    # taken must not fault: evaluate each side with the lanes that take it.
    cond = evaluate(e.cond, f)
    outer = f.mask
    try:
        f.mask = cond if outer is None else (outer & cond)
        a = evaluate(e.a, f) if np.any(f.mask) else None
        f.mask = ~cond if outer is None else (outer & ~cond)
        b = evaluate(e.b, f) if np.any(f.mask) else None
    finally:
        f.mask = outer
    if a is None:
        return b if b is not None else const_value(0, e.dtype)
    if b is None:
        return a
    return np.where(cond, a, convert(b, e.b.dtype, e.a.dtype))


def _load(e: N.Load, f: Frame) -> Any:
    arr = f.buffer(e.buffer)
    idx = checked_indices(e.buffer, arr, [evaluate(i, f) for i in e.indices], f.mask, f.loc, "load from")
    value = numerics.to_compute(arr[idx], e.buffer.dtype)
    return value[()] if value.ndim == 0 else value   # numpy scalars are cheaper than 0-d arrays


def checked_indices(buf: N.Buffer, arr: np.ndarray, idx: list[Any], mask: Any, loc: Optional[N.Loc],
                    what: str) -> tuple:
    """Range-check element indices where ``mask`` is on; clamp masked-off lanes so they cannot fault."""
    if len(idx) != arr.ndim:
        raise TilecError(f"{what} '{buf.name}' with {len(idx)} indices; it has rank {arr.ndim}", loc)
    out = []
    for d, i in enumerate(idx):
        if isinstance(i, np.integer):   # one index for every lane: plain Python checks are enough
            k = int(i)
            if not 0 <= k < arr.shape[d]:
                if mask is None or np.any(mask):
                    _raise_oob(buf, arr, idx, True if mask is None else mask, loc, what)
                k = 0
            out.append(k)
            continue
        if np.asarray(i).dtype.kind not in "iu":
            raise TilecError(f"index {d} of '{buf.name}' is not an integer", loc)
        bad = (i < 0) | (i >= arr.shape[d])
        if np.any(bad):
            live = bad if mask is None else (bad & mask)
            if np.any(live):
                _raise_oob(buf, arr, idx, live, loc, what)
            i = np.where(bad, 0, i)
        out.append(i)
    return tuple(out)


def _raise_oob(buf: N.Buffer, arr: np.ndarray, idx: list[Any], live: Any, loc: Optional[N.Loc],
               what: str) -> None:
    full = np.broadcast_arrays(*[np.asarray(i) for i in idx], np.asarray(live))
    first = tuple(np.argwhere(full[-1])[0])
    where = [int(a[first]) for a in full[:-1]]
    raise TilecError(f"out-of-range {what} '{buf.name}' at index {where}; its shape is "
                     f"{list(arr.shape)}", loc)


_HANDLERS: dict[type, Callable[[Any, Frame], Any]] = {
    N.Const: lambda e, f: const_value(e.value, e.type),
    N.Var: _var,
    N.BinOp: _binop,
    N.UnaryOp: _unary,
    N.Call: _call,
    N.Cast: lambda e, f: convert(evaluate(e.value, f), e.value.dtype, e.type),
    N.Reinterpret: lambda e, f: reinterpret(evaluate(e.value, f), e.value.dtype, e.type, f.loc),
    N.Select: _select,
    N.Load: _load,
}


def scalar_int(e: N.Expr, f: Frame) -> int:
    """Evaluate an expression that must be one integer (a shape, extent, region start, loop bound)."""
    if type(e) is N.Const:
        return int(e.value)
    v = evaluate(e, f)
    if np.ndim(v) != 0:
        raise TilecError("expected a scalar here, got a value that varies across a parallel loop", f.loc)
    return int(v)
