"""When the interpreter may run a ``parallel`` loop nest as one vectorized step (lanes in lockstep).

Lockstep execution equals running the iterations one after another whenever the nest is free of
cross-iteration dependences, as ``T.Parallel`` promises. Two things break that promise in ways that are
easy to write and would silently change results, so such nests run as plain loops instead:
- statements that are not element code (tile ops, allocations, ``while``): they need scalar operands;
- a store whose indices do not depend on every enclosing parallel variable of the nest, such as a
  per-thread scalar ``acc[] = ...`` or a row accumulator ``m[i] = max(m[i], s[i, j])`` inside
  ``for i, j in T.Parallel``: in lockstep the lanes would overwrite each other, while the sequential
  reading (which is what a per-thread variable means in TileLang) is well defined.
Dependence is syntactic: an index depends on a variable if it names it, directly or through a ``Let``.
"""
from __future__ import annotations

from ..ir import nodes as N

_ELEMENT_STMTS = (N.Store, N.Let, N.If, N.For, N.Hint)


def names(e: N.Expr) -> set[str]:
    """The variable names an expression reads (through loads' indices too)."""
    if isinstance(e, N.Var):
        return {e.name}
    if isinstance(e, N.Const):
        return set()
    if isinstance(e, N.BinOp):
        return names(e.a) | names(e.b)
    if isinstance(e, N.UnaryOp):
        return names(e.a)
    if isinstance(e, (N.Cast, N.Reinterpret)):
        return names(e.value)
    if isinstance(e, N.Select):
        return names(e.cond) | names(e.a) | names(e.b)
    if isinstance(e, N.Call):
        return set().union(*(names(a) for a in e.args))
    if isinstance(e, N.Load):
        return set().union(set(), *(names(i) for i in e.indices))
    raise TypeError(f"unknown expression node {type(e).__name__}")


def can_vectorize(loop: N.For) -> bool:
    """Whether the parallel ``loop`` (with the parallel loops nested in it) can run in lockstep."""
    return _body_ok(loop.body, {loop.var.name: {loop.var.name}}, {loop.var.name})


def _body_ok(body: N.Body, deps: dict[str, set[str]], lanes: set[str]) -> bool:
    """``deps`` maps each variable to the lane variables it depends on; ``lanes`` encloses ``body``."""
    deps = dict(deps)   # Let bindings are scoped to their body
    for s in body:
        if not isinstance(s, _ELEMENT_STMTS):
            return False
        if isinstance(s, N.Let):
            deps[s.var.name] = _lanes_of(s.value, deps)
        elif isinstance(s, N.Store):
            used = set().union(set(), *(_lanes_of(i, deps) for i in s.indices))
            if not lanes <= used:
                return False
        elif isinstance(s, N.If):
            if not (_body_ok(s.then_body, deps, lanes) and _body_ok(s.else_body, deps, lanes)):
                return False
        elif isinstance(s, N.For):
            inner = dict(deps)
            if s.kind == "parallel":
                inner[s.var.name] = {s.var.name}
                ok = _body_ok(s.body, inner, lanes | {s.var.name})
            else:
                inner[s.var.name] = set()
                ok = _body_ok(s.body, inner, lanes)
            if not ok:
                return False
    return True


def _lanes_of(e: N.Expr, deps: dict[str, set[str]]) -> set[str]:
    return set().union(set(), *(deps.get(n, set()) for n in names(e)))
