"""``T.Pipelined`` on the CUDA backend: a cp.async multi-stage ring in shared memory.

The loads of a pipelined loop -- top-level ``T.copy`` from global to shared that can move 16-byte
vectors and depend only on the loop variable and names bound outside the loop -- become producers: each
destination buffer gets ``S`` copies (stages) and the loop becomes

    prologue:  for s in [0, S-1): if (lo + s < hi) issue loads of iteration lo + s into stage s; commit
    for it:    wait until at most S-2 groups are pending (iteration it has landed); __syncthreads()
               issue loads of iteration it + S - 1 into stage (it + S - 1) % S (if it exists); commit
               compute on stage it % S
    epilogue:  wait for all groups; __syncthreads()

One commit per slot, empty or not, keeps the group count exact, so trip counts below S and trip counts
that depend on the block (causal attention) need no special case. The barrier at the top of each
iteration both publishes the landed stage and guarantees every thread finished reading the stage the
new loads overwrite (it was consumed in iteration it - 1). With S = 1 the loads are issued and awaited
inside the iteration between two barriers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tilec.ir import nodes as N

from . import tileops
from .cexpr import cname
from .layout import at, expr_loads, stmt_exprs, walk
from .regions import vector_plan
from .sync import SyncState, accesses


@dataclass
class PipePlan:
    loop: N.For
    stages: int
    producers: list[N.Copy] = field(default_factory=list)
    compute: list[N.Stmt] = field(default_factory=list)

    @property
    def ring(self) -> dict[str, int]:
        return {c.dst.buffer.name: self.stages for c in self.producers}


def _free_vars(exprs: list[N.Expr]) -> set[str]:
    out: set[str] = set()

    def visit(e: N.Expr) -> None:
        if isinstance(e, N.Var):
            out.add(e.name)
        for f in ("a", "b", "value", "cond"):
            if hasattr(e, f) and isinstance(getattr(e, f), N.Expr):
                visit(getattr(e, f))
        for f in ("args", "indices"):
            for x in getattr(e, f, ()):
                visit(x)

    for e in exprs:
        visit(e)
    return out


def _bound_inside(body: N.Body) -> set[str]:
    names: set[str] = set()
    for s in walk(body):
        if isinstance(s, N.Let):
            names.add(s.var.name)
        elif isinstance(s, N.For):
            names.add(s.var.name)
    return names


def _is_producer(em, loop: N.For, c: N.Stmt, written_in_loop: set[str]) -> bool:
    if not isinstance(c, N.Copy) or c.src.buffer.scope != "global" or not em.in_smem(c.dst.buffer):
        return False
    if vector_plan(em, c) is None:
        return False
    exprs = stmt_exprs(c)
    if _free_vars(exprs) & _bound_inside(loop.body):
        return False
    return not any(ld.buffer.name in written_in_loop for e in exprs for ld in expr_loads(e))


def plan_all(em) -> dict[int, PipePlan]:
    plans: dict[int, PipePlan] = {}
    all_stmts = list(walk(em.launch.body))
    for s in all_stmts:
        if not (isinstance(s, N.For) and s.kind == "pipelined"):
            continue
        written: dict[str, int] = {}
        for x in s.body:
            for name in accesses(x, lambda b: True)[1]:
                written[name] = written.get(name, 0) + 1
        inside = {id(x) for x in walk(s.body)}
        plan = PipePlan(s, max(1, s.stages))
        seen: set[str] = set()  # buffers touched by earlier statements of the body
        for x in s.body:
            if _is_producer(em, s, x, set(written)) and written.get(x.dst.buffer.name) == 1 \
                    and x.dst.buffer.name not in seen \
                    and not _used_outside(all_stmts, inside, x.dst.buffer.name, s):
                plan.producers.append(x)
            else:
                plan.compute.append(x)
            r, w = accesses(x, lambda b: True)
            seen |= r | w
        if plan.producers:
            plans[id(s)] = plan
    return plans


def _used_outside(all_stmts, inside: set[int], name: str, loop: N.For) -> bool:
    for s in all_stmts:
        if id(s) in inside or s is loop or isinstance(s, (N.Alloc, N.Launch)):
            continue
        if _own_accesses(s, name):
            return True
    return False


def _own_accesses(s: N.Stmt, name: str) -> bool:
    """Whether ``s`` itself (not its nested bodies) touches buffer ``name``."""
    if isinstance(s, (N.For, N.While, N.If)):
        return any(ld.buffer.name == name for e in stmt_exprs(s) for ld in expr_loads(e))
    reads, writes = accesses(s, lambda b: True)
    return name in reads or name in writes


def _prologue_access(em, plan: PipePlan) -> tuple[set[str], set[str]]:
    reads: set[str] = set()
    for c in plan.producers:
        reads |= {ld.buffer.name for e in stmt_exprs(c) for ld in expr_loads(e) if em.is_mem(ld.buffer)}
        if em.is_mem(c.src.buffer):
            reads.add(c.src.buffer.name)
    return reads, set(plan.ring)


def sim(em, loop: N.For, st: SyncState) -> SyncState:
    """Barrier state after a pipelined loop: it ends with a barrier, so nothing is pending."""
    return SyncState()


def _issue(em, plan: PipePlan, it: str, stage: str) -> None:
    """Loads of iteration ``it`` (a C expression) into ring slot ``stage``."""
    v = em.names[plan.loop.var.name]
    with em.block(f"if ({it} < _hi{em.pipe_id})"):
        em.line(f"const int {v} = {it};")
        for c in plan.producers:
            em.stage[c.dst.buffer.name] = stage
            em.line(f"// {at(c)}load {c.src.buffer.name} -> {c.dst.buffer.name} (cp.async, stage {stage})")
            tileops.copy(em, c, asynchronous=True)


def emit(em, loop: N.For) -> None:
    plan: PipePlan = em.pipes[id(loop)]
    s = plan.stages
    em.pipe_id = em.fresh("")
    pid = em.pipe_id
    it = f"_it{pid}"
    from . import wgmma
    feeds_wgmma = any(isinstance(x, N.Gemm) and wgmma.uses_wgmma(em, x) for x in walk(tuple(plan.compute)))
    fence = "tilec::fence_proxy_async();  // publish the landed stage to wgmma (async proxy)"
    reads, writes = _prologue_access(em, plan)
    if em.sync.conflicts(reads, writes):
        em.barrier()
    v = em.names[loop.var.name] = cname(loop.var.name)
    em.line(f"// software pipeline: {s} stage(s), cp.async ring over "
            f"{', '.join(sorted(plan.ring))}")
    with em.block(""):
        em.line(f"const int _lo{pid} = {em.ex(loop.start)};")
        em.line(f"const int _hi{pid} = {em.ex(loop.stop)};")
        if s >= 2:
            with em.block(f"for (int _s{pid} = 0; _s{pid} < {s - 1}; ++_s{pid})"):
                _issue(em, plan, f"_lo{pid} + _s{pid}", f"_s{pid}")
                em.line("tilec::cp_async_commit();")
        with em.block(f"for (int {it} = 0; {it} < _hi{pid} - _lo{pid}; ++{it})"):
            if s >= 2:
                em.line(f"tilec::cp_async_wait<{s - 2}>();")
                if feeds_wgmma:
                    em.line(fence)
                em.line("__syncthreads();")
                _issue(em, plan, f"_lo{pid} + {it} + {s - 1}", f"(({it} + {s - 1}) % {s})")
                em.line("tilec::cp_async_commit();")
            else:
                em.line("__syncthreads();")
                _issue(em, plan, f"_lo{pid} + {it}", "0")
                em.line("tilec::cp_async_commit();")
                em.line("tilec::cp_async_wait<0>();")
                if feeds_wgmma:
                    em.line(fence)
                em.line("__syncthreads();")
            em.line(f"const int {v} = _lo{pid} + {it};")
            for c in plan.producers:
                em.stage[c.dst.buffer.name] = f"({it} % {s})" if s > 1 else "0"
            em.sync = SyncState()
            em.fenced = set(plan.ring) if feeds_wgmma else set()
            em.emit_block(tuple(plan.compute))
            em.fenced = set()
        for c in plan.producers:
            em.stage.pop(c.dst.buffer.name, None)
        em.line("tilec::cp_async_wait<0>();")
        em.line("__syncthreads();")
    em.sync = SyncState()
