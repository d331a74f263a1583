"""The generic IR helpers: walk, rewrite, map_expr(s), map_stmts, substitute, free_vars, buffers_used."""
from __future__ import annotations

from tilec.ir import nodes as n
from tilec.ir import visitor as v
from tilec.ir.parser import parse_func
from tilec.ir.printer import print_expr, print_func, print_stmt

from . import samples

TEXT = """\
kernel k(A: global float32[M, 64], B: global float32[M]) {
  launch (bx: M) threads=32 {
    t = alloc fragment float32[64]
    let e: int32 = bx * 2
    for i in parallel(0, 64) {
      t[i] = A[bx, i] + 1.0 * 2.0
    }
    reduce sum t -> B[bx +: 1] dim=0
  }
}
"""


def kernel() -> n.Func:
    return parse_func(TEXT, "k.tir")


def test_walk_is_preorder_and_sees_each_shape_once():
    f = kernel()
    kinds = [type(x).__name__ for x in v.walk(f)]
    assert kinds[:4] == ["Func", "Buffer", "Var", "Const"]  # A, then A's shape
    assert kinds.count("Launch") == 1 and kinds.count("For") == 1
    # M appears in A's shape, B's shape and the grid; uses of A and B do not re-enter their shapes.
    assert sum(1 for x in v.walk(f) if x == n.Var("M")) == 3
    stmts = [x for x in v.walk(f.body) if isinstance(x, n.Stmt)]
    assert [type(s).__name__ for s in stmts] == ["Launch", "Alloc", "Let", "For", "Store", "Reduce"]


def test_children_names_fields():
    store = kernel().body[0].body[2].body[0]
    assert [name for name, _ in v.children(store)] == ["buffer", "indices", "value"]


def test_map_expr_folds_constants_bottom_up():
    def fold(e):
        if isinstance(e, n.BinOp) and isinstance(e.a, n.Const) and isinstance(e.b, n.Const) and e.op == "*":
            return n.Const(e.a.value * e.b.value, e.a.dtype)
        return None
    f = kernel()
    store = f.body[0].body[2].body[0]
    assert print_expr(v.map_expr(store.value, fold)) == "A[bx, i] + 2.0"
    g = v.map_exprs(f, fold)
    assert "t[i] = A[bx, i] + 2.0" in print_func(g)
    assert "let e: int32 = bx * 2" in print_func(g)


def test_noop_rewrite_returns_the_same_objects():
    f = kernel()
    assert v.rewrite(f, lambda x: None) is f
    assert v.map_exprs(f, lambda e: None) is f
    assert v.map_stmts(f.body, lambda s: None) == f.body
    assert v.map_stmts(f.body, lambda s: None)[0] is f.body[0]


def test_map_stmts_splices_and_deletes():
    f = kernel()

    def lower(s):
        if isinstance(s, n.Reduce):
            return ()
        if isinstance(s, n.Let):
            return (s, n.Hint("after_let", (1,)))
        return None
    body = v.map_stmts(f.body, lower)
    text = print_stmt(body[0])
    assert "reduce" not in text
    assert "let e: int32 = bx * 2\n  hint after_let(1)\n  for i" in text


def test_substitute_replaces_uses_not_declarations():
    f = kernel()
    loop = f.body[0].body[2]
    unrolled = v.substitute(loop.body, {loop.var: n.Const(5)})
    assert print_stmt(unrolled[0]) == "t[5] = A[bx, 5] + 1.0 * 2.0"
    same = v.substitute(loop, {loop.var: n.Const(5)})
    assert same.var == loop.var


def test_substitute_specialises_a_symbolic_dim_consistently():
    f = kernel()
    g = v.substitute(f, {n.Var("M"): n.Const(128)})
    text = print_func(g)
    assert "A: global float32[128, 64]" in text and "launch (bx: 128)" in text
    # References to A inside the body are the same (equal) buffer as the rewritten parameter.
    A = g.params[0]
    loads = [x for x in v.walk(g) if isinstance(x, n.Load)]
    assert loads and all(ld.buffer == A for ld in loads)
    assert v.free_vars(g) == []
    assert parse_func(text) == g


def test_replace_buffers_changes_declaration_and_uses():
    f = kernel()
    t = f.body[0].body[0].buffer
    t2 = n.Buffer("t2", t.shape, "float16", "shared")
    g = v.replace_buffers(f, {t: t2})
    text = print_func(g)
    assert "t2 = alloc shared float16[64]" in text and "t2[i] = " in text and "reduce sum t2 ->" in text
    assert t not in v.buffers_used(g)


def test_free_and_bound_vars():
    f = kernel()
    assert v.free_vars(f) == [n.Var("M")]
    launch = f.body[0]
    assert [x.name for x in v.bound_vars(launch)] == ["bx", "e", "i"]
    loop = launch.body[2]
    assert v.free_vars(loop.body) == [n.Var("i"), n.Var("bx")]
    assert v.free_vars(loop) == [n.Var("bx")]


def test_buffers_used_in_order():
    f = kernel()
    assert [b.name for b in v.buffers_used(f)] == ["A", "B", "t"]
    assert [b.name for b in v.buffers_used(f.body[0].body[3])] == ["t", "B"]


def test_helpers_cover_every_sample_node():
    m = samples.module()
    assert v.rewrite(m, lambda x: None) is m
    renamed = v.rewrite(m, lambda x: n.Var(x.name + "_r", x.type) if isinstance(x, n.Var) else None)
    assert "for i_r in parallel" in print_func(renamed.funcs[1])
    assert all(x.name.endswith("_r") for x in v.walk(renamed) if isinstance(x, n.Var))
