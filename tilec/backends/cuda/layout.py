"""Fragment layouts for the CUDA backend: which fragments live in registers, and how.

A fragment (``T.alloc_fragment``) is a block-level tile whose distribution over threads is the
compiler's choice. This pass chooses, per launch:

- ``MmaLayout``: a 2-D fragment distributed like the accumulators of ``mma.sync.m16n8k16``. The block's
  warps form a ``wm x wn`` grid; warp (wi, wj) owns rows ``wi*WM..`` and columns ``wj*WN..``; inside a
  warp tile, 16x8 sub-tiles (mt, nt) hold 4 values per thread, lane ``l`` holding rows ``l/4`` and
  ``l/4 + 8`` at columns ``2*(l%4) + {0, 1}``. Register ``((mt*NT + nt)*2 + h)*2 + e`` holds
  (row ``mt*16 + h*8 + l/4``, column ``nt*8 + 2*(l%4) + e``) of the warp tile.
- with ``wg``, the accumulators of ``wgmma.m64nNk16`` (sm_90a): warpgroups form a ``wm/4 x wn`` grid and
  warp q of a warpgroup holds rows ``16q..16q+15`` of each of its 64-row tiles (same per-warp registers).
- ``RowLayout``: a 1-D fragment indexed by the rows of an MmaLayout; each thread holds the rows it owns
  (register ``mt*2 + h``), replicated over the 4 lanes of a quad and over the ``wn`` warps of a row.
- ``LaneLayout`` / ``LaneRow``: other 2-D fragments (softmax and norm tiles), rows over warps and
  columns over lanes, and their row vectors (see the classes).
- everything else lives in shared memory ("demoted"): always correct, any thread may touch any element.

Seeds come from ``T.gemm`` accumulators (and a fragment used as gemm operand A, reused in registers as
in FlashAttention), then propagate through reductions, copies and ``T.Parallel`` nests. A validation
loop demotes every register fragment that is used in a way its layout cannot serve (a block-level
scalar access, a loop nest bound to another layout, ...), until nothing changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Union

from tilec.ir import nodes as N


@dataclass(frozen=True)
class MmaLayout:
    m: int
    n: int
    wm: int
    wn: int
    wg: bool = False   # wgmma accumulators: warps 4g..4g+3 interleave 16-row slices of 64-row tiles

    @property
    def mt(self) -> int:
        return self.m // self.wm // 16

    @property
    def nt(self) -> int:
        return self.n // self.wn // 8

    @property
    def regs(self) -> int:
        return self.mt * self.nt * 4

    def row(self) -> "RowLayout":
        return RowLayout(self.m, self.wm, self.wn, self.wg)

    def template_args(self) -> str:
        return f"{self.m // self.wm}, {self.wn}, {self.nt}, {str(self.wg).lower()}"


@dataclass(frozen=True)
class RowLayout:
    m: int
    wm: int
    wn: int
    wg: bool = False

    @property
    def mt(self) -> int:
        return self.m // self.wm // 16

    @property
    def regs(self) -> int:
        return self.mt * 2

    def template_args(self) -> str:
        return f"{self.m // self.wm}, {self.wn}, {str(self.wg).lower()}"

    def col_group(self) -> str:
        """C expression: which of the ``wn`` column groups this thread's warp belongs to."""
        return f"((_warp >> 2) % {self.wn})" if self.wg else f"(_warp % {self.wn})"


@dataclass(frozen=True)
class LaneLayout:
    """A 2-D fragment of no gemm: warp w holds rows ``w*RPW .. w*RPW+RPW-1``, lane l the columns
    ``l, l+32, ...``; register ``a*NB + b`` is (row ``w*RPW + a``, column ``b*32 + l``). Rows stay inside
    one warp, so a reduction along them is a shuffle butterfly, and each warp's loads are coalesced."""
    m: int
    n: int
    warps: int

    @property
    def rpw(self) -> int:
        return self.m // self.warps

    @property
    def nb(self) -> int:
        return self.n // 32

    @property
    def regs(self) -> int:
        return self.rpw * self.nb

    def row(self) -> "LaneRow":
        return LaneRow(self.m, self.warps)


@dataclass(frozen=True)
class LaneRow:
    """A 1-D fragment indexed by a LaneLayout's rows: register q of warp w is row ``w*RPW + q``,
    replicated over the warp's 32 lanes."""
    m: int
    warps: int

    @property
    def regs(self) -> int:
        return self.m // self.warps


Layout = Union[MmaLayout, RowLayout, LaneLayout, LaneRow]
TILE_LAYOUTS = (MmaLayout, LaneLayout)   # 2-D register layouts
ROW_LAYOUTS = (RowLayout, LaneRow)       # their 1-D row companions
LANE_REG_BUDGET = 64                     # registers per thread a LaneLayout fragment may take


def is_tile(lay: object) -> bool:
    return isinstance(lay, TILE_LAYOUTS)


def is_rows(lay: object) -> bool:
    return isinstance(lay, ROW_LAYOUTS)


def shape_of(lay: Layout) -> tuple[int, ...]:
    return (lay.m, lay.n) if is_tile(lay) else (lay.m,)  # type: ignore[union-attr]


def at(s: N.Stmt) -> str:
    """``file:line:col  `` of a statement, for a comment in generated code ('' when it has none)."""
    return f"{s.loc}  " if getattr(s, "loc", None) else ""


def static_int(e: N.Expr) -> Optional[int]:
    return e.value if isinstance(e, N.Const) and isinstance(e.value, int) else None


def static_shape(buf: N.Buffer) -> Optional[tuple[int, ...]]:
    dims = [static_int(d) for d in buf.shape]
    return None if any(d is None for d in dims) else tuple(dims)  # type: ignore[misc]


def is_whole(r: N.Region) -> bool:
    return all(static_int(s) == 0 for s in r.starts) and tuple(r.extents) == tuple(r.buffer.shape)


def region_extents(r: N.Region) -> Optional[tuple[int, ...]]:
    ext = [static_int(e) for e in r.extents]
    return None if any(e is None for e in ext) else tuple(ext)  # type: ignore[misc]


def squeezed(r: N.Region) -> Optional[tuple[int, ...]]:
    ext = region_extents(r)
    return None if ext is None else tuple(e for e in ext if e != 1)


def mma_dtypes(g: N.Gemm) -> bool:
    """Whether ``g``'s operand and accumulator types fit the tensor-core paths (mma.sync and wgmma)."""
    a, b, c = g.a.buffer.dtype, g.b.buffer.dtype, g.c.buffer.dtype
    return a == b and a in ("float16", "bfloat16") and c == "float32"


def gemm_dims(g: N.Gemm) -> Optional[tuple[int, int, int]]:
    """(M, N, K) of a gemm from its regions' last two dims, or None when not static."""
    ea, ec = region_extents(g.a), region_extents(g.c)
    if ea is None or ec is None or len(ea) < 2 or len(ec) < 2:
        return None
    m, n = ec[-2], ec[-1]
    k = ea[-2] if g.trans_a else ea[-1]
    return m, n, k


def choose_grid(m: int, n: int, warps: int, policy: str, need_full_row: bool) -> Optional[tuple[int, int]]:
    """A (wm, wn) warp grid tiling an m x n accumulator in 16x8 mma tiles, or None."""
    cands = [(wm, warps // wm) for wm in range(1, warps + 1) if warps % wm == 0]
    cands = [(wm, wn) for wm, wn in cands if m % (16 * wm) == 0 and n % (8 * wn) == 0]
    if need_full_row or "FullRow" in policy:
        full = [c for c in cands if c[1] == 1]
        if full or need_full_row:
            return full[0] if full else None
    if "FullCol" in policy:
        full = [c for c in cands if c[0] == 1]
        if full:
            return full[0]
    if not cands:
        return None
    return min(cands, key=lambda c: (abs(m // c[0] - n // c[1]), -c[0]))


def walk(body: N.Body) -> Iterator[N.Stmt]:
    for s in body:
        yield s
        for sub in child_bodies(s):
            yield from walk(sub)


def child_bodies(s: N.Stmt) -> list[N.Body]:
    if isinstance(s, (N.For, N.While, N.Launch)):
        return [s.body]
    if isinstance(s, N.If):
        return [s.then_body, s.else_body]
    return []


def expr_loads(e: N.Expr) -> Iterator[N.Load]:
    if isinstance(e, N.Load):
        yield e
        for i in e.indices:
            yield from expr_loads(i)
    elif isinstance(e, N.BinOp):
        yield from expr_loads(e.a)
        yield from expr_loads(e.b)
    elif isinstance(e, (N.UnaryOp,)):
        yield from expr_loads(e.a)
    elif isinstance(e, (N.Cast, N.Reinterpret)):
        yield from expr_loads(e.value)
    elif isinstance(e, N.Select):
        for x in (e.cond, e.a, e.b):
            yield from expr_loads(x)
    elif isinstance(e, N.Call):
        for x in e.args:
            yield from expr_loads(x)


def stmt_exprs(s: N.Stmt) -> list[N.Expr]:
    """The expressions a statement evaluates itself (not those of nested bodies)."""
    if isinstance(s, N.Let):
        return [s.value]
    if isinstance(s, N.Store):
        return [*s.indices, s.value]
    if isinstance(s, N.For):
        return [s.start, s.stop]
    if isinstance(s, (N.While, N.If)):
        return [s.cond]
    if isinstance(s, N.Fill):
        return [*region_exprs(s.dst), s.value]
    if isinstance(s, N.Atomic):
        vals = region_exprs(s.value) if isinstance(s.value, N.Region) else [s.value]
        return [*region_exprs(s.dst), *vals]
    if isinstance(s, (N.Copy, N.Reduce, N.Cumsum)):
        return [*region_exprs(s.src), *region_exprs(s.dst)]
    if isinstance(s, N.Gemm):
        return [*region_exprs(s.a), *region_exprs(s.b), *region_exprs(s.c)]
    return []


def region_exprs(r: N.Region) -> list[N.Expr]:
    return [*r.starts, *r.extents]


def parallel_nest(s: N.For) -> tuple[list[N.For], N.Body]:
    """The perfectly nested parallel loops starting at ``s`` and the innermost body. A loop whose
    bounds use an outer loop's variable (a triangular nest) stays inside the body as a serial loop."""
    loops = [s]
    while len(loops[-1].body) == 1 and isinstance(loops[-1].body[0], N.For) \
            and loops[-1].body[0].kind == "parallel":
        inner = loops[-1].body[0]
        outer = {lp.var.name for lp in loops}
        if _var_names(inner.start) & outer or _var_names(inner.stop) & outer:
            break
        loops.append(inner)
    return loops, loops[-1].body


def _var_names(e: N.Expr) -> set[str]:
    out: set[str] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, N.Var):
            out.add(x.name)
        for f in ("a", "b", "value", "cond"):
            y = getattr(x, f, None)
            if isinstance(y, N.Expr):
                stack.append(y)
        stack.extend(i for i in getattr(x, "indices", ()) if isinstance(i, N.Expr))
        stack.extend(i for i in getattr(x, "args", ()) if isinstance(i, N.Expr))
    return out
