"""Tiny helpers to write Tile IR by hand in the CPU backend's tests (no frontend needed)."""
from __future__ import annotations

from tilec.ir import nodes as n


def c(v, t=None):
    if t is None:
        t = "float32" if isinstance(v, float) else ("bool" if isinstance(v, bool) else "int32")
    return n.Const(v, t)


def v(name, t="int32"):
    return n.Var(name, t)


def shape(*dims):
    return tuple(c(d) if isinstance(d, int) else (v(d) if isinstance(d, str) else d) for d in dims)


def gbuf(name, dims, dtype="float32"):
    return n.Buffer(name, shape(*dims), dtype, "global")


def lbuf(name, dims, dtype="float32", scope="fragment"):
    return n.Buffer(name, shape(*dims), dtype, scope)


def ex(e):
    return c(e) if isinstance(e, (int, float)) and not isinstance(e, bool) else e


def bop(op, a, b):
    return n.BinOp(op, ex(a), ex(b))


def add(a, b):
    return bop("+", a, b)


def mul(a, b):
    return bop("*", a, b)


def region(buf, starts=None, extents=None):
    starts = starts or [0] * len(buf.shape)
    extents = extents or [d.value if isinstance(d, n.Const) else d for d in buf.shape]
    return n.Region(buf, tuple(ex(s) for s in starts), tuple(ex(e) for e in extents))


def load(buf, *idx):
    return n.Load(buf, tuple(ex(i) for i in idx))


def store(buf, idx, val):
    return n.Store(buf, tuple(ex(i) for i in idx), ex(val))


def loop(name, lo, hi, body, kind="serial"):
    return n.For(v(name), ex(lo), ex(hi), kind, tuple(body))


def launch(grid, names, body, threads=128):
    return n.Launch(tuple(ex(g) for g in grid), tuple(v(x) for x in names), threads, tuple(body))


def func(name, params, body):
    return n.Func(name, tuple(params), tuple(body))


def ceildiv(a, b):
    return bop("//", add(a, b - 1), b)


def gemm_kernel(M, N, K, bm=64, bn=64, bk=32, dtype="float32", accum="float32", out_dtype=None,
                trans_b=False):
    """The GEMM of docs/language.md: blocks of C, pipelined K loop with copies into shared tiles."""
    out_dtype = out_dtype or dtype
    A = gbuf("A", (M, K), dtype)
    B = gbuf("B", (N, K) if trans_b else (K, N), dtype)
    C = gbuf("C", (M, N), out_dtype)
    As = lbuf("A_s", (bm, bk), dtype, "shared")
    Bs = lbuf("B_s", (bn, bk) if trans_b else (bk, bn), dtype, "shared")
    Cf = lbuf("C_f", (bm, bn), accum)
    bx, by, k = v("bx"), v("by"), v("k")
    Mx = v(M) if isinstance(M, str) else M
    Kx = v(K) if isinstance(K, str) else K
    body = [
        n.Alloc(As), n.Alloc(Bs), n.Alloc(Cf),
        n.Fill(region(Cf), c(0.0)),
        loop("k", 0, ceildiv(Kx, bk), [
            n.Copy(region(A, [mul(by, bm), mul(k, bk)], [bm, bk]), region(As)),
            n.Copy(region(B, [mul(bx, bn), mul(k, bk)], [bn, bk]) if trans_b else
                   region(B, [mul(k, bk), mul(bx, bn)], [bk, bn]), region(Bs)),
            n.Gemm(region(As), region(Bs), region(Cf), trans_b=trans_b),
        ], kind="pipelined"),
        n.Copy(region(Cf), region(C, [mul(by, bm), mul(bx, bn)], [bm, bn])),
    ]
    Nx = v(N) if isinstance(N, str) else N
    return func("gemm", [A, B, C], [launch([ceildiv(Nx, bn), ceildiv(Mx, bm)], ["bx", "by"], body)])
