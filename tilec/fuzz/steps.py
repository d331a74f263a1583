"""The steps a generated program is made of: each appends statements to a block body through ``Gen``.

A step reads only fragments that already hold values and records what it wrote, so every program reads
defined memory. ``STEPS`` weights the middle steps; ``step_gemm`` or ``step_load`` opens a program and
``write_back`` closes it (ragged copy, copy through shared memory, or guarded element stores; row
statistics by one writer per row band or by ``atomic add``). ``second_launch`` adds a launch that
updates the first one's output tile by tile.
"""
from __future__ import annotations

from typing import Callable

from ..ir import nodes as n
from .state import F32, HALF_TYPES, Gen, as_f32, b, c, f, whole


def trip_count(g: Gen, trips: int) -> n.Expr:
    """A K-loop trip count: the full count, or one that depends on the block like causal attention's
    (``min(bx + 1, T)``, and ``T - min(bx, T)`` which is zero for late blocks)."""
    kind = g.rng.randrange(4)
    if kind == 0:
        g.features.append("block_trip_count")
        return b("min", b("+", g.bx, c(1)), c(trips))
    if kind == 1:
        g.features.append("block_trip_count")
        return b("-", c(trips), b("min", g.bx, c(trips)))
    return c(trips)


def step_load(g: Gen, out: list) -> None:
    src = g.rng.choice([p for p in g.params if p.name in ("X0", "X1")])
    dst = g.frag()
    row0 = None
    if g.rng.random() < 0.3:
        row0 = n.Var(g.name("row"))
        out.append(n.Let(row0, b("*", g.bx, c(g.bm))))
        g.features.append("let")
    how = g.rng.randrange(3)
    if how == 0:
        s = g.alloc("S", (g.bm, g.bn), g.rng.choice((src.dtype, F32) + HALF_TYPES), "shared")
        out += [n.Copy(g.tile(src, row0), whole(s)), n.Copy(whole(s), whole(dst))]
    elif how == 1:
        out.append(n.Copy(g.tile(src, row0), whole(dst)))
    else:   # row by row: unit dimensions on both sides, a fragment sub-region
        t = n.Var(g.name("t"))
        row = b("+", row0 if row0 is not None else b("*", g.bx, c(g.bm)), t)
        one = n.Copy(n.Region(src, (row, b("*", g.by, c(g.bn))), (c(1), c(g.bn))),
                     n.Region(dst, (t, c(0)), (c(1), c(g.bn))))
        out.append(n.For(t, c(0), c(g.bm), "serial", (one,)))
        g.features.append("row_copy")
    g.frags.append(dst)


def step_map(g: Gen, out: list) -> None:
    dst = g.rng.choice(g.frags + [None])
    if dst is None:
        dst = g.frag()
    out.append(g.map_stmt(dst))
    if dst not in g.frags:
        g.frags.append(dst)


def step_reduce(g: Gen, out: list) -> None:
    kind = g.rng.choice(n.REDUCE_KINDS)
    src = g.rng.choice(g.frags)
    if g.rng.random() < 0.6:
        clear = g.rows is None or g.rng.random() < 0.5
        g.rows = g.rows or g.alloc("r", (g.bm,), F32, "fragment")
        out.append(n.Reduce(kind, whole(src), whole(g.rows), 1, clear))
    else:
        g.cols = g.cols or g.alloc("col", (g.bn,), F32, "fragment")
        out.append(n.Reduce(kind, whole(src), whole(g.cols), 0, True))
    g.features.append("reduce")


def step_cumsum(g: Gen, out: list) -> None:
    src = g.rng.choice(g.frags)
    dst = g.rng.choice([x for x in g.frags if x.dtype == src.dtype] or [src])
    out.append(n.Cumsum(whole(src), whole(dst), g.rng.randrange(2), g.rng.random() < 0.4))
    g.features.append("cumsum")


def step_fill(g: Gen, out: list) -> None:
    dst = g.frag()
    out.append(n.Fill(whole(dst), f(g.rng.choice((0.0, 1.5, -2.0)))))
    g.frags.append(dst)


def step_if(g: Gen, out: list) -> None:
    dst = g.rng.choice(g.frags)
    cond = g.rng.choice((b("==", b("%", g.bx, c(2)), c(0)), b("<", g.by, c(1)),
                         b("and", b(">", g.bx, c(0)), b("!=", g.by, c(1)))))
    other = (g.map_stmt(dst, 2),) if g.rng.random() < 0.7 else ()
    out.append(n.If(cond, (g.map_stmt(dst, 2),), other))
    g.features.append("if")


def step_serial(g: Gen, out: list) -> None:
    dst, src = g.rng.choice(g.frags), g.rng.choice(g.frags)
    t, i, j = n.Var(g.name("t")), n.Var(g.name("i")), n.Var(g.name("j"))
    kind = g.rng.choice(("serial", "unrolled"))
    value = g.clamp(b("+", b("*", as_f32(n.Load(dst, (i, j))), f(0.5)),
                      b("*", as_f32(n.Load(src, (i, j))), n.Cast(F32, b("+", t, c(1))))))
    store = n.Store(dst, (i, j), value)
    trips = c(g.rng.randint(1, 3))
    if g.rng.random() < 0.5:
        nest = n.For(i, c(0), c(g.bm), "parallel", (n.For(j, c(0), c(g.bn), "parallel", (store,)),))
        out.append(n.For(t, c(0), trips, kind, (nest,)))
    else:   # the serial loop inside the element loop
        inner = n.For(t, c(0), trips, kind, (store,))
        out.append(n.For(i, c(0), c(g.bm), "parallel", (n.For(j, c(0), c(g.bn), "parallel", (inner,)),)))
    g.features.append(kind)


def step_scalar(g: Gen, out: list) -> None:
    """A local scalar accumulated over a serial loop, with a loop-invariant let and load inside."""
    g.acc = g.acc or g.alloc("acc", (), F32, "local")
    src, other = g.rng.choice(g.frags), g.rng.choice(g.frags)
    t, w = n.Var(g.name("t")), n.Var(g.name("w"), F32)
    out.append(n.Store(g.acc, (), f(0.0)))
    scale = b("*", as_f32(n.Load(other, (c(g.bm - 1), c(0)))), f(0.25))
    term = b("*", as_f32(n.Load(src, (t, b("%", t, c(g.bn))))), b("+", scale, n.Call("sigmoid", (w,))))
    body = (n.Let(w, b("+", n.Cast(F32, g.bx), f(1.0))),
            n.Store(g.acc, (), g.clamp(b("+", n.Load(g.acc, ()), term))))
    out.append(n.For(t, c(0), c(g.bm), "serial", body))
    g.features.append("scalar")


def step_round_trip(g: Gen, out: list) -> None:
    """Through a half-type shared tile and back: rounding on copy."""
    src = g.rng.choice(g.frags)
    s = g.alloc("H", (g.bm, g.bn), g.rng.choice(HALF_TYPES), "shared")
    dst = g.frag()
    out += [n.Copy(whole(src), whole(s)), n.Copy(whole(s), whole(dst))]
    g.frags.append(dst)


def step_pipelined_sum(g: Gen, out: list) -> None:
    """Sum the tiles of one row band of X1 over a pipelined loop (the K loop of a reduction kernel)."""
    x1 = next(p for p in g.params if p.name == "X1")
    acc, tmp = g.frag(F32), g.frag()
    s = g.alloc("S", (g.bm, g.bn), x1.dtype, "shared")
    k, i, j = n.Var(g.name("k")), n.Var(g.name("i")), n.Var(g.name("j"))
    trips = -(-g.n_val // g.bn)
    add = n.Store(acc, (i, j), b("+", n.Load(acc, (i, j)), b("*", as_f32(n.Load(tmp, (i, j))), f(0.5))))
    body = (n.Copy(g.tile(x1, None, b("*", k, c(g.bn))), whole(s)), n.Copy(whole(s), whole(tmp)),
            n.For(i, c(0), c(g.bm), "parallel", (n.For(j, c(0), c(g.bn), "parallel", (add,)),)))
    out.append(n.Fill(whole(acc), f(0.0)))
    out.append(n.For(k, c(0), trip_count(g, trips), "pipelined", body, g.rng.choice((1, 2, 3))))
    g.frags.append(acc)
    g.features.append("pipelined")


def step_gemm(g: Gen, out: list) -> None:
    """C[bm, bn] = op(A)[tile rows, :] @ op(B)[:, tile cols] over a pipelined (or serial) K loop."""
    r = g.rng
    bk, k_val = r.choice((8, 16)), r.choice((8, 16, 24, 40))
    trans_a, trans_b = r.random() < 0.25, r.random() < 0.3
    a = g.param("A", (c(k_val), g.M) if trans_a else (g.M, c(k_val)), g.in_dtype)
    bb = g.param("B", (g.N, c(k_val)) if trans_b else (c(k_val), g.N), g.in_dtype)
    a_s = g.alloc("As", (bk, g.bm) if trans_a else (g.bm, bk), g.in_dtype, "shared")
    b_s = g.alloc("Bs", (g.bn, bk) if trans_b else (bk, g.bn), g.in_dtype, "shared")
    acc = g.frag(F32)
    k = n.Var(g.name("k"))
    kk, row0, col0 = b("*", k, c(bk)), b("*", g.bx, c(g.bm)), b("*", g.by, c(g.bn))
    a_reg = (n.Region(a, (kk, row0), (c(bk), c(g.bm))) if trans_a
             else n.Region(a, (row0, kk), (c(g.bm), c(bk))))
    b_reg = (n.Region(bb, (col0, kk), (c(g.bn), c(bk))) if trans_b
             else n.Region(bb, (kk, col0), (c(bk), c(g.bn))))
    body = (n.Copy(a_reg, whole(a_s)), n.Copy(b_reg, whole(b_s)),
            n.Gemm(whole(a_s), whole(b_s), whole(acc), trans_a, trans_b))
    kind = r.choice(("pipelined", "pipelined", "serial"))
    out.append(n.Fill(whole(acc), f(0.0)))
    stop = trip_count(g, -(-k_val // bk))
    out.append(n.For(k, c(0), stop, kind, body, r.choice((1, 2, 3)) if kind == "pipelined" else 0))
    g.frags.append(acc)
    g.features += ["gemm", kind] + (["transpose_a"] if trans_a else []) + (["transpose_b"] if trans_b else [])


def write_back(g: Gen, out: list) -> None:
    r = g.rng
    o0 = n.Buffer("O0", (g.M, g.N), r.choice((F32, F32, "float16", "bfloat16")), "global")
    outputs = [o0]
    src = g.frags[-1] if r.random() < 0.6 else r.choice(g.frags)
    how = r.randrange(3)
    if how == 0:
        out.append(n.Copy(whole(src), g.tile(o0)))
    elif how == 1:
        s = g.alloc("Out", (g.bm, g.bn), o0.dtype, "shared")
        out += [n.Copy(whole(src), whole(s)), n.Copy(whole(s), g.tile(o0))]
    else:
        i, j = n.Var(g.name("i")), n.Var(g.name("j"))
        row, col = b("+", b("*", g.bx, c(g.bm)), i), b("+", b("*", g.by, c(g.bn)), j)
        inside = b("and", b("<", row, g.M), b("<", col, g.N))
        store = n.If(inside, (n.Store(o0, (row, col), n.Load(src, (i, j))),))
        out.append(n.For(i, c(0), c(g.bm), "parallel", (n.For(j, c(0), c(g.bn), "parallel", (store,)),)))
        g.features.append("guarded_store")
    if g.rows is not None:
        o1 = n.Buffer("O1", (g.M,), F32, "global")
        outputs.append(o1)
        region = n.Region(o1, (b("*", g.bx, c(g.bm)),), (c(g.bm),))
        if r.random() < 0.5:
            out.append(n.Atomic("add", region, whole(g.rows)))
            g.features.append("atomic")
        else:   # one writer per row band: blocks must not race
            out.append(n.If(b("==", g.by, c(0)), (n.Copy(whole(g.rows), region),)))
    g.params += outputs


def second_launch(g: Gen, grid: tuple) -> n.Launch:
    """A launch that reads the first one's output tile, maps it, and writes it back in place."""
    o0 = next(p for p in g.params if p.name == "O0")
    g.allocs, g.frags, g.rows, g.cols, g.acc = [], [], None, None, None
    t = g.frag(F32)
    out: list[n.Stmt] = [n.Copy(g.tile(o0), whole(t))]
    g.frags.append(t)
    out.append(g.map_stmt(t, 2))
    out.append(n.Copy(whole(t), g.tile(o0)))
    g.features.append("two_launches")
    return n.Launch(grid, (g.bx, g.by), 128, tuple(g.allocs) + tuple(out))


STEPS: list[tuple[Callable[[Gen, list], None], int]] = [
    (step_load, 3), (step_map, 5), (step_reduce, 2), (step_cumsum, 1), (step_fill, 1), (step_if, 1),
    (step_serial, 1), (step_scalar, 1), (step_round_trip, 1), (step_pipelined_sum, 1),
]
