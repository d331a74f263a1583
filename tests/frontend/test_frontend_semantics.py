"""Built kernels mean what the Python says: every node carries a location, the IR round-trips through
text, and the interpreter's results match numpy for loops, scalars, macros and ragged tiles."""
from __future__ import annotations

import dataclasses

import numpy as np

import tilec
import tilec.language as T
from tilec.ir import nodes as N
from tilec.ir.parser import parse_func
from tilec.ir.printer import print_func
from tilec.ir.verifier import verify

from frontend_helpers import load_module

KERNELS = '''
import tilec.language as T

n = T.dynamic("n")

@T.macro
def bump(buf, i, amount):
    buf[i] += amount
    return buf[i] * 2

def factory(flag=True, pairs=((0, 1.5), (3, 2))):
    @T.prim_func
    def scalars(X: T.Tensor((n,), "float32"), Y: T.Tensor((n, 8), "float32")):
        with T.Kernel(n, threads=32) as bx:
            acc = T.alloc_var("float32", 0)
            cnt = T.alloc_var("int32", 0)
            loc = T.alloc_local((4,), "float32")
            T.clear(loc)
            for i in range(7, 0, -2):           # 7, 5, 3, 1
                acc += i
            while cnt < 10:
                cnt += 3                        # 12
            for idx, val in pairs:
                loc[idx] = val
            twice = bump(loc, 1, X[bx])
            e = X[bx] * 2 + 1
            if e > 0 and bx % 2 == 0:
                Y[bx, 0] = e
            elif bx == 1:
                Y[bx, 0] = -e
            else:
                Y[bx, 0] = T.max(e, 0.5)
            Y[bx, 1] = acc
            Y[bx, 2] = cnt
            Y[bx, 3] = loc[0] + loc[3] if flag else 0
            Y[bx, 4] = twice
            Y[bx, 5] = T.if_then_else(bx < 3, T.exp2(X[bx]), -T.infinity("float32"))
            Y[bx, 6] = T.ceildiv(bx + 3, 2) + T.floormod(bx - 7, 3)
            Y[bx, 7] = T.cast(T.cast(X[bx] * 100, "int32"), "float32")

    @T.prim_func
    def tiles(A: T.Tensor((n, 40), "float32"), S: T.Tensor((n,), "float32"),
              C: T.Tensor((n, 40), "float32")):
        with T.Kernel(T.ceildiv(n, 16), threads=128) as bx:
            t = T.alloc_fragment((16, 64), "float32")
            s = T.alloc_fragment((16,), "float32")
            T.copy(A[bx * 16, 0], t)            # ragged rows and columns read 0
            for i, j in T.Parallel(16, 64):
                t[i, j] = t[i, j] * 2 + 1
            T.reduce_sum(t, s, dim=1)           # padded columns add 1 each
            T.copy(s, S[bx * 16:(bx + 1) * 16])
            T.cumsum(t, dim=1)
            T.copy(t, C[bx * 16, 0])            # out-of-range elements are not written
    return scalars, tiles

SCALARS, TILES = factory()
'''


def _walk(obj, path="func"):
    """Every dataclass node reachable from obj, with a readable path."""
    if dataclasses.is_dataclass(obj):
        yield path, obj
        for f in dataclasses.fields(obj):
            if f.name != "loc":
                yield from _walk(getattr(obj, f.name), f"{path}.{f.name}")
    elif isinstance(obj, tuple):
        for i, x in enumerate(obj):
            yield from _walk(x, f"{path}[{i}]")


def test_every_node_has_a_location_and_round_trips(tmp_path):
    module = load_module(tmp_path, KERNELS)
    for pf in (module.SCALARS, module.TILES):
        verify(pf.func)
        for path, node in _walk(pf.func):
            if hasattr(node, "loc"):
                assert isinstance(node.loc, N.Loc) and node.loc.file == module.__file__, path
        assert parse_func(print_func(pf.func), "x.tir") == pf.func


def test_scalar_semantics_on_the_interpreter(tmp_path):
    module = load_module(tmp_path, KERNELS)
    kernel = tilec.compile(module.SCALARS, out_idx=[1], target="interp")
    x = np.random.default_rng(0).standard_normal(6).astype(np.float32)
    y = kernel(x)
    for b in range(6):
        e = np.float32(x[b] * 2 + 1)
        want0 = e if (e > 0 and b % 2 == 0) else (-e if b == 1 else max(e, np.float32(0.5)))
        assert y[b, 0] == want0
        assert y[b, 1] == 16 and y[b, 2] == 12
        assert y[b, 3] == np.float32(1.5 + 2)
        assert y[b, 4] == np.float32(x[b]) * 2
        assert y[b, 5] == (np.exp2(x[b]) if b < 3 else -np.inf)
        assert y[b, 6] == -(-(b + 3) // 2) + (b - 7) % 3
        assert y[b, 7] == float(np.trunc(np.float32(x[b] * 100)))


def test_ragged_tiles_on_the_interpreter(tmp_path):
    module = load_module(tmp_path, KERNELS)
    kernel = tilec.compile(module.TILES, out_idx=[1, 2], target="interp")
    a = np.random.default_rng(1).standard_normal((37, 40)).astype(np.float32)
    s, c = kernel(a)
    padded = np.concatenate([a * 2 + 1, np.ones((37, 24), np.float32)], axis=1)
    np.testing.assert_allclose(s, padded.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(c, np.cumsum(a * 2 + 1, axis=1), rtol=1e-5)


def test_constant_builtins_work_in_factory_arithmetic():
    """TileLang factories write ``-T.infinity(dtype)`` outside the kernel and use the result inside."""
    neg_inf = -T.infinity("float32")
    assert neg_inf == float("-inf")

    @T.prim_func
    def main(A: T.Tensor((8,), "float32"), B: T.Tensor((1,), "float32")):
        with T.Kernel(1) as bx:
            m = T.alloc_fragment((1,), "float32")
            a = T.alloc_fragment((8,), "float32")
            T.fill(m, neg_inf)
            T.copy(A, a)
            T.reduce_max(a, m, dim=0, clear=False)
            T.copy(m, B)

    assert "fill m, -inf" in print_func(main.func, locs=False)
    x = np.random.default_rng(0).standard_normal(8).astype(np.float32) - 10
    out = tilec.compile(main, out_idx=[1], target="interp")(x)
    assert out[0] == x.max()
