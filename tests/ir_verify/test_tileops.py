"""Verifier checks of tile operations: each accepts good IR and rejects bad IR at the right node."""
from __future__ import annotations

import pytest

from irb import A, A_s, B_s, BX, BY, C, C_f, M, add, at, buf, c, gemm_body, kernel, mul, region, v, whole
from tilec.errors import TilecError
from tilec.ir import nodes as N
from tilec.ir.verifier import verify


def rejects(func: N.Func, text: str, line: int) -> TilecError:
    with pytest.raises(TilecError) as info:
        verify(func)
    err = info.value
    assert text in err.message, err.message
    assert err.loc is not None and err.loc.line == line, (err.loc, err.message)
    return err


def test_gemm_kernel_is_accepted():
    verify(kernel(*gemm_body()))


# ------------------------------------------------------------------------------------------ gemm


def test_gemm_k_mismatch():
    bad = buf("B_s", (64, 64), scope="shared")
    body = list(gemm_body(N.Gemm(whole(A_s), whole(bad), whole(C_f), loc=at(10))))
    body[1] = N.Alloc(bad, at(4))
    loop = body[4]
    body[4] = N.For(loop.var, loop.start, loop.stop, loop.kind,
                    (loop.body[0], loop.body[2]), loop.stages, loop.loc)
    err = rejects(kernel(*body), "gemm: A is 64x32 but B is 64x64", 10)
    assert "did you mean" not in err.message   # no transpose makes M, N and K all agree


def test_gemm_transpose_hint_and_transposed_ok():
    bt = buf("B_t", (64, 32), scope="shared")
    g_bad = N.Gemm(whole(A_s), whole(bt), whole(C_f), loc=at(10))
    g_ok = N.Gemm(whole(A_s), whole(bt), whole(C_f), trans_b=True, loc=at(10))
    allocs = (N.Alloc(A_s, at(3)), N.Alloc(bt, at(4)), N.Alloc(C_f, at(5)))
    verify(kernel(*allocs, g_ok))
    err = rejects(kernel(*allocs, g_bad), "did you mean transpose_B=True", 10)
    assert "K=32 from A" in err.message and "K=64 from B" in err.message


def test_gemm_m_and_n_mismatch():
    c_small = buf("C_s", (32, 64), "float32", "fragment")
    rejects(kernel(N.Alloc(A_s, at(3)), N.Alloc(B_s, at(4)), N.Alloc(c_small, at(5)),
                   N.Gemm(whole(A_s), whole(B_s), whole(c_small), loc=at(10))), "but C is 32x64", 10)
    c_wide = buf("C_w", (64, 128), "float32", "fragment")
    rejects(kernel(N.Alloc(A_s, at(3)), N.Alloc(B_s, at(4)), N.Alloc(c_wide, at(5)),
                   N.Gemm(whole(A_s), whole(B_s), whole(c_wide), loc=at(10))), "N=64 from B", 10)


def test_gemm_scopes():
    rejects(kernel(N.Alloc(B_s, at(4)), N.Alloc(C_f, at(5)),
                   N.Gemm(region(A, (0, 0), (64, 32)), whole(B_s), whole(C_f), loc=at(10))),
            "A ('A') is in global memory but must be in shared or fragment", 10)
    c_sh = buf("C_sh", (64, 64), "float32", "shared")
    rejects(kernel(N.Alloc(A_s, at(3)), N.Alloc(B_s, at(4)), N.Alloc(c_sh, at(5)),
                   N.Gemm(whole(A_s), whole(B_s), whole(c_sh), loc=at(10))),
            "C ('C_sh') is in shared memory but must be in fragment or local", 10)
    a_frag = buf("A_f", (64, 32), "float16", "fragment")
    verify(kernel(N.Alloc(a_frag, at(3)), N.Alloc(B_s, at(4)), N.Alloc(C_f, at(5)),
                  N.Gemm(whole(a_frag), whole(B_s), whole(C_f), loc=at(10))))


def test_gemm_squeezes_leading_unit_dims_and_rejects_3d():
    a3 = buf("A3", (1, 64, 32), scope="shared")
    verify(kernel(N.Alloc(a3, at(3)), N.Alloc(B_s, at(4)), N.Alloc(C_f, at(5)),
                  N.Gemm(whole(a3), whole(B_s), whole(C_f), loc=at(10))))
    a3b = buf("A3", (2, 64, 32), scope="shared")
    rejects(kernel(N.Alloc(a3b, at(3)), N.Alloc(B_s, at(4)), N.Alloc(C_f, at(5)),
                   N.Gemm(whole(a3b), whole(B_s), whole(C_f), loc=at(10))),
            "A ('A3') must be a 2-D tile, got 2x64x32", 10)


def test_gemm_dtype_mismatch():
    b_bf = buf("B_b", (32, 64), "bfloat16", "shared")
    rejects(kernel(N.Alloc(A_s, at(3)), N.Alloc(b_bf, at(4)), N.Alloc(C_f, at(5)),
                   N.Gemm(whole(A_s), whole(b_bf), whole(C_f), loc=at(10))),
            "A is float16 but B is bfloat16", 10)


# ------------------------------------------------------------------------------------------ copy


def test_copy_extents():
    ok = N.Copy(region(A, (0, 0), (1, 32)), region(A_s, (0, 0), (32, 1)), at(6))
    verify(kernel(N.Alloc(A_s, at(3)), ok))   # unit dims dropped: both are 32
    bad = N.Copy(region(A, (0, 0), (64, 64)), whole(A_s), at(6))
    rejects(kernel(N.Alloc(A_s, at(3)), bad),
            "copy: source 'A' tile is 64x64 but destination 'A_s' tile is 64x32", 6)


def test_copy_symbolic_extents_must_be_the_same_expression():
    n = v("n")
    a1, c1 = buf("X", (M,)), buf("Y", (M,))
    verify(kernel(N.Copy(region(a1, (0,), (M,)), region(c1, (0,), (M,)), at(6)), params=(a1, c1)))
    other = N.Copy(region(a1, (0,), (M,)), region(c1, (0,), (add(M, c(0)),)), at(6))
    rejects(kernel(other, params=(a1, c1)), "source 'X' tile is M but destination 'Y' tile is (M + 0)", 6)
    rejects(kernel(N.Copy(region(a1, (0,), (n,)), whole(c1), at(6)), params=(a1, c1)),
            "'n' is used before it is defined", 6)


def test_copy_global_to_global_allowed():
    verify(kernel(N.Copy(region(A, (0, 0), (64, 64)), region(C, (0, 0), (64, 64)), at(6))))


def test_copy_rank_mismatch():
    bad = N.Copy(N.Region(A, (c(0),), (c(64),)), whole(A_s), at(6))
    rejects(kernel(N.Alloc(A_s, at(3)), bad), "has 1 starts and 1 extents but the buffer has 2", 6)


def test_copy_nonpositive_extent():
    rejects(kernel(N.Alloc(A_s, at(3)), N.Copy(region(A, (0, 0), (0, 32)), whole(A_s), at(6))),
            "extent 0 of 'A' is 0", 6)


# ---------------------------------------------------------------------------- tile op in parallel


@pytest.mark.parametrize("op", ["copy", "gemm", "fill", "reduce", "cumsum"])
def test_tile_op_in_parallel_rejected(op):
    red = buf("r", (64,), "float32", "fragment")
    stmt = {
        "copy": N.Copy(region(A, (0, 0), (64, 32)), whole(A_s), at(9)),
        "gemm": N.Gemm(whole(A_s), whole(B_s), whole(C_f), loc=at(9)),
        "fill": N.Fill(whole(C_f), c(0.0, "float32"), at(9)),
        "reduce": N.Reduce("max", whole(C_f), whole(red), 1, loc=at(9)),
        "cumsum": N.Cumsum(whole(C_f), whole(C_f), 1, loc=at(9)),
    }[op]
    loop = N.For(v("i"), c(0), c(4), "parallel", (stmt,), loc=at(8))
    allocs = (N.Alloc(A_s, at(3)), N.Alloc(B_s, at(4)), N.Alloc(C_f, at(5)), N.Alloc(red, at(6)))
    verify(kernel(*allocs, N.For(v("i"), c(0), c(4), "serial", (stmt,), loc=at(8))))
    rejects(kernel(*allocs, loop), "inside a T.Parallel loop (the loop at line 8)", 9)


def test_scalar_atomic_in_parallel_allowed():
    i, j = v("i"), v("j")
    atom = N.Atomic("add", region(C, (i, j), (1, 1)), N.Load(C_f, (i, j)), at(9))
    inner = N.For(j, c(0), c(64), "parallel", (atom,), loc=at(8))
    verify(kernel(N.Alloc(C_f, at(5)), N.For(i, c(0), c(64), "parallel", (inner,), loc=at(7))))


# ---------------------------------------------------------------------------------------- reduce


def _reduce_kernel(src_shape, dst_shape, dim, src_scope="fragment", kind="max"):
    s = buf("S", src_shape, "float32", src_scope)
    d = buf("D", dst_shape, "float32", "fragment")
    return kernel(N.Alloc(s, at(3)), N.Alloc(d, at(4)), N.Reduce(kind, whole(s), whole(d), dim, loc=at(6)))


def test_reduce_shapes():
    verify(_reduce_kernel((64, 128), (64,), 1))
    verify(_reduce_kernel((64, 128), (128,), 0))
    verify(_reduce_kernel((64, 128), (64, 1), 1))     # TileLang also accepts the kept unit dim
    verify(_reduce_kernel((64,), (1,), 0))
    verify(_reduce_kernel((64, 128), (64,), 1, "shared"))
    rejects(_reduce_kernel((64, 128), (128,), 1),
            "reduce_max: destination 'D' is 128 but reducing 64x128 along dim 1 gives 64", 6)


def test_reduce_dim_out_of_range():
    rejects(_reduce_kernel((64, 128), (64,), 2), "reduce_max: dim 2 is out of range for a 2-D source", 6)
    rejects(_reduce_kernel((64, 128), (64,), -1), "dim -1 is out of range", 6)


def test_reduce_global_and_kind():
    g = buf("G", (64, 128), "float32")
    d = buf("D", (64,), "float32", "fragment")
    rejects(kernel(N.Alloc(d, at(4)), N.Reduce("sum", whole(g), whole(d), 1, loc=at(6)), params=(g,),
                   grid=(c(1), c(1))),
            "reduce_sum: source 'G' is a global tensor", 6)
    rejects(_reduce_kernel((64, 128), (64,), 1, kind="prod"), "unknown reduction 'prod'", 6)


# --------------------------------------------------------------------------------- cumsum, fill


def test_cumsum():
    s = buf("S", (64, 128), "float32", "fragment")
    d = buf("D", (64, 128), "float32", "shared")
    d2 = buf("D2", (64, 64), "float32", "shared")
    allocs = (N.Alloc(s, at(3)), N.Alloc(d, at(4)), N.Alloc(d2, at(5)))
    verify(kernel(*allocs, N.Cumsum(whole(s), whole(d), 1, True, at(6))))
    row = N.Cumsum(region(s, (3, 0), (1, 128)), region(buf("D1", (128,), "float32", "shared"), (0,), (128,)),
                   1, loc=at(7))
    verify(kernel(*allocs, N.Alloc(buf("D1", (128,), "float32", "shared"), at(6)), row))
    rejects(kernel(*allocs, N.Cumsum(whole(s), whole(d), 2, loc=at(6))), "cumsum: dim 2 is out of range", 6)
    rejects(kernel(*allocs, N.Cumsum(whole(s), whole(d2), 0, loc=at(6))),
            "cumsum: destination 'D2' is 64x64 but the source is 64x128", 6)


def test_fill_value_must_be_scalar():
    verify(kernel(N.Alloc(C_f, at(5)), N.Fill(whole(C_f), N.Var("bx"), at(6))))
    rejects(kernel(N.Alloc(C_f, at(5)), N.Fill(whole(C_f), whole(C_f), at(6))),
            "fill: the value must be a scalar", 6)


# ---------------------------------------------------------------------------------------- atomic


def test_atomic_shapes():
    t = buf("T", (64, 64), "float32", "fragment")
    ok_tile = N.Atomic("add", region(C, (0, 0), (64, 64)), whole(t), at(6))
    verify(kernel(N.Alloc(t, at(5)), ok_tile))
    bad_tile = N.Atomic("max", region(C, (0, 0), (64, 32)), whole(t), at(6))
    rejects(kernel(N.Alloc(t, at(5)), bad_tile), "atomic_max: destination tile is 64x32", 6)
    bad_scalar = N.Atomic("add", region(C, (0, 0), (64, 64)), c(1.0, "float32"), at(6))
    rejects(kernel(bad_scalar), "a scalar value updates one element", 6)
    rejects(kernel(N.Atomic("mul", region(C, (0, 0), (1, 1)), c(1.0, "float32"), at(6))),
            "unknown atomic operation 'mul'", 6)
    tile_in_par = N.For(v("i"), c(0), c(2), "parallel", (ok_tile,), loc=at(7))
    rejects(kernel(N.Alloc(t, at(5)), tile_in_par), "T.atomic_add of a tile inside a T.Parallel", 6)


def test_gemm_inside_pipelined_uses_block_index_regions():
    g = N.Gemm(whole(A_s), whole(B_s), region(C_f, (0, 0), (64, 64)), clear_accum=True, loc=at(10))
    verify(kernel(*gemm_body(g)))
    # a region that starts at a block index and has symbolic extent equal on both sides
    verify(kernel(N.Copy(region(A, (mul(BX, c(64)), 0), (M, 128)), region(C, (0, 0), (M, 128)), at(6))))
    assert BY.name == "by"
