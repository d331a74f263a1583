"""Interpreter tile ops on hand-built IR: copy (ragged, out of range, rank mismatch), gemm, fill,
reduce, cumsum, atomic, each compared with numpy on fresh random inputs."""
from __future__ import annotations

import numpy as np
import pytest

from interp_irb import alloc, b, buf, c, cdiv, func, launch, load, pfor, reg, sfor, v
from tilec import numerics
from tilec.errors import TilecError
from tilec.interp import run
from tilec.ir import nodes as N


def rel(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert not np.isnan(out).any(), "NaN in output"
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def gemm_func(trans_a: bool, trans_b: bool, bm=32, bn=32, bk=16, dtype="float16", accum="float32"):
    M, N_, K = v("M"), v("N"), v("K")
    A = buf("A", (K, M) if trans_a else (M, K), dtype)
    B = buf("B", (N_, K) if trans_b else (K, N_), dtype)
    C = buf("C", (M, N_), dtype)
    A_s = buf("A_s", (bk, bm) if trans_a else (bm, bk), dtype, "shared")
    B_s = buf("B_s", (bn, bk) if trans_b else (bk, bn), dtype, "shared")
    C_f = buf("C_f", (bm, bn), accum, "fragment")
    bx, by, k = v("bx"), v("by"), v("k")
    a_start = (b("*", k, bk), b("*", by, bm)) if trans_a else (b("*", by, bm), b("*", k, bk))
    b_start = (b("*", bx, bn), b("*", k, bk)) if trans_b else (b("*", k, bk), b("*", bx, bn))
    body = [alloc(A_s), alloc(B_s), alloc(C_f), N.Fill(reg(C_f), c(0.0)),
            sfor("k", cdiv(K, bk), [
                N.Copy(reg(A, a_start, A_s.shape), reg(A_s)),
                N.Copy(reg(B, b_start, B_s.shape), reg(B_s)),
                N.Gemm(reg(A_s), reg(B_s), reg(C_f), trans_a=trans_a, trans_b=trans_b)]),
            N.Copy(reg(C_f), reg(C, (b("*", by, bm), b("*", bx, bn)), (bm, bn)))]
    return func("gemm", [A, B, C], [launch([cdiv(N_, bn), cdiv(M, bm)], ["bx", "by"], body)])


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_ragged_with_transposes(trans_a, trans_b):
    rng = np.random.default_rng(1)
    M, N_, K = 70, 45, 50
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float16)
    bb = rng.standard_normal((N_, K) if trans_b else (K, N_)).astype(np.float16)
    out = np.full((M, N_), np.nan, np.float16)
    run(gemm_func(trans_a, trans_b), [a, bb, out], {"M": M, "N": N_, "K": K})
    ref = (a.T if trans_a else a).astype(np.float32) @ (bb.T if trans_b else bb).astype(np.float32)
    assert rel(out, ref) < 1e-3


def test_gemm_clear_accum_and_bf16():
    rng = np.random.default_rng(2)
    A = buf("A", (16, 8), "bfloat16")
    B = buf("B", (8, 24), "bfloat16")
    C = buf("C", (16, 24), "float32")
    body = [N.Gemm(reg(A), reg(B), reg(C)), N.Gemm(reg(A), reg(B), reg(C)),
            N.Gemm(reg(A), reg(B), reg(C), clear_accum=True), N.Gemm(reg(A), reg(B), reg(C))]
    a = numerics.from_float32(rng.standard_normal((16, 8)).astype(np.float32), "bfloat16")
    bb = numerics.from_float32(rng.standard_normal((8, 24)).astype(np.float32), "bfloat16")
    cc = rng.standard_normal((16, 24)).astype(np.float32)
    run(func("g", [A, B, C], [launch([1], ["bx"], body)]), [a, bb, cc], {})
    ref = 2 * (numerics.to_float32(a, "bfloat16") @ numerics.to_float32(bb, "bfloat16"))
    assert rel(cc, ref) < 1e-6


def test_copy_out_of_range_reads_zero_and_skips_writes():
    A = buf("A", (5, 7))
    Out = buf("Out", (6, 6))
    S = buf("S", (4, 4), scope="shared")
    # A tile hanging off the bottom-right and off the top-left, written to a tile hanging off Out.
    body = [alloc(S), N.Copy(reg(A, (3, 5), (4, 4)), reg(S)), N.Copy(reg(S), reg(Out, (4, 4), (4, 4))),
            N.Copy(reg(A, (-2, -1), (4, 4)), reg(S)), N.Copy(reg(S), reg(Out, (0, 0), (4, 4)))]
    a = np.random.default_rng(3).standard_normal((5, 7)).astype(np.float32)
    out = np.full((6, 6), -7.0, np.float32)
    run(func("k", [A, Out], [launch([1], ["bx"], body)]), [a, out], {})
    pad = np.zeros((9, 10), np.float32)
    pad[2:7, 1:8] = a
    ref = np.full((6, 6), -7.0, np.float32)
    ref[0:4, 0:4] = pad[0:4, 0:4]              # A[-2:2, -1:3]
    ref[4:6, 4:6] = pad[5:7, 6:8]              # A[3:5, 5:7]; the rest of the tile is off Out
    assert np.array_equal(out, ref)


def test_copy_rank_mismatch_and_dtype_conversion():
    # A row of a 3-D global tensor into a 1-D shared buffer, then into a 2-D bf16 output column.
    X = buf("X", (2, 3, 8))
    Y = buf("Y", (8, 3), "bfloat16")
    S = buf("S", (8,), "float16", "shared")
    body = [alloc(S), N.Copy(reg(X, (1, v("bx"), 0), (1, 1, 8)), reg(S)),
            N.Copy(reg(S), reg(Y, (0, v("bx")), (8, 1)))]
    x = np.random.default_rng(4).standard_normal((2, 3, 8)).astype(np.float32)
    y = np.full((8, 3), 0xFFFF, np.uint16)
    run(func("k", [X, Y], [launch([3], ["bx"], body)]), [x, y], {})
    ref = numerics.from_float32(x[1].T.astype(np.float16).astype(np.float32), "bfloat16")
    assert np.array_equal(y, ref)


def test_copy_shape_mismatch_is_an_error():
    A, B = buf("A", (4, 8)), buf("B", (8, 4))
    f = func("k", [A, B], [launch([1], ["bx"], [N.Copy(reg(A), reg(B), loc=N.Loc("k.py", 3, 5))])])
    with pytest.raises(TilecError, match="shapes differ") as err:
        run(f, [np.ones((4, 8), np.float32), np.ones((8, 4), np.float32)], {})
    assert "k.py:3:5" in str(err.value)


@pytest.mark.parametrize("kind", ["max", "min", "sum", "absmax", "abssum"])
@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("clear", [True, False])
def test_reduce(kind, dim, clear):
    rng = np.random.default_rng(5)
    X = buf("X", (6, 10))
    n_out = 10 if dim == 0 else 6
    Y = buf("Y", (n_out,))
    S = buf("S", (6, 10), "float16", "shared")
    F = buf("F", (n_out,), scope="fragment")
    body = [alloc(S), alloc(F), N.Copy(reg(X), reg(S)), N.Copy(reg(Y), reg(F)),
            N.Reduce(kind, reg(S), reg(F), dim, clear), N.Copy(reg(F), reg(Y))]
    x = rng.standard_normal((6, 10)).astype(np.float32)
    y0 = rng.standard_normal(n_out).astype(np.float32)
    y = y0.copy()
    run(func("k", [X, Y], [launch([1], ["bx"], body)]), [x, y], {})
    xs = x.astype(np.float16).astype(np.float32)
    xs = np.abs(xs) if kind.startswith("abs") else xs
    r = {"max": np.max, "min": np.min, "sum": np.sum, "absmax": np.max, "abssum": np.sum}[kind](xs, dim)
    if not clear:
        r = {"max": np.maximum, "min": np.minimum, "absmax": np.maximum}.get(kind, np.add)(y0, r)
    assert rel(y, r) < 1e-6


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dim", [0, 1])
def test_cumsum(reverse, dim):
    X, Y = buf("X", (5, 9)), buf("Y", (5, 9))
    f = func("k", [X, Y], [launch([1], ["bx"], [N.Cumsum(reg(X), reg(Y), dim, reverse)])])
    x = np.random.default_rng(6).standard_normal((5, 9)).astype(np.float32)
    y = np.full_like(x, np.nan)
    run(f, [x, y], {})
    ref = np.flip(np.cumsum(np.flip(x, dim), dim), dim) if reverse else np.cumsum(x, dim)
    assert rel(y, ref) < 1e-6


def test_atomic_add_scalar_and_tile_max():
    # Every block adds X[bx] into Acc[0] and maxes its row of T into Row.
    X, Acc, T, Row = buf("X", (37,)), buf("Acc", (1,)), buf("T", (37, 4)), buf("Row", (1, 4))
    bx = v("bx")
    body = [N.Atomic("add", reg(Acc, (0,), (1,)), load(X, bx)),
            N.Atomic("max", reg(Row), reg(T, (bx, 0), (1, 4)))]
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal(37).astype(np.float32), rng.standard_normal((37, 4)).astype(np.float32)
    acc, row = np.array([1.5], np.float32), np.full((1, 4), -np.inf, np.float32)
    run(func("k", [X, Acc, T, Row], [launch([37], ["bx"], body)]), [x, acc, t, row], {})
    assert rel(acc, [1.5 + x.astype(np.float64).sum()]) < 1e-6
    assert np.array_equal(row[0], t.max(0))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float8_e4m3", "int8", "int32",
                                   "uint32", "bool"])
def test_fill_rounds_to_the_buffer_dtype(dtype):
    Y = buf("Y", (3, 5), dtype)
    f = func("k", [Y], [launch([1], ["bx"], [N.Fill(reg(Y, (1, 1), (3, 5)), c(300.7))])])
    from tilec.ir import dtypes
    y = np.zeros((3, 5), dtypes.storage_numpy(dtype))
    run(f, [y], {})
    want = numerics.from_float32(np.array(300.7, np.float32), dtype)
    assert (y[1:, 1:] == want).all() and (y[0] == 0).all() and (y[:, 0] == 0).all()


def test_gemm_int8_accumulates_in_int32():
    A, B, C = buf("A", (4, 8), "int8"), buf("B", (8, 3), "int8"), buf("C", (4, 3), "int32")
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, (4, 8)).astype(np.int8)
    bb = rng.integers(-128, 128, (8, 3)).astype(np.int8)
    cc = np.zeros((4, 3), np.int32)
    run(func("g", [A, B, C], [launch([1], ["bx"], [N.Gemm(reg(A), reg(B), reg(C))])]), [a, bb, cc], {})
    assert np.array_equal(cc, a.astype(np.int32) @ bb.astype(np.int32))


def test_tile_op_inside_parallel_loop_runs_serially():
    # T.Parallel whose body is a copy cannot be vectorized: it runs as a loop over rows.
    X, Y = buf("X", (4, 6)), buf("Y", (4, 6))
    body = [pfor("i", 4, [N.Copy(reg(X, (v("i"), 0), (1, 6)), reg(Y, (b("-", 3, v("i")), 0), (1, 6)))])]
    x = np.random.default_rng(9).standard_normal((4, 6)).astype(np.float32)
    y = np.full_like(x, np.nan)
    run(func("k", [X, Y], [launch([1], ["bx"], body)]), [x, y], {})
    assert np.array_equal(y, x[::-1])
