"""Verifier checks of scopes, names, loops, launches and stores: good IR passes, bad IR fails."""
from __future__ import annotations

import pytest

from irb import A, A_s, B, C, C_f, BX, M, at, buf, c, gemm_body, kernel, region, v, whole
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


def test_error_renders_location_and_message():
    err = rejects(kernel(N.Store(C_f, (c(0), c(0)), c(1.0, "float32"), at(6)), N.Alloc(C_f, at(7))),
                  "buffer 'C_f' is used before its allocation at line 7", 6)
    assert err.render().startswith("k.py:6:5: error: buffer 'C_f'")


# ---------------------------------------------------------------------------------- params, scopes


def test_param_must_be_global():
    bad = buf("A", (64, 64), scope="shared")
    rejects(kernel(params=(bad,), grid=(c(1),), block_vars=(BX,)),
            "kernel parameter 'A' has scope 'shared' but must be 'global'", 1)


def test_alloc_scope_and_dtype():
    rejects(kernel(N.Alloc(buf("G", (4,), scope="global"), at(3))),
            "allocation 'G' has scope 'global' but must be 'shared' or 'fragment' or 'local'", 3)
    rejects(kernel(N.Alloc(buf("X", (4,), "float17", "shared"), at(3))),
            "buffer 'X' has unknown dtype 'float17'", 3)
    rejects(kernel(N.Alloc(buf("X", (0,), "float32", "shared"), at(3))),
            "dimension 0 of 'X' is 0", 3)


def test_buffer_names_unique():
    twin = buf("A", (64, 32), scope="shared")
    rejects(kernel(N.Alloc(twin, at(3))), "buffer name 'A' is already used", 3)
    rejects(kernel(N.Alloc(A_s, at(3)), N.Alloc(A_s, at(4))), "already used at line 3", 4)


def test_buffer_used_before_alloc_and_outside_scope():
    rejects(kernel(N.Copy(region(A, (0, 0), (64, 32)), whole(A_s), at(3)), N.Alloc(A_s, at(4))),
            "copy destination: buffer 'A_s' is used before its allocation at line 4", 3)
    inner = N.If(N.BinOp("<", BX, c(1)), (N.Alloc(A_s, at(4)),), (), at(3))
    rejects(kernel(inner, N.Fill(whole(A_s), c(0.0, "float32"), at(5))),
            "buffer 'A_s' is used outside the scope of its allocation at line 4", 5)
    rejects(kernel(N.Fill(whole(buf("Q", (4,), "float32", "local")), c(0.0, "float32"), at(5))),
            "unknown buffer 'Q'", 5)


def test_buffer_used_with_other_type_than_declared():
    fake = buf("A_s", (64, 64), scope="shared")
    rejects(kernel(N.Alloc(A_s, at(3)), N.Fill(whole(fake), c(0.0, "float32"), at(4))),
            "used as shared float16[64, 64] but was declared as shared float16[64, 32]", 4)


def test_alloc_inside_parallel():
    loop = N.For(v("i"), c(0), c(4), "parallel", (N.Alloc(A_s, at(4)),), loc=at(3))
    rejects(kernel(loop), "allocation of 'A_s' inside a T.Parallel loop", 4)


# -------------------------------------------------------------------------------- names and lets


def test_let_and_rebinding():
    e = v("e")
    rejects(kernel(N.Let(e, N.Load(A, (BX, c(0))), at(3))),
            "'e' is declared int32 but its value is float16", 3)
    good = N.Let(e, N.BinOp("*", BX, c(64)), at(3))
    use = N.Store(C, (e, c(0)), c(1.0, "float32"), at(4))
    verify(kernel(good, use))
    rejects(kernel(good, N.Let(e, c(1), at(4))), "assignment to 'e' rebinds a name", 4)
    rejects(kernel(N.Let(v("bx"), c(1), at(3))), "rebinds a name", 3)
    rejects(kernel(N.Let(v("A"), c(1), at(3))), "has the name of buffer 'A'", 3)


def test_var_defined_before_use_and_scoped():
    i = v("i")
    loop = N.For(i, c(0), c(4), "serial", (N.Store(C, (i, c(0)), c(0.0, "float32"), at(4)),), loc=at(3))
    after = N.Store(C, (i, c(0)), c(0.0, "float32"), at(5))
    verify(kernel(loop, loop))   # sibling loops may reuse a name
    rejects(kernel(loop, after), "'i' is used before it is defined", 5)
    nested = N.For(i, c(0), c(4), "serial", (loop,), loc=at(2))
    rejects(kernel(nested), "loop variable 'i' rebinds a name", 3)


def test_var_type_must_match_binding():
    rejects(kernel(N.Store(C, (v("bx", "int64"), c(0)), c(0.0, "float32"), at(4))),
            "'bx' is used as int64 but was defined as int32", 4)


def test_symbolic_dims_are_defined_in_shapes_and_grid():
    verify(kernel())
    rejects(kernel(grid=(v("N"), c(1))), "'N' is used before it is defined", 2)


# ------------------------------------------------------------------------------------- launches


def test_launch_checks():
    rejects(kernel(grid=(c(1),)), "T.Kernel has 1 grid extents but binds 2 block indices", 2)
    rejects(kernel(grid=(c(1.5, "float32"), c(1))), "grid extent 0 must be an integer, got a float32", 2)
    rejects(kernel(threads=0), "threads must be a positive integer", 2)
    rejects(kernel(grid=(c(0), c(1))), "grid extent 0 is 0", 2)
    inner = N.Launch((c(1),), (v("z"),), 32, (), at(3))
    rejects(kernel(inner), "T.Kernel inside another T.Kernel", 3)
    func = N.Func("k", (A,), (N.Alloc(A_s, at(3)),), at(1, 1))
    rejects(func, "a kernel body holds only T.Kernel launches", 3)


def test_several_launches_see_params_not_each_others_allocs():
    l1 = N.Launch((c(1),), (v("bx"),), 32, (N.Alloc(A_s, at(3)),), at(2))
    l2 = N.Launch((c(1),), (v("bx"),), 32, (N.Fill(whole(A_s), c(0.0, "float32"), at(5)),), at(4))
    rejects(N.Func("k", (A,), (l1, l2), at(1, 1)), "outside the scope of its allocation", 5)
    l2b = N.Launch((c(1),), (v("bx"),), 32, (N.Fill(region(A, (0, 0), (4, 4)), c(0.0, "float32"), at(5)),),
                   at(4))
    verify(N.Func("k", (A,), (l1, l2b), at(1, 1)))


# ---------------------------------------------------------------------------------------- loops


def test_loop_kinds_and_stages():
    body = gemm_body()
    verify(kernel(*body))
    loop = body[4]
    zero = N.For(loop.var, loop.start, loop.stop, "pipelined", loop.body, 0, loop.loc)
    verify(kernel(*body[:4], zero, body[5]))
    neg = N.For(loop.var, loop.start, loop.stop, "pipelined", loop.body, -1, loop.loc)
    rejects(kernel(*body[:4], neg, body[5]), "num_stages must be a non-negative integer", 7)
    ser = N.For(loop.var, loop.start, loop.stop, "serial", loop.body, 2, loop.loc)
    rejects(kernel(*body[:4], ser, body[5]), "a serial loop has no stages", 7)
    odd = N.For(loop.var, loop.start, loop.stop, "vectorized", loop.body, 0, loop.loc)
    rejects(kernel(*body[:4], odd, body[5]), "unknown loop kind 'vectorized'", 7)
    fl = N.For(loop.var, loop.start, c(4.0, "float32"), "serial", loop.body, 0, loop.loc)
    rejects(kernel(*body[:4], fl, body[5]), "loop stop must be an integer, got a float32", 7)
    wide = N.For(loop.var, loop.start, c(4, "int64"), "serial", loop.body, 0, loop.loc)
    rejects(kernel(*body[:4], wide, body[5]), "loop stop is int64 but the loop variable 'k' is int32", 7)
    i64 = v("w", "int64")
    verify(kernel(N.For(i64, c(0, "int64"), c(4, "int64"), "serial", (), loc=at(3))))


def test_conditions_must_be_bool():
    store = N.Store(C, (c(0), c(0)), c(0.0, "float32"), at(4))
    verify(kernel(N.If(N.BinOp("<", BX, c(1)), (store,), (store,), at(3))))
    rejects(kernel(N.If(BX, (store,), (), at(3))), "if condition must be a bool, got a int32", 3)
    rejects(kernel(N.While(c(1), (), at(3))), "while condition must be a bool", 3)


# ---------------------------------------------------------------------------------------- stores


def test_store_rank_and_index_dtype():
    rejects(kernel(N.Store(C, (c(0),), c(0.0, "float32"), at(4))),
            "store to 'C' takes 2 indices (Mx128 buffer) but 1 was given", 4)
    rejects(kernel(N.Store(C, (c(0), c(0.0, "float32")), c(0.0, "float32"), at(4))),
            "index 1 of 'C' must be an integer, got a float32", 4)
    var = buf("acc", (), "float32", "local")
    verify(kernel(N.Alloc(var, at(3)), N.Store(var, (), N.BinOp("+", N.Load(var, ()), c(1.0, "float32")),
                                                  at(4))))
    rejects(kernel(N.Alloc(var, at(3)), N.Store(var, (c(0),), c(1.0, "float32"), at(4))),
            "store to 'acc' takes 0 indices (scalar buffer) but 1 was given", 4)


def test_hint():
    verify(kernel(N.Hint("use_swizzle", (10,), at(3))))
    rejects(kernel(N.Hint("annotate_layout", (object(),), at(3))), "must be a constant or a buffer name", 3)


def test_verify_rejects_non_func():
    with pytest.raises(TypeError):
        verify(B)   # a programming error, not a user error
    assert M.name == "M"


def test_every_node_kind_has_a_check():
    from tilec.ir.verifier import STMT_CHECKS
    from tilec.ir.verify_exprs import EXPR_CHECKS
    stmts = {t for t in vars(N).values() if isinstance(t, type) and issubclass(t, N.Stmt) and t is not N.Stmt}
    exprs = {t for t in vars(N).values() if isinstance(t, type) and issubclass(t, N.Expr) and t is not N.Expr}
    assert stmts == set(STMT_CHECKS)
    assert exprs == set(EXPR_CHECKS)


# ------------------------------------------------------------------------- on-chip bounds (constant)


def _row_loop(stop: int, index, guard=None, scope="fragment", line=4):
    """for i in T.Parallel(stop): X[index(i)] = 0 on a 64-element buffer, optionally under a guard."""
    i = v("i")
    x = buf("X", (64,), "float32", scope)
    store = N.Store(x, (index(i),), c(0.0, "float32"), at(line))
    body = (store,) if guard is None else (N.If(guard(i), (store,), (), at(line)),)
    return kernel(N.Alloc(x, at(2)), N.For(i, c(0), c(stop), "parallel", body, loc=at(3)))


def test_constant_out_of_bounds_on_chip_access():
    verify(_row_loop(64, lambda i: i))
    verify(_row_loop(32, lambda i: N.BinOp("+", N.BinOp("*", i, c(2)), c(1))))   # max 63
    rejects(_row_loop(128, lambda i: i), "index i of 'X' reaches 127, outside dimension 0 of size 64", 4)
    rejects(_row_loop(33, lambda i: N.BinOp("+", N.BinOp("*", i, c(2)), c(1))), "reaches 65", 4)
    rejects(_row_loop(4, lambda i: N.BinOp("-", i, c(1))), "reaches -1", 4)
    rejects(_row_loop(1, lambda i: c(64)), "index 64 of 'X' reaches 64", 4)


def test_bounds_not_checked_where_unknown_or_guarded():
    verify(_row_loop(128, lambda i: i, guard=lambda i: N.BinOp("<", i, c(64))))
    verify(_row_loop(128, lambda i: N.BinOp("%", i, c(64))))
    verify(_row_loop(128, lambda i: N.BinOp("//", i, c(2))))
    verify(_row_loop(128, lambda i: N.BinOp("min", i, c(63))))     # unknown op: not checked
    i = v("i")
    g = buf("G", (64,), "float32")   # global: TileLang guards global accesses itself
    loop = N.For(i, c(0), c(128), "parallel", (N.Store(g, (i,), c(0.0, "float32"), at(4)),), loc=at(3))
    verify(kernel(loop, params=(g,), grid=(c(1),), block_vars=(BX,)))
    x = buf("X", (64,), "float32", "fragment")
    sel = N.Select(N.BinOp("<", i, c(64)), N.Load(x, (i,)), c(0.0, "float32"))
    loop = N.For(i, c(0), c(128), "parallel", (N.Store(C, (c(0), i), sel, at(4)),), loc=at(3))
    verify(kernel(N.Alloc(x, at(2)), loop))


def test_bounds_follow_lets():
    i, r = v("i"), v("r")
    x = buf("X", (64,), "float32", "fragment")
    body = (N.Let(r, N.BinOp("+", i, c(32)), at(4)), N.Store(x, (r,), c(0.0, "float32"), at(5)))
    rejects(kernel(N.Alloc(x, at(2)), N.For(i, c(0), c(64), "serial", body, loc=at(3))),
            "index r of 'X' reaches 95", 5)
