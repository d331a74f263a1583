"""Interpreter element-wise code on hand-built IR: parallel nests with masks, lets, data-dependent
indices, integer semantics, intrinsics, rounding on store, poisoned locals and range errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from interp_irb import alloc, b, buf, c, cdiv, func, launch, load, pfor, reg, sfor, store, v
from tilec import numerics
from tilec.errors import TilecError
from tilec.interp import run
from tilec.interp.target import InterpTarget
from tilec.ir import dtypes
from tilec.ir import nodes as N


def rel(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert not np.isnan(out).any(), "NaN in output"
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def _blocked_map(value_of, dtype="float32", bm=16, bn=32):
    """Y[r, c] = value_of(X, r, c) over a ragged (M, N) grid of (bm, bn) tiles with an If guard."""
    M, N_ = v("M"), v("N")
    X, Y = buf("X", (M, N_), dtype), buf("Y", (M, N_), dtype)
    r = b("+", b("*", v("by"), bm), v("i"))
    col = b("+", b("*", v("bx"), bn), v("j"))
    guard = b("and", b("<", r, M), b("<", col, N_))
    nest = pfor("i", bm, [pfor("j", bn, [N.If(guard, (store(Y, (r, col), value_of(X, r, col)),))])])
    return func("map", [X, Y], [launch([cdiv(N_, bn), cdiv(M, bm)], ["bx", "by"], [nest])])


def test_parallel_map_with_mask_on_ragged_edges():
    def f(X, r, col):
        x = load(X, r, col)
        return b("max", b("*", x, c(2.0)), N.Call("exp", (x,)))
    x = np.random.default_rng(0).standard_normal((37, 70)).astype(np.float32)
    y = np.full_like(x, np.nan)
    run(_blocked_map(f), [x, y], {"M": 37, "N": 70})
    assert rel(y, np.maximum(2 * x, np.exp(x))) < 1e-6


def test_half_types_compute_in_float32_and_round_on_store():
    # (x * 3) / 3 computed in float32 then stored once: equals round(x) only if no intermediate rounding.
    def f(X, r, col):
        return b("/", b("*", load(X, r, col), c(3.0)), c(3.0))
    for dtype in ("float16", "bfloat16", "float8_e4m3"):
        xs = numerics.from_float32(np.random.default_rng(1).standard_normal((20, 33)).astype(np.float32) * 4,
                                   dtype)
        y = np.zeros_like(xs)
        run(_blocked_map(f, dtype), [xs, y], {"M": 20, "N": 33})
        x32 = numerics.to_float32(xs, dtype)
        assert np.array_equal(y, numerics.from_float32((x32 * np.float32(3)) / np.float32(3), dtype)), dtype


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float8_e4m3", "float32", "float64", "int8",
                                   "int16", "int32", "int64", "uint8", "uint16", "uint32", "bool"])
def test_every_dtype_rounds_on_store_like_torch(dtype):
    X, Y = buf("X", (512,)), buf("Y", (512,), dtype)
    f = func("k", [X, Y], [launch([1], ["bx"], [pfor("i", 512, [store(Y, (v("i"),), load(X, v("i")))])])])
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(512) * rng.choice([1e-3, 1, 100, 1e5], 512)).astype(np.float32)
    x[:6] = [0.5, -0.5, 1.5, 2.5, -2.5, 1e10]
    y = np.zeros(512, dtypes.storage_numpy(dtype))
    run(f, [x, y], {})
    if dtype in ("float16", "bfloat16", "float8_e4m3", "float32", "float64"):
        tdt = torch.float8_e4m3fn if dtype == "float8_e4m3" else getattr(torch, dtype)
        want = torch.from_numpy(x).to(tdt).float().numpy()
        assert np.array_equal(numerics.to_float32(y, dtype), want)
    elif dtype == "bool":
        assert np.array_equal(y, x != 0)
    else:
        info = np.iinfo(dtypes.storage_numpy(dtype))
        assert np.array_equal(y, np.clip(np.trunc(x.astype(np.float64)), info.min, info.max))


def test_lets_and_data_dependent_gather():
    # let e = Expert[bx]; for i, d in Parallel: Out[bx, i, d] = KV[Idx[e, i], d] * W[e]
    S, K, D = 3, 5, 8
    KV, Idx, W = buf("KV", (11, D)), buf("Idx", (S, K), "int32"), buf("W", (S,))
    Expert, Out = buf("Expert", (4,), "int32"), buf("Out", (4, K, D))
    e_ = v("e")
    val = b("*", load(KV, load(Idx, e_, v("i")), v("d")), load(W, e_))
    body = [N.Let(e_, load(Expert, v("bx"))),
            pfor("i", K, [pfor("d", D, [store(Out, (v("bx"), v("i"), v("d")), val)])])]
    rng = np.random.default_rng(3)
    kv, w = rng.standard_normal((11, D)).astype(np.float32), rng.standard_normal(S).astype(np.float32)
    idx = rng.integers(0, 11, (S, K)).astype(np.int32)
    expert = np.array([2, 0, 2, 1], np.int32)
    out = np.full((4, K, D), np.nan, np.float32)
    run(func("g", [KV, Idx, W, Expert, Out], [launch([4], ["bx"], body)]), [kv, idx, w, expert, out], {})
    ref = kv[idx[expert]] * w[expert][:, None, None]
    assert rel(out, ref) < 1e-7


def test_let_used_as_tile_index():
    Tbl, X, Y = buf("Tbl", (3,), "int32"), buf("X", (6, 4)), buf("Y", (3, 4))
    body = [N.Let(v("r"), load(Tbl, v("bx"))),
            N.Copy(reg(X, (v("r"), 0), (1, 4)), reg(Y, (v("bx"), 0), (1, 4)))]
    x = np.random.default_rng(4).standard_normal((6, 4)).astype(np.float32)
    y = np.full((3, 4), np.nan, np.float32)
    run(func("k", [Tbl, X, Y], [launch([3], ["bx"], body)]), [np.array([5, 0, 3], np.int32), x, y], {})
    assert np.array_equal(y, x[[5, 0, 3]])


def test_integer_semantics():
    A, Bb, Y = buf("A", (8,), "int32"), buf("B", (8,), "int32"), buf("Y", (5, 8), "int32")
    i = v("i")
    ops = ["//", "%", "/", "+", "*"]
    body = [pfor("i", 8, [store(Y, (k, i), b(op, load(A, i), load(Bb, i))) for k, op in enumerate(ops)])]
    a = np.array([7, -7, 7, -7, 2**31 - 1, 0, -1, -2**31], np.int32)
    bb = np.array([2, 2, -2, -2, 1, 3, 3, 1], np.int32)
    y = np.zeros((5, 8), np.int32)
    run(func("k", [A, Bb, Y], [launch([1], ["bx"], body)]), [a, bb, y], {})
    assert y[0].tolist() == [3, -4, -4, 3, 2**31 - 1, 0, -1, -2**31]         # floor division
    assert y[1].tolist() == [1, 1, -1, -1, 0, 0, 2, 0]                       # floor modulo
    assert y[2].tolist() == [3, -3, -3, 3, 2**31 - 1, 0, 0, -2**31]          # C division
    assert y[3][4] == -2**31 and y[3][7] == -2**31 + 1                        # int32 wraps
    assert y[4][4] == 2**31 - 1 and y[4][7] == -2**31


def test_intrinsics_select_cast_reinterpret():
    X, Y = buf("X", (64,)), buf("Y", (9, 64))
    x_ = load(X, v("i"))
    exprs = [N.Call("exp2", (x_,)), N.Call("rsqrt", (N.Call("abs", (x_,)),)), N.Call("sigmoid", (x_,)),
             N.Call("tanh", (x_,)), N.Select(b("<", x_, c(0.0)), c(-1.0), x_),
             N.Cast("float32", N.Cast("int32", b("*", x_, c(10.0)))),
             N.Cast("float32", N.Cast("bfloat16", x_)),
             N.Cast("float32", N.Reinterpret("int32", x_)),
             N.Call("pow", (N.Call("abs", (x_,)), c(1.5)))]
    body = [pfor("i", 64, [store(Y, (k, v("i")), ex) for k, ex in enumerate(exprs)])]
    x = np.random.default_rng(5).standard_normal(64).astype(np.float32)
    y = np.full((9, 64), np.nan, np.float32)
    run(func("k", [X, Y], [launch([1], ["bx"], body)]), [x, y], {})
    ref = [np.exp2(x), 1 / np.sqrt(np.abs(x)), 1 / (1 + np.exp(-x)), np.tanh(x), np.where(x < 0, -1, x),
           np.trunc(x * 10), torch.from_numpy(x).bfloat16().float().numpy(),
           x.view(np.int32).astype(np.float32), np.abs(x) ** 1.5]
    for k, r in enumerate(ref):
        assert rel(y[k], r) < 1e-6, k


def test_masked_load_does_not_fault_and_select_is_lazy():
    # Y[i] = X[i + 3] if i + 3 < 10 else -1, written with If and with Select: neither faults.
    X, Y, Z = buf("X", (10,)), buf("Y", (10,)), buf("Z", (10,))
    i3 = b("+", v("i"), 3)
    body = [pfor("i", 10, [N.If(b("<", i3, 10), (store(Y, (v("i"),), load(X, i3)),),
                                (store(Y, (v("i"),), c(-1.0)),)),
                           store(Z, (v("i"),), N.Select(b("<", i3, 10), load(X, i3), c(-1.0)))])]
    x = np.arange(10, dtype=np.float32)
    y, z = np.full(10, np.nan, np.float32), np.full(10, np.nan, np.float32)
    run(func("k", [X, Y, Z], [launch([1], ["bx"], body)]), [x, y, z], {})
    ref = np.concatenate([x[3:], [-1, -1, -1]])
    assert np.array_equal(y, ref) and np.array_equal(z, ref)


def test_out_of_range_load_names_buffer_index_and_location():
    X, Y = buf("X", (10,)), buf("Y", (12,))
    body = [pfor("i", 12, [store(Y, (v("i"),), load(X, v("i")), line=42)])]
    f = func("k", [X, Y], [launch([1], ["bx"], body)])
    with pytest.raises(TilecError) as err:
        run(f, [np.zeros(10, np.float32), np.zeros(12, np.float32)], {})
    msg = str(err.value)
    assert "'X'" in msg and "[10]" in msg and "test_kernel.py:42:5" in msg, msg


def test_out_of_range_scalar_store_is_an_error():
    Y = buf("Y", (4,))
    f = func("k", [Y], [launch([1], ["bx"], [store(Y, (-1,), c(1.0), line=7)])])
    with pytest.raises(TilecError, match=r"store to 'Y' at index \[-1\]"):
        run(f, [np.zeros(4, np.float32)], {})


def test_local_buffers_are_poisoned():
    Y, Fr, I = buf("Y", (4,)), buf("Fr", (4,), "bfloat16", "fragment"), buf("I", (4,), "int32", "local")
    Yi = buf("Yi", (4,), "int32")
    body = [alloc(Fr), alloc(I), store(Fr, (0,), c(1.0)), store(I, (1,), c(5)),
            N.Copy(reg(Fr), reg(Y)), N.Copy(reg(I), reg(Yi))]
    y, yi = np.zeros(4, np.float32), np.zeros(4, np.int32)
    run(func("k", [Y, Yi], [launch([1], ["bx"], body)]), [y, yi], {})
    assert y[0] == 1.0 and np.isnan(y[1:]).all()
    assert yi[1] == 5 and (yi[[0, 2, 3]] == np.int32(-0x5A5A5A5B)).all()


def test_serial_loop_inside_parallel_and_alloc_var():
    # Row sums with a serial k loop inside T.Parallel, plus a scalar accumulator (alloc_var) loop.
    X, Y, Tot = buf("X", (6, 9)), buf("Y", (6,)), buf("Tot", (1,))
    acc, s = buf("acc", (6,), scope="fragment"), buf("s", (), scope="local")
    body = [alloc(acc), alloc(s),
            pfor("i", 6, [store(acc, (v("i"),), c(0.0)),
                          sfor("k", 9, [store(acc, (v("i"),),
                                              b("+", load(acc, v("i")), load(X, v("i"), v("k"))))]),
                          store(Y, (v("i"),), load(acc, v("i")))]),
            store(s, (), c(0.0)),
            sfor("i", 6, [store(s, (), b("+", load(s), load(acc, v("i"))))]),
            store(Tot, (0,), load(s))]
    x = np.random.default_rng(6).standard_normal((6, 9)).astype(np.float32)
    y, tot = np.full(6, np.nan, np.float32), np.full(1, np.nan, np.float32)
    run(func("k", [X, Y, Tot], [launch([1], ["bx"], body)]), [x, y, tot], {})
    assert rel(y, x.sum(1)) < 1e-6 and rel(tot, [x.sum()]) < 1e-6


def test_triangular_bounds_inside_parallel_and_while():
    # Y[i, j] = 1 for j < i (inner bound varies per lane), and a while loop counting to 5.
    Y, W = buf("Y", (5, 5)), buf("W", (1,), "int32")
    n = buf("n", (), "int32", "local")
    body = [pfor("i", 5, [pfor("j", v("i"), [store(Y, (v("i"), v("j")), c(1.0))])]),
            alloc(n), store(n, (), c(0)),
            N.While(b("<", load(n), 5), (store(n, (), b("+", load(n), 1)),)),
            store(W, (0,), load(n))]
    y, w = np.zeros((5, 5), np.float32), np.zeros(1, np.int32)
    run(func("k", [Y, W], [launch([1], ["bx"], body)]), [y, w], {})
    assert np.array_equal(y, np.tril(np.ones((5, 5)), -1)) and w[0] == 5


def test_launches_run_in_order_and_args_are_checked():
    X, Y = buf("X", (v("n"),)), buf("Y", (v("n"),))
    l1 = launch([v("n")], ["bx"], [store(X, (v("bx"),), b("*", load(X, v("bx")), c(2.0)))])
    l2 = launch([1], ["bx"], [pfor("i", v("n"), [store(Y, (v("i"),), b("+", load(X, v("i")), c(1.0)))])])
    f = func("k", [X, Y], [l1, l2])
    x = np.arange(7, dtype=np.float32)
    y = np.zeros(7, np.float32)
    exe = InterpTarget().build(f, {})
    assert exe.source and exe.binary is None
    exe.run([x, y], {})                      # n is read from the shapes
    assert np.array_equal(y, np.arange(7) * 2 + 1)
    with pytest.raises(TilecError, match="numpy dtype"):
        run(f, [x, y.astype(np.float16)], {})
    with pytest.raises(TilecError, match="shape"):
        run(f, [x, y], {"n": 8})


def test_interp_is_the_first_registered_target():
    from tilec import targets
    assert targets.names()[0] == "interp"
    t = targets.get("interp")
    assert t.name == "interp" and t.array_kind == "numpy" and t.available() == (True, "")
    X = buf("X", (3,))
    exe = t.build(func("k", [X], [launch([1], ["bx"], [store(X, (0,), c(2.0))])]), {})
    x = np.zeros(3, np.float32)
    exe.run([x], {})
    assert x.tolist() == [2.0, 0.0, 0.0] and "kernel k" in exe.source


def test_serial_loop_with_per_lane_bounds_and_int_division_by_zero():
    # Y[i] = sum_{k < i} X[k] with a serial k loop whose bound is the parallel variable.
    X, Y = buf("X", (7,)), buf("Y", (7,))
    body = [pfor("i", 7, [store(Y, (v("i"),), c(0.0)),
                          sfor("k", v("i"), [store(Y, (v("i"),),
                                                   b("+", load(Y, v("i")), load(X, v("k"))))])])]
    x = np.random.default_rng(7).standard_normal(7).astype(np.float32)
    y = np.full(7, np.nan, np.float32)
    run(func("k", [X, Y], [launch([1], ["bx"], body)]), [x, y], {})
    assert rel(y[1:], np.cumsum(x)[:-1]) < 1e-6 and y[0] == 0
    # A guarded integer division: the lane with a zero divisor is masked off, the other one faults.
    D, Q = buf("D", (3,), "int32"), buf("Q", (3,), "int32")
    quotient = store(Q, (v("i"),), b("/", 6, load(D, v("i"))))
    safe = pfor("i", 3, [N.If(b("!=", load(D, v("i")), 0), (quotient,))])
    q = np.zeros(3, np.int32)
    run(func("k", [D, Q], [launch([1], ["bx"], [safe])]), [np.array([2, 0, -4], np.int32), q], {})
    assert q.tolist() == [3, 0, -1]
    bad = pfor("i", 3, [store(Q, (v("i"),), b("%", 6, load(D, v("i"))))])
    with pytest.raises(TilecError, match="division by zero"):
        run(func("k", [D, Q], [launch([1], ["bx"], [bad])]), [np.array([2, 0, -4], np.int32), q], {})


def test_reinterpret_and_casts_between_narrow_types():
    Hb, Bb, Out = buf("H", (4,), "float16"), buf("Bf", (4,), "bfloat16"), buf("Out", (3, 4), "uint16")
    F8 = buf("F8", (4,), "float8_e4m3")
    i = v("i")
    body = [pfor("i", 4, [store(Out, (0, i), N.Reinterpret("uint16", load(Hb, i))),
                          store(Out, (1, i), N.Reinterpret("uint16", load(Bb, i))),
                          store(Out, (2, i), N.Cast("uint16", N.Reinterpret(
                              "uint8", N.Cast("float8_e4m3", load(Hb, i))))),
                          store(F8, (i,), b("*", load(Bb, i), c(1000.0)))])]
    h = np.array([1.5, -2.0, 65504, 1e-7], np.float16)
    bf = numerics.from_float32(np.array([1.0, -3.5, 0.1, 1e30], np.float32), "bfloat16")
    out, f8 = np.zeros((3, 4), np.uint16), np.zeros(4, np.uint8)
    run(func("k", [Hb, Bb, Out, F8], [launch([1], ["bx"], body)]), [h, bf, out, f8], {})
    assert np.array_equal(out[0], h.view(np.uint16)) and np.array_equal(out[1], bf)
    assert np.array_equal(out[2], numerics.from_float32(h.astype(np.float32), "float8_e4m3"))
    want = torch.from_numpy(numerics.to_float32(bf, "bfloat16") * np.float32(1000)).to(torch.float8_e4m3fn)
    assert np.array_equal(f8, want.view(torch.uint8).numpy())


def test_every_intrinsic_and_unary_op_unrolled_loop_hint_and_atomic_min():
    X, Y, Bl, Iv = buf("X", (64,)), buf("Y", (15, 64)), buf("Bl", (3, 64), "bool"), buf("Iv", (64,), "int32")
    Mn = buf("Mn", (1,))
    x_, ax = load(X, v("i")), N.Call("abs", (load(X, v("i")),))
    unary = [("exp", x_), ("exp2", x_), ("log", ax), ("log2", ax), ("sqrt", ax), ("rsqrt", ax), ("tanh", x_),
             ("sigmoid", x_), ("sin", x_), ("cos", x_), ("floor", x_), ("ceil", x_), ("round", x_),
             ("trunc", x_)]
    body = [N.Hint("use_swizzle", (10,)),
            pfor("i", 64, [store(Y, (k, v("i")), N.Call(fn, (arg,))) for k, (fn, arg) in enumerate(unary)]
                 + [store(Y, (14, v("i")), N.UnaryOp("-", x_)),
                    store(Bl, (0, v("i")), N.Call("isnan", (b("/", x_, x_),))),
                    store(Bl, (1, v("i")), N.Call("isinf", (b("/", c(1.0), b("-", x_, x_)),))),
                    store(Bl, (2, v("i")), N.UnaryOp("not", b("<", x_, c(0.0)))),
                    store(Iv, (v("i"),), N.UnaryOp("~", v("i")))]),
            pfor("j", 64, [N.Atomic("min", reg(Mn, (0,), (1,)), load(X, v("j")))], kind="unrolled")]
    x = (np.random.default_rng(8).standard_normal(64) * 3).astype(np.float32)
    x[0], x[1] = 0.0, 2.5
    y, bl, iv, mn = np.full((15, 64), np.nan, np.float32), np.zeros((3, 64), bool), np.zeros(64, np.int32), \
        np.array([np.inf], np.float32)
    run(func("k", [X, Y, Bl, Iv, Mn], [launch([1], ["bx"], body)]), [x, y, bl, iv, mn], {})
    with np.errstate(all="ignore"):
        a = np.abs(x)
        refs = [np.exp(x), np.exp2(x), np.log(a), np.log2(a), np.sqrt(a), 1 / np.sqrt(a), np.tanh(x),
                1 / (1 + np.exp(-x)), np.sin(x), np.cos(x), np.floor(x), np.ceil(x), np.rint(x), np.trunc(x),
                -x]
    for k, r in enumerate(refs):
        ok = np.isfinite(r)
        what = unary[k][0] if k < 14 else "-"
        assert np.array_equal(np.isfinite(y[k]), ok) and rel(y[k][ok], r[ok]) < 1e-6, what
    assert y[12][1] == 2.0                                   # round half to even
    assert bl[0].tolist() == [True] + [False] * 63 and bl[1].all() and np.array_equal(bl[2], x >= 0)
    assert np.array_equal(iv, ~np.arange(64, dtype=np.int32)) and mn[0] == x.min()


def test_lane_invariant_stores_run_sequentially():
    # acc is a per-thread scalar used as a temporary, and m[i] = max(m[i], X[i, j]) accumulates over j:
    # both are well defined one iteration after another, which is what the interpreter must give.
    from tilec.interp.vectorize import can_vectorize
    X, Y, Mx = buf("X", (4, 6)), buf("Y", (4, 6)), buf("Mx", (4,))
    acc, m = buf("acc", (), scope="local"), buf("m", (4,), scope="fragment")
    i, j = v("i"), v("j")
    temp = pfor("i", 4, [pfor("j", 6, [store(acc, (), b("*", load(X, i, j), c(2.0))),
                                       store(Y, (i, j), b("+", load(acc), c(1.0)))])])
    rowmax = pfor("i", 4, [pfor("j", 6, [store(m, (i,), b("max", load(m, i), load(X, i, j)))])])
    lanes_ok = pfor("i", 4, [N.Let(v("r"), b("-", 3, i)), pfor("j", 6, [store(Y, (v("r"), j), c(0.0))])])
    assert not can_vectorize(temp) and not can_vectorize(rowmax) and can_vectorize(lanes_ok)
    body = [alloc(acc), alloc(m), temp, N.Fill(reg(m), c(float("-inf"))), rowmax, N.Copy(reg(m), reg(Mx))]
    x = np.random.default_rng(9).standard_normal((4, 6)).astype(np.float32)
    y, mx = np.full_like(x, np.nan), np.full(4, np.nan, np.float32)
    run(func("k", [X, Y, Mx], [launch([1], ["bx"], body)]), [x, y, mx], {})
    assert np.array_equal(y, x * 2 + 1) and np.array_equal(mx, x.max(1))
