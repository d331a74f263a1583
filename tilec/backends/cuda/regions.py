"""Index arithmetic on regions for the CUDA emitter: element coordinates, bounds predicates, vector plans.

``T.copy`` maps the i-th element of its source region (row-major) to the i-th of its destination; a
region may run past its buffer, where reads give zero and writes are skipped. These helpers write the C
for that: coordinates of a flat element index, the predicate "inside the buffer" (omitted where it is
provably true), and whether a copy can move 16-byte vectors (and under which run-time conditions).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tilec.ir import dtypes
from tilec.ir import nodes as N

from .layout import region_extents, squeezed, static_int


def extent_strs(em, r: N.Region) -> list[str]:
    return [em.ex(e) for e in r.extents]


def total_str(em, r: N.Region) -> str:
    ext = region_extents(r)
    if ext is not None:
        total = 1
        for e in ext:
            total *= e
        return str(total)
    return " * ".join(f"({x})" for x in extent_strs(em, r))


def coords(em, r: N.Region, flat: str, prefix: str) -> list[str]:
    """Emit ``const int`` coordinates of element ``flat`` of region ``r``; return their C names."""
    ext = extent_strs(em, r)
    names: list[str] = []
    stride = "1"
    static_stride: Optional[int] = 1
    first_nonunit = next((d for d, e in enumerate(r.extents) if static_int(e) != 1), len(ext))
    parts: list[str] = [""] * len(ext)
    for d in range(len(ext) - 1, -1, -1):
        start = em.ex(r.starts[d])
        if static_int(r.extents[d]) == 1:
            parts[d] = start
        else:
            q = flat if stride == "1" else f"({flat} / {stride})"
            local = q if d == first_nonunit else f"{q} % {ext[d]}"
            parts[d] = f"{start} + {local}" if start != "0" else local
        es = static_int(r.extents[d])
        if static_stride is not None and es is not None:
            static_stride *= es
            stride = str(static_stride)
        else:
            static_stride = None
            stride = f"{stride} * {ext[d]}" if stride != "1" else ext[d]
    for d in range(len(ext)):
        name = f"{prefix}{d}"
        em.line(f"const int {name} = {parts[d]};")
        names.append(name)
    return names


def _region_map(r: N.Region, dims: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    k = 0
    nonunit = [d for d, e in enumerate(r.extents) if static_int(e) != 1]
    for d in range(len(r.extents)):
        if d in nonunit and k < len(dims):
            out.append(f"({{s{d}}} + {dims[k]})")
            k += 1
        else:
            out.append(f"{{s{d}}}")
    return out


def mapped_coords(em, r: N.Region, dims: tuple[str, ...]) -> list[str]:
    starts = {f"s{d}": em.ex(s) for d, s in enumerate(r.starts)}
    return [c.format(**starts) for c in _region_map(r, dims)]


def in_bounds(em, r: N.Region, cs: list[str]) -> str:
    """C predicate: coordinates ``cs`` of region ``r`` lie inside its buffer ("" when provably true)."""
    b = r.buffer
    conds = []
    for d in range(len(cs)):
        start, ext, size = static_int(r.starts[d]), static_int(r.extents[d]), static_int(b.shape[d])
        if start is not None and ext is not None and size is not None and start >= 0 and start + ext <= size:
            continue
        conds.append(f"(unsigned)({cs[d]}) < (unsigned)({em.dim(b, d)})")
    return " && ".join(conds)


@dataclass(frozen=True)
class VecPlan:
    width: int                    # elements per 16-byte vector
    conds: tuple[N.Expr, ...]     # values that must be multiples of ``width`` at run time

    def cond_text(self, em) -> str:
        return " && ".join(f"({em.ex(e)}) % {self.width} == 0" for e in self.conds)


def divisible(e: N.Expr, w: int) -> bool:
    """Whether ``e`` is provably a multiple of ``w`` (constants, products and sums of such)."""
    if isinstance(e, N.Const):
        return isinstance(e.value, int) and e.value % w == 0
    if isinstance(e, N.BinOp):
        if e.op == "*":
            return divisible(e.a, w) or divisible(e.b, w)
        if e.op in ("+", "-"):
            return divisible(e.a, w) and divisible(e.b, w)
    return False


def vector_plan(em, c: N.Copy) -> Optional[VecPlan]:
    """Whether ``c`` can move 16-byte vectors, and the run-time conditions for it."""
    src, dst = c.src, c.dst
    if src.buffer.dtype != dst.buffer.dtype or not (em.is_mem(src.buffer) and em.is_mem(dst.buffer)):
        return None
    width = 16 // dtypes.itemsize(src.buffer.dtype)
    es, ed = region_extents(src), region_extents(dst)
    if es is None or ed is None or squeezed(src) != squeezed(dst) or not es or not ed:
        return None
    if es[-1] % width or ed[-1] % width:
        return None
    conds: list[N.Expr] = []
    for r in (src, dst):
        for e in (r.starts[-1], r.buffer.shape[-1]):
            if static_int(e) is not None and not divisible(e, width):
                return None
            if not divisible(e, width) and e not in conds:
                conds.append(e)
    return VecPlan(width, tuple(conds))
