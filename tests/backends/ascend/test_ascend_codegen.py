"""Codegen of hand-built Tile IR kernels for the ascend target, checked against the interpreter.

Each kernel is built directly from tilec.ir.nodes (no frontend), compiled to AscendC, run through the
emulation on fresh random inputs with NaN-poisoned outputs, and compared with tilec.interp. A few
FileCheck-style assertions check the shape of the generated C++ (kernel class, TQue, Cube pipeline).
"""
from __future__ import annotations

import numpy as np
import pytest

from tilec.backends.ascend.target import AscendTarget
from tilec import numerics
from tilec.interp import run as interp_run
from tilec.ir import dtypes, nodes as N

L = N.Loc("hand.py", 1, 1)


def c(v, t=None):
    return N.Const(v, t or ("int32" if isinstance(v, int) else "float32"))


def ex(x):
    return x if isinstance(x, N.Expr) else c(x)


def var(n, t="int32"):
    return N.Var(n, t)


def bop(op, a, b):
    return N.BinOp(op, ex(a), ex(b))


def buf(name, shape, dtype="float32", scope="global"):
    return N.Buffer(name, tuple(ex(s) for s in shape), dtype, scope)


def reg(b, starts=None, extents=None):
    starts = starts if starts is not None else [0] * len(b.shape)
    extents = extents if extents is not None else b.shape
    return N.Region(b, tuple(ex(s) for s in starts), tuple(ex(e) for e in extents))


def ld(b, *idx):
    return N.Load(b, tuple(ex(i) for i in idx))


def st(b, idx, val):
    return N.Store(b, tuple(ex(i) for i in idx), ex(val), loc=L)


def loop(v, stop, body, kind="parallel", start=0, stages=0):
    return N.For(var(v), ex(start), ex(stop), kind, tuple(body), stages=stages, loc=L)


def launch(grid, names, body):
    return N.Launch(tuple(ex(g) for g in grid), tuple(var(n) for n in names), 128, tuple(body), loc=L)


def ceildiv(a, b):
    return bop("//", bop("+", a, b - 1), b)


def as_f64(a: np.ndarray, dtype: str) -> np.ndarray:
    """A storage array as float64 values (half and float8 types decoded through tilec.numerics)."""
    return (numerics.to_float32(a, dtype) if dtypes.is_float(dtype) else a).astype(np.float64)


def run_both(func, shapes, dims, out_idx, rng, bound):
    args = []
    for k, p in enumerate(func.params):
        shape = shapes[p.name]
        if k in out_idx:
            fill = numerics.nan_storage(p.dtype) if dtypes.is_float(p.dtype) else -77
            args.append(np.full(shape, fill, dtypes.storage_numpy(p.dtype)))
        elif dtypes.is_float(p.dtype):
            args.append(numerics.from_float32(rng.standard_normal(shape).astype(np.float32), p.dtype))
        else:
            args.append(rng.integers(-5, 6, shape).astype(dtypes.storage_numpy(p.dtype)))
    want = [a.copy() for a in args]
    interp_run(func, want, dims)
    exe = AscendTarget().build(func, {})
    exe.run(args, dims)
    for k in out_idx:
        p = func.params[k]
        got, ref = as_f64(args[k], p.dtype), as_f64(want[k], p.dtype)
        assert not np.isnan(got).any(), f"NaN in {p.name}"
        err = np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30)
        assert err < bound, f"{func.name}: {p.name} rel err {err:.3e}"
    return exe


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_ragged_tile_copy(rng):
    """GM -> UB -> GM through 32x48 tiles over a symbolic M and a ragged N (DataCopyPad clipping), 3 dtypes."""
    M = var("M")
    bx, by = var("bx"), var("by")
    params, body = [], []
    for dtype in ("float32", "float16", "bfloat16"):
        A, B = buf(f"A_{dtype}", [M, 100], dtype), buf(f"B_{dtype}", [M, 100], dtype)
        S = buf(f"S_{dtype}", [32, 48], dtype, "shared")
        params += [A, B]
        body += [N.Alloc(S, loc=L),
                 N.Copy(reg(A, [bop("*", by, 32), bop("*", bx, 48)], [32, 48]), reg(S), loc=L),
                 N.Copy(reg(S), reg(B, [bop("*", by, 32), bop("*", bx, 48)], [32, 48]), loc=L)]
    f = N.Func("tile_copy", tuple(params), (launch([ceildiv(100, 48), ceildiv(M, 32)], ["bx", "by"], body),), loc=L)
    exe = run_both(f, {p.name: (70, 100) for p in params}, {"M": 70}, [1, 3, 5], rng, 1e-12)
    assert "TileGmToUb" in exe.source and "DataCopyPad" in exe.source and "KERNEL_TYPE_AIV_ONLY" in exe.source


def test_elementwise_map_with_row_broadcast_and_cast(rng):
    """Y[i, j] = half(exp(X[i, j]) * 2 - r[i]) with a fragment in between."""
    X, R, Y = buf("X", [64, 96]), buf("R", [64]), buf("Y", [64, 96], "float16")
    F = buf("F", [16, 96], "float32", "fragment")
    Rf = buf("Rf", [16], "float32", "fragment")
    b = var("b")
    i, j = var("i"), var("j")
    val = bop("-", bop("*", N.Call("exp", (ld(F, i, j),)), 2.0), ld(Rf, i))
    body = [N.Alloc(F, loc=L), N.Alloc(Rf, loc=L),
            N.Copy(reg(X, [bop("*", b, 16), 0], [16, 96]), reg(F), loc=L),
            N.Copy(reg(R, [bop("*", b, 16)], [16]), reg(Rf), loc=L),
            loop("i", 16, [loop("j", 96, [st(F, [i, j], val)])]),
            N.Copy(reg(F), reg(Y, [bop("*", b, 16), 0], [16, 96]), loc=L)]
    f = N.Func("emap", (X, R, Y), (launch([4], ["b"], body),), loc=L)
    run_both(f, {"X": (64, 96), "R": (64,), "Y": (64, 96)}, {}, [2], rng, 1e-3)


KINDS = ("max", "sum", "absmax", "min")


@pytest.mark.parametrize("dim", [0, 1])
def test_reduce(rng, dim):
    """Every reduce kind along one dim in one kernel (clear and noclear); dim 1 uses ReduceMax/ReduceSum."""
    X = buf("X", [40, 64])
    n = 64 if dim == 0 else 40
    outs = [buf(f"Y{k}", [n]) for k in KINDS]
    S = buf("S", [40, 64], "float32", "shared")
    body = [N.Alloc(S, loc=L), N.Copy(reg(X), reg(S), loc=L)]
    for kind, Y in zip(KINDS, outs):
        D = buf(f"D{kind}", [n], "float32", "fragment")
        body += [N.Alloc(D, loc=L), N.Fill(reg(D), c(0.25), loc=L),
                 N.Reduce(kind, reg(S), reg(D), dim, clear=(kind != "max"), loc=L),
                 N.Copy(reg(D), reg(Y), loc=L)]
    f = N.Func("red", (X, *outs), (launch([1], ["b"], body),), loc=L)
    shapes = {"X": (40, 64), **{Y.name: (n,) for Y in outs}}
    exe = run_both(f, shapes, {}, [1, 2, 3, 4], rng, 1e-6)
    if dim == 1:
        assert "ReduceMax(" in exe.source and "ReduceSum(" in exe.source and "Abs(" in exe.source


@pytest.mark.parametrize("dtype,trans_b", [("float16", False), ("float16", True), ("float32", False),
                                           ("bfloat16", True)])
def test_gemm(rng, dtype, trans_b):
    """C = A @ op(B) over a pipelined K loop with ragged M/N/K; the Cube path through the GM workspace."""
    M, Nn, K = 72, 40, 56
    A = buf("A", [M, K], dtype)
    B = buf("B", [Nn, K] if trans_b else [K, Nn], dtype)
    C = buf("C", [M, Nn], "float32")
    As = buf("As", [32, 16], dtype, "shared")
    Bs = buf("Bs", [32, 16] if trans_b else [16, 32], dtype, "shared")
    Cf = buf("Cf", [32, 32], "float32", "fragment")
    bx, by, k = var("bx"), var("by"), var("k")
    bsrc = reg(B, [bop("*", bx, 32), bop("*", k, 16)], [32, 16]) if trans_b else \
        reg(B, [bop("*", k, 16), bop("*", bx, 32)], [16, 32])
    body = [N.Alloc(As, loc=L), N.Alloc(Bs, loc=L), N.Alloc(Cf, loc=L), N.Fill(reg(Cf), c(0.0), loc=L),
            loop("k", ceildiv(K, 16), [N.Copy(reg(A, [bop("*", by, 32), bop("*", k, 16)], [32, 16]), reg(As), loc=L),
                                       N.Copy(bsrc, reg(Bs), loc=L),
                                       N.Gemm(reg(As), reg(Bs), reg(Cf), trans_b=trans_b, loc=L)],
                 kind="pipelined", stages=2),
            N.Copy(reg(Cf), reg(C, [bop("*", by, 32), bop("*", bx, 32)], [32, 32]), loc=L)]
    f = N.Func("mm", (A, B, C), (launch([ceildiv(Nn, 32), ceildiv(M, 32)], ["bx", "by"], body),), loc=L)
    exe = run_both(f, {"A": (M, K), "B": tuple(int(s.value) for s in B.shape), "C": (M, Nn)}, {}, [2], rng,
                   1e-5 if dtype != "float32" else 1e-5)
    for needle in ("Mmad(", "Fixpipe<", "LoadData(", "Nd2NzParams", "TQue<QuePosition::A1, 2>",
                   "TQue<QuePosition::CO1, 1>", "KERNEL_TYPE_MIX_AIC_1_1", "CrossCoreSetFlag<2", "class KernelMm0",
                   "void Init(", "void Process("):
        assert needle in exe.source, needle


def test_scalar_paths_multi_launch_atomic_cumsum(rng):
    """Two launches; the second reads what the first wrote; atomics, cumsum, lets, ifs and int math."""
    X, T1, Y, S = buf("X", [8, 20]), buf("T1", [8, 20]), buf("Y", [8, 20]), buf("S", [1])
    bx, i, j = var("bx"), var("i"), var("j")
    F = buf("F", [20], "float32", "fragment")
    first = launch([8], ["bx"], [
        N.Alloc(F, loc=L),
        N.Cumsum(reg(X, [bx, 0], [1, 20]), reg(F), 1, reverse=True, loc=L),
        N.Copy(reg(F), reg(T1, [bx, 0], [1, 20]), loc=L)])
    e = var("e")
    second = launch([8], ["bx"], [
        N.Let(e, bop("%", bop("-", bx, 11), 3), loc=L),
        loop("i", 20, [N.If(bop("==", bop("//", i, 3), e),
                            (st(Y, [bx, i], bop("+", ld(T1, bx, i), 1.0)),),
                            (st(Y, [bx, i], N.Call("abs", (ld(T1, bx, i),))),), loc=L)], kind="serial"),
        N.Atomic("add", reg(S, [0], [1]), ld(X, bx, 3), loc=L)])
    f = N.Func("multi", (X, T1, Y, S), (first, second), loc=L)
    exe = run_both_with_zero(f, rng)
    assert exe.source.count("__global__ __aicore__ void multi_kernel") == 2


def run_both_with_zero(f, rng):
    shapes = {"X": (8, 20), "T1": (8, 20), "Y": (8, 20), "S": (1,)}
    x = rng.standard_normal((8, 20)).astype(np.float32)
    args = [x, np.full((8, 20), np.nan, np.float32), np.full((8, 20), np.nan, np.float32), np.zeros(1, np.float32)]
    want = [a.copy() for a in args]
    interp_run(f, want, {})
    exe = AscendTarget().build(f, {})
    exe.run(args, {})
    for k in (1, 2, 3):
        assert not np.isnan(args[k]).any()
        np.testing.assert_allclose(args[k], want[k], rtol=1e-5, atol=1e-5)
    assert shapes
    return exe


def test_low_precision_outputs(rng):
    """float32 -> bfloat16 and float8_e4m3 stores round like tilec.numerics (bit exact)."""
    X, B16, F8 = buf("X", [4, 32]), buf("B16", [4, 32], "bfloat16"), buf("F8", [4, 32], "float8_e4m3")
    bx, i = var("bx"), var("i")
    body = [loop("i", 32, [st(B16, [bx, i], N.Cast("bfloat16", ld(X, bx, i))),
                           st(F8, [bx, i], N.Cast("float8_e4m3", bop("*", ld(X, bx, i), 50.0)))])]
    f = N.Func("lowp", (X, B16, F8), (launch([4], ["bx"], body),), loc=L)
    x = (rng.standard_normal((4, 32)) * 3).astype(np.float32)
    x[0, :4] = [np.inf, -np.inf, 1e-9, 500.0]
    args = [x, np.zeros((4, 32), np.uint16), np.zeros((4, 32), np.uint8)]
    want = [a.copy() for a in args]
    interp_run(f, want, {})
    AscendTarget().build(f, {}).run(args, {})
    np.testing.assert_array_equal(args[1], want[1])
    np.testing.assert_array_equal(args[2], want[2])


def test_gather_alloc_var_while_and_int_math(rng):
    """Data-dependent gathers, a T.alloc_var counter in a while loop, floor div/mod on negatives, selects."""
    KV, Idx = buf("KV", [50, 16]), buf("Idx", [4, 8], "int32")
    Out, Cnt = buf("Out", [4, 8, 16]), buf("Cnt", [4], "int32")
    S = buf("S", [8, 16], "float32", "shared")
    n = buf("n", [], "int32", "local")
    s, i, d = var("s"), var("i"), var("d")
    gather = loop("i", 8, [loop("d", 16, [st(S, [i, d], ld(KV, ld(Idx, s, i), d))])])
    body = [N.Alloc(S, loc=L), N.Alloc(n, loc=L), gather,
            N.Copy(reg(S), reg(Out, [s, 0, 0], [1, 8, 16]), loc=L),
            N.Store(n, (), c(0), loc=L),
            N.While(bop("<", bop("*", ld(n), ld(n)), bop("+", bop("%", bop("-", ld(Idx, s, 0), 25), 7), 20)),
                    (N.Store(n, (), bop("+", ld(n), 1), loc=L),), loc=L),
            st(Cnt, [s], N.Select(bop(">", bop("//", bop("-", ld(n), 9), 2), -3), ld(n), bop("-", 0, ld(n))))]
    f = N.Func("gather", (KV, Idx, Out, Cnt), (launch([4], ["s"], body),), loc=L)
    kv = rng.standard_normal((50, 16)).astype(np.float32)
    idx = rng.integers(0, 50, (4, 8)).astype(np.int32)
    args = [kv, idx, np.full((4, 8, 16), np.nan, np.float32), np.full(4, -77, np.int32)]
    want = [a.copy() for a in args]
    interp_run(f, want, {})
    exe = AscendTarget().build(f, {})
    exe.run(args, {})
    np.testing.assert_array_equal(args[2], want[2])
    np.testing.assert_array_equal(args[3], want[3])


def test_flat_copy_between_shapes_and_bool(rng):
    """Copies with unit dims dropped (row of a 2-D tensor <-> 1-D fragment), a bool buffer, isinf."""
    X, Y, F = buf("X", [6, 10]), buf("Y", [4, 15]), buf("F", [6, 10], "bool")
    T_ = buf("T_", [10], "float32", "fragment")
    i = var("i")
    body = [N.Alloc(T_, loc=L), N.Copy(reg(X, [2, 0], [1, 10]), reg(T_), loc=L),
            N.Copy(reg(T_), reg(Y, [3, 5], [1, 10]), loc=L),
            N.Copy(reg(X, [4, 3], [1, 7]), reg(Y, [0, 0], [1, 7]), loc=L),
            loop("i", 60, [st(F, [bop("//", i, 10), bop("%", i, 10)],
                               N.Call("isinf", (bop("/", ld(X, bop("//", i, 10), bop("%", i, 10)), c(0.0)),)))],
                 kind="serial")]
    f = N.Func("flat", (X, Y, F), (launch([1], ["b"], body),), loc=L)
    x = rng.standard_normal((6, 10)).astype(np.float32)
    x[0, 0] = 0.0
    args = [x, np.full((4, 15), 5.0, np.float32), np.zeros((6, 10), np.bool_)]
    want = [a.copy() for a in args]
    interp_run(f, want, {})
    AscendTarget().build(f, {}).run(args, {})
    np.testing.assert_array_equal(args[1], want[1])
    np.testing.assert_array_equal(args[2], want[2])


def test_unsupported_shape_is_a_clear_error():
    from tilec.errors import TilecError
    X = buf("X", [var("M")])
    S = buf("S", [var("M")], "float32", "shared")
    f = N.Func("dyn", (X,), (launch([1], ["b"], [N.Alloc(S, loc=L)]),), loc=L)
    with pytest.raises(TilecError, match="constant shape"):
        AscendTarget().build(f, {})


def test_converting_copies_from_float8(rng):
    """GM float8 -> UB float8 -> UB bfloat16 -> GM float32: converting copies take the Scalar-unit path."""
    F8, Out = buf("F8", [16, 32], "float8_e4m3"), buf("Out", [16, 32])
    S8, Sb = buf("S8", [16, 32], "float8_e4m3", "shared"), buf("Sb", [16, 32], "bfloat16", "shared")
    body = [N.Alloc(S8, loc=L), N.Alloc(Sb, loc=L), N.Copy(reg(F8), reg(S8), loc=L),
            N.Copy(reg(S8), reg(Sb), loc=L), N.Copy(reg(Sb), reg(Out), loc=L)]
    f = N.Func("f8copy", (F8, Out), (launch([1], ["b"], body),), loc=L)
    run_both(f, {"F8": (16, 32), "Out": (16, 32)}, {}, [1], rng, 0.0 + 1e-30)


def test_generated_gemm_under_address_sanitizer(rng):
    """The generated AscendC plus a C++ main() calling tilec_launch, built with -fsanitize=address."""
    import subprocess
    from tilec.backends.ascend.build import compile_source
    M, Nn, K = 40, 48, 24
    A, B, C = buf("A", [M, K], "float16"), buf("B", [K, Nn], "float16"), buf("C", [M, Nn])
    As, Bs, Cf = buf("As", [32, 32], "float16", "shared"), buf("Bs", [32, 32], "float16", "shared"), \
        buf("Cf", [32, 32], "float32", "fragment")
    bx, by = var("bx"), var("by")
    body = [N.Alloc(As, loc=L), N.Alloc(Bs, loc=L), N.Alloc(Cf, loc=L), N.Fill(reg(Cf), c(0.0), loc=L),
            N.Copy(reg(A, [bop("*", by, 32), 0], [32, 32]), reg(As), loc=L),
            N.Copy(reg(B, [0, bop("*", bx, 32)], [32, 32]), reg(Bs), loc=L),
            N.Gemm(reg(As), reg(Bs), reg(Cf), loc=L),
            N.Copy(reg(Cf), reg(C, [bop("*", by, 32), bop("*", bx, 32)], [32, 32]), loc=L)]
    f = N.Func("asan_mm", (A, B, C), (launch([2, 2], ["bx", "by"], body),), loc=L)
    source = AscendTarget().build(f, {}).source + f"""
#include <vector>
int main() {{
    std::vector<half> a({M * K}), b({K * Nn});
    std::vector<float> c({M * Nn}, -1.0f);
    for (size_t i = 0; i < a.size(); ++i) a[i] = (half)(float)((i % 7) - 3);
    for (size_t i = 0; i < b.size(); ++i) b[i] = (half)(float)((i % 5) - 2);
    void* args[3] = {{a.data(), b.data(), c.data()}};
    int64_t bytes[3] = {{(int64_t)(a.size() * 2), (int64_t)(b.size() * 2), (int64_t)(c.size() * 4)}};
    char err[1024] = {{0}};
    int rc = tilec_launch(args, bytes, nullptr, err, sizeof(err));
    double worst = 0;
    for (int m = 0; m < {M}; ++m)
        for (int n = 0; n < {Nn}; ++n) {{
            double s = 0;
            for (int k = 0; k < {K}; ++k) s += (double)(float)a[m * {K} + k] * (float)b[k * {Nn} + n];
            worst = std::max(worst, std::fabs(s - c[m * {Nn} + n]));
        }}
    std::printf("rc=%d err=%s worst=%g\\n", rc, err, worst);
    return rc;
}}
"""
    exe = compile_source(source, kind="exe", extra_flags=("-fsanitize=address", "-g"), name="asan_mm")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rc=0" in proc.stdout and "worst=0\n" in proc.stdout, proc.stdout


def test_masked_map_with_let_and_column_vector(rng):
    """A ragged-column mask (index vector, CompareScalar, Select), a let bound to a vector, a bias b[j]."""
    X, Bv, Y = buf("X", [32, 128]), buf("Bv", [128]), buf("Y", [32, 128])
    F = buf("F", [32, 128], "float32", "fragment")
    Bf = buf("Bf", [128], "float32", "fragment")
    i, j, d = var("i"), var("j"), var("d", "float32")
    ncols = 100
    body = [N.Alloc(F, loc=L), N.Alloc(Bf, loc=L), N.Copy(reg(X), reg(F), loc=L), N.Copy(reg(Bv), reg(Bf), loc=L),
            loop("i", 32, [loop("j", 128, [
                N.Let(d, bop("+", ld(F, i, j), ld(Bf, j)), loc=L),
                st(F, [i, j], N.Select(bop("<", bop("+", bop("*", var("b"), 128), j), ncols),
                                       bop("*", d, d), c(float("-inf"))))])]),
            N.Copy(reg(F), reg(Y), loc=L)]
    f = N.Func("masked", (X, Bv, Y), (launch([1], ["b"], body),), loc=L)
    x = rng.standard_normal((32, 128)).astype(np.float32)
    bv = rng.standard_normal(128).astype(np.float32)
    args = [x, bv, np.full((32, 128), np.nan, np.float32)]
    want = [a.copy() for a in args]
    interp_run(f, want, {})
    exe = AscendTarget().build(f, {})
    exe.run(args, {})
    np.testing.assert_array_equal(np.isinf(args[2]), np.isinf(want[2]))
    fin = np.isfinite(want[2])
    np.testing.assert_allclose(args[2][fin], want[2][fin], rtol=1e-6)
    for needle in ("CreateVecIndex(", "CompareScalar(", "Select(", "Add("):
        assert needle in exe.source, needle
