"""Symbolic sizes in kernel factories: ``T.dynamic`` values support Python arithmetic (``SymInt``), enter
kernels as IR (parameter shapes, grids, loop bounds, extents), round-trip through text, and the runtime
binds and checks parameter shapes that are expressions of them."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import tilec
import tilec.language as T
from tilec.errors import TilecError
from tilec.ir import nodes as N
from tilec.ir.parser import parse_func
from tilec.ir.printer import print_expr, print_func
from tilec.runtime import args as argmod

from frontend_helpers import expect_error, load_module

TARGETS = ["interp", "cpu"]


def _target_or_skip(target: str) -> None:
    if target != "interp":
        from tilec import targets
        if target not in targets.names() or not targets.get(target).available()[0]:
            pytest.skip(f"{target} is not available here")


def _round_trips(prim_func) -> None:
    text = print_func(prim_func.func)
    assert parse_func(text, prim_func.func.loc.file) == prim_func.func, text


def _rel(out, ref) -> float:
    assert not np.isnan(out).any()
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


# --- factory arithmetic ------------------------------------------------------------------------------

def test_factory_arithmetic_builds_ir_and_folds_constants():
    M = T.dynamic("M")
    assert isinstance(M, T.SymInt) and M.name == "M" and M.dtype == "int32"
    cases = {"M * 4": M * 4, "4 * M": 4 * M, "-M": -M, "M // 2 + 1": M // 2 + 1, "M % 8": M % 8,
             "10 - M": 10 - M, "(M + 63) // 64 * 64": T.ceildiv(M, 64) * 64, "max(M, 8)": T.max(M, 8),
             "min(M * 2, 16)": T.min(M * 2, 16), "-(-M * 4 // 16)": -(-M * 4 // 16)}
    for text, value in cases.items():
        assert isinstance(value, T.SymInt) and str(value) == text, (text, value)
    # Constants fold through the frontend's binop: identities vanish, a constant result is a Python int.
    assert (M * 1) == M and (M + 0) == M and (M + 1 - 1) == M
    assert M * 0 == 0 and type(M * 0) is int
    assert T.ceildiv(1000, 64) == 16 and T.min(3, 4) == 3 and type(T.max(3, 4)) is int
    assert (M * 4).expr == N.BinOp("*", N.Var("M"), N.Const(4))
    # Structural equality and hashing (TVM's same_as), so factories memoize on symbolic arguments.
    assert M * 4 == T.dynamic("M") * 4 and M * 4 != M * 5 and M != 4
    assert hash(M * 4) == hash(T.dynamic("M") * 4) and len({M, T.dynamic("M"), T.symbolic("N")}) == 2
    assert T.int64(M).expr == N.Cast("int64", N.Var("M"))
    assert np.int64(4) * M == 4 * M and str(np.int32(10) - M) == "10 - M"  # numpy scalars defer
    assert copy.deepcopy(M * 4) == M * 4


def test_factory_questions_about_a_symbolic_value_are_errors():
    M = T.dynamic("M")
    for thunk, words in ((lambda: bool(M > 4), "cannot compare"), (lambda: min(16, M * 4), "cannot compare"),
                         (lambda: range(M), "integer"), (lambda: bool(M), "truth test"),
                         (lambda: M / 2, "use // (floor division)"), (lambda: M // 0, "division by zero")):
        with pytest.raises(TilecError) as info:
            thunk()
        assert words in info.value.message, info.value.message
        assert info.value.loc is not None and info.value.loc.file == __file__
    with pytest.raises(TypeError):
        M + 1.5  # noqa: B018 - floats are not sizes
    with pytest.raises(TilecError, match="identifier"):
        T.dynamic("not a name")


def test_jit_memoizes_on_symbolic_arguments():
    built = []

    @tilec.jit(out_idx=[1], target="interp")
    def twice(M, N):
        built.append(M)
        return _repeat_kernel(M, N, 2)

    assert twice(T.dynamic("M"), 8) is twice(T.dynamic("M"), 8) and len(built) == 1


# --- parameter shapes that are expressions -----------------------------------------------------------

def _repeat_kernel(M, dim, topk, block=16):
    """Y[r] = 2 * X[r // topk]: Y's first dimension is M * topk, bound from X's M."""
    @T.prim_func
    def main(X: T.Tensor((M, dim), "float32"), Y: T.Tensor((M * topk, dim), "float32")):
        with T.Kernel(T.ceildiv(M * topk, block), threads=32) as bx:
            t = T.alloc_fragment((block, dim), "float32")
            for i, j in T.Parallel(block, dim):
                r = bx * block + i
                t[i, j] = T.if_then_else(r < M * topk, X[T.min(r // topk, M - 1), j] * 2.0, 0.0)
            T.copy(t, Y[bx * block, 0])
    return main


@pytest.mark.parametrize("target", TARGETS)
def test_parameter_shape_expression_bound_from_another_parameter(target):
    _target_or_skip(target)
    f = _repeat_kernel(T.dynamic("M"), 8, 4)
    assert print_expr(f.func.params[1].shape[0]) == "M * 4"
    _round_trips(f)
    kernel = tilec.compile(f, out_idx=[1], target=target)
    rng = np.random.default_rng(0)
    for rows in (1, 7, 33):  # one compiled kernel for every M, ragged last tiles included
        x = rng.standard_normal((rows, 8)).astype(np.float32)
        y = kernel(x)
        assert y.shape == (rows * 4, 8) and _rel(y, np.repeat(x, 4, axis=0) * 2) < 1e-6
    in_place = tilec.compile(f, out_idx=None, target=target)
    x = rng.standard_normal((7, 8)).astype(np.float32)
    y = np.full((28, 8), np.nan, np.float32)
    in_place(x, y)
    assert _rel(y, np.repeat(x, 4, axis=0) * 2) < 1e-6
    with pytest.raises(TilecError) as info:
        in_place(x, np.zeros((27, 8), np.float32))
    msg = info.value.message
    assert msg.startswith("parameter 'Y': expected shape [M * 4, 8], got [27, 8]") and "should be 28" in msg
    assert "M = 7, bound by parameter 'X' dimension 0" in msg, msg


def test_bind_dims_rejects_an_expression_whose_symbol_nothing_binds():
    # The frontend refuses such a signature (next test); a hand-written .tir file reaches the runtime.
    func = parse_func("kernel k(X: global float32[M * 4], Y: global float32[N]) {\n"
                      "  launch (bx: 1) threads=1 {\n    Y[0] = 1.0\n  }\n}\n", "k.tir")
    with pytest.raises(TilecError) as info:
        argmod.bind_dims(func.params, {0: (12,), 1: (3,)})
    assert info.value.message.startswith("parameter 'X': dimension 0 is M * 4, but symbol M"), info.value
    assert argmod.bind_dims(func.params, {1: (3,)}) == {"N": 3}
    assert argmod.bind_dims(func.params, {0: (12,)}, given={"M": 3}) == {"M": 3}


def test_frontend_errors_for_unbindable_and_symbolic_allocation_shapes(tmp_path):
    expect_error(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")

        @T.prim_func
        def k(X: T.Tensor((8,), "float32"), Y: T.Tensor((M * 4,), "float32")):
            with T.Kernel(1) as bx:
                X[0] = 1.0
        """, "Y: T.Tensor", "parameter 'Y': dimension 0 (M * 4) uses the symbolic dimension 'M', which "
                            "is no parameter's whole dimension")
    expect_error(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")
        rows = M // 2

        @T.prim_func
        def k(X: T.Tensor((M,), "float32")):
            with T.Kernel(1) as bx:
                t = T.alloc_shared((rows, 4), "float32")
                X[0] = 1.0
        """, "(rows, 4)", "allocation shapes must be compile-time constants, got (M // 2)")
    expect_error(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")
        twice_n = T.dynamic("N") * 2

        @T.prim_func
        def k(X: T.Tensor((M,), "float32")):
            with T.Kernel(1) as bx:
                X[0] = twice_n
        """, "twice_n", "symbolic dimension 'N' is not part of any parameter's shape", nth=1)
    expect_error(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")

        def factory(M):
            if M > 64:
                return None

        factory(M)
        """, "M > 64", "cannot compare")
    expect_error(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")

        @T.prim_func
        def k(X: T.Tensor((M, T.exp(M)), "float32")):
            with T.Kernel(1) as bx:
                X[0, 0] = 1.0
        """, "X: T.Tensor", "entry 1 is (exp(M))")


# --- symbolic grids, loop bounds and extents ----------------------------------------------------------

_GRID_KERNEL = """
import tilec.language as T

def row_sums(M, N=64, block_M=64):
    n_blocks = T.ceildiv(M, block_M)     # computed in the factory: a SymInt
    pairs = M // 2

    @T.prim_func
    def main(X: T.Tensor((M, N), "float32"), S: T.Tensor((M,), "float32"), P: T.Tensor((M // 2,), "float32")):
        with T.Kernel(n_blocks, threads=128) as bx:
            x_s = T.alloc_shared((block_M, N), "float32")
            s_f = T.alloc_fragment((block_M,), "float32")
            T.copy(X[bx * block_M:(bx + 1) * block_M, 0:N], x_s)
            T.reduce_sum(x_s, s_f, dim=1)
            T.copy(s_f, S[bx * block_M:(bx + 1) * block_M])
        with T.Kernel(1, threads=1) as _:
            for i in T.serial(pairs):
                P[i] = X[2 * i, 0] + X[2 * i + 1, 0]
    return main
"""


@pytest.mark.parametrize("target", TARGETS)
def test_ceildiv_grid_and_symbolic_loop_bound(tmp_path, target):
    _target_or_skip(target)
    module = load_module(tmp_path, _GRID_KERNEL)
    f = module.row_sums(T.dynamic("M"))
    text = print_func(f.func, locs=False)
    assert "launch (bx: (M + 63) // 64) threads=128 {" in text
    assert "for i in serial(0, M // 2) {" in text
    _round_trips(f)
    kernel = tilec.compile(f, out_idx=[1, 2], target=target)
    rng = np.random.default_rng(1)
    for rows in (2, 100, 129):
        x = rng.standard_normal((rows, 64)).astype(np.float32)
        s, p = kernel(x)
        assert s.shape == (rows,) and p.shape == (rows // 2,)
        assert _rel(s, x.sum(axis=1)) < 1e-5
        assert _rel(p, x[0:rows // 2 * 2:2, 0] + x[1:rows // 2 * 2:2, 0]) < 1e-6


# --- the MoE permutation with a symbolic token count ----------------------------------------------------

def _max_tiles_sym(n_tokens, K, E, block_M):
    """moe.max_tiles with T.min for builtin min (builtin min must compare, which a SymInt cannot)."""
    return -(-n_tokens * K // block_M) + T.min(E, n_tokens * K)


@pytest.mark.parametrize("target", TARGETS)
def test_moe_permute_kernel_with_symbolic_tokens(monkeypatch, target):
    _target_or_skip(target)
    from tilec.models.deepseek_v32.kernels import moe
    monkeypatch.setattr(moe, "max_tiles", _max_tiles_sym)
    f = moe.permute_kernel(T.dynamic("T"), 4, 16, 16)
    assert print_expr(f.func.params[3].shape[0]) == "-(-T * 4 // 16) + min(16, T * 4)"
    _round_trips(f)
    dynamic = tilec.compile(f, out_idx=[1, 2, 3, 4], target=target)
    for n in (1, 5, 37):
        idx = np.random.default_rng(n).integers(0, 16, (n, 4)).astype(np.int32)
        fixed = tilec.compile(moe.permute_kernel(n, 4, 16, 16), out_idx=[1, 2, 3, 4], target="interp")
        for got, want in zip(dynamic(idx), fixed(idx)):
            assert got.shape == want.shape and np.array_equal(got, want)


def test_moe_permute_kernel_as_written():
    """The MoE permutation kernel builds with a symbolic token count and round-trips through text."""
    from tilec.models.deepseek_v32.kernels import moe
    _round_trips(moe.permute_kernel(T.dynamic("T"), 4, 16, 16))


def test_builtin_min_on_a_symbolic_size_is_an_error_at_its_line(tmp_path):
    module = load_module(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")

        def tiles(n):
            return min(16, n * 4)
        """)
    with pytest.raises(TilecError, match="cannot compare") as info:
        module.tiles(module.M)
    assert (info.value.loc.line, info.value.loc.col) == (5, 12)


def test_python_helper_called_in_a_kernel_gets_a_symint(tmp_path):
    module = load_module(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")

        def padded(n, to):
            return (n + to - 1) // to * to

        @T.prim_func
        def k(X: T.Tensor((M,), "float32"), Y: T.Tensor((padded(M, 8),), "float32")):
            with T.Kernel(1, threads=1) as bx:
                for i in T.serial(padded(M, 8)):
                    Y[i] = T.if_then_else(i < M, X[T.min(i, M - 1)], 0.0)
        """)
    text = print_func(module.k.func, locs=False)
    assert "Y: global float32[(M + 7) // 8 * 8]" in text and "for i in serial(0, (M + 7) // 8 * 8) {" in text
    _round_trips(module.k)
    x = np.random.default_rng(2).standard_normal(13).astype(np.float32)
    y = tilec.compile(module.k, out_idx=[1], target="interp")(x)
    assert y.shape == (16,) and np.array_equal(y, np.concatenate([x, np.zeros(3, np.float32)]))
    expect_error(tmp_path, """
        import tilec.language as T
        M = T.dynamic("M")

        def half(n):
            return n // 2

        @T.prim_func
        def k(X: T.Tensor((M,), "int32")):
            with T.Kernel(1, threads=1) as bx:
                X[0] = half(X[1])
        """, "half(X[1])", "cannot call the Python function 'half' with kernel values")
