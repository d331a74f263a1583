"""Each language construct builds the expected Tile IR (compared as printed text, locations left out)."""
from __future__ import annotations

import textwrap

import tilec.language as T
from tilec.ir import nodes as N
from tilec.ir.verifier import verify

from frontend_helpers import ir_text, load_module


def build(tmp_path, body: str, params: str = "A: T.Tensor((128, 64), 'float16'), "
          "B: T.Tensor((128, 64), 'float32')", factory_args: str = "", call: str = "") -> str:
    """Build ``body`` (the statements inside the kernel) in a factory and return its IR text."""
    code = (f"import tilec.language as T\n\n"
            f"def factory({factory_args}):\n"
            f"    @T.prim_func\n"
            f"    def k({params}):\n"
            + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8) + "\n"
            f"    return k\n\n"
            f"KERNEL = factory({call})\n")
    module = load_module(tmp_path, code)
    verify(module.KERNEL.func)
    return ir_text(module.KERNEL)


def lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.strip().splitlines()]


def test_gemm_matches_hand_built_nodes(tmp_path):
    module = load_module(tmp_path, """
        import tilec.language as T

        def matmul(M, N, K, bm=64, bn=64, bk=32):
            @T.prim_func
            def main(A: T.Tensor((M, K), "float16"), B: T.Tensor((K, N), "float16"),
                     C: T.Tensor((M, N), "float16")):
                with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
                    A_s = T.alloc_shared((bm, bk), "float16")
                    B_s = T.alloc_shared((bk, bn), "float16")
                    C_f = T.alloc_fragment((bm, bn), "float32")
                    T.clear(C_f)
                    for k in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                        T.copy(A[by * bm, k * bk], A_s)
                        T.copy(B[k * bk, bx * bn], B_s)
                        T.gemm(A_s, B_s, C_f)
                    T.copy(C_f, C[by * bm, bx * bn])
            return main

        KERNEL = matmul(T.dynamic("M"), 256, 128)
        """)
    func = module.KERNEL.func
    i32 = lambda v: N.Const(v, "int32")  # noqa: E731
    M = N.Var("M")
    A = N.Buffer("A", (M, i32(128)), "float16", "global")
    B = N.Buffer("B", (i32(128), i32(256)), "float16", "global")
    C = N.Buffer("C", (M, i32(256)), "float16", "global")
    A_s = N.Buffer("A_s", (i32(64), i32(32)), "float16", "shared")
    B_s = N.Buffer("B_s", (i32(32), i32(64)), "float16", "shared")
    C_f = N.Buffer("C_f", (i32(64), i32(64)), "float32", "fragment")
    bx, by, k = N.Var("bx"), N.Var("by"), N.Var("k")

    def region(buf, starts, extents):
        return N.Region(buf, tuple(starts), tuple(i32(e) for e in extents))

    assert func.params == (A, B, C)
    launch = func.body[0]
    assert launch.grid == (i32(4), N.BinOp("//", N.BinOp("+", M, i32(63)), i32(64)))
    assert launch.block_vars == (bx, by) and launch.threads == 128
    body = launch.body
    assert [type(s).__name__ for s in body] == ["Alloc", "Alloc", "Alloc", "Fill", "For", "Copy"]
    assert body[3].dst == region(C_f, (i32(0), i32(0)), (64, 64)) and body[3].value == N.Const(0.0, "float32")
    loop = body[4]
    assert (loop.var, loop.start, loop.stop, loop.kind, loop.stages) == (k, i32(0), i32(4), "pipelined", 2)
    assert loop.body[0].src == region(A, (N.BinOp("*", by, i32(64)), N.BinOp("*", k, i32(32))), (64, 32))
    assert loop.body[0].dst == region(A_s, (i32(0), i32(0)), (64, 32))
    assert loop.body[2] == N.Gemm(region(A_s, (i32(0), i32(0)), (64, 32)),
                                  region(B_s, (i32(0), i32(0)), (32, 64)),
                                  region(C_f, (i32(0), i32(0)), (64, 64)), loc=loop.body[2].loc)
    assert body[5].dst == region(C, (N.BinOp("*", by, i32(64)), N.BinOp("*", bx, i32(64))), (64, 64))
    # Locations: absolute file lines and 1-based columns of each construct.
    path = module.__file__
    assert func.loc == N.Loc(path, 5, 5)
    assert launch.loc == N.Loc(path, 7, 9)
    assert body[0].loc == N.Loc(path, 8, 13) and body[0].buffer.loc == N.Loc(path, 8, 13)
    assert loop.loc == N.Loc(path, 12, 13) and loop.body[0].loc == N.Loc(path, 13, 17)


def test_tile_regions_slices_and_right_alignment(tmp_path):
    text = build(tmp_path, """
        with T.Kernel(2, 3, threads=128) as (bx, by):
            S = T.alloc_shared((32, 64), "float16")
            V = T.alloc_fragment((64,), "float32")
            T.copy(A[bx * 32:(bx + 1) * 32, :], S)
            T.copy(A[bx * 32, 0], S)
            T.copy(A[0:64, by], V[0:64])
            T.copy(A[by, 0:64], V)
            T.copy(V, B[bx, 0])
            T.copy(S, B[bx * 32:bx * 32 + 32, 0:64])
        """)
    assert lines(text)[4:10] == [
        "copy A[bx * 32 +: 32, 0 +: 64] -> S",
        "copy A[bx * 32 +: 32, 0 +: 64] -> S",
        "copy A[0 +: 64, by +: 1] -> V",
        "copy A[by +: 1, 0 +: 64] -> V",
        "copy V -> B[bx +: 1, 0 +: 64]",
        "copy S -> B[bx * 32 +: 32, 0 +: 64]",
    ]


def test_four_d_point_takes_right_aligned_extents(tmp_path):
    text = build(tmp_path, """
        with T.Kernel(4) as bx:
            S = T.alloc_shared((16, 8), "float16")
            T.copy(Q[0, bx, 0, 0], S)
            T.copy(Q[1, bx * 16:(bx + 1) * 16, 2, :], S)
        """, params="Q: T.Tensor((2, 64, 4, 8), 'float16')")
    assert lines(text)[3:5] == ["copy Q[0 +: 1, bx +: 1, 0 +: 16, 0 +: 8] -> S",
                                "copy Q[1 +: 1, bx * 16 +: 16, 2 +: 1, 0 +: 8] -> S"]


def test_loops_of_every_kind(tmp_path):
    text = build(tmp_path, """
        with T.Kernel(1) as bx:
            F = T.alloc_fragment((8, 4), "float32")
            for i, j in T.Parallel(8, 4):
                F[i, j] = 1.0
            for i in T.serial(2, 6):
                F[i, 0] = 2.0
            for i in range(8):
                F[i, 1] = 3.0
            for i in T.unroll(4):
                F[0, i] = 4.0
            for i, j in T.grid(2, 3):
                F[i, j] = 5.0
            for k in T.Pipelined(1, 3, num_stages=3):
                F[k, k] = 6.0
            for i in range(7, 1, -2):
                F[i, 2] = 7.0
        """)
    assert lines(text)[3:] == [
        "for i in parallel(0, 8) {", "for j in parallel(0, 4) {", "F[i, j] = 1.0", "}", "}",
        "for i_1 in serial(2, 6) {", "F[i_1, 0] = 2.0", "}",
        "for i_2 in serial(0, 8) {", "F[i_2, 1] = 3.0", "}",
        "for i_3 in unrolled(0, 4) {", "F[0, i_3] = 4.0", "}",
        "for i_4 in serial(0, 2) {", "for j_1 in serial(0, 3) {", "F[i_4, j_1] = 5.0", "}", "}",
        "for k in pipelined(1, 3, stages=3) {", "F[k, k] = 6.0", "}",
        "for i_iter in serial(0, 3) {", "let i_5: int32 = 7 - i_iter * 2", "F[i_5, 2] = 7.0", "}",
        "}", "}"]


def test_build_time_control_flow(tmp_path):
    text = build(tmp_path, """
        with T.Kernel(1) as bx:
            F = T.alloc_fragment((4,), "float32")
            for idx, val in pairs:
                F[idx] = val
            if flag:
                T.fill(F, 1)
            else:
                T.clear(F)
            n = 5
            while n > 1:
                n = n // 2
            F[n] = T.ceildiv(7, 2) + T.max(2, 3) * T.exp2(1.0) if flag else 0
        """, factory_args="pairs=((0, 1.5), (3, 2)), flag=True")
    assert lines(text)[3:7] == ["F[0] = 1.5", "F[3] = 2.0", "fill F, 1.0", "F[1] = 10.0"]


def test_scalars_lets_shadowing_and_vars(tmp_path):
    text = build(tmp_path, """
        with T.Kernel(8) as bx:
            acc = T.alloc_var("float32")
            cnt = T.alloc_var(T.int32, 0)
            x = A[bx, 0]
            x = x * 2
            acc = x + 1
            acc += 2
            cnt += 1
            B[bx, 0] = acc
            B[bx, 1] *= 3
        """)
    assert lines(text)[2:] == [
        "acc = alloc local float32[]", "cnt = alloc local int32[]", "cnt[] = 0",
        "let x: float16 = A[bx, 0]", "let x_1: float16 = x * 2.0:f16", "acc[] = x_1 + 1.0:f16",
        "acc[] = acc[] + 2.0", "cnt[] = cnt[] + 1", "B[bx, 0] = acc[]", "B[bx, 1] = B[bx, 1] * 3.0",
        "}", "}"]


def test_literal_promotion_and_casts(tmp_path):
    text = build(tmp_path, """
        with T.Kernel(8) as bx:
            h = A[bx, 0]
            f = B[bx, 0]
            B[bx, 1] = h * 2 + f
            B[bx, 2] = bx * 0.5
            B[bx, 3] = T.cast(h, "float32") / T.float32(bx)
            B[bx, 4] = T.if_then_else(bx < 4, 0, -T.infinity("float32"))
            A[bx, 1] = T.exp(h) + 1
            B[bx, 5] = (bx + 1) // 2 + bx % 3 + T.truncdiv(bx, 3)
        """)
    assert lines(text)[2:10] == [
        "let h: float16 = A[bx, 0]", "let f: float32 = B[bx, 0]",
        "B[bx, 1] = cast<float32>(h * 2.0:f16) + f",
        "B[bx, 2] = cast<float32>(bx) * 0.5",
        "B[bx, 3] = cast<float32>(h) / cast<float32>(bx)",
        "B[bx, 4] = select(bx < 4, 0.0, -inf)",
        "A[bx, 1] = exp(h) + 1.0:f16",
        "B[bx, 5] = (bx + 1) // 2 + bx % 3 + bx / 3"]


def test_tile_ops_and_flags(tmp_path):
    text = build(tmp_path, """
        with T.Kernel(1) as bx:
            Sa = T.alloc_shared((64, 32), "float16")
            Sb = T.alloc_shared((64, 32), "float16")
            C = T.alloc_fragment((64, 64), "float32")
            m = T.alloc_fragment((64,), "float32")
            T.gemm(Sa, Sb, C, transpose_B=True, policy=T.GemmWarpPolicy.FullRow, clear_accum=True)
            T.reduce_max(C, m, dim=1, clear=False)
            T.reduce_sum(C, m)
            T.reduce_abssum(C, m, 0)
            T.cumsum(C, dim=1)
            T.atomic_add(B[0:64, 0:64], C)
            T.atomic_max(B[bx, 3], m[0])
            T.fill(C[0:8, :], T.infinity("float32"))
            T.use_swizzle(panel_size=10)
            T.annotate_layout({Sa: T.make_swizzled_layout(Sa)})
        """)
    assert lines(text)[6:] == [
        "gemm Sa, Sb -> C transpose_b clear policy=FullRow",
        "reduce max C -> m dim=1 noclear",
        "reduce sum C -> m dim=1",
        "reduce abssum C -> m dim=0",
        "cumsum C -> C dim=1",
        "atomic add B[0 +: 64, 0 +: 64] <- C",
        "atomic max B[bx +: 1, 3 +: 1] <- m[0]",
        "fill C[0 +: 8, 0 +: 64], inf",
        "hint use_swizzle(10)",
        'hint annotate_layout("Sa")',
        "}", "}"]


def test_macro_inlines_with_fresh_names(tmp_path):
    module = load_module(tmp_path, """
        import tilec.language as T

        @T.macro
        def scale_row(buf, row, factor):
            t = buf[row, 0] * factor
            buf[row, 0] = t
            return t

        @T.prim_func
        def k(A: T.Tensor((4, 4), "float32")):
            with T.Kernel(4) as bx:
                a = scale_row(A, bx, 2)
                b = scale_row(A, bx, 3)
                A[bx, 1] = a + b
        """)
    assert lines(ir_text(module.k))[2:8] == [
        "let t: float32 = A[bx, 0] * 2.0", "A[bx, 0] = t",
        "let t_1: float32 = A[bx, 0] * 3.0", "A[bx, 0] = t_1",
        "A[bx, 1] = t + t_1", "}"]


def test_tensor_forms_dynamic_dims_and_multiple_launches(tmp_path):
    module = load_module(tmp_path, """
        import tilec.language as T

        n = T.dynamic("n")
        m = T.symbolic("m")

        @T.prim_func
        def k(X: T.Tensor[(n, 16), T.bfloat16], Y: T.Buffer((m,), "float8_e4m3fn"), Z: T.Tensor[n, "int8"]):
            with T.Kernel(T.ceildiv(n, 16)) as bx:
                Z[bx] = 1
            with T.Kernel(m, threads=64) as (i,):
                Y[i] = 0
        """)
    text = ir_text(module.k)
    assert lines(text)[0] == ("kernel k(X: global bfloat16[n, 16], Y: global float8_e4m3[m], "
                              "Z: global int8[n]) {")
    assert "launch (bx: (n + 15) // 16) threads=128 {" in lines(text)
    assert "launch (i: m) threads=64 {" in lines(text)
    assert "Z[bx] = 1:i8" in lines(text)


def test_python_level_builtins_and_prim_func_object(tmp_path):
    assert T.ceildiv(1000, 64) == 16
    assert T.max(3, 4) == 4 and T.min(2.5, 1) == 1
    assert T.float16(2) == N.Const(2.0, "float16")
    expr = T.ceildiv(T.dynamic("n"), 8)
    assert expr == N.BinOp("//", N.BinOp("+", N.Var("n"), N.Const(7)), N.Const(8))
    module = load_module(tmp_path, """
        import tilec.language as T

        @T.prim_func
        def k(A: T.Tensor((4,), "float32")):
            with T.Kernel(1) as bx:
                A[0] = 1.0
        """)
    assert module.k.name == "k" and module.k.func.params[0].name == "A"
    assert "A[0] = 1.0" in module.k.script()


def test_examples_build_verify_and_round_trip():
    import importlib
    import pathlib
    import sys

    from tilec.ir.parser import parse_func
    from tilec.ir.printer import print_func
    root = pathlib.Path(__file__).resolve().parents[2] / "examples"
    sys.path.insert(0, str(root))
    try:
        for name in ("gemm", "gemm_bias_relu", "flash_attention", "softmax", "rmsnorm", "layernorm"):
            mod = importlib.import_module(name)
            for params in (mod.DEFAULTS, mod.RAGGED):
                func = mod.KERNEL(**params).func
                verify(func)
                assert parse_func(print_func(func), f"{name}.tir") == func
    finally:
        sys.path.remove(str(root))


def test_tilelang_style_macros_layout_helpers_and_python_ranges(tmp_path):
    """TileLang habits: annotated macro parameters, Python layout helpers taking buffers, `as (bx)`,
    and range() used as a Python value (only `for ... in range(...)` is a loop)."""
    module = load_module(tmp_path, """
        import tilec.language as T

        def make_layout(buf):
            return T.Layout(buf.shape, lambda i, j: [j, i])

        def factory(block_M=16, dim=8, heads=(0, 1)):
            @T.macro
            def rescale(acc: T.FragmentBuffer([block_M, dim], "float32"),
                        scale: T.FragmentBuffer([block_M], "float32"), k: T.int32):
                for i, j in T.Parallel(block_M, dim):
                    acc[i, j] *= scale[i] + k

            @T.prim_func
            def main(O: T.Tensor((2, block_M, dim), "float32")):
                with T.Kernel(1, threads=64) as (bx):
                    acc = T.alloc_fragment((block_M, dim), "float32")
                    s = T.alloc_fragment((block_M,), "float32")
                    T.annotate_layout({acc: make_layout(acc)})
                    T.fill(s, 2)
                    for h in list(range(len(heads))):
                        T.fill(acc, h)
                        rescale(acc, s, bx)
                        T.copy(acc, O[h, 0, 0])
            return main

        KERNEL = factory()
        """)
    text = lines(ir_text(module.KERNEL))
    assert text[1] == "launch (bx: 1) threads=64 {"
    assert 'hint annotate_layout("acc")' in text
    assert text.count("fill acc, 0.0") == 1 and text.count("fill acc, 1.0") == 1
    assert "acc[i, j] = acc[i, j] * (s[i] + cast<float32>(bx))" in text
    assert "copy acc -> O[1 +: 1, 0 +: 16, 0 +: 8]" in text


def test_string_annotations_and_build_time_launch_loops(tmp_path):
    """`from __future__ import annotations` (annotations evaluated from source, symbolic dims included)
    and a Python loop outside T.Kernel that emits one launch per iteration."""
    module = load_module(tmp_path, """
        from __future__ import annotations

        import tilec.language as T

        def factory(parts=2):
            n = T.dynamic("n")

            @T.prim_func
            def main(X: T.Tensor((parts, n), "float32")):
                for p in range(parts):
                    with T.Kernel(T.ceildiv(n, 32)) as bx:
                        for i in T.Parallel(32):
                            if bx * 32 + i < n:
                                X[p, bx * 32 + i] = p
            return main

        KERNEL = factory()
        """)
    verify(module.KERNEL.func)
    text = lines(ir_text(module.KERNEL))
    assert text[0] == "kernel main(X: global float32[2, n]) {"
    assert text.count("launch (bx: (n + 31) // 32) threads=128 {") == 1
    assert "launch (bx_1: (n + 31) // 32) threads=128 {" in text
    assert "X[0, bx * 32 + i] = 0.0" in text and "X[1, bx_1 * 32 + i_1] = 1.0" in text
    assert "if (bx * 32 + i < n) {" in text
