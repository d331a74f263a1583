"""Barrier placement for the CUDA backend: where ``__syncthreads()`` must go.

Block-level statements run with different thread mappings (a copy is spread one way, a parallel loop
another, a reduction a third), so a statement that reads memory another statement wrote since the last
barrier (RAW), or writes memory read or written since then (WAR/WAW), needs a barrier first. "Memory"
is what several threads can see: global parameters, shared buffers and fragments placed in shared
memory; registers and ``local`` buffers are private and never need one. Block-level control flow is
uniform (its conditions depend only on block indices, dimensions and replicated scalars), so barriers
may sit inside block-level loops and ifs; a loop's body is analysed from a fixpoint of the states that
reach its head (entry and back edge).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tilec.ir import nodes as N

from .layout import expr_loads, stmt_exprs, walk

IsMem = Callable[[N.Buffer], bool]


@dataclass
class SyncState:
    read: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)

    def copy(self) -> "SyncState":
        return SyncState(set(self.read), set(self.written))

    def union(self, other: "SyncState") -> "SyncState":
        return SyncState(self.read | other.read, self.written | other.written)

    def conflicts(self, reads: set[str], writes: set[str]) -> bool:
        return bool(reads & self.written) or bool(writes & (self.read | self.written))

    def clear(self) -> None:
        self.read.clear()
        self.written.clear()

    def add(self, reads: set[str], writes: set[str]) -> None:
        self.read |= reads
        self.written |= writes


def accesses(s: N.Stmt, is_mem: IsMem) -> tuple[set[str], set[str]]:
    """Names of memory buffers ``s`` may read and write, nested bodies included."""
    reads: set[str] = set()
    writes: set[str] = set()

    def r(b: N.Buffer) -> None:
        if is_mem(b):
            reads.add(b.name)

    def w(b: N.Buffer) -> None:
        if is_mem(b):
            writes.add(b.name)

    for x in walk((s,)):
        for e in stmt_exprs(x):
            for ld in expr_loads(e):
                r(ld.buffer)
        if isinstance(x, N.Store):
            w(x.buffer)
        elif isinstance(x, (N.Copy, N.Cumsum)):
            r(x.src.buffer)
            w(x.dst.buffer)
        elif isinstance(x, N.Reduce):
            r(x.src.buffer)
            r(x.dst.buffer)
            w(x.dst.buffer)
        elif isinstance(x, N.Fill):
            w(x.dst.buffer)
        elif isinstance(x, N.Gemm):
            r(x.a.buffer)
            r(x.b.buffer)
            r(x.c.buffer)
            w(x.c.buffer)
        elif isinstance(x, N.Atomic):
            w(x.dst.buffer)
            if isinstance(x.value, N.Region):
                r(x.value.buffer)
    return reads, writes


def is_block_loop(s: N.Stmt) -> bool:
    return isinstance(s, N.While) or (isinstance(s, N.For) and s.kind in ("serial", "unrolled", "pipelined"))


class SyncSim:
    """Pure simulation of the barrier decisions the emitter makes (used for loop fixpoints).

    ``special`` handles statements with their own barrier protocol (pipelined loops); it returns the
    state after the statement, or None to treat the statement as an ordinary one.
    """

    def __init__(self, is_mem: IsMem, special: Callable[[N.Stmt, SyncState], "SyncState | None"]):
        self.is_mem = is_mem
        self.special = special

    def step(self, s: N.Stmt, st: SyncState) -> tuple[bool, SyncState]:
        """(barrier needed before ``s``?, state after the barrier and ``s``'s own accesses)."""
        reads, writes = accesses(s, self.is_mem)
        need = st.conflicts(reads, writes)
        out = SyncState() if need else st.copy()
        out.add(reads, writes)
        return need, out

    def body(self, body: N.Body, st: SyncState) -> SyncState:
        for s in body:
            st = self.stmt(s, st)
        return st

    def stmt(self, s: N.Stmt, st: SyncState) -> SyncState:
        special = self.special(s, st)
        if special is not None:
            return special
        if is_block_loop(s):
            head = self.header_state(s, st)
            entry = self.loop_entry(s.body, head)  # type: ignore[attr-defined]
            return head.union(self.body(s.body, entry))  # type: ignore[attr-defined]
        if isinstance(s, N.If):
            head = self.header_state(s, st)
            return self.body(s.then_body, head).union(self.body(s.else_body, head))
        return self.step(s, st)[1]

    def header_reads(self, s: N.Stmt) -> set[str]:
        reads: set[str] = set()
        for e in stmt_exprs(s):
            reads |= {ld.buffer.name for ld in expr_loads(e) if self.is_mem(ld.buffer)}
        return reads

    def header_state(self, s: N.Stmt, st: SyncState) -> SyncState:
        reads = self.header_reads(s)
        out = SyncState() if st.conflicts(reads, set()) else st.copy()
        out.add(reads, set())
        return out

    def loop_entry(self, body: N.Body, st: SyncState) -> SyncState:
        """The state to analyse a loop body from: entry joined with the back edge, to a fixpoint."""
        entry = st.copy()
        for _ in range(4):
            nxt = st.union(self.body(body, entry))
            if nxt.read == entry.read and nxt.written == entry.written:
                return entry
            entry = entry.union(nxt)
        everything = SyncState()
        for s in body:
            everything.add(*accesses(s, self.is_mem))
        return entry.union(SyncState(everything.read | everything.written, everything.read | everything.written))
