"""Tile operations of the reference interpreter: copy, gemm, fill, reduce, cumsum and atomic on numpy.

Each op reads its source regions into dense arrays (elements outside the buffer read as zero), computes
with numpy in the destination's compute dtype, and writes the destination region back (elements outside
the buffer are skipped), rounding to the destination dtype exactly once, at that write. Regions are
evaluated with scalar starts and extents: tile ops never run inside a vectorized parallel nest (the
interpreter runs such a nest as a serial loop).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import numerics
from ..errors import TilecError
from ..ir import nodes as N
from .expr import Frame, convert, evaluate, scalar_int


def _bounds(r: N.Region, f: Frame) -> tuple[np.ndarray, list[int], list[int]]:
    arr = f.buffer(r.buffer)
    if len(r.starts) != arr.ndim or len(r.extents) != arr.ndim:
        raise TilecError(f"region of '{r.buffer.name}' has rank {len(r.starts)}; the buffer has rank "
                         f"{arr.ndim}", f.loc)
    starts = [scalar_int(s, f) for s in r.starts]
    extents = [scalar_int(e, f) for e in r.extents]
    if any(e < 0 for e in extents):
        raise TilecError(f"region of '{r.buffer.name}' has a negative extent {extents}", f.loc)
    return arr, starts, extents


def _slices(arr: np.ndarray, starts: list[int], extents: list[int]) -> tuple[tuple, tuple] | None:
    """(slices into the buffer, slices into the tile) of the in-range part, or None when it is empty."""
    buf_sl, tile_sl = [], []
    for s, e, n in zip(starts, extents, arr.shape):
        lo, hi = max(s, 0), min(s + e, n)
        if hi <= lo:
            return None
        buf_sl.append(slice(lo, hi))
        tile_sl.append(slice(lo - s, hi - s))
    return tuple(buf_sl), tuple(tile_sl)


def read_storage(r: N.Region, f: Frame) -> np.ndarray:
    """The region as a storage array of its extents; out-of-buffer elements are zero."""
    arr, starts, extents = _bounds(r, f)
    out = np.zeros(extents, arr.dtype)
    sl = _slices(arr, starts, extents)
    if sl is not None:
        out[sl[1]] = arr[sl[0]]
    return out


def wide(dtype: str) -> str:
    """The dtype arithmetic for a destination of ``dtype`` happens in (float32 for the half types)."""
    return "float32" if numerics.compute_numpy(dtype) == np.float32 else dtype


def read(r: N.Region, f: Frame, dtype: str | None = None) -> np.ndarray:
    """The region's values, converted to ``wide(dtype)`` (default: the buffer's own compute type).

    Converting to the wide type never rounds a half-type value: rounding waits for the write.
    """
    vals = numerics.to_compute(read_storage(r, f), r.buffer.dtype)
    return vals if dtype is None else np.asarray(convert(vals, r.buffer.dtype, wide(dtype)))


def write(r: N.Region, f: Frame, values: np.ndarray) -> None:
    """Store computed ``values`` (any shape with the region's element count) into the region."""
    arr, starts, extents = _bounds(r, f)
    values = np.asarray(values)
    if values.size != math.prod(extents):
        raise TilecError(f"{values.size} values do not fit region {extents} of '{r.buffer.name}'", f.loc)
    sl = _slices(arr, starts, extents)
    if sl is not None:
        storage = numerics.from_compute(values.reshape(extents), r.buffer.dtype)
        arr[sl[0]] = storage[sl[1]]


def _squeezed(shape: list[int]) -> list[int]:
    return [n for n in shape if n != 1]


def copy(s: N.Copy, f: Frame) -> None:
    src_ext = [scalar_int(e, f) for e in s.src.extents]
    dst_ext = [scalar_int(e, f) for e in s.dst.extents]
    if _squeezed(src_ext) != _squeezed(dst_ext):
        raise TilecError(f"copy from '{s.src.buffer.name}' {src_ext} to '{s.dst.buffer.name}' {dst_ext}: "
                         f"the shapes differ", f.loc)
    if s.src.buffer.dtype == s.dst.buffer.dtype:   # a bit copy keeps NaN payloads and -0
        arr, starts, extents = _bounds(s.dst, f)
        sl = _slices(arr, starts, extents)
        if sl is not None:
            arr[sl[0]] = read_storage(s.src, f).reshape(extents)[sl[1]]
        return
    write(s.dst, f, read(s.src, f, s.dst.buffer.dtype))


def _as_2d(vals: np.ndarray, name: str, f: Frame) -> np.ndarray:
    """Drop unit dimensions, leading ones first, until the operand is a matrix."""
    shape = list(vals.shape)
    while len(shape) > 2 and 1 in shape:
        shape.pop(shape.index(1))
    if len(shape) != 2:
        raise TilecError(f"gemm operand '{name}' of shape {list(vals.shape)} is not a matrix", f.loc)
    return vals.reshape(shape)


def gemm(s: N.Gemm, f: Frame) -> None:
    """C += op(A) @ op(B) in C's compute type (float32 for a half-type C, rounded once at the write)."""
    cdt = s.c.buffer.dtype
    a = _as_2d(read(s.a, f, cdt), s.a.buffer.name, f)
    b = _as_2d(read(s.b, f, cdt), s.b.buffer.name, f)
    c = _as_2d(read(s.c, f), s.c.buffer.name, f)
    a = a.T if s.trans_a else a
    b = b.T if s.trans_b else b
    if a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1]):
        raise TilecError(f"gemm shapes do not agree: op(A) {list(a.shape)}, op(B) {list(b.shape)}, "
                         f"C {list(c.shape)}", f.loc)
    if s.clear_accum:
        c = np.zeros_like(c)
    if c.dtype.kind == "f":
        c = c + np.matmul(a, b)
    else:  # integer accumulation wraps in C's type
        c = (c.astype(np.int64) + np.matmul(a.astype(np.int64), b.astype(np.int64))).astype(c.dtype)
    write(s.c, f, c)


def fill(s: N.Fill, f: Frame) -> None:
    value = evaluate(s.value, f)
    if np.ndim(value) != 0:
        raise TilecError("fill value varies across a parallel loop", f.loc)
    extents = [scalar_int(e, f) for e in s.dst.extents]
    write(s.dst, f, np.full(extents, convert(value, s.value.dtype, wide(s.dst.buffer.dtype))))


_REDUCE = {"max": np.max, "min": np.min, "sum": np.sum, "absmax": np.max, "abssum": np.sum}
_COMBINE = {"max": np.maximum, "min": np.minimum, "sum": np.add, "absmax": np.maximum, "abssum": np.add}


def reduce(s: N.Reduce, f: Frame) -> None:
    vals = read(s.src, f, s.dst.buffer.dtype)
    if not 0 <= s.dim < vals.ndim:
        raise TilecError(f"reduce dim={s.dim} is out of range for '{s.src.buffer.name}' of rank "
                         f"{vals.ndim}", f.loc)
    if s.kind.startswith("abs"):
        vals = np.abs(vals)
    out = _REDUCE[s.kind](vals, axis=s.dim).astype(vals.dtype, copy=False)
    expect = [n for d, n in enumerate(vals.shape) if d != s.dim]
    dst_ext = [scalar_int(e, f) for e in s.dst.extents]
    if _squeezed(dst_ext) != _squeezed(expect):
        raise TilecError(f"reduce of '{s.src.buffer.name}' {list(vals.shape)} along dim {s.dim} gives "
                         f"{expect}, but '{s.dst.buffer.name}' region is {dst_ext}", f.loc)
    if not s.clear:
        out = _COMBINE[s.kind](read(s.dst, f).reshape(out.shape), out)
    write(s.dst, f, out)


def cumsum(s: N.Cumsum, f: Frame) -> None:
    vals = read(s.src, f, s.dst.buffer.dtype)
    if not 0 <= s.dim < vals.ndim:
        raise TilecError(f"cumsum dim={s.dim} is out of range for rank {vals.ndim}", f.loc)
    if s.reverse:
        out = np.flip(np.cumsum(np.flip(vals, s.dim), axis=s.dim, dtype=vals.dtype), s.dim)
    else:
        out = np.cumsum(vals, axis=s.dim, dtype=vals.dtype)
    dst_ext = [scalar_int(e, f) for e in s.dst.extents]
    if _squeezed(dst_ext) != _squeezed(list(vals.shape)):
        raise TilecError(f"cumsum of {list(vals.shape)} into region {dst_ext}: the shapes differ", f.loc)
    write(s.dst, f, out)


_ATOMIC = {"add": np.add, "max": np.maximum, "min": np.minimum}


def atomic(s: N.Atomic, f: Frame) -> None:
    dt = s.dst.buffer.dtype
    old = read(s.dst, f)
    if isinstance(s.value, N.Region):
        value: Any = read(s.value, f, dt)
        if _squeezed(list(value.shape)) != _squeezed(list(old.shape)):
            raise TilecError(f"atomic_{s.kind} of a {list(value.shape)} tile into {list(old.shape)}",
                             f.loc)
        value = value.reshape(old.shape)
    else:
        value = evaluate(s.value, f)
        if np.ndim(value) != 0:
            raise TilecError("atomic value varies across a parallel loop", f.loc)
        value = convert(value, s.value.dtype, wide(dt))
    write(s.dst, f, _ATOMIC[s.kind](old, value))


TILE_OPS = {N.Copy: copy, N.Gemm: gemm, N.Fill: fill, N.Reduce: reduce, N.Cumsum: cumsum, N.Atomic: atomic}
