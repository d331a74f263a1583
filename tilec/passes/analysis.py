"""Small analyses shared by the target-independent passes: effects, integer ranges and fresh names.

The passes (simplify, fuse, licm, memory planning, predication) ask the same questions of the IR: which
buffers does a statement read or write, which variables does an expression use, what range can an int32
index expression take, and which name is still free. They live here so each pass module holds only its
rewrite. Everything works on plain nodes through ``tilec.ir.visitor``; nothing here changes the IR.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from ..ir import dtypes
from ..ir import nodes as n
from ..ir import visitor as v

TILE_OPS = (n.Copy, n.Gemm, n.Fill, n.Reduce, n.Atomic, n.Cumsum)


# ---------------------------------------------------------------------------------------------------
# Effects


def _stmt_regions(s: n.Stmt) -> tuple[list[n.Region], list[n.Region]]:
    """(regions a tile op reads, regions it writes)."""
    if isinstance(s, n.Copy):
        return [s.src], [s.dst]
    if isinstance(s, n.Gemm):
        reads = [s.a, s.b] + ([] if s.clear_accum else [s.c])
        return reads, [s.c]
    if isinstance(s, n.Fill):
        return [], [s.dst]
    if isinstance(s, n.Reduce):
        return [s.src] + ([] if s.clear else [s.dst]), [s.dst]
    if isinstance(s, n.Cumsum):
        return [s.src], [s.dst]
    if isinstance(s, n.Atomic):
        value = [s.value] if isinstance(s.value, n.Region) else []
        return value + [s.dst], [s.dst]
    return [], []


def _accessed(node, element_node: type, side: int) -> set[n.Buffer]:
    """Buffers of ``element_node`` (Load or Store) nodes and of tile-op regions on ``side`` (0 read, 1 written)."""
    out: set[n.Buffer] = set()
    for x in v.walk(node):
        if isinstance(x, element_node):
            out.add(x.buffer)
        elif isinstance(x, TILE_OPS):
            out.update(r.buffer for r in _stmt_regions(x)[side])
    return out


def writes(node) -> set[n.Buffer]:
    """Buffers written anywhere under ``node`` (a statement, body or kernel)."""
    return _accessed(node, n.Store, 1)


def reads(node) -> set[n.Buffer]:
    """Buffers read anywhere under ``node``: loads and the source regions of tile ops."""
    return _accessed(node, n.Load, 0)


def loads(node) -> list[n.Load]:
    return [x for x in v.walk(node) if isinstance(x, n.Load)]


def has_load(e) -> bool:
    return any(isinstance(x, n.Load) for x in v.walk(e))


def may_trap(e: n.Expr) -> bool:
    """Whether evaluating ``e`` may fail at run time: a load (range check) or an integer division by a
    value that is not a nonzero constant."""
    for x in v.walk(e):
        if isinstance(x, n.Load):
            return True
        if isinstance(x, n.BinOp) and x.op in ("/", "//", "%") and dtypes.is_int(x.dtype):
            if not (isinstance(x.b, n.Const) and x.b.value != 0):
                return True
    return False


def uses_var(node, var: n.Var) -> bool:
    return any(x == var for x in v.walk(node) if isinstance(x, n.Var))


def vars_in(node) -> set[n.Var]:
    return {x for x in v.walk(node) if isinstance(x, n.Var)}


def all_names(func: n.Func) -> set[str]:
    """Every buffer and variable name of a kernel (for picking fresh ones)."""
    names = {func.name}
    for x in v.walk(func):
        if isinstance(x, (n.Buffer, n.Var)):
            names.add(x.name)
    return names


class NameGen:
    """Fresh names that collide with nothing in the kernel."""

    def __init__(self, taken: Iterable[str]):
        self.taken = set(taken)

    def __call__(self, base: str) -> str:
        k = 0
        while f"{base}_{k}" in self.taken:
            k += 1
        name = f"{base}_{k}"
        self.taken.add(name)
        return name


# ---------------------------------------------------------------------------------------------------
# Integer ranges of index expressions


@dataclass(frozen=True)
class Interval:
    """A closed integer range ``[lo, hi]``; None on a side means unbounded."""
    lo: Optional[int]
    hi: Optional[int]

    @property
    def const(self) -> Optional[int]:
        return self.lo if self.lo is not None and self.lo == self.hi else None


UNKNOWN = Interval(None, None)
_LIMIT = 1 << 30   # past this an int32 expression might wrap, so the range is not trusted


def _clip(lo: Optional[int], hi: Optional[int]) -> Interval:
    # Index arithmetic is assumed not to wrap (as in every tile compiler); a bound past 2**30 is dropped.
    return Interval(lo if lo is not None and lo >= -_LIMIT else None,
                    hi if hi is not None and hi <= _LIMIT else None)


def _add(x: Optional[int], y: Optional[int]) -> Optional[int]:
    return None if x is None or y is None else x + y


def _bin_interval(op: str, a: Interval, b: Interval) -> Interval:
    if op == "+":
        return _clip(_add(a.lo, b.lo), _add(a.hi, b.hi))
    if op == "-":
        neg = Interval(-b.hi if b.hi is not None else None, -b.lo if b.lo is not None else None)
        return _bin_interval("+", a, neg)
    if op == "min":
        lo = min(a.lo, b.lo) if a.lo is not None and b.lo is not None else None
        hi = min(x for x in (a.hi, b.hi) if x is not None) if (a.hi, b.hi) != (None, None) else None
        return Interval(lo, hi)
    if op == "max":
        lo = max(x for x in (a.lo, b.lo) if x is not None) if (a.lo, b.lo) != (None, None) else None
        hi = max(a.hi, b.hi) if a.hi is not None and b.hi is not None else None
        return Interval(lo, hi)
    if op == "*" and a.const is not None and b.const is None:
        a, b = b, a
    c = b.const
    if op == "*" and c is not None:
        lo, hi = (a.lo, a.hi) if c >= 0 else (a.hi, a.lo)
        return _clip(lo * c if lo is not None else None, hi * c if hi is not None else None)
    if op == "//" and c is not None and c > 0:
        return Interval(a.lo // c if a.lo is not None else None, a.hi // c if a.hi is not None else None)
    if op == "%" and c is not None and c > 0:
        if a.lo is not None and a.hi is not None and a.lo // c == a.hi // c:   # no wrap in the range
            return Interval(a.lo % c, a.hi % c)
        return Interval(0, c - 1)
    if None in (a.lo, a.hi, b.lo, b.hi):
        return UNKNOWN
    if op == "*":
        p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        return _clip(min(p), max(p))
    return UNKNOWN


def interval(e: n.Expr, env: Mapping[n.Var, Interval]) -> Interval:
    """The range of an int32 expression given ranges of its variables (unknown variables: unbounded)."""
    if e.dtype != dtypes.INDEX:
        return UNKNOWN
    if isinstance(e, n.Const):
        return Interval(int(e.value), int(e.value))
    if isinstance(e, n.Var):
        return env.get(e, UNKNOWN)
    if isinstance(e, n.BinOp) and e.a.dtype == dtypes.INDEX and e.b.dtype == dtypes.INDEX:
        return _bin_interval(e.op, interval(e.a, env), interval(e.b, env))
    if isinstance(e, n.UnaryOp) and e.op == "-":
        a = interval(e.a, env)
        return _clip(-a.hi if a.hi is not None else None, -a.lo if a.lo is not None else None)
    if isinstance(e, n.Select):
        a, b = interval(e.a, env), interval(e.b, env)
        if None in (a.lo, a.hi, b.lo, b.hi):
            return UNKNOWN
        return Interval(min(a.lo, b.lo), max(a.hi, b.hi))
    return UNKNOWN


def _lt(a: Interval, b: Interval) -> Optional[bool]:
    if a.hi is not None and b.lo is not None and a.hi < b.lo:
        return True
    if a.lo is not None and b.hi is not None and a.lo >= b.hi:
        return False
    return None


def compare(op: str, a: Interval, b: Interval) -> Optional[bool]:
    """The value of ``a op b`` when the ranges decide it, else None."""
    if op == "<":
        return _lt(a, b)
    if op == "<=":   # a <= b  <=>  not (b < a)
        lt = _lt(b, a)
        return None if lt is None else not lt
    if op == ">":
        return _lt(b, a)
    if op == ">=":
        lt = _lt(a, b)
        return None if lt is None else not lt
    if op in ("==", "!="):
        if a.const is not None and a.const == b.const:
            eq: Optional[bool] = True
        elif _lt(a, b) is True or _lt(b, a) is True:
            eq = False
        else:
            return None
        return eq if op == "==" else not eq
    return None


def loop_interval(s: n.For, env: Mapping[n.Var, Interval]) -> Interval:
    """The range of a loop variable: ``[start, stop - 1]`` from the bounds' ranges."""
    lo, hi = interval(s.start, env), interval(s.stop, env)
    return Interval(lo.lo, hi.hi - 1 if hi.hi is not None else None)


def launch_env(launch: n.Launch, env: Mapping[n.Var, Interval]) -> dict[n.Var, Interval]:
    """``env`` extended with the ranges of a launch's block variables (``[0, grid - 1]``)."""
    out = dict(env)
    for var, g in zip(launch.block_vars, launch.grid):
        hi = interval(g, env).hi
        out[var] = Interval(0, hi - 1 if hi is not None else None)
    return out


def trip_count_positive(s: n.For, env: Mapping[n.Var, Interval]) -> bool:
    """Whether the loop provably runs at least once."""
    return compare("<", interval(s.start, env), interval(s.stop, env)) is True
