"""Verifier state and shape helpers shared by the verifier's check modules.

The verifier (``verifier.py``) walks a ``Func`` once in program order. ``Ctx`` is what that walk knows
at a point of the program: the buffers and scalar names in scope, whether it is inside a ``T.Parallel``
loop, and the location of the statement being checked (expressions built by the parser carry no
location of their own, so an error in one is reported at its statement). The extent helpers here
compare tile shapes that may be symbolic: two extents agree when both fold to the same integer or are
the same expression.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn, Optional

from ..errors import TilecError
from . import nodes as N


@dataclass
class Ctx:
    """What the verifier knows at one point of a kernel; ``child()`` opens a nested body's scope."""
    func: N.Func
    buffers: dict[str, N.Buffer] = field(default_factory=dict)   # buffers visible here
    vars: dict[str, N.Var] = field(default_factory=dict)         # scalar names visible here
    allocs: dict[str, N.Alloc] = field(default_factory=dict)     # every Alloc of the func (shared)
    declared: dict[str, Optional[N.Loc]] = field(default_factory=dict)  # buffer names seen so far (shared)
    parallel: Optional[N.For] = None                             # innermost enclosing T.Parallel loop
    in_launch: bool = False
    loc: Optional[N.Loc] = None                                  # location of the current statement
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # known [lo, hi] of int scalars
    guarded: bool = False                                        # under an if/while/select: no bounds check

    def child(self) -> "Ctx":
        """A nested body: its names disappear at its end; the func-wide tables stay shared."""
        return Ctx(self.func, dict(self.buffers), dict(self.vars), self.allocs, self.declared,
                   self.parallel, self.in_launch, self.loc, dict(self.ranges), self.guarded)

    def guarded_child(self) -> "Ctx":
        inner = self.child()
        inner.guarded = True
        return inner

    def fail(self, message: str, node: object = None) -> NoReturn:
        # A Var's loc is where it was defined, not this use: report a Var at its statement.
        own = None if isinstance(node, N.Var) else getattr(node, "loc", None)
        loc = own or self.loc or self.func.loc
        raise TilecError(message, loc)

    def where(self, loc: Optional[N.Loc]) -> str:
        """``line 12`` for a place in the current statement's file, else ``file:line:col``."""
        if loc is None:
            return "an unknown place"
        here = self.loc or self.func.loc
        return f"line {loc.line}" if here is not None and here.file == loc.file else str(loc)

    def bind_var(self, var: N.Var, what: str, node: object) -> None:
        """Bring a scalar name into scope, refusing to shadow a visible one or a buffer name."""
        if var.name in self.vars:
            self.fail(f"{what} '{var.name}' rebinds a name that is already defined here; "
                      f"use a new name (a scalar that changes must be a T.alloc_var)", node)
        if var.name in self.declared:
            self.fail(f"{what} '{var.name}' has the name of buffer '{var.name}'; names must be unique "
                      f"within a kernel", node)
        self.vars[var.name] = var

    def use_buffer(self, buf: N.Buffer, node: object, what: str = "") -> None:
        """Check that ``buf`` is visible here and is the buffer that was declared under its name."""
        seen = self.buffers.get(buf.name)
        if seen is None:
            alloc = self.allocs.get(buf.name)
            if alloc is None:
                self.fail(f"{what}unknown buffer '{buf.name}' (not a parameter and never allocated)", node)
            where = f" at {self.where(alloc.loc)}" if alloc.loc else ""
            if buf.name in self.declared:
                self.fail(f"{what}buffer '{buf.name}' is used outside the scope of its allocation"
                          f"{where}", node)
            self.fail(f"{what}buffer '{buf.name}' is used before its allocation{where}", node)
        if seen != buf:
            self.fail(f"{what}buffer '{buf.name}' is used as {describe(buf)} but was declared as "
                      f"{describe(seen)}", node)


# ---------------------------------------------------------------------------------------------------
# Extents


_FOLD = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "//": lambda a, b: a // b if b else None, "%": lambda a, b: a % b if b else None,
    "min": min, "max": max,
}


def fold(e: N.Expr) -> Optional[int]:
    """The integer value of a constant index expression, or None when it is not a constant."""
    if isinstance(e, N.Const):
        v = e.value
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    if isinstance(e, N.BinOp) and e.op in _FOLD:
        a, b = fold(e.a), fold(e.b)
        return None if a is None or b is None else _FOLD[e.op](a, b)
    if isinstance(e, N.UnaryOp) and e.op == "-":
        a = fold(e.a)
        return None if a is None else -a
    if isinstance(e, N.Cast) and e.type in ("int32", "int64"):
        return fold(e.value)
    return None


def interval(e: N.Expr, ranges: dict[str, tuple[int, int]]) -> Optional[tuple[int, int]]:
    """Bounds [lo, hi] of an index expression built from constants and loop variables with constant
    bounds by +, -, *, and // or a non-wrapping % by a positive constant; None when not known.

    Operands are treated as independent, so the bounds are attained for the affine indices kernels
    write (``i``, ``k * 32 + j``, ``i // 2``); ``i - i`` would get loose bounds.
    """
    v = fold(e)
    if v is not None:
        return (v, v)
    if isinstance(e, N.Var):
        return ranges.get(e.name)
    if isinstance(e, N.Cast) and e.type in ("int32", "int64"):
        return interval(e.value, ranges)
    if not isinstance(e, N.BinOp) or e.op not in ("+", "-", "*", "//", "%"):
        return None
    a, b = interval(e.a, ranges), interval(e.b, ranges)
    if a is None or b is None:
        return None
    if e.op == "+":
        return (a[0] + b[0], a[1] + b[1])
    if e.op == "-":
        return (a[0] - b[1], a[1] - b[0])
    if e.op == "*":
        prods = [x * y for x in a for y in b]
        return (min(prods), max(prods))
    if b[0] != b[1] or b[0] <= 0:
        return None
    if e.op == "//":
        return (a[0] // b[0], a[1] // b[0])
    return a if a[0] >= 0 and a[1] < b[0] else None   # a wrapping modulo: leave it unknown


def same_extent(a: N.Expr, b: N.Expr) -> bool:
    """True when two extents are provably equal: equal constants or the same expression."""
    fa, fb = fold(a), fold(b)
    if fa is not None and fb is not None:
        return fa == fb
    return strip(a) == strip(b)


def strip(e: N.Expr) -> N.Expr:
    """Drop integer casts that do not change an index value (``cast<int32>(n)`` vs ``n``)."""
    while isinstance(e, N.Cast) and e.type in ("int32", "int64") and e.value.dtype in ("int32", "int64"):
        e = e.value
    return e


def same_shape(a: tuple[N.Expr, ...], b: tuple[N.Expr, ...]) -> bool:
    return len(a) == len(b) and all(same_extent(x, y) for x, y in zip(a, b))


def is_unit(e: N.Expr) -> bool:
    return fold(e) == 1


def squeeze(extents: tuple[N.Expr, ...]) -> tuple[N.Expr, ...]:
    """The extents without their unit dimensions (TileLang compares copy shapes this way)."""
    return tuple(e for e in extents if not is_unit(e))


def squeeze_to(extents: tuple[N.Expr, ...], rank: int) -> Optional[tuple[N.Expr, ...]]:
    """Drop unit dimensions, leftmost first, until ``rank`` remain; None when that is impossible."""
    dims = list(extents)
    i = 0
    while len(dims) > rank and i < len(dims):
        if is_unit(dims[i]):
            del dims[i]
        else:
            i += 1
    return tuple(dims) if len(dims) == rank else None


def expr_str(e: N.Expr) -> str:
    """A short rendering of an index expression for messages (the printer's form where it matters)."""
    v = fold(e)
    if v is not None:
        return str(v)
    if isinstance(e, N.Var):
        return e.name
    if isinstance(e, N.BinOp):
        if e.op in ("min", "max"):
            return f"{e.op}({expr_str(e.a)}, {expr_str(e.b)})"
        return f"({expr_str(e.a)} {e.op} {expr_str(e.b)})"
    if isinstance(e, N.Cast):
        return expr_str(e.value)
    if isinstance(e, N.Load):
        return f"{e.buffer.name}[{', '.join(expr_str(i) for i in e.indices)}]"
    if isinstance(e, N.Const):
        return str(e.value)
    return type(e).__name__.lower()


def shape_str(extents: tuple[N.Expr, ...]) -> str:
    """``64x32`` for a tile shape, ``scalar`` for rank 0."""
    return "x".join(expr_str(e) for e in extents) if extents else "scalar"


def describe(buf: N.Buffer) -> str:
    dims = ", ".join(expr_str(e) for e in buf.shape)
    return f"{buf.scope} {buf.dtype}[{dims}]"
