"""Memory planning: liveness of shared buffers, a packed layout's size, and the reuse rewrite.

``plan_memory(func)`` is the analysis: for each launch it numbers the statements at the top of the
block's body and gives every ``shared`` allocation with a constant shape its live range, from the first
to the last top-level statement that refers to it (a use anywhere inside a loop makes the whole loop the
use, so a buffer carried across iterations stays live through the loop). It reports, per launch, the
bytes the allocations take as written and the peak bytes of a packed layout in which buffers with
disjoint live ranges share space (first-fit offsets, 16-byte aligned), which is what a target that
places shared memory by offset can reach.

The ``memory_plan`` pass rewrites only what is provably safe in the IR, which has no aliasing views: a
buffer whose live range starts after another's ends, with the same dtype and shape, is replaced by that
earlier buffer and its allocation dropped. Buffers named in a ``hint`` (layout annotations) are left
alone.

Before::

    A_s = alloc shared float16[64, 32]
    B_s = alloc shared float16[64, 32]
    copy A[0 +: 64, 0 +: 32] -> A_s
    copy A_s -> X[0 +: 64, 0 +: 32]
    copy B[0 +: 64, 0 +: 32] -> B_s
    copy B_s -> Y[0 +: 64, 0 +: 32]

After (report: shared 8192 B as written, 4096 B planned)::

    A_s = alloc shared float16[64, 32]
    copy A[0 +: 64, 0 +: 32] -> A_s
    copy A_s -> X[0 +: 64, 0 +: 32]
    copy B[0 +: 64, 0 +: 32] -> A_s
    copy A_s -> Y[0 +: 64, 0 +: 32]
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from ..ir import dtypes
from ..ir import nodes as n
from ..ir import visitor as v
from .manager import make_pass

ALIGN = 16
SCOPE = "shared"


@dataclass(frozen=True)
class Live:
    """One planned buffer: its size and live range in top-level statement numbers."""
    buffer: n.Buffer
    bytes: int
    first: int
    last: int
    offset: int = 0


@dataclass
class LaunchPlan:
    index: int
    buffers: list[Live] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)   # shared buffers with a symbolic shape

    @property
    def written_bytes(self) -> int:
        return sum(b.bytes for b in self.buffers)

    @property
    def planned_bytes(self) -> int:
        return max((b.offset + b.bytes for b in self.buffers), default=0)


@dataclass
class MemoryReport:
    launches: list[LaunchPlan]

    def text(self) -> str:
        """One line per launch and per buffer: sizes, live ranges and planned offsets."""
        lines = []
        for lp in self.launches:
            lines.append(f"launch {lp.index}: {SCOPE} {lp.written_bytes} B as written, "
                         f"{lp.planned_bytes} B planned")
            for b in lp.buffers:
                lines.append(f"  {b.buffer.name}: {b.bytes} B live [{b.first}, {b.last}] "
                             f"offset {b.offset}")
            for name in lp.dynamic:
                lines.append(f"  {name}: symbolic shape, not planned")
        return "\n".join(lines)


def _const_bytes(buf: n.Buffer) -> Optional[int]:
    if not all(isinstance(d, n.Const) for d in buf.shape):
        return None
    return math.prod(int(d.value) for d in buf.shape) * dtypes.itemsize(buf.dtype)


def _hinted_names(node) -> set[str]:
    return {a for x in v.walk(node) if isinstance(x, n.Hint) for a in x.args if isinstance(a, str)}


def _live_ranges(launch: n.Launch) -> tuple[list[Live], list[str]]:
    uses: dict[n.Buffer, list[int]] = {}
    allocs = [s.buffer for s in launch.body if isinstance(s, n.Alloc) and s.buffer.scope == SCOPE]
    wanted = set(allocs)
    for k, s in enumerate(launch.body):
        if isinstance(s, n.Alloc):
            continue
        for b in v.buffers_used(s):
            if b in wanted:
                uses.setdefault(b, []).append(k)
    lives, dynamic = [], []
    for b in allocs:
        size = _const_bytes(b)
        if size is None:
            dynamic.append(b.name)
            continue
        ks = uses.get(b, [])
        if ks:
            lives.append(Live(b, size, min(ks), max(ks)))
    return lives, dynamic


def _pack(lives: list[Live]) -> list[Live]:
    """First-fit offsets: each buffer, in order of first use, goes to the lowest aligned offset that
    overlaps no buffer live at the same time."""
    placed: list[Live] = []
    for b in sorted(lives, key=lambda x: (x.first, -x.bytes)):
        busy = sorted((p.offset, p.offset + p.bytes) for p in placed
                      if not (p.last < b.first or b.last < p.first))
        offset = 0
        for lo, hi in busy:
            if offset + b.bytes <= lo:
                break
            offset = max(offset, -(-hi // ALIGN) * ALIGN)
        placed.append(dataclasses.replace(b, offset=offset))
    order = {id(b.buffer): k for k, b in enumerate(lives)}
    return sorted(placed, key=lambda x: order[id(x.buffer)])


def plan_memory(func: n.Func) -> MemoryReport:
    """The liveness analysis and packed sizes of every launch's shared buffers (no rewrite)."""
    plans = []
    for k, s in enumerate(x for x in func.body if isinstance(x, n.Launch)):
        lives, dynamic = _live_ranges(s)
        plans.append(LaunchPlan(k, _pack(lives), dynamic))
    return MemoryReport(plans)


def _reuse(launch: n.Launch) -> n.Launch:
    lives, _ = _live_ranges(launch)
    hinted = _hinted_names(launch)
    storage: list[Live] = []          # buffers that keep their allocation, with extended live ranges
    mapping: dict[n.Buffer, n.Buffer] = {}
    for b in sorted(lives, key=lambda x: x.first):
        if b.buffer.name in hinted:
            continue
        for k, s in enumerate(storage):
            same = (s.buffer.dtype, s.buffer.shape) == (b.buffer.dtype, b.buffer.shape)
            if same and s.last < b.first:
                mapping[b.buffer] = s.buffer
                storage[k] = dataclasses.replace(s, last=b.last)
                break
        else:
            storage.append(b)
    if not mapping:
        return launch
    body = tuple(s for s in launch.body if not (isinstance(s, n.Alloc) and s.buffer in mapping))
    return dataclasses.replace(launch, body=v.replace_buffers(body, mapping))


@make_pass("memory_plan")
def memory_plan(func: n.Func) -> n.Func:
    """Reuse a shared buffer's allocation for a later one of the same type whose live range follows."""
    body = tuple(_reuse(s) if isinstance(s, n.Launch) else s for s in func.body)
    return dataclasses.replace(func, body=body)


def report(func: n.Func) -> str:
    """The pass-test report hook: the plan of the pass's input."""
    return plan_memory(func).text()
