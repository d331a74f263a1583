"""Layout inference for fragments of one launch (see layout.py for the layouts themselves).

``infer_layouts(launch)`` returns the register layout of every fragment that can live in registers;
the others are placed in shared memory by the emitter. ``bind_nest`` decides how a ``T.Parallel`` nest
is spread over threads: over the registers of an anchoring register fragment ("mma"/"row"), or
thread-strided over the flattened iteration space ("strided").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tilec.ir import nodes as N

from .layout import (LANE_REG_BUDGET, LaneLayout, Layout, MmaLayout, choose_grid, expr_loads, gemm_dims, mma_dtypes,
                     is_rows, is_tile, is_whole, parallel_nest, shape_of, squeezed, static_int,
                     static_shape, stmt_exprs, walk)
from .wgmma import layout_for


@dataclass(frozen=True)
class Binding:
    kind: str                       # "mma", "row" or "strided"
    layout: Optional[Layout]
    vars: tuple[str, ...]           # the loop variables bound to the layout's (row[, column])


STRIDED = Binding("strided", None, ())


def _indexed_by(indices: tuple[N.Expr, ...], names: tuple[str, ...]) -> bool:
    return len(indices) == len(names) and all(
        isinstance(i, N.Var) and i.name == n for i, n in zip(indices, names))


def _accesses(body: N.Body) -> list[tuple[N.Buffer, tuple[N.Expr, ...], bool]]:
    """(buffer, indices, is_write) of every scalar load/store in ``body``, nested bodies included."""
    out = []
    for s in walk(body):
        if isinstance(s, N.Store):
            out.append((s.buffer, s.indices, True))
        for e in stmt_exprs(s):
            out.extend((ld.buffer, ld.indices, False) for ld in expr_loads(e))
    return out


def bind_nest(loops: list[N.For], body: N.Body, layouts: dict[str, Layout]) -> Binding:
    """How the parallel nest ``loops`` (innermost body ``body``) is distributed over the block."""
    if len(loops) > 2 or any(static_int(lp.start) != 0 for lp in loops):
        return STRIDED
    exts = tuple(static_int(lp.stop) for lp in loops)
    names = tuple(lp.var.name for lp in loops)
    accs = _accesses(body)
    for buf, idx, _ in accs:
        lay = layouts.get(buf.name)
        if lay is None or not _indexed_by(idx, names):
            continue
        if is_tile(lay) and exts == shape_of(lay):
            return Binding("mma", lay, names)
        if is_rows(lay) and exts == shape_of(lay) and _row_safe(body, accs, layouts):
            return Binding("row", lay, names)
    return STRIDED


def _row_safe(body: N.Body, accs, layouts) -> bool:
    """A row binding replicates each iteration over several threads: only idempotent bodies qualify."""
    if any(isinstance(s, (N.Atomic, N.Copy, N.Gemm, N.Reduce, N.Cumsum, N.Fill)) for s in walk(body)):
        return False
    written = {b.name for b, _, w in accs if w and b.scope != "local" and b.name not in layouts}
    read = {b.name for b, _, w in accs if not w}
    return not (written & read)


def infer_layouts(launch: N.Launch, wgmma: bool = False) -> dict[str, Layout]:
    layouts: dict[str, Layout] = {}
    if wgmma:
        _seed_wgmma(launch, layouts)
    _seed_from_gemms(launch, layouts)
    while _propagate(launch.body, layouts):
        pass
    _seed_lanes(launch, layouts)
    while _propagate(launch.body, layouts):
        pass
    while True:
        bad: set[str] = set()
        _validate(launch.body, None, layouts, bad)
        if not bad:
            return layouts
        for name in bad:
            layouts.pop(name, None)


def _seed_wgmma(launch: N.Launch, layouts: dict[str, Layout]) -> None:
    gemms = [s for s in walk(launch.body) if isinstance(s, N.Gemm)]
    if any(g.a.buffer.scope == "fragment" for g in gemms):
        return  # P @ V from registers needs mma.sync layouts for the whole chain (FlashAttention)
    for g in gemms:
        lay = layout_for(g, launch.threads // 32)
        if lay is not None and g.c.buffer.name not in layouts:
            layouts[g.c.buffer.name] = lay


def _seed_from_gemms(launch: N.Launch, layouts: dict[str, Layout]) -> None:
    warps = max(1, launch.threads // 32)
    gemms = [s for s in walk(launch.body) if isinstance(s, N.Gemm)]
    reg_a = any(g.a.buffer.scope == "fragment" for g in gemms)
    widest: dict[int, int] = {}   # accumulator rows -> the most columns of one with that many rows
    for g in gemms:
        dims = gemm_dims(g)
        if dims is not None:
            widest[dims[0]] = max(widest.get(dims[0], 0), dims[1])
    for g in gemms:
        dims, c, a = gemm_dims(g), g.c.buffer, g.a.buffer
        if not mma_dtypes(g) or dims is None or c.scope != "fragment" or len(c.shape) != 2 \
                or not is_whole(g.c):
            continue
        m, n, k = dims
        if c.name not in layouts:
            grid = choose_grid(m, n, warps, g.policy, reg_a)
            if grid is None or not (reg_a or g.policy):
                grid = (_row_group_grid(m, n, warps, widest[m]) or grid
                        or choose_grid(m, n, warps, g.policy, False))
            if grid is None:
                continue
            layouts[c.name] = MmaLayout(m, n, *grid)
        lay = layouts[c.name]
        if (a.scope == "fragment" and isinstance(lay, MmaLayout) and lay.wn == 1 and not g.trans_a
                and is_whole(g.a) and len(a.shape) == 2 and k % 16 == 0 and a.name not in layouts):
            layouts[a.name] = MmaLayout(m, k, lay.wm, 1)


def _row_group_grid(m: int, n: int, warps: int, widest: int) -> Optional[tuple[int, int]]:
    """The warp grid of the widest accumulator with ``m`` rows (``widest`` columns) in the block, when
    it also tiles this ``m x n`` one. Accumulators of one block with the same rows are usually linked
    row by row (attention's scores and output share the softmax's row state), and a row-wise value
    stays in registers for both only when their warps split the rows alike; the widest one holds the
    most registers, so its grid is the one to share."""
    grid = choose_grid(m, widest, warps, "", False)
    if grid is not None and m % (16 * grid[0]) == 0 and n % (8 * grid[1]) == 0:
        return grid
    return None


def _seed_lanes(launch: N.Launch, layouts: dict[str, Layout]) -> None:
    """Every other 2-D fragment whose shape suits a LaneLayout starts in registers (validation may
    still move it to shared memory)."""
    warps = max(1, launch.threads // 32)
    for s in walk(launch.body):
        if not isinstance(s, N.Alloc) or s.buffer.scope != "fragment" or s.buffer.name in layouts:
            continue
        shape = static_shape(s.buffer)
        if shape is None or len(shape) != 2 or s.buffer.dtype == "bool":
            continue
        m, n = shape
        if m % warps == 0 and n % 32 == 0 and (m // warps) * (n // 32) <= LANE_REG_BUDGET:
            layouts[s.buffer.name] = LaneLayout(m, n, warps)


def _assign(buf: N.Buffer, lay: Layout, layouts: dict[str, Layout]) -> bool:
    if buf.scope != "fragment" or buf.name in layouts:
        return False
    shape = static_shape(buf)
    want = shape_of(lay)
    if shape != want:
        return False
    layouts[buf.name] = lay
    return True


def _propagate(body: N.Body, layouts: dict[str, Layout]) -> bool:
    changed = False
    for s in walk(body):
        if isinstance(s, N.Reduce):
            src = layouts.get(s.src.buffer.name)
            if is_tile(src) and s.dim == 1 and is_whole(s.dst) and is_whole(s.src):
                changed |= _assign(s.dst.buffer, src.row(), layouts)
        elif isinstance(s, N.Copy) and is_whole(s.src) and is_whole(s.dst):
            for x, y in ((s.src, s.dst), (s.dst, s.src)):
                if x.buffer.name in layouts:
                    changed |= _assign(y.buffer, layouts[x.buffer.name], layouts)
        elif isinstance(s, N.For) and s.kind == "parallel":
            loops, inner = parallel_nest(s)
            b = bind_nest(loops, inner, layouts)
            if b.kind == "strided":
                continue
            for buf, idx, _ in _accesses(inner):
                if b.kind == "mma" and _indexed_by(idx, b.vars):
                    changed |= _assign(buf, b.layout, layouts)
                elif _indexed_by(idx, b.vars[:1]):
                    lay = b.layout.row() if is_tile(b.layout) else b.layout
                    changed |= _assign(buf, lay, layouts)
    return changed


def access_ok(buf: N.Buffer, idx: tuple[N.Expr, ...], b: Optional[Binding],
              layouts: dict[str, Layout]) -> bool:
    lay = layouts.get(buf.name)
    if lay is None:
        return True
    if b is None or b.kind == "strided":
        return False
    if b.kind == "mma":  # bound to a 2-D register layout (mma or lane)
        return (lay == b.layout and _indexed_by(idx, b.vars)) or \
            (lay == b.layout.row() and _indexed_by(idx, b.vars[:1]))  # type: ignore[union-attr]
    return lay == b.layout and _indexed_by(idx, b.vars)


def _validate(body: N.Body, b: Optional[Binding], layouts: dict[str, Layout], bad: set[str]) -> None:
    for s in body:
        if isinstance(s, N.For) and s.kind == "parallel" and b is None:
            loops, inner = parallel_nest(s)
            for lp in loops:
                _check_exprs([lp.start, lp.stop], None, layouts, bad)
            _validate(inner, bind_nest(loops, inner, layouts), layouts, bad)
            continue
        if isinstance(s, (N.Copy, N.Gemm, N.Fill, N.Reduce, N.Atomic, N.Cumsum)):
            if b is not None:
                bad.update(r.buffer.name for r in _regions(s) if r.buffer.name in layouts)
            else:
                _check_tileop(s, layouts, bad)
        if isinstance(s, N.Store) and not access_ok(s.buffer, s.indices, b, layouts):
            bad.add(s.buffer.name)
        if not isinstance(s, (N.Copy, N.Gemm, N.Fill, N.Reduce, N.Cumsum)) and \
                not (isinstance(s, N.Atomic) and isinstance(s.value, N.Region)):
            _check_exprs(stmt_exprs(s), b, layouts, bad)
        for sub in _bodies(s):
            _validate(sub, b, layouts, bad)


def _bodies(s: N.Stmt) -> list[N.Body]:
    if isinstance(s, (N.For, N.While)):
        return [s.body]
    if isinstance(s, N.If):
        return [s.then_body, s.else_body]
    return []


def _check_exprs(exprs, b, layouts, bad) -> None:
    for e in exprs:
        for ld in expr_loads(e):
            if not access_ok(ld.buffer, ld.indices, b, layouts):
                bad.add(ld.buffer.name)


def _regions(s: N.Stmt) -> list[N.Region]:
    if isinstance(s, N.Gemm):
        return [s.a, s.b, s.c]
    if isinstance(s, N.Fill):
        return [s.dst]
    if isinstance(s, N.Atomic):
        return [s.dst] + ([s.value] if isinstance(s.value, N.Region) else [])
    return [s.src, s.dst]  # type: ignore[attr-defined]


def _reg_vs_memory_ok(reg: N.Region, mem: N.Region, layouts) -> bool:
    return is_whole(reg) and squeezed(mem) == shape_of(layouts[reg.buffer.name])


def _check_tileop(s: N.Stmt, layouts: dict[str, Layout], bad: set[str]) -> None:
    regs = [r for r in _regions(s) if r.buffer.name in layouts]
    if not regs:
        return
    if any(r.buffer.scope == "local" for r in _regions(s)):  # per-thread copies: no register path
        bad.update(r.buffer.name for r in regs)
        return
    ok = False
    if isinstance(s, N.Fill):
        ok = is_whole(s.dst)
    elif isinstance(s, N.Copy):
        rs, rd = s.src.buffer.name in layouts, s.dst.buffer.name in layouts
        if rs and rd:
            ok = is_whole(s.src) and is_whole(s.dst) and layouts[s.src.buffer.name] == layouts[s.dst.buffer.name]
        else:
            ok = _reg_vs_memory_ok(s.src, s.dst, layouts) if rs else _reg_vs_memory_ok(s.dst, s.src, layouts)
    elif isinstance(s, N.Gemm):
        ok = _gemm_regs_ok(s, layouts, bad)
        return
    elif isinstance(s, N.Reduce):
        src, dst = layouts.get(s.src.buffer.name), layouts.get(s.dst.buffer.name)
        ok = is_tile(src) and dst == src.row() and s.dim == 1 and is_whole(s.src) \
            and is_whole(s.dst)
    elif isinstance(s, N.Atomic):
        ok = isinstance(s.value, N.Region) and s.dst.buffer.name not in layouts and \
            _reg_vs_memory_ok(s.value, s.dst, layouts)
    if not ok:
        bad.update(r.buffer.name for r in regs)


def _gemm_regs_ok(g: N.Gemm, layouts: dict[str, Layout], bad: set[str]) -> None:
    c, a, b = layouts.get(g.c.buffer.name), layouts.get(g.a.buffer.name), layouts.get(g.b.buffer.name)
    dims = gemm_dims(g)
    if b is not None:
        bad.add(g.b.buffer.name)
    if c is not None and not (is_tile(c) and dims is not None and shape_of(c) == dims[:2]
                              and is_whole(g.c)):
        bad.add(g.c.buffer.name)
        c = None
    if a is not None:
        ok = (isinstance(c, MmaLayout) and not c.wg and mma_dtypes(g) and not g.trans_a and is_whole(g.a) and c.wn == 1
              and dims is not None and a == MmaLayout(dims[0], dims[2], c.wm, 1))
        if not ok:
            bad.add(g.a.buffer.name)
