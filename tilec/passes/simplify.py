"""The ``simplify`` pass: constant folding, index canonicalisation and dead-code removal.

It runs first in every pipeline and again after passes that leave debris (fusion, licm). Expression
rules live in ``simplify_expr`` (folding with the interpreter's evaluator, dtype-safe identities, integer
linear forms, comparisons decided by the ranges of loop and block variables); this module holds the
statement rules, applied to a fixed point:

- ``if`` on a constant condition becomes the branch taken; an ``if`` with two empty branches goes.
- A loop with an empty body, or a range that is provably empty, goes; so does ``while (false)``.
- A store of an element's own value (``X[i, j] = X[i, j]``, the element provably inside X) goes.
- ``let`` bound to a constant or a variable is substituted into the rest of its body; a ``let`` nothing
  uses goes.
- An allocation nothing refers to goes; so does one that is only written (its stores and the tile ops
  whose only effect is writing it go with it). One named in a ``hint`` (a layout annotation) stays.

Before::

    launch (bx: 4) threads=128 {
      let k: int32 = 2 * 8
      t = alloc local float32[4]
      t[0] = 1.0
      for i in parallel(0, 16) {
        if (bx < 4) {
          Y[bx * 16 + i - bx * 16 + k - 16] = X[i] * 1.0 + 0.0
        }
      }
    }

After::

    launch (bx: 4) threads=128 {
      for i in parallel(0, 16) {
        Y[i] = X[i] + 0.0
      }
    }

(``+ 0.0`` stays: for floats it is not an identity, ``-0.0 + 0.0`` is ``+0.0``.)
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir import nodes as n
from ..ir import visitor as v
from .analysis import TILE_OPS, compare, interval, launch_env, loop_interval, may_trap
from .manager import make_pass
from .simplify_expr import simplify_expr

Env = dict
_BODY_FIELDS = ("body", "then_body", "else_body")
_SKIP_FIELDS = ("loc", "var", "block_vars", "buffer") + _BODY_FIELDS
MAX_ROUNDS = 8


@make_pass("simplify")
def simplify(func: n.Func) -> n.Func:
    """Fold constants, canonicalise index arithmetic and drop dead code (to a fixed point)."""
    for _ in range(MAX_ROUNDS):
        new = dataclasses.replace(func, body=_body(func.body, {}))
        if new == func:
            break
        func = new
    return func


# ---------------------------------------------------------------------------------------------------
# The statement walk: expressions of a statement, then its nested bodies, then the statement rules


def _body(body: n.Body, env: Env) -> n.Body:
    env = dict(env)
    pending = list(body)
    out: list[n.Stmt] = []
    while pending:
        s = _own_exprs(pending.pop(0), env)
        res = _scope_rule(s, pending)
        if res is not None:
            pending = res
            continue
        s = _nested(s, env)
        repl = _stmt_rule(s, env)
        if repl is not None:
            pending = list(repl) + pending
            continue
        out.append(s)
        if isinstance(s, n.Let):
            env[s.var] = interval(s.value, env)
    return tuple(out)


def _simplify_field(value, env: Env):
    if isinstance(value, n.Expr):
        return simplify_expr(value, env)
    if isinstance(value, n.Region):
        starts = tuple(simplify_expr(e, env) for e in value.starts)
        extents = tuple(simplify_expr(e, env) for e in value.extents)
        if starts == value.starts and extents == value.extents:
            return value
        return dataclasses.replace(value, starts=starts, extents=extents)
    if isinstance(value, tuple) and value and all(isinstance(x, n.Expr) for x in value):
        return tuple(simplify_expr(x, env) for x in value)
    return value


def _own_exprs(s: n.Stmt, env: Env) -> n.Stmt:
    """``s`` with its own expressions and regions simplified (not those of nested bodies)."""
    changes = {}
    for f in dataclasses.fields(s):
        if f.name in _SKIP_FIELDS:
            continue
        old = getattr(s, f.name)
        new = _simplify_field(old, env)
        if new is not old and new != old:
            changes[f.name] = new
    return dataclasses.replace(s, **changes) if changes else s


def _nested(s: n.Stmt, env: Env) -> n.Stmt:
    if isinstance(s, n.Launch):
        return dataclasses.replace(s, body=_body(s.body, launch_env(s, env)))
    if isinstance(s, n.For):
        inner = dict(env)
        inner[s.var] = loop_interval(s, env)
        return dataclasses.replace(s, body=_body(s.body, inner))
    if isinstance(s, n.While):
        return dataclasses.replace(s, body=_body(s.body, env))
    if isinstance(s, n.If):
        return dataclasses.replace(s, then_body=_body(s.then_body, env), else_body=_body(s.else_body, env))
    return s


# ---------------------------------------------------------------------------------------------------
# Rules that need the rest of the body (scopes): lets and allocations


def _scope_rule(s: n.Stmt, rest: list[n.Stmt]) -> Optional[list[n.Stmt]]:
    """A new rest of the body (``s`` removed) when ``s`` is a dead or substitutable binding."""
    if isinstance(s, n.Let):
        body = tuple(rest)
        if not any(x == s.var for x in v.walk(body) if isinstance(x, n.Var)):
            return rest
        if isinstance(s.value, (n.Const, n.Var)) and s.value.dtype == s.var.type:
            return list(v.substitute(body, {s.var: s.value}))
    if isinstance(s, n.Alloc):
        body = tuple(rest)
        # Most allocations are read soon after: _live_use stops at the first read, so the full walks
        # below only run for the dead ones.
        if _live_use(body, s.buffer) or _named_in_hints(body, s.buffer.name):
            return None   # read, or a layout annotation refers to it by name
        if s.buffer not in v.buffers_used(body):
            return rest
        return list(v.map_stmts(body, lambda x: () if _only_writes(x, s.buffer) else None))
    return None


def _live_use(body: n.Body, buf: n.Buffer) -> bool:
    """Whether ``buf`` is used in ``body`` by anything but statements that only write it: what is left
    of it once those statements are deleted (as ``map_stmts`` with ``_only_writes`` would)."""
    for s in body:
        if _only_writes(s, buf):
            continue
        for fname in v._field_names(type(s)):
            value = getattr(s, fname)
            if isinstance(value, tuple) and value and all(isinstance(x, n.Stmt) for x in value):
                if _live_use(value, buf):
                    return True
                continue
            for node in v._child_nodes(value):
                if any(isinstance(x, n.Buffer) and x == buf for x in v.walk(node)):
                    return True
    return False


def _named_in_hints(body: n.Body, name: str) -> bool:
    return any(isinstance(x, n.Hint) and name in x.args for x in v.walk(body))


def _only_writes(s: n.Stmt, buf: n.Buffer) -> bool:
    """Whether the only effect of ``s`` is writing ``buf`` (so it is dead when ``buf`` is never read)."""
    if isinstance(s, n.Store):
        return s.buffer == buf
    if isinstance(s, n.Gemm):
        return s.c.buffer == buf
    if isinstance(s, TILE_OPS):
        return s.dst.buffer == buf
    return False


# ---------------------------------------------------------------------------------------------------
# Rules on one statement: control flow that is decided or empty


def _if_rule(s: n.If, env: Env) -> Optional[tuple]:
    if isinstance(s.cond, n.Const):
        return s.then_body if s.cond.value else s.else_body
    if not s.then_body and not s.else_body and not may_trap(s.cond):
        return ()
    if not s.then_body and s.else_body:
        return (n.If(n.UnaryOp("not", s.cond), s.else_body, (), s.loc),)
    return None


def _for_rule(s: n.For, env: Env) -> Optional[tuple]:
    if not s.body:
        return ()
    if compare("<", interval(s.start, env), interval(s.stop, env)) is False:
        return ()
    return None


def _while_rule(s: n.While, env: Env) -> Optional[tuple]:
    if isinstance(s.cond, n.Const) and not s.cond.value:
        return ()
    return None


def _store_rule(s: n.Store, env: Env) -> Optional[tuple]:
    """``X[i] = X[i]`` goes: the loaded value is already in X's dtype, so storing it back is exact. Only
    when the element is provably inside X (an out-of-range store is an error that must stay)."""
    value = s.value
    if not (isinstance(value, n.Load) and value.buffer == s.buffer and value.indices == s.indices):
        return None
    for idx, size in zip(s.indices, s.buffer.shape):
        i, d = interval(idx, env), interval(size, env)
        if may_trap(idx) or None in (i.lo, i.hi, d.lo) or i.lo < 0 or i.hi >= d.lo:
            return None
    return ()


STMT_RULES = {n.If: _if_rule, n.For: _for_rule, n.While: _while_rule, n.Store: _store_rule}


def _stmt_rule(s: n.Stmt, env: Env) -> Optional[tuple]:
    rule = STMT_RULES.get(type(s))
    return rule(s, env) if rule is not None else None


__all__ = ["simplify", "simplify_expr"]
