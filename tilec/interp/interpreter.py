"""The reference interpreter: runs a Tile IR ``Func`` on numpy arrays. It defines tilec's semantics.

Every backend is checked against it (docs/design.md, decision 3), so it stays direct: launches run one after
another, blocks one by one, statements in order. To be fast enough for real sizes it evaluates a
``parallel`` loop nest at once: each parallel loop variable becomes a broadcast index array (one axis per
loop), expressions become arrays, stores scatter with fancy indexing, and an ``If`` inside the nest
becomes a mask. A parallel loop that ``vectorize.can_vectorize`` rejects (a tile op, an allocation or a
``while`` inside, or a store that lanes would race on) runs as a serial loop, which is the same program
since its iterations are independent. Serial, pipelined and unrolled loops are Python loops.

Arrays are in storage dtype and are updated in place. Block-local buffers start poisoned (NaN for
floats, 0xA5 bytes for integers, true for bool) so that reading memory nothing wrote shows up.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from .. import numerics
from ..errors import InternalError, TilecError
from ..ir import dtypes
from ..ir import nodes as N
from .expr import Frame, checked_indices, convert, evaluate, scalar_int
from .tileops import TILE_OPS
from .vectorize import can_vectorize

_STATEMENTS = {N.Launch: "_launch", N.Alloc: "_alloc", N.Let: "_let", N.Hint: "_hint", N.Store: "_store",
               N.If: "_if", N.While: "_while", N.For: "_for"}   # tile ops: tileops.TILE_OPS


def run(func: N.Func, args: Sequence[np.ndarray], dims: Mapping[str, int] | None = None) -> None:
    """Execute ``func`` on ``args`` (one storage-dtype numpy array per parameter), writing in place.

    ``dims`` binds symbolic dimensions; any left out are read from the argument shapes.
    """
    frame = Frame()
    frame.loc = func.loc
    _bind_params(func, list(args), dict(dims or {}), frame)
    with np.errstate(all="ignore"):
        _Interpreter().body(func.body, frame)


def _bind_params(func: N.Func, args: list[Any], dims: dict[str, int], f: Frame) -> None:
    if len(args) != len(func.params):
        raise TilecError(f"kernel '{func.name}' takes {len(func.params)} arguments, got {len(args)}",
                         func.loc)
    for name, value in dims.items():
        f.env[name] = np.int32(value)
    for p, a in zip(func.params, args):   # bind symbolic dims that appear bare in a shape
        if not isinstance(a, np.ndarray):
            raise TilecError(f"argument '{p.name}' must be a numpy array, got {type(a).__name__}", p.loc)
        if a.ndim == len(p.shape):
            for d, e in zip(a.shape, p.shape):
                if isinstance(e, N.Var) and e.name not in f.env:
                    f.env[e.name] = np.int32(d)
    for p, a in zip(func.params, args):
        want = dtypes.storage_numpy(p.dtype)
        if a.dtype != want:
            raise TilecError(f"argument '{p.name}' has numpy dtype {a.dtype}; {p.dtype} is stored as "
                             f"{want}", p.loc)
        shape = [scalar_int(e, f) for e in p.shape]
        if list(a.shape) != shape:
            raise TilecError(f"argument '{p.name}' has shape {list(a.shape)}, expected {shape}", p.loc)
        f.bufs[p.name] = a


def _poisoned(shape: list[int], dtype: str) -> np.ndarray:
    if dtypes.is_float(dtype):
        return np.full(shape, numerics.nan_storage(dtype), dtypes.storage_numpy(dtype))
    if dtypes.is_bool(dtype):
        return np.ones(shape, bool)
    return np.full(shape, 0xA5, np.uint8).repeat(dtypes.itemsize(dtype)).view(
        dtypes.storage_numpy(dtype)).reshape(shape)


class _Interpreter:
    """Statement execution; holds a cache of which parallel loops can be vectorized."""

    def __init__(self) -> None:
        self._vectorizable: dict[int, bool] = {}

    def body(self, stmts: N.Body, f: Frame) -> None:
        for s in stmts:
            f.loc = s.loc if s.loc is not None else f.loc
            self.stmt(s, f)

    def stmt(self, s: N.Stmt, f: Frame) -> None:
        name = _STATEMENTS.get(type(s))
        if name is not None:
            getattr(self, name)(s, f)
        elif type(s) in TILE_OPS:
            if f.depth:
                raise InternalError(f"interpreter: tile op {type(s).__name__} in a vectorized loop")
            TILE_OPS[type(s)](s, f)
        else:
            raise InternalError(f"interpreter: unknown statement {type(s).__name__}")

    # -- launches and declarations ----------------------------------------------------------------

    def _launch(self, s: N.Launch, f: Frame) -> None:
        grid = [scalar_int(g, f) for g in s.grid]
        for index in itertools.product(*(range(n) for n in grid)):
            block = Frame(env=dict(f.env), bufs=dict(f.bufs), loc=s.loc)
            for var, i in zip(s.block_vars, index):
                block.env[var.name] = np.int32(i)
            self.body(s.body, block)

    def _alloc(self, s: N.Alloc, f: Frame) -> None:
        shape = [scalar_int(e, f) for e in s.buffer.shape]
        f.bufs[s.buffer.name] = _poisoned(shape, s.buffer.dtype)

    def _let(self, s: N.Let, f: Frame) -> None:
        f.env[s.var.name] = convert(evaluate(s.value, f), s.value.dtype, s.var.type)

    def _hint(self, s: N.Hint, f: Frame) -> None:
        pass

    # -- stores ------------------------------------------------------------------------------------

    def _store(self, s: N.Store, f: Frame) -> None:
        arr = f.buffer(s.buffer)
        idx = [evaluate(i, f) for i in s.indices]
        value = evaluate(s.value, f)
        shapes = [np.shape(x) for x in idx] + [np.shape(value)]
        if f.mask is not None:
            shapes.append(np.shape(f.mask))
        shape = np.broadcast_shapes(*shapes)
        if shape == ():   # one element, the common case outside parallel loops
            if f.mask is not None and not f.mask:
                return
            where = checked_indices(s.buffer, arr, idx, None, f.loc, "store to")
            arr[where] = numerics.from_compute(np.asarray(value), s.buffer.dtype)
            return
        idx = [np.broadcast_to(i, shape) for i in idx]
        value = np.broadcast_to(value, shape)
        if f.mask is not None:
            m = np.broadcast_to(f.mask, shape)
            idx, value = [i[m] for i in idx], value[m]
        if value.size == 0:
            return
        where = checked_indices(s.buffer, arr, idx, None, f.loc, "store to")
        storage = numerics.from_compute(np.asarray(value), s.buffer.dtype)
        arr[where] = storage

    # -- control flow ------------------------------------------------------------------------------

    def _if(self, s: N.If, f: Frame) -> None:
        cond = evaluate(s.cond, f)
        if f.mask is None and np.ndim(cond) == 0:
            self.body(s.then_body if cond else s.else_body, f)
            return
        outer = f.mask
        try:
            for branch, m in ((s.then_body, cond), (s.else_body, np.logical_not(cond))):
                f.mask = m if outer is None else (outer & m)
                if branch and np.any(f.mask):
                    self.body(branch, f)
        finally:
            f.mask = outer

    def _while(self, s: N.While, f: Frame) -> None:
        while True:
            cond = evaluate(s.cond, f)
            if np.ndim(cond) != 0:
                raise InternalError("interpreter: while loop in a vectorized parallel loop")
            if not cond:
                return
            self.body(s.body, f)

    def _for(self, s: N.For, f: Frame) -> None:
        if s.kind == "parallel" and (f.depth or self._can_vectorize(s)):
            self._vector_for(s, f)
            return
        start, stop = evaluate(s.start, f), evaluate(s.stop, f)
        if np.ndim(start) == 0 and np.ndim(stop) == 0:
            for i in range(int(start), int(stop)):
                f.env[s.var.name] = np.int32(i)
                self.body(s.body, f)
            return
        self._masked_serial_for(s, start, stop, f)

    def _masked_serial_for(self, s: N.For, start: Any, stop: Any, f: Frame) -> None:
        """A serial loop inside a parallel nest whose bounds differ per lane."""
        live = np.ones((), bool) if f.mask is None else f.mask
        lo, hi = _live_range(start, stop, live)
        outer = f.mask
        try:
            for i in range(lo, hi):
                f.env[s.var.name] = np.int32(i)
                f.mask = live & (start <= i) & (i < stop)
                if np.any(f.mask):
                    self.body(s.body, f)
        finally:
            f.mask = outer

    def _vector_for(self, s: N.For, f: Frame) -> None:
        start, stop = evaluate(s.start, f), evaluate(s.stop, f)
        varying = np.ndim(start) != 0 or np.ndim(stop) != 0
        if varying:
            lo, hi = _live_range(start, stop, np.ones((), bool) if f.mask is None else f.mask)
        else:
            lo, hi = int(start), int(stop)
        if hi <= lo:
            return
        # A new innermost axis goes in front, so arrays of the enclosing loops broadcast against it.
        var = np.arange(lo, hi, dtype=np.int32).reshape((hi - lo,) + (1,) * f.depth)
        outer_mask = f.mask
        f.env[s.var.name] = var
        if varying:
            inside = (start <= var) & (var < stop)
            f.mask = inside if outer_mask is None else (outer_mask & inside)
        f.depth += 1
        try:
            self.body(s.body, f)
        finally:
            f.depth -= 1
            f.mask = outer_mask

    def _can_vectorize(self, s: N.For) -> bool:
        key = id(s)
        if key not in self._vectorizable:
            self._vectorizable[key] = can_vectorize(s)
        return self._vectorizable[key]


def _live_range(start: Any, stop: Any, live: Any) -> tuple[int, int]:
    """The smallest range covering [start, stop) of every live lane (bounds that vary per lane)."""
    s_b, e_b, m_b = np.broadcast_arrays(start, stop, live)
    if not m_b.any():
        return 0, 0
    return int(s_b[m_b].min()), int(e_b[m_b].max())
