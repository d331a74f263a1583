"""Buffer subscripts and their resolution into ``Region`` nodes with explicit extents.

``A[i, j]`` in a kernel evaluates to an ``Access``: an element load where a scalar is expected, and the
tile that *starts* at ``(i, j)`` where a tile operation expects a region; its extents then come from
the other operand, right-aligned when the ranks differ (leading dimensions get extent 1, as TileLang's
``buffer_load_to_tile_region`` does). ``A[a:b, :]`` names a tile fully; a scalar index inside a slice
subscript is an extent-1 dimension.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from ..errors import TilecError
from ..ir import dtypes
from ..ir.nodes import Buffer, Const, Expr, Load, Loc, Region
from . import exprs


@dataclass(frozen=True)
class SliceItem:
    start: Optional[Expr]
    stop: Optional[Expr]


Item = Union[Expr, SliceItem]


@dataclass(frozen=True)
class Access:
    """``buffer[items]`` as written; becomes a ``Load`` or a ``Region`` depending on where it is used."""
    buffer: Buffer
    items: tuple[Item, ...]
    loc: Optional[Loc]

    @property
    def is_point(self) -> bool:
        return all(not isinstance(i, SliceItem) for i in self.items)

    def describe(self) -> str:
        return f"a subscript of buffer '{self.buffer.name}'"

    def indices(self) -> tuple[Expr, ...]:
        if not self.is_point:
            raise TilecError(f"a slice of buffer '{self.buffer.name}' is used as a scalar", self.loc)
        rank = len(self.buffer.shape)
        items = self.items
        if rank == 0 and len(items) == 1 and isinstance(items[0], Const) and items[0].value == 0:
            return ()  # T.alloc_var buffers are also read as x[0], as in TileLang
        # A rank mismatch is reported by the verifier, which names the buffer's shape.
        return tuple(items)  # type: ignore[arg-type]

    def to_expr(self) -> Load:
        return Load(self.buffer, self.indices(), self.loc)


def make_index(v: Any, loc: Optional[Loc]) -> Expr:
    """An index expression: integers become int32; anything else is left for the verifier to reject."""
    e = exprs.as_expr(v, loc, dtypes.INDEX)
    if dtypes.is_int(e.dtype) and e.dtype != dtypes.INDEX:
        return exprs.cast(dtypes.INDEX, e, loc)
    return e


@dataclass
class Operand:
    """A tile-op operand: a buffer and starts, with extents unless it is a bare point."""
    buffer: Buffer
    starts: tuple[Expr, ...]
    extents: Optional[tuple[Expr, ...]]
    loc: Optional[Loc]

    def region(self) -> Region:
        assert self.extents is not None
        return Region(self.buffer, self.starts, self.extents, self.loc)


def operand(v: Any, what: str, loc: Optional[Loc]) -> Operand:
    """Classify a tile-op argument: whole buffer, slice subscript, or point subscript."""
    if isinstance(v, Buffer):
        zero = exprs.const(0, dtypes.INDEX, loc)
        return Operand(v, tuple(zero for _ in v.shape), tuple(v.shape), loc)
    if isinstance(v, Access):
        return _access_operand(v, loc)
    raise TilecError(f"{what} must be a buffer or a buffer tile, got {exprs.describe(v)}", loc)


def _access_operand(a: Access, loc: Optional[Loc]) -> Operand:
    buf = a.buffer
    rank = len(buf.shape)
    if len(a.items) != rank:
        raise TilecError(f"buffer '{buf.name}' has {rank} dimension(s) but is subscripted with "
                         f"{len(a.items)}", a.loc or loc)
    if a.is_point:
        return Operand(buf, tuple(a.items), None, a.loc or loc)  # type: ignore[arg-type]
    starts, extents = [], []
    one = exprs.const(1, dtypes.INDEX, loc)
    for item, dim in zip(a.items, buf.shape):
        if not isinstance(item, SliceItem):
            starts.append(item)
            extents.append(one)
            continue
        start = item.start if item.start is not None else exprs.const(0, dtypes.INDEX, loc)
        stop = item.stop if item.stop is not None else dim
        extent = exprs.difference(stop, start, a.loc or loc)
        if isinstance(extent, Const) and extent.value <= 0:
            raise TilecError(f"empty slice of buffer '{buf.name}' (extent {extent.value})", a.loc or loc)
        starts.append(start)
        extents.append(extent)
    return Operand(buf, tuple(starts), tuple(extents), a.loc or loc)


def fit_extents(extents: tuple[Expr, ...], rank: int, name: str, loc: Optional[Loc]) -> tuple[Expr, ...]:
    """Right-align a tile's extents to a buffer of ``rank`` dims (pad with 1s, or drop leading 1s)."""
    ext = list(extents)
    one = exprs.const(1, dtypes.INDEX, loc)
    while len(ext) > rank and isinstance(ext[0], Const) and ext[0].value == 1:
        ext.pop(0)
    if len(ext) > rank:
        raise TilecError(f"a tile of {len(extents)} dimensions does not fit buffer '{name}' of rank {rank}",
                         loc)
    return tuple([one] * (rank - len(ext)) + ext)


def squeezed(extents: tuple[Expr, ...]) -> Optional[list[int]]:
    """Constant extents without unit dims, or None when any extent is symbolic."""
    if not all(isinstance(e, Const) for e in extents):
        return None
    return [int(e.value) for e in extents if int(e.value) != 1]  # type: ignore[attr-defined]


def pair(src: Operand, dst: Operand, op: str, loc: Optional[Loc]) -> tuple[Region, Region]:
    """Resolve two operands whose extents must agree (``T.copy``): a point takes the other's extents."""
    if src.extents is None and dst.extents is None:
        raise TilecError(f"{op}: cannot deduce the tile size: both operands are single elements; "
                         "slice one of them (A[i:i+m, j:j+n])", loc)
    if src.extents is None:
        src.extents = fit_extents(dst.extents, len(src.buffer.shape), src.buffer.name, loc)  # type: ignore
    if dst.extents is None:
        dst.extents = fit_extents(src.extents, len(dst.buffer.shape), dst.buffer.name, loc)
    # Shapes that disagree are the verifier's to report (it names both tiles).
    return src.region(), dst.region()


def point_region(o: Operand, loc: Optional[Loc]) -> Region:
    """A single-element region for a point operand (``T.fill(A[i, j], v)``, scalar atomics)."""
    if o.extents is None:
        o.extents = tuple(exprs.const(1, dtypes.INDEX, loc) for _ in o.buffer.shape)
    return o.region()

