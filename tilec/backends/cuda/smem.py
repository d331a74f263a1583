"""Shared-memory plan of one CUDA kernel: offsets, pipeline stages and swizzles of block buffers.

Every shared buffer and every fragment placed in shared memory (layout inference) gets a fixed offset
in the kernel's dynamic shared memory, 128-byte aligned, times its number of pipeline stages. Buffers
read by ``ldmatrix`` get an XOR swizzle of their 16-byte chunks: the chunk index within a row is XORed
with bits of the row number so that the 8 row addresses of one ldmatrix phase hit 8 different bank
groups. A scratch area for cross-warp reductions comes last.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as N

from . import gemm, wgmma
from .cexpr import cname, ctype
from .layout import MmaLayout, static_shape, walk

ALIGN = 128


@dataclass(frozen=True)
class SmemBuf:
    buffer: N.Buffer
    offset: int
    elems: int                          # elements of one stage
    stages: int
    swizzle: Optional[tuple[int, int, int]]  # (row length, elements per chunk, chunks per row)
    panel: Optional[tuple[int, int]] = None  # wgmma operand: (rows, panel width), see wgmma.py


@dataclass
class SmemPlan:
    bufs: dict[str, SmemBuf] = field(default_factory=dict)
    scratch_offset: int = 0
    total: int = 0

    def decls(self, ptr: Callable[[str], str] = lambda t: f"{t}*") -> list[str]:
        """The buffers' pointer declarations; ``ptr`` spells the pointer type (the emu flavour's macro)."""
        out = []
        for name, b in self.bufs.items():
            shape = "x".join(str(d) for d in static_shape(b.buffer) or ())
            extra = f", {b.stages} stages" if b.stages > 1 else ""
            extra += ", swizzled" if b.swizzle else ""
            extra += f", wgmma panels of {b.panel[1]}" if b.panel else ""
            out.append(f"{ptr(ctype(b.buffer.dtype))} {cname(name)} = reinterpret_cast<{ctype(b.buffer.dtype)}*>"
                       f"(smem + {b.offset});  // {b.buffer.scope} {b.buffer.dtype}[{shape}]{extra}")
        return out


def swizzle_params(b: N.Buffer) -> Optional[tuple[int, int, int]]:
    shape = static_shape(b)
    if shape is None or len(shape) != 2 or dtypes.itemsize(b.dtype) != 2:
        return None
    per_chunk = 8
    chunks = shape[1] // per_chunk
    if shape[1] % per_chunk or chunks < 2 or not (chunks in (2, 4) or chunks % 8 == 0):
        return None
    return shape[1], per_chunk, chunks


def plan(em) -> SmemPlan:
    staged: dict[str, int] = {}
    for p in em.pipes.values():
        staged.update(p.ring)
    swz = gemm.swizzled_operands(em)
    panels = wgmma.operands(em)
    out = SmemPlan()
    off = 0
    for s in walk(em.launch.body):
        if not isinstance(s, N.Alloc) or not em.in_smem(s.buffer):
            continue
        b = s.buffer
        shape = static_shape(b)
        if shape is None:
            raise TilecError(f"cuda: shared buffer '{b.name}' needs a constant shape", s.loc)
        elems = 1
        for d in shape:
            elems *= d
        stages = staged.get(b.name, 1)
        align = 1024 if b.name in panels else ALIGN  # swizzle patterns repeat every 1024 bytes
        off = -(-off // align) * align
        panel = (shape[0], wgmma.panel_width(b)) if b.name in panels else None
        out.bufs[b.name] = SmemBuf(b, off, elems, stages, swizzle_params(b) if b.name in swz and not panel
                                   else None, panel)
        off += elems * dtypes.itemsize(b.dtype) * stages
    scratch = 0
    for s in walk(em.launch.body):
        if isinstance(s, N.Reduce) and isinstance(em.layouts.get(s.src.buffer.name), MmaLayout):
            lay = em.layouts[s.src.buffer.name]
            if lay.wn > 1:
                scratch = max(scratch, lay.wn * lay.m * 8)
    if scratch:
        off = -(-off // ALIGN) * ALIGN
        out.scratch_offset = off
        off += scratch
    out.total = off
    return out
