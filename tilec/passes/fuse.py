"""The ``fuse`` pass: merge adjacent ``T.Parallel`` nests, fold epilogues, fuse maps into reductions.

Three rewrites, each only where the result is provably the same program:

1. Two adjacent ``parallel`` nests over the same domain (the same ranges at every level of their
   perfect nests) merge into one (then their bodies' adjacent parallel loops are tried in turn). A row
   loop next to a row x column nest stays apart: targets spread the two over threads differently.
   Legal when no cross-iteration dependence appears: every buffer that one nest writes and the other
   touches is accessed, in both, only through one index dimension whose
   index is the loop variable (plus an offset invariant in the nest), so iteration ``i`` of the merged
   loop touches only its own slice. Bodies must be element work (stores, lets, ifs, inner loops).
2. Inside a parallel loop body, a load of an element just stored (same indices, nothing written in
   between) is replaced by the stored value, for dtypes that store without rounding. With (1) this folds
   an element-wise epilogue into its producer; ``simplify`` then drops the temporary.
3. A parallel nest that computes a temporary tile used only by the ``reduce max/min/absmax`` right after
   it becomes one loop nest that reduces as it computes (a serial loop over the reduced dimension).
   Max and min do not depend on the order of evaluation, so the result is bit-identical; sums are left
   alone (a different summation order is a different rounding).

Before::

    for i in parallel(0, 64) {
      T[i] = X[i] * 2.0
    }
    for i2 in parallel(0, 64) {
      Y[i2] = max(T[i2], 0.0)
    }

After (``fuse``; ``simplify`` then removes ``T`` if nothing else reads it)::

    for i in parallel(0, 64) {
      T[i] = X[i] * 2.0
      Y[i] = max(X[i] * 2.0, 0.0)
    }
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from ..ir import dtypes
from ..ir import nodes as n
from ..ir import visitor as v
from .analysis import reads, vars_in, writes
from .manager import make_pass

_ELEMENT_STMTS = (n.Store, n.Let, n.If, n.For, n.Hint)
# Dtypes whose stores do not round a value of the same dtype, so a stored value can be forwarded.
_EXACT_STORE = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")


@make_pass("fuse")
def fuse(func: n.Func) -> n.Func:
    """Merge adjacent parallel nests, forward stored values, fuse maps into max/min reductions."""
    return dataclasses.replace(func, body=_bodies(func.body))


def _bodies(body: n.Body) -> n.Body:
    """Fuse inside every nested body first, then at this level."""
    out = []
    for s in body:
        changes = {f: _bodies(getattr(s, f)) for f in ("body", "then_body", "else_body")
                   if hasattr(s, f) and getattr(s, f)}
        out.append(dataclasses.replace(s, **changes) if changes else s)
    return _fuse_level(tuple(out))


def _fuse_level(body: n.Body) -> n.Body:
    """Maps into reductions first (a merge would hide the map from its reduce), then loop merges."""
    out: list[n.Stmt] = []
    for k, s in enumerate(body):
        if out and isinstance(s, n.Reduce):
            fused = _map_into_reduce(out[-1], s, tuple(out[:-1]) + body[k + 1:])
            if fused is not None:
                out[-1:] = fused
                continue
        out.append(s)
    merged: list[n.Stmt] = []
    for s in out:
        if merged and isinstance(s, n.For):
            m = merge_loops(merged[-1], s)
            if m is not None:
                merged[-1] = m
                continue
        merged.append(s)
    return tuple(merged)


# ---------------------------------------------------------------------------------------------------
# 1. Loop merging


def _is_element_body(body: n.Body) -> bool:
    for s in body:
        if not isinstance(s, _ELEMENT_STMTS):
            return False
        if isinstance(s, n.For) and (s.kind not in ("parallel", "serial") or not _is_element_body(s.body)):
            return False
        if isinstance(s, n.If) and not (_is_element_body(s.then_body) and _is_element_body(s.else_body)):
            return False
    return True


def merge_loops(a: n.Stmt, b: n.For) -> Optional[n.For]:
    """The merged loop of two adjacent parallel loops, or None when merging is not provably legal."""
    if not (isinstance(a, n.For) and a.kind == b.kind == "parallel"):
        return None
    if a.start != b.start or a.stop != b.stop or a.var.type != b.var.type:
        return None
    if _domain(a) != _domain(b):
        return None   # a row loop next to a row x column nest: GPU targets bind the two differently
    if not (_is_element_body(a.body) and _is_element_body(b.body)):
        return None
    b_body = v.substitute(b.body, {b.var: a.var})
    if not _independent(a.var, a.body, b_body):
        return None
    body = _forward_stores(_fuse_level(a.body + b_body))
    return dataclasses.replace(a, body=body)


def _domain(loop: n.For) -> list[tuple[n.Expr, n.Expr]]:
    """The ranges of the perfect parallel nest that starts at ``loop`` (outermost first)."""
    out = []
    s: n.Stmt = loop
    while isinstance(s, n.For) and s.kind == "parallel":
        out.append((s.start, s.stop))
        if len(s.body) != 1:
            break
        s = s.body[0]
    return out


def _accesses(body: n.Body, buf: n.Buffer) -> list[tuple]:
    out = []
    for x in v.walk(body):
        if isinstance(x, (n.Load, n.Store)) and x.buffer == buf:
            out.append(x.indices)
    return out


def _own_slice_dim(var: n.Var, accesses: list[tuple], inner: set) -> bool:
    """Whether one dimension is indexed, in every access, by the same ``var + invariant``."""
    if not accesses or not accesses[0]:
        return False
    for d, first in enumerate(accesses[0]):
        if not _is_var_offset(first, var, inner):
            continue
        if all(idx[d] == first for idx in accesses):
            return True
    return False


def _is_var_offset(e: n.Expr, var: n.Var, inner: set) -> bool:
    if e == var:
        return True
    if isinstance(e, n.BinOp) and e.op == "+":
        for x, rest in ((e.a, e.b), (e.b, e.a)):
            if x == var and not (vars_in(rest) & (inner | {var})) and \
                    not any(isinstance(y, n.Load) for y in v.walk(rest)):
                return True
    return False


def _independent(var: n.Var, a: n.Body, b: n.Body) -> bool:
    wa, wb = writes(a), writes(b)
    shared = (wa & (reads(b) | wb)) | (wb & reads(a))
    inner = set(v.bound_vars(a)) | set(v.bound_vars(b))
    return all(_own_slice_dim(var, _accesses(a, x) + _accesses(b, x), inner) for x in shared)


# ---------------------------------------------------------------------------------------------------
# 2. Store-to-load forwarding inside one iteration


def _forward_stores(body: n.Body) -> n.Body:
    out = list(body)
    for k, s in enumerate(out):
        if not _forwardable(s):
            continue
        target = n.Load(s.buffer, s.indices)
        blockers = {s.buffer} | reads(s.value)
        for j in range(k + 1, len(out)):
            later = out[j]
            if writes(later) & blockers:
                break
            out[j] = v.map_exprs(later, lambda e: s.value if e == target else None)
    return tuple(out)


def _forwardable(s: n.Stmt) -> bool:
    return (isinstance(s, n.Store) and s.buffer.dtype in _EXACT_STORE and s.value.dtype == s.buffer.dtype
            and s.buffer not in reads(s.value) and not any(isinstance(x, n.Load) for x in v.walk(s.indices)))


# ---------------------------------------------------------------------------------------------------
# 3. A map into the max/min reduction that follows it


def _perfect_nest(s: n.Stmt) -> Optional[tuple[list[n.For], n.Body]]:
    loops = []
    while isinstance(s, n.For) and s.kind == "parallel":
        loops.append(s)
        if len(s.body) != 1 or not isinstance(s.body[0], n.For):
            return loops, s.body
        s = s.body[0]
    return (loops, ()) if not loops else None


def _whole(r: n.Region) -> bool:
    return all(s == n.Const(0) for s in r.starts) and tuple(r.extents) == tuple(r.buffer.shape)


_INIT = {"max": -math.inf, "min": math.inf, "absmax": 0.0}


def _map_into_reduce(prev: n.Stmt, red: n.Reduce, others: n.Body) -> Optional[tuple]:
    if red.kind not in _INIT or not (_whole(red.src) and _whole(red.dst)):
        return None
    nest = _perfect_nest(prev)
    if nest is None:
        return None
    loops, inner = nest
    x, r = red.src.buffer, red.dst.buffer
    if len(inner) != 1 or not isinstance(inner[0], n.Store) or x.scope == "global":
        return None
    store = inner[0]
    ivars = tuple(lp.var for lp in loops)
    if store.buffer != x or store.indices != ivars or len(ivars) != len(x.shape):
        return None
    if any(lp.start != n.Const(0) or lp.stop != dim for lp, dim in zip(loops, x.shape)):
        return None
    if not (x.dtype == r.dtype == store.value.dtype and x.dtype in _EXACT_STORE):
        return None
    if reads(store.value) & {x, r}:
        return None
    # x must be a temporary: used by nothing but this store and this reduce
    if x in v.buffers_used(tuple(s for s in others if not isinstance(s, n.Alloc))):
        return None
    return _reduce_nest(loops, store.value, red, ivars)


def _reduce_nest(loops: list[n.For], value: n.Expr, red: n.Reduce, ivars: tuple) -> tuple:
    r = red.dst.buffer
    kept = [lp for d, lp in enumerate(loops) if d != red.dim]
    j = loops[red.dim].var
    out_idx = tuple(lp.var for lp in kept)
    acc = n.Load(r, out_idx)
    term = n.Call("abs", (value,)) if red.kind == "absmax" else value
    op = "min" if red.kind == "min" else "max"
    step = n.Store(r, out_idx, n.BinOp(op, acc, term), red.loc)
    stmts: tuple = (n.For(j, n.Const(0), loops[red.dim].stop, "serial", (step,), 0, red.loc),)
    if red.clear:
        stmts = (n.Store(r, out_idx, _init_value(red.kind, r.dtype), red.loc),) + stmts
    for lp in reversed(kept):
        stmts = (dataclasses.replace(lp, body=stmts),)
    return stmts


def _init_value(kind: str, dtype: str) -> n.Const:
    if dtypes.is_float(dtype):
        return n.Const(_INIT[kind], dtype)
    info = dtypes.info(dtype)
    lo = -(1 << (info.bits - 1)) if info.kind == "int" else 0
    hi = (1 << (info.bits - 1)) - 1 if info.kind == "int" else (1 << info.bits) - 1
    return n.Const({"max": lo, "min": hi, "absmax": 0}[kind], dtype)
