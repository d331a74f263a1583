"""Predication of ragged tails: which tile-op regions may run past their buffer, made explicit as hints.

A region may run past its buffer (a 64-row tile of a 1000-row matrix): the IR says such elements read as
zero and are not written, and every target must guard those accesses. Guards cost time, so a target wants
to know which regions provably stay inside. This analysis decides it per region and per dimension from
the integer ranges of the start and extent (block variables range over their grid, loop variables over
their loop, constant shapes are known; a dimension whose region is ``0 +: shape`` is inside whatever the
shape). Where it cannot prove a dimension inside, the pass puts a hint right before the tile op::

    hint needs_guard("src", "A", 0)      # role of the region in the op, buffer, dimensions to guard
    copy A[by * 64 +: 64, k * 32 +: 32] -> A_s

The hint has no semantic effect (nodes.Hint), so the pass is always safe; running it again replaces its
old hints. Roles: ``src``/``dst`` (copy, reduce, cumsum), ``a``/``b``/``c`` (gemm), ``dst`` (fill),
``dst``/``value`` (atomic). ``guard_report(func)`` returns the same facts with the side (``lower``: the
start may be negative; ``upper``: the end may pass the shape) and the op's location.

Before (M symbolic, N = 1000)::

    launch (bx: (M + 63) // 64, by: 16) threads=128 {
      copy A[bx * 64 +: 64, by * 64 +: 64] -> A_s

After::

    launch (bx: (M + 63) // 64, by: 16) threads=128 {
      hint needs_guard("src", "A", 0, 1)
      copy A[bx * 64 +: 64, by * 64 +: 64] -> A_s
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..ir import nodes as n
from .analysis import interval, launch_env, loop_interval
from .manager import make_pass

HINT = "needs_guard"


@dataclass(frozen=True)
class GuardNeed:
    """One region dimension that a target must guard."""
    op: str
    role: str
    buffer: str
    dim: int
    side: str            # "lower", "upper" or "both"
    loc: Optional[n.Loc]

    def text(self) -> str:
        where = f" at {self.loc}" if self.loc else ""
        return f"{self.op} {self.role} {self.buffer} dim {self.dim}: {self.side}{where}"


def regions(s: n.Stmt) -> list[tuple[str, n.Region]]:
    """The (role, region) pairs of a tile op."""
    if isinstance(s, (n.Copy, n.Reduce, n.Cumsum)):
        return [("src", s.src), ("dst", s.dst)]
    if isinstance(s, n.Gemm):
        return [("a", s.a), ("b", s.b), ("c", s.c)]
    if isinstance(s, n.Fill):
        return [("dst", s.dst)]
    if isinstance(s, n.Atomic):
        value = [("value", s.value)] if isinstance(s.value, n.Region) else []
        return [("dst", s.dst)] + value
    return []


def _dim_side(start: n.Expr, extent: n.Expr, size: n.Expr, env: dict) -> Optional[str]:
    """Which side of one region dimension may leave the buffer (None when provably inside)."""
    if start == n.Const(0) and extent == size:
        return None
    s, e, d = interval(start, env), interval(extent, env), interval(size, env)
    low_ok = s.lo is not None and s.lo >= 0
    high_ok = None not in (s.hi, e.hi, d.lo) and s.hi + e.hi <= d.lo
    if low_ok and high_ok:
        return None
    return "upper" if low_ok else "lower" if high_ok else "both"


def _needs(s: n.Stmt, env: dict) -> list[GuardNeed]:
    out = []
    for role, r in regions(s):
        for d, (start, extent, size) in enumerate(zip(r.starts, r.extents, r.buffer.shape)):
            side = _dim_side(start, extent, size, env)
            if side is not None:
                out.append(GuardNeed(type(s).__name__.lower(), role, r.buffer.name, d, side, s.loc))
    return out


def _hints(needs: list[GuardNeed], loc: Optional[n.Loc]) -> list[n.Hint]:
    by_region: dict[tuple[str, str], list[int]] = {}
    for g in needs:
        by_region.setdefault((g.role, g.buffer), []).append(g.dim)
    return [n.Hint(HINT, (role, buf) + tuple(dims), loc) for (role, buf), dims in by_region.items()]


def _walk(body: n.Body, env: dict, found: list[GuardNeed]) -> n.Body:
    out: list[n.Stmt] = []
    env = dict(env)
    for s in body:
        if isinstance(s, n.Hint) and s.name == HINT:
            continue
        if isinstance(s, n.Launch):
            s = dataclasses.replace(s, body=_walk(s.body, launch_env(s, env), found))
        elif isinstance(s, n.For):
            inner = dict(env)
            inner[s.var] = loop_interval(s, env)
            s = dataclasses.replace(s, body=_walk(s.body, inner, found))
        elif isinstance(s, n.While):
            s = dataclasses.replace(s, body=_walk(s.body, env, found))
        elif isinstance(s, n.If):
            s = dataclasses.replace(s, then_body=_walk(s.then_body, env, found),
                                    else_body=_walk(s.else_body, env, found))
        elif isinstance(s, n.Let):
            env[s.var] = interval(s.value, env)
        else:
            needs = _needs(s, env)
            found.extend(needs)
            out.extend(_hints(needs, s.loc))
        out.append(s)
    return tuple(out)


def guard_report(func: n.Func) -> list[GuardNeed]:
    """Every tile-op region dimension of ``func`` that may run past its buffer."""
    found: list[GuardNeed] = []
    _walk(func.body, {}, found)
    return found


@make_pass("predicate")
def predicate(func: n.Func) -> n.Func:
    """Annotate each tile op with ``needs_guard`` hints for the regions that may leave their buffer."""
    return dataclasses.replace(func, body=_walk(func.body, {}, []))


def report(func: n.Func) -> str:
    """The pass-test report hook: one line per guarded region dimension."""
    return "\n".join(g.text() for g in guard_report(func))


__all__ = ["predicate", "guard_report", "GuardNeed"]
