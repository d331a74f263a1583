"""Tile IR: the node definitions, as small immutable dataclasses.

The IR is plain data (docs/design.md, decision 1). A module holds kernels (``Func``); a kernel holds global
parameters and a sequence of launches; a launch is a grid of independent blocks whose body is a
statement list over named buffers. Tile operations (copy, gemm, fill, reduce, atomic, cumsum) stay
tile operations until a target lowers them. Every node carries a source location (``loc``). Statement
locations take part in equality, so the text round trip is checked for them; expression, buffer and
region locations do not (the text form does not print them; the parser gives them their statement's).

Conventions that every layer relies on:
- Buffers are referenced by the ``Buffer`` object itself; names are unique within a ``Func``.
- Scalars of float16/bfloat16/float8 compute in float32; a value is rounded to its dtype only where it is
  stored (``Store``, tile ops writing a buffer) or explicitly ``Cast``.
- ``Region`` always carries explicit extents: the frontend resolves TileLang's "extent from the other
  side" rule. A region may run past the buffer's shape: such elements read as zero and are not written.
- Loop ranges are half-open ``[start, stop)`` with step 1 (``range(a, b, s)`` is normalised by the
  frontend into a loop over the trip count).

The text form is defined by ``printer.py`` and ``grammar.lark``; see docs/internals.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from . import dtypes


@dataclass(frozen=True)
class Loc:
    """A source position: file, 1-based line, 1-based column."""
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# ---------------------------------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True)
class Expr:
    @property
    def dtype(self) -> str:  # pragma: no cover - every subclass defines it
        raise AssertionError(type(self).__name__)


@dataclass(frozen=True, eq=False)
class Const(Expr):
    """A literal. ``value`` is a Python int, float or bool; ``float('inf')`` and NaN are allowed.

    Two NaN constants of one dtype are equal, so IR holding NaN still round-trips through text.
    """
    value: Union[int, float, bool]
    type: str = "int32"
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.type

    def _key(self):
        v = self.value
        return (self.type, "nan") if isinstance(v, float) and v != v else (self.type, type(v) is bool, v)

    def __eq__(self, other) -> bool:
        return isinstance(other, Const) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True)
class Var(Expr):
    """A scalar name: loop variable, block index, symbolic dimension or ``Let`` binding."""
    name: str
    type: str = dtypes.INDEX
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.type


ARITH_OPS = ("+", "-", "*", "/", "//", "%", "min", "max", "&", "|", "^", "<<", ">>")
COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
LOGIC_OPS = ("and", "or")


@dataclass(frozen=True)
class BinOp(Expr):
    """``a op b``. Operands have the same dtype (the frontend casts); comparisons and logic give bool.

    ``/`` is true division on floats and C (truncating) division on integers; ``//`` and ``%`` are floor
    division and floor modulo (Python's, TileLang's ``T.floordiv``/``T.floormod``) on integers and floats.
    """
    op: str
    a: Expr
    b: Expr
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        if self.op in COMPARE_OPS or self.op in LOGIC_OPS:
            return "bool"
        return self.a.dtype


UNARY_OPS = ("-", "not", "~")


@dataclass(frozen=True)
class UnaryOp(Expr):
    op: str
    a: Expr
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return "bool" if self.op == "not" else self.a.dtype


# Intrinsic functions of one or more arguments; the result has the first argument's dtype.
INTRINSICS = ("abs", "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "sigmoid", "sin", "cos",
              "floor", "ceil", "round", "trunc", "pow", "isnan", "isinf")


@dataclass(frozen=True)
class Call(Expr):
    """An intrinsic: ``func`` is one of ``INTRINSICS``. ``isnan``/``isinf`` give bool."""
    func: str
    args: tuple[Expr, ...]
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        if self.func in ("isnan", "isinf"):
            return "bool"
        return self.args[0].dtype


@dataclass(frozen=True)
class Cast(Expr):
    """Value conversion to ``type`` (rounds to nearest even for floats; float to int truncates)."""
    type: str
    value: Expr
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.type


@dataclass(frozen=True)
class Reinterpret(Expr):
    """Bit-pattern reinterpretation; ``type`` has the value's width."""
    type: str
    value: Expr
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.type


@dataclass(frozen=True)
class Select(Expr):
    """``T.if_then_else(cond, a, b)``: ``a`` where cond holds, else ``b`` (both evaluated)."""
    cond: Expr
    a: Expr
    b: Expr
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.a.dtype


@dataclass(frozen=True)
class Load(Expr):
    """One element of a buffer. A buffer of shape () (``T.alloc_var``) is loaded with no indices."""
    buffer: "Buffer"
    indices: tuple[Expr, ...]
    loc: Optional[Loc] = field(default=None, compare=False)

    @property
    def dtype(self) -> str:
        return self.buffer.dtype


# ---------------------------------------------------------------------------------------------------
# Buffers and regions

SCOPES = ("global", "shared", "fragment", "local")


@dataclass(frozen=True)
class Buffer:
    """A named, typed n-d array. ``global`` buffers are kernel parameters; the others are allocations.

    ``shape`` entries are ``Expr`` (``Const`` or a symbolic ``Var`` for ``T.dynamic`` dimensions).
    Layout is row-major and contiguous.
    """
    name: str
    shape: tuple[Expr, ...]
    dtype: str
    scope: str
    loc: Optional[Loc] = field(default=None, compare=False)


@dataclass(frozen=True)
class Region:
    """A rectangular tile of a buffer: ``buffer[starts[i] +: extents[i], ...]``.

    Extents are constants or expressions; rank equals the buffer's rank.
    """
    buffer: Buffer
    starts: tuple[Expr, ...]
    extents: tuple[Expr, ...]
    loc: Optional[Loc] = field(default=None, compare=False)


# ---------------------------------------------------------------------------------------------------
# Statements


@dataclass(frozen=True)
class Stmt:
    pass


Body = tuple[Stmt, ...]


@dataclass(frozen=True)
class Alloc(Stmt):
    """Declares a block-local buffer (scope shared, fragment or local) for the rest of the enclosing body."""
    buffer: Buffer
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Let(Stmt):
    """Binds ``var`` to ``value`` for the rest of the enclosing body (a Python assignment of a scalar)."""
    var: Var
    value: Expr
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Store(Stmt):
    """``buffer[indices] = value``; value is cast to the buffer's dtype (rounded) when stored."""
    buffer: Buffer
    indices: tuple[Expr, ...]
    value: Expr
    loc: Optional[Loc] = None


LOOP_KINDS = ("serial", "parallel", "pipelined", "unrolled")


@dataclass(frozen=True)
class For(Stmt):
    """``for var in kind(start, stop)``. ``stages`` is ``num_stages`` of a pipelined loop, else 0.

    A ``parallel`` loop has no cross-iteration dependence (``T.Parallel``); ``T.Parallel(m, n)`` is two
    nested parallel loops.
    """
    var: Var
    start: Expr
    stop: Expr
    kind: str
    body: Body
    stages: int = 0
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class While(Stmt):
    cond: Expr
    body: Body
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class If(Stmt):
    cond: Expr
    then_body: Body
    else_body: Body = ()
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Copy(Stmt):
    """``T.copy``: element-wise copy of ``src`` into ``dst`` with a cast to dst's dtype.

    The two regions have the same number of elements and the same shape once unit dimensions are
    dropped. Source elements outside their buffer read as zero; destination elements outside their
    buffer are not written.
    """
    src: Region
    dst: Region
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Gemm(Stmt):
    """``T.gemm``: ``C += op(A) @ op(B)`` accumulated in C's dtype; ``clear_accum`` zeroes C first.

    ``policy`` keeps TileLang's warp policy name (a GPU hint, "" when unspecified).
    """
    a: Region
    b: Region
    c: Region
    trans_a: bool = False
    trans_b: bool = False
    clear_accum: bool = False
    policy: str = ""
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Fill(Stmt):
    dst: Region
    value: Expr
    loc: Optional[Loc] = None


REDUCE_KINDS = ("max", "min", "sum", "absmax", "abssum")


@dataclass(frozen=True)
class Reduce(Stmt):
    """``T.reduce_<kind>(src, dst, dim, clear)``: dst has src's shape without ``dim``.

    With ``clear=False`` the result is combined with dst's previous contents.
    """
    kind: str
    src: Region
    dst: Region
    dim: int
    clear: bool = True
    loc: Optional[Loc] = None


ATOMIC_KINDS = ("add", "max", "min")


@dataclass(frozen=True)
class Atomic(Stmt):
    """``T.atomic_add/max(dst, value)``: ``value`` is a scalar ``Expr`` (dst one element) or a ``Region``."""
    kind: str
    dst: Region
    value: Union[Expr, Region]
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Cumsum(Stmt):
    """Inclusive prefix sum of ``src`` along ``dim`` into ``dst`` (``reverse`` scans from the end)."""
    src: Region
    dst: Region
    dim: int
    reverse: bool = False
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Hint(Stmt):
    """A scheduling hint with no semantic effect (``T.use_swizzle``, ``T.annotate_layout``, ...).

    ``args`` are constants or buffer names as strings, kept so GPU targets can act on them.
    """
    name: str
    args: tuple[Union[int, float, str, bool], ...] = ()
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Launch(Stmt):
    """``with T.Kernel(*grid, threads=N) as block_vars``: a grid of independent blocks.

    ``grid[i]`` is the extent of ``block_vars[i]``. ``threads`` is TileLang's threads argument (used by
    GPU targets). The body is one block's program.
    """
    grid: tuple[Expr, ...]
    block_vars: tuple[Var, ...]
    threads: int
    body: Body
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Func:
    """A kernel (``@T.prim_func``): global-scope parameter buffers and a body of ``Launch`` statements.

    Symbolic dimensions (``T.dynamic``) are the ``Var`` entries of parameter shapes.
    """
    name: str
    params: tuple[Buffer, ...]
    body: Body
    loc: Optional[Loc] = None


@dataclass(frozen=True)
class Module:
    funcs: tuple[Func, ...]

    def __getitem__(self, name: str) -> Func:
        for f in self.funcs:
            if f.name == name:
                return f
        raise KeyError(name)


TileOp = Union[Copy, Gemm, Fill, Reduce, Atomic, Cumsum]
