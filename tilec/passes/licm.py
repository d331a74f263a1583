"""The ``licm`` pass: loop-invariant code motion of ``let``s and loads out of serial loops.

Inside a ``serial`` or ``unrolled`` loop, a ``let`` at the top of the body whose value does not change
from one iteration to the next moves in front of the loop, and so does an invariant element load in an
expression evaluated on every iteration (it becomes a new ``let``). A value is invariant when it uses no
variable bound in the loop and loads only from buffers nothing in the loop writes (stores, tile-op
destinations, atomics). A value that may fail (a load, which is range checked, or an integer division by
a non-constant) moves only when the loop provably runs at least once, and a load is taken only from
places evaluated unconditionally (not under an ``if`` or inside a ``select`` branch). Pipelined loops are
left to the targets' software pipeliners; parallel loops' bodies are element work already.

Before::

    for k in serial(0, 16) {
      let s: float32 = scale[bx] * 2.0
      acc[] = acc[] + A[bx, k] * s * bias[0]
    }

After::

    let s: float32 = scale[bx] * 2.0
    let bias_inv_0: float32 = bias[0]
    for k in serial(0, 16) {
      acc[] = acc[] + A[bx, k] * s * bias_inv_0
    }
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir import nodes as n
from ..ir import visitor as v
from .analysis import NameGen, all_names, launch_env, loop_interval, may_trap, trip_count_positive, writes
from .manager import make_pass

HOISTABLE_KINDS = ("serial", "unrolled")


@make_pass("licm")
def licm(func: n.Func) -> n.Func:
    """Move loop-invariant lets and loads in front of serial loops."""
    fresh = NameGen(all_names(func))
    return dataclasses.replace(func, body=_body(func.body, {}, fresh))


def _body(body: n.Body, env: dict, fresh: NameGen) -> n.Body:
    out: list[n.Stmt] = []
    for s in body:
        if isinstance(s, n.Launch):
            out.append(dataclasses.replace(s, body=_body(s.body, launch_env(s, env), fresh)))
        elif isinstance(s, n.For):
            inner = dict(env)
            inner[s.var] = loop_interval(s, env)
            loop = dataclasses.replace(s, body=_body(s.body, inner, fresh))
            out.extend(_hoist(loop, env, fresh) if s.kind in HOISTABLE_KINDS else (loop,))
        elif isinstance(s, n.If):
            out.append(dataclasses.replace(s, then_body=_body(s.then_body, env, fresh),
                                           else_body=_body(s.else_body, env, fresh)))
        elif isinstance(s, n.While):
            out.append(dataclasses.replace(s, body=_body(s.body, env, fresh)))
        else:
            out.append(s)
    return tuple(out)


class _Loop:
    """What the invariance test needs to know about one loop."""

    def __init__(self, loop: n.For, env: dict):
        self.bound = set(v.bound_vars(loop))
        self.written = writes(loop.body)
        self.allocated = {s.buffer for s in v.walk(loop.body) if isinstance(s, n.Alloc)}
        self.runs = trip_count_positive(loop, env)

    def invariant(self, e: n.Expr) -> bool:
        for x in v.walk(e):
            if isinstance(x, n.Var) and x in self.bound:
                return False
            if isinstance(x, n.Load) and (x.buffer in self.written or x.buffer in self.allocated):
                return False
        return self.runs or not may_trap(e)


def _hoist(loop: n.For, env: dict, fresh: NameGen) -> list[n.Stmt]:
    info = _Loop(loop, env)
    hoisted: list[n.Stmt] = []
    body: list[n.Stmt] = []
    for s in loop.body:
        if isinstance(s, n.Let) and not body_binds_before(body, s) and info.invariant(s.value):
            hoisted.append(s)
            info.bound.discard(s.var)   # its value is now fixed outside the loop
            continue
        body.append(s)
    body = [_hoist_loads(s, info, hoisted, fresh) for s in body]
    return hoisted + [dataclasses.replace(loop, body=tuple(body))]


def body_binds_before(kept: list[n.Stmt], s: n.Let) -> bool:
    """Whether a statement kept in the loop binds a variable ``s`` uses (then ``s`` must stay)."""
    used = {x for x in v.walk(s.value) if isinstance(x, n.Var)}
    return any(isinstance(k, n.Let) and k.var in used for k in kept)


def _unconditional_exprs(s: n.Stmt) -> list[n.Expr]:
    """The expressions of ``s`` evaluated every time ``s`` runs (not nested bodies)."""
    if isinstance(s, n.Store):
        return list(s.indices) + [s.value]
    if isinstance(s, n.Let):
        return [s.value]
    return []


def _candidate_loads(e: n.Expr) -> list[n.Load]:
    """Loads of ``e`` outside ``select`` branches, outermost first."""
    if isinstance(e, n.Load):
        return [e]
    if isinstance(e, n.Select):
        return _candidate_loads(e.cond)
    found = []
    for _, child in v.children(e):
        if isinstance(child, n.Expr):
            found.extend(_candidate_loads(child))
    return found


def _hoist_loads(s: n.Stmt, info: _Loop, hoisted: list[n.Stmt], fresh: NameGen) -> n.Stmt:
    mapping: dict[n.Load, n.Var] = {}
    for e in _unconditional_exprs(s):
        for ld in _candidate_loads(e):
            if ld not in mapping and info.invariant(ld):
                existing = _existing(hoisted, ld)
                if existing is None:
                    existing = n.Var(fresh(f"{ld.buffer.name}_inv"), ld.dtype)
                    hoisted.append(n.Let(existing, ld, s.loc))
                mapping[ld] = existing
    if not mapping:
        return s
    return v.map_exprs(s, lambda x: mapping.get(x) if isinstance(x, n.Load) else None)


def _existing(hoisted: list[n.Stmt], ld: n.Load) -> Optional[n.Var]:
    for h in hoisted:
        if isinstance(h, n.Let) and h.value == ld and h.var.type == ld.dtype:
            return h.var
    return None


__all__ = ["licm"]
