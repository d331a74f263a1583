"""Analysis of one Launch for the Ascend backend: which buffers live where and how big the kernel's memory is.

Every non-scalar block-local buffer (shared, fragment, local) lives in the Vector core's UB, carved out of one
``TBuf<VECCALC>`` with ``GetWithOffset`` at 32-byte aligned offsets planned here; the rest of UB is a scratch
area that tile-op lowerings borrow (staging for casts and gemm operands). A buffer that a pipelined loop
fills from GM at the top of each iteration and uses only inside that loop gets a double-buffered
``TQue<VECIN, 2>`` instead. ``T.alloc_var`` scalars become plain members (Scalar unit registers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Optional

from tilec.errors import TilecError
from tilec.ir import dtypes, nodes as N

UB_BYTES = 192 * 1024 - 256


def align32(n: int) -> int:
    return (n + 31) // 32 * 32


def const_shape(buf: N.Buffer) -> tuple[int, ...]:
    dims = []
    for d in buf.shape:
        if not isinstance(d, N.Const):
            raise TilecError(f"ascend target: block-local buffer '{buf.name}' needs a constant shape", buf.loc)
        dims.append(int(d.value))
    return tuple(dims)


@dataclass
class LocalBuf:
    buf: N.Buffer
    shape: tuple[int, ...]
    offset: int = 0          # byte offset in the UB TBuf (ignored for queued buffers)
    queue: Optional[str] = None
    direct: bool = False     # a gemm operand the Cube core loads straight from GM (never in UB)
    resident: bool = False   # the gemm accumulator lives in the Cube's L0C; UB holds flushed copies

    @property
    def nbytes(self) -> int:
        return align32(prod(self.shape) * dtypes.itemsize(self.buf.dtype))


@dataclass
class LaunchPlan:
    locals: dict[str, LocalBuf] = field(default_factory=dict)
    scalars: dict[str, N.Buffer] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)       # every scalar name -> dtype
    queued_loops: dict[int, list[str]] = field(default_factory=dict)   # id(For) -> queued buffer names
    ub_used: int = 0
    has_gemm: bool = False


def walk_stmts(body: N.Body):
    for s in body:
        yield s
        for attr in ("body", "then_body", "else_body"):
            sub = getattr(s, attr, None)
            if isinstance(sub, tuple):
                yield from walk_stmts(sub)


def _buffers_in(node) -> set[str]:
    """Names of buffers a statement or expression mentions (recursively)."""
    out: set[str] = set()

    def visit(x):
        if isinstance(x, N.Buffer):
            out.add(x.name)
        elif isinstance(x, (N.Expr, N.Stmt, N.Region)):
            for f in x.__dataclass_fields__:
                visit(getattr(x, f))
        elif isinstance(x, tuple):
            for y in x:
                visit(y)
    visit(node)
    return out


def _queue_candidates(loop: N.For, plan: LaunchPlan, outside: set[str]) -> list[str]:
    names = []
    for i, s in enumerate(loop.body):
        if not (isinstance(s, N.Copy) and s.src.buffer.scope == "global" and s.dst.buffer.name in plan.locals):
            continue
        name = s.dst.buffer.name
        earlier = set().union(*(_buffers_in(t) for t in loop.body[:i])) if i else set()
        lb = plan.locals[name]
        whole = all(isinstance(st, N.Const) and st.value == 0 for st in s.dst.starts) and \
            all(isinstance(e, N.Const) and e.value == d for e, d in zip(s.dst.extents, lb.shape))
        if name not in earlier and name not in outside and whole and not lb.direct and name not in names and \
                sum(1 for t in loop.body if isinstance(t, N.Copy) and t.dst.buffer.name == name) == 1:
            names.append(name)
    return names


def plan_launch(launch: N.Launch) -> LaunchPlan:
    plan = LaunchPlan()
    for v in launch.block_vars:
        plan.vars[v.name] = v.type
    for s in walk_stmts(launch.body):
        if isinstance(s, N.Alloc):
            if len(s.buffer.shape) == 0:
                plan.scalars[s.buffer.name] = s.buffer
            else:
                plan.locals[s.buffer.name] = LocalBuf(s.buffer, const_shape(s.buffer))
        elif isinstance(s, N.For):
            plan.vars[s.var.name] = s.var.type
        elif isinstance(s, N.Let):
            plan.vars[s.var.name] = s.var.type
        elif isinstance(s, N.Gemm):
            plan.has_gemm = True
    for name in direct_operands(launch, plan):
        plan.locals[name].direct = True
    acc = resident_accumulator(launch, plan)
    if acc:
        plan.locals[acc].resident = True
    # Double-buffered queues for pipelined loops (only buffers not touched outside the loop).
    for s in walk_stmts(launch.body):
        if isinstance(s, N.For) and s.kind == "pipelined":
            outside = _uses_outside(launch.body, s)
            names = _queue_candidates(s, plan, outside)
            for n in names:
                base = "".join(c if c.isalnum() else "_" for c in n)
                q = "inQueue" + base[0].upper() + base[1:]
                while q in {lb.queue for lb in plan.locals.values()}:
                    q += "_"
                plan.locals[n].queue = q
            if names:
                plan.queued_loops[id(s)] = names
    off = 0
    for lb in plan.locals.values():
        if lb.queue is None and not lb.direct:
            lb.offset = off
            off += lb.nbytes
    plan.ub_used = off + sum(2 * lb.nbytes for lb in plan.locals.values() if lb.queue)
    return plan


def _uses_outside(body: N.Body, loop: N.For) -> set[str]:
    out: set[str] = set()
    for s in body:
        if s is loop or isinstance(s, N.Alloc):
            continue
        if isinstance(s, (N.For, N.While)) or isinstance(s, N.If):
            subs = [s.body] if not isinstance(s, N.If) else [s.then_body, s.else_body]
            if any(loop is t for sub in subs for t in walk_stmts(sub)):
                out |= _buffers_in(s.cond) if isinstance(s, (N.If, N.While)) else set()
                for sub in subs:
                    out |= _uses_outside(sub, loop)
                continue
        out |= _buffers_in(s)
    return out


B16 = ("float16", "bfloat16")


def _operand_ok(g: N.Gemm, name: str, dtype: str) -> bool:
    """Can the Cube load this operand of ``g`` from an ND tile in L1 without a Vector-core transpose?"""

    def whole(r: N.Region) -> bool:
        return all(isinstance(x, N.Const) and x.value == 0 for x in r.starts)
    if g.a.buffer.name == name and (g.trans_a or not whole(g.a)):
        return False
    if g.b.buffer.name == name and (not whole(g.b) or (not g.trans_b and dtype not in B16)):
        return False
    return g.c.buffer.name != name


def direct_operands(launch: N.Launch, plan: LaunchPlan) -> list[str]:
    """Gemm operands that only a single GM->tile copy writes and only gemms read.

    The Cube core loads those straight from GM into L1 with Nd2Nz (docs/backends/ascend.md); the Vector core
    just records which tile the copy named. Everything else about the buffer must be absent.
    """
    stmts = [s for s in walk_stmts(launch.body) if not isinstance(s, N.Alloc)]
    out = []
    for name, lb in plan.locals.items():
        if len(lb.shape) != 2 or min(lb.shape) < 2 or lb.buf.dtype not in ("float16", "bfloat16", "float32", "int8"):
            continue
        copies, gemms, other = [], [], False
        for s in stmts:
            if isinstance(s, (N.For, N.While, N.If)):
                heads = [s.start, s.stop] if isinstance(s, N.For) else [s.cond]
                other = other or any(name in _buffers_in(h) for h in heads)
                continue
            if name not in _buffers_in(s):
                continue
            if isinstance(s, N.Copy) and s.dst.buffer.name == name and s.src.buffer.scope == "global":
                copies.append(s)
            elif isinstance(s, N.Gemm) and _operand_ok(s, name, lb.buf.dtype):
                gemms.append(s)
            else:
                other = True
        if other or len(copies) != 1 or not gemms:
            continue
        c = copies[0]
        src = c.src
        nonunit = [d for d, e in enumerate(src.extents) if not (isinstance(e, N.Const) and e.value == 1)]
        ok = (src.buffer.dtype == lb.buf.dtype and len(nonunit) == 2 and nonunit[-1] == len(src.buffer.shape) - 1
              and all(isinstance(src.extents[d], N.Const) and src.extents[d].value == n
                      for d, n in zip(nonunit, lb.shape))
              and all(isinstance(x, N.Const) and x.value == 0 for x in c.dst.starts)
              and all(isinstance(e, N.Const) and e.value == n for e, n in zip(c.dst.extents, lb.shape)))
        if ok:
            out.append(name)
    return out


def resident_accumulator(launch: N.Launch, plan: LaunchPlan) -> Optional[str]:
    """The one C of every gemm in the launch, when the Vector core only clears it and reads it.

    Such an accumulator stays in L0C across the K loop (Mmad with cmatrixInitVal after a clear) and is
    brought out by Fixpipe only when the Vector core reads it, the classic CANN matmul shape.
    """
    stmts = [s for s in walk_stmts(launch.body) if not isinstance(s, N.Alloc)]
    gemms = [s for s in stmts if isinstance(s, N.Gemm)]
    if not gemms or len({g.c.buffer.name for g in gemms}) != 1:
        return None
    name = gemms[0].c.buffer.name
    lb = plan.locals.get(name)
    if lb is None or len(lb.shape) != 2 or lb.buf.dtype not in ("float32", "int32"):
        return None

    def whole(r: N.Region) -> bool:
        return all(isinstance(x, N.Const) and x.value == 0 for x in r.starts) and \
            all(isinstance(e, N.Const) and e.value == d for e, d in zip(r.extents, lb.shape))
    for s in stmts:
        if isinstance(s, (N.For, N.While, N.If)):
            heads = [s.start, s.stop] if isinstance(s, N.For) else [s.cond]
            if any(name in _buffers_in(h) for h in heads):
                return None
            continue
        if name not in _buffers_in(s):
            continue
        if isinstance(s, N.Fill) and s.dst.buffer.name == name and whole(s.dst) and \
                isinstance(s.value, N.Const) and s.value.value == 0:
            continue
        if isinstance(s, N.Gemm) and whole(s.c) and name not in (s.a.buffer.name, s.b.buffer.name):
            continue
        if isinstance(s, N.Copy) and s.src.buffer.name == name and s.dst.buffer.name != name:
            continue
        return None
    acc = "int32" if gemms[0].a.buffer.dtype == "int8" else "float32"
    return name if lb.buf.dtype == acc else None
