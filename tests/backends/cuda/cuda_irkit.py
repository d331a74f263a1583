"""Hand-built Tile IR kernels for the CUDA backend tests (no frontend needed).

Each builder returns a ``nodes.Func`` like the one the frontend makes for the TileLang kernel in its
docstring; the tests compile them for sm_80 and sm_90a and pin the shape of the generated CUDA.
"""
from __future__ import annotations

from tilec.ir import nodes as N

LOC = N.Loc("irkit.py", 1, 1)


def c(v, t="int32"):
    return N.Const(v, t)


def v(name, t="int32"):
    return N.Var(name, t)


def buf(name, shape, dtype, scope="global"):
    shape = tuple(c(d) if isinstance(d, int) else d for d in shape)
    return N.Buffer(name, shape, dtype, scope)


def region(b, starts, extents=None):
    starts = tuple(c(s) if isinstance(s, int) else s for s in starts)
    extents = b.shape if extents is None else tuple(c(e) if isinstance(e, int) else e for e in extents)
    return N.Region(b, starts, tuple(extents))


def whole(b):
    return region(b, [0] * len(b.shape))


def add(a, b):
    return N.BinOp("+", a, b)


def mul(a, b):
    return N.BinOp("*", a, b)


def ceildiv(a, b):
    return N.BinOp("//", add(a, c(b - 1)), c(b))


def loc(line):
    return N.Loc("irkit.py", line, 5)


def gemm(M=1024, N_=1024, K=1024, bm=128, bn=128, bk=32, dtype="float16", stages=3, threads=128,
         trans_b=False, policy=""):
    """T.gemm kernel of docs/language.md: C = A @ B (or A @ B^T) with a pipelined k loop."""
    Md = M if isinstance(M, N.Expr) else c(M)
    A = buf("A", (Md, K), dtype)
    B = buf("B", (N_, K) if trans_b else (K, N_), dtype)
    C = buf("C", (Md, N_), dtype)
    A_s = buf("A_s", (bm, bk), dtype, "shared")
    B_s = buf("B_s", (bn, bk) if trans_b else (bk, bn), dtype, "shared")
    C_f = buf("C_f", (bm, bn), "float32", "fragment")
    bx, by, k = v("bx"), v("by"), v("k")
    b_region = region(B, [mul(bx, c(bn)), mul(k, c(bk))], (bn, bk)) if trans_b else \
        region(B, [mul(k, c(bk)), mul(bx, c(bn))], (bk, bn))
    loop = N.For(k, c(0), ceildiv(c(K), bk), "pipelined", (
        N.Copy(region(A, [mul(by, c(bm)), mul(k, c(bk))], (bm, bk)), whole(A_s), loc(12)),
        N.Copy(b_region, whole(B_s), loc(13)),
        N.Gemm(whole(A_s), whole(B_s), whole(C_f), trans_b=trans_b, policy=policy, loc=loc(14)),
    ), stages=stages, loc=loc(11))
    body = (
        N.Alloc(A_s, loc(7)), N.Alloc(B_s, loc(8)), N.Alloc(C_f, loc(9)),
        N.Fill(whole(C_f), N.Const(0.0, "float32"), loc(10)),
        loop,
        N.Copy(whole(C_f), region(C, [mul(by, c(bm)), mul(bx, c(bn))], (bm, bn)), loc(15)),
    )
    launch = N.Launch((ceildiv(c(N_), bn), ceildiv(Md, bm)), (bx, by), threads, body, loc(6))
    return N.Func("gemm", (A, B, C), (launch,), loc(5))


def ld(b, *idx):
    return N.Load(b, tuple(c(i) if isinstance(i, int) else i for i in idx))


def st(b, idx, value, line=30):
    return N.Store(b, tuple(c(i) if isinstance(i, int) else i for i in idx), value, loc(line))


def f32(x):
    return N.Const(float(x), "float32")


def bop(op, a, b):
    return N.BinOp(op, a, b)


def par(var, ext, body, line=40):
    return N.For(v(var), c(0), c(ext) if isinstance(ext, int) else ext, "parallel", tuple(body), loc=loc(line))


def par2(i, m, j, n, body, line=40):
    return par(i, m, [par(j, n, body, line)], line)


def flash_attention(B=4, H=32, S=4096, D=128, bm=64, bn=64, causal=False, stages=2, threads=128,
                    dtype="float16", symbolic_seq=False):
    """TileLang's FlashAttention forward (example_mha_fwd_bshd): Q, K, V, O of shape [B, S, H, D]."""
    S_ = v("seq_len") if symbolic_seq else c(S)
    Q, K, V, O = (buf(n, (B, S_, H, D), dtype) for n in "QKVO")
    Q_s, K_s, V_s, O_s = (buf(n, (bm if n[0] in "QO" else bn, D), dtype, "shared")
                          for n in ("Q_shared", "K_shared", "V_shared", "O_shared"))
    acc_s = buf("acc_s", (bm, bn), "float32", "fragment")
    acc_s_cast = buf("acc_s_cast", (bm, bn), dtype, "fragment")
    acc_o = buf("acc_o", (bm, D), "float32", "fragment")
    m_new, m_prev, scale_f, ssum, logsum = (buf(n, (bm,), "float32", "fragment") for n in
                                             ("scores_max", "scores_max_prev", "scores_scale", "scores_sum", "logsum"))
    bx, by, bz, k = v("bx"), v("by"), v("bz"), v("k")
    i, j = v("i"), v("j")
    scale = f32(1.44269504 / (D ** 0.5))
    ninf = N.Const(float("-inf"), "float32")

    def kv_region(t):
        return region(t, [bz, mul(k, c(bn)), by, 0], (1, bn, 1, D))

    if causal:
        mask = [par2("i", bm, "j", bn, [st(acc_s, (i, j), N.Select(
            bop(">=", add(mul(bx, c(bm)), i), add(mul(k, c(bn)), j)), f32(0), ninf))], 22)]
        trip = ceildiv(mul(add(bx, c(1)), c(bm)), bn)
        trip = N.BinOp("min", trip, ceildiv(S_, bn)) if symbolic_seq else trip
    else:
        mask = [N.Fill(whole(acc_s), f32(0), loc(22))]
        trip = ceildiv(S_, bn)
    body = [
        N.Copy(kv_region(K), whole(K_s), loc(20)),
        *mask,
        N.Gemm(whole(Q_s), whole(K_s), whole(acc_s), trans_b=True, policy="FullRow", loc=loc(23)),
        N.Copy(whole(m_new), whole(m_prev), loc(24)),
        N.Fill(whole(m_new), ninf, loc(25)),
        N.Reduce("max", whole(acc_s), whole(m_new), 1, clear=False, loc=loc(26)),
        par("i", bm, [st(scale_f, (i,), N.Call("exp2", (bop("-", mul(ld(m_prev, i), scale),
                                                              mul(ld(m_new, i), scale)),)), 27)], 27),
        par2("i", bm, "j", bn, [st(acc_s, (i, j), N.Call("exp2", (bop("-", mul(ld(acc_s, i, j), scale),
                                                                       mul(ld(m_new, i), scale)),)), 28)], 28),
        N.Reduce("sum", whole(acc_s), whole(ssum), 1, loc=loc(29)),
        par("i", bm, [st(logsum, (i,), add(mul(ld(logsum, i), ld(scale_f, i)), ld(ssum, i)), 30)], 30),
        N.Copy(whole(acc_s), whole(acc_s_cast), loc(31)),
        par2("i", bm, "j", D, [st(acc_o, (i, j), mul(ld(acc_o, i, j), ld(scale_f, i)), 32)], 32),
        N.Copy(kv_region(V), whole(V_s), loc(33)),
        N.Gemm(whole(acc_s_cast), whole(V_s), whole(acc_o), policy="FullRow", loc=loc(34)),
    ]
    launch_body = (
        *(N.Alloc(b_, loc(10)) for b_ in (Q_s, K_s, V_s, O_s, acc_s, acc_s_cast, acc_o, m_new, m_prev,
                                          scale_f, ssum, logsum)),
        N.Copy(region(Q, [bz, mul(bx, c(bm)), by, 0], (1, bm, 1, D)), whole(Q_s), loc(12)),
        N.Fill(whole(acc_o), f32(0), loc(13)),
        N.Fill(whole(logsum), f32(0), loc(14)),
        N.Fill(whole(m_new), ninf, loc(15)),
        N.For(k, c(0), trip, "pipelined", tuple(body), stages=stages, loc=loc(19)),
        par2("i", bm, "j", D, [st(acc_o, (i, j), bop("/", ld(acc_o, i, j), ld(logsum, i)), 40)], 40),
        N.Copy(whole(acc_o), whole(O_s), loc(41)),
        N.Copy(whole(O_s), region(O, [bz, mul(bx, c(bm)), by, 0], (1, bm, 1, D)), loc(42)),
    )
    launch = N.Launch((ceildiv(S_, bm), c(H), c(B)), (bx, by, bz), threads, launch_body, loc(9))
    return N.Func("flash_attention", (Q, K, V, O), (launch,), loc(8))


def call(fn, *args):
    return N.Call(fn, tuple(args))


def cast(t, x):
    return N.Cast(t, x)


def elementwise(dtype="float32"):
    """Every expression op, intrinsic and cast on one element per iteration of a T.Parallel loop."""
    n = v("n")
    X, Y = buf("X", (n,), dtype), buf("Y", (n,), dtype)
    Z, W = buf("Z", (n,), "int32"), buf("W", (n,), "float32")
    bx, i, idx = v("bx"), v("i"), v("idx")
    x = ld(X, idx)
    one = N.Const(1.0, dtype)
    ax = call("abs", x)
    terms = [ax, call("exp", bop("*", x, N.Const(0.01, dtype))), call("exp2", x), call("log", add(ax, one)),
             call("log2", add(ax, one)), call("sqrt", ax), call("rsqrt", add(ax, one)), call("tanh", x),
             call("sigmoid", x), call("sin", x), call("cos", x), call("floor", x), call("ceil", x),
             call("round", x), call("trunc", x), call("pow", ax, N.Const(0.5, dtype)),
             bop("max", x, N.Const(0.0, dtype)), bop("min", x, one), bop("//", x, N.Const(2.0, dtype)),
             bop("%", x, N.Const(3.0, dtype)), N.UnaryOp("-", x), bop("/", x, N.Const(3.0, dtype))]
    fsum = terms[0]
    for t in terms[1:]:
        fsum = add(fsum, t)
    fval = N.Select(bop("or", call("isnan", x), call("isinf", x)), N.Const(0.0, dtype), fsum)
    a = v("a")
    ints = [bop("//", a, c(7)), bop("%", a, c(5)), bop("<<", a, c(2)), bop(">>", a, c(1)), bop("&", a, c(3)),
            bop("|", a, c(8)), bop("^", a, c(5)), N.UnaryOp("~", a), bop("min", a, c(3)), bop("max", a, c(-3)),
            call("abs", a), bop("/", a, c(3)), cast("int32", bop("!=", a, c(4))),
            N.Select(bop("or", N.UnaryOp("not", bop("and", bop(">", a, c(0)), bop("<", a, c(10)))),
                         bop("==", a, c(3))), c(1), c(0))]
    isum = ints[0]
    for t in ints[1:]:
        isum = add(isum, t)
    xf = cast("float32", x)
    casts = [cast("float32", cast(t, xf)) for t in ("bfloat16", "float8_e4m3", "float16", "int64", "int8",
                                                       "uint32", "float64", "int16", "uint8", "bool")]
    casts.append(cast("float32", bop("&", N.Reinterpret("int32", xf), c(255))))
    casts.append(N.Reinterpret("float32", N.Reinterpret("uint32", xf)))
    casts.append(cast("float32", N.Reinterpret("uint16", cast("float16", xf))))
    casts.append(cast("float32", N.Reinterpret("int8", cast("uint8", a))))
    wsum = casts[0]
    for t in casts[1:]:
        wsum = add(wsum, t)
    body = [N.Let(idx, add(mul(bx, c(256)), i), loc(3)),
            N.If(bop("<", idx, n), (
                N.Let(a, cast("int32", bop("*", xf, f32(100))), loc(4)),
                st(Y, (idx,), fval, 5), st(Z, (idx,), isum, 6), st(W, (idx,), wsum, 7)), loc=loc(4))]
    launch = N.Launch((ceildiv(n, 256),), (bx,), 128, (par("i", 256, body, 2),), loc(1))
    return N.Func(f"elementwise_{dtype}", (X, Y, Z, W), (launch,), loc(1))


def tileops_misc():
    """Reductions in shared memory (every kind, both dims, clear or not), cumsum both ways, atomics of
    every kind and width (block level, in T.Parallel, on a region), fill, local scalars, while/if/let,
    hints, and two launches where the second reads what the first wrote."""
    S = buf("S", (64, 96), "float32")
    R = buf("R", (5, 64), "float32")
    Rc = buf("Rc", (96,), "float32")
    Cs, Cr = buf("Cs", (64, 96), "float32"), buf("Cr", (64, 96), "float32")
    Af, Ah, Ab, Ai = buf("Af", (4,), "float32"), buf("Ah", (4,), "float16"), buf("Ab", (4,), "bfloat16"), \
        buf("Ai", (4,), "int32")
    I = buf("I", (2,), "int32")
    T2 = buf("T2", (64, 96), "float32")
    S_s = buf("S_s", (64, 96), "float32", "shared")
    F = buf("F", (64, 96), "float32", "fragment")
    row = buf("row", (64,), "float32", "fragment")
    col = buf("col", (96,), "float32", "shared")
    cnt = buf("cnt", (), "int32", "local")
    i, j, bx = v("i"), v("j"), v("bx")
    body = [N.Alloc(S_s, loc(2)), N.Alloc(F, loc(2)), N.Alloc(row, loc(2)), N.Alloc(col, loc(2)),
            N.Alloc(cnt, loc(2)), N.Hint("use_swizzle", (10,), loc(2)),
            N.Copy(whole(S), whole(S_s), loc(3))]
    for k, kind in enumerate(("max", "min", "sum", "absmax", "abssum")):
        body.append(N.Fill(whole(row), f32(1.0), loc(4)))
        body.append(N.Reduce(kind, whole(S_s), whole(row), 1, clear=(k % 2 == 0), loc=loc(5)))
        body.append(N.Copy(whole(row), region(R, [k, 0], (1, 64)), loc(6)))
    body += [N.Reduce("sum", whole(S_s), whole(col), 0, loc=loc(7)), N.Copy(whole(col), whole(Rc), loc(8)),
             N.Cumsum(whole(S_s), whole(F), 1, loc=loc(9)), N.Copy(whole(F), whole(Cs), loc(10)),
             N.Cumsum(whole(S_s), whole(F), 0, reverse=True, loc=loc(11)), N.Copy(whole(F), whole(Cr), loc(12)),
             N.Atomic("add", region(Af, [0], (1,)), f32(1.0), loc(13)),
             par2("i", 64, "j", 96, [
                 N.Atomic("add", region(Af, [1], (1,)), ld(S_s, i, j), loc(14)),
                 N.Atomic("max", region(Af, [2], (1,)), ld(S_s, i, j), loc(14)),
                 N.Atomic("min", region(Af, [3], (1,)), ld(S_s, i, j), loc(14)),
                 N.Atomic("add", region(Ah, [0], (1,)), N.Const(1.0, "float16"), loc(15)),
                 N.Atomic("max", region(Ah, [1], (1,)), cast("float16", ld(S_s, i, j)), loc(15)),
                 N.Atomic("min", region(Ah, [2], (1,)), cast("float16", ld(S_s, i, j)), loc(15)),
                 N.Atomic("add", region(Ab, [0], (1,)), N.Const(1.0, "bfloat16"), loc(16)),
                 N.Atomic("max", region(Ab, [1], (1,)), cast("bfloat16", ld(S_s, i, j)), loc(16)),
                 N.Atomic("min", region(Ab, [2], (1,)), cast("bfloat16", ld(S_s, i, j)), loc(16)),
                 N.Atomic("add", region(Ai, [0], (1,)), c(1), loc(17)),
                 N.Atomic("max", region(Ai, [1], (1,)), add(i, j), loc(17)),
                 N.Atomic("min", region(Ai, [2], (1,)), N.UnaryOp("-", j), loc(17)),
             ], 14),
             N.Atomic("add", region(T2, [0, 0], (64, 96)), whole(F), loc(18)),
             N.Store(cnt, (), c(0), loc(19)),
             N.While(bop("<", N.Load(cnt, ()), c(3)), (
                 N.Store(cnt, (), add(N.Load(cnt, ()), c(1)), loc(21)),
                 N.If(bop("==", N.Load(cnt, ()), c(2)), (N.Store(I, (c(0),), N.Load(cnt, ()), loc(22)),),
                      (N.Store(I, (c(1),), N.Load(cnt, ()), loc(23)),), loc(22)),
             ), loc(20))]
    first = N.Launch((c(1),), (bx,), 128, tuple(body), loc(1))
    by = v("by")
    second = N.Launch((c(64),), (by,), 96, (
        par("j", 96, [st(Cs, (by, j), add(ld(T2, by, j), ld(Cs, by, j)), 31)], 31),), loc(30))
    return N.Func("tileops_misc", (S, R, Rc, Cs, Cr, Af, Ah, Ab, Ai, I, T2), (first, second), loc(1))


def gemm_variants(kind):
    """GEMMs off the main path: FMA (fp32, or an accumulator no warp grid can tile), bf16 with
    transposed A and B, an odd number of n tiles per warp, a single stage, symbolic M."""
    if kind == "fp32":
        return gemm(M=256, N_=256, K=256, bm=64, bn=64, bk=16, dtype="float32", stages=2)
    if kind == "bf16_nt":
        return gemm(M=v("M"), N_=512, K=512, bm=128, bn=128, bk=64, dtype="bfloat16", stages=4, trans_b=True,
                    threads=256)
    if kind == "odd_nt":
        return gemm(M=128, N_=96, K=128, bm=32, bn=24, bk=32, dtype="float16", stages=1, threads=64)
    if kind == "shared_acc":
        return gemm(M=96, N_=96, K=64, bm=48, bn=48, bk=32, dtype="float16", stages=2, threads=128)
    raise ValueError(kind)


def gemm_trans_a():
    """C = A^T @ B with A stored [K, M] (ldmatrix.trans on the A operand)."""
    M, N_, K, bm, bn, bk = 256, 256, 256, 64, 64, 32
    A, B, C = buf("A", (K, M), "bfloat16"), buf("B", (K, N_), "bfloat16"), buf("C", (M, N_), "float32")
    A_s, B_s = buf("A_s", (bk, bm), "bfloat16", "shared"), buf("B_s", (bk, bn), "bfloat16", "shared")
    C_f = buf("C_f", (bm, bn), "float32", "fragment")
    bx, by, k = v("bx"), v("by"), v("k")
    loop = N.For(k, c(0), c(K // bk), "serial", (
        N.Copy(region(A, [mul(k, c(bk)), mul(by, c(bm))], (bk, bm)), whole(A_s), loc(12)),
        N.Copy(region(B, [mul(k, c(bk)), mul(bx, c(bn))], (bk, bn)), whole(B_s), loc(13)),
        N.Gemm(whole(A_s), whole(B_s), whole(C_f), trans_a=True, clear_accum=False, loc=loc(14)),
    ), loc=loc(11))
    body = (N.Alloc(A_s, loc(7)), N.Alloc(B_s, loc(8)), N.Alloc(C_f, loc(9)),
            N.Fill(whole(C_f), f32(0), loc(10)), loop,
            N.Copy(whole(C_f), region(C, [mul(by, c(bm)), mul(bx, c(bn))], (bm, bn)), loc(15)))
    launch = N.Launch((c(N_ // bn), c(M // bm)), (bx, by), 128, body, loc(6))
    return N.Func("gemm_trans_a", (A, B, C), (launch,), loc(5))


def all_kernels():
    """name -> Func for every hand-built kernel (the compile tests take each for sm_80 and sm_90a)."""
    out = {"gemm_f16": gemm(), "gemm_ragged_M": gemm(M=v("M"), N_=1000, K=1000, bm=64, bn=64, bk=32),
           "fa": flash_attention(B=2, H=4, S=512, D=128), "fa_causal": flash_attention(causal=True, D=64),
           "fa_causal_symbolic": flash_attention(causal=True, symbolic_seq=True, stages=3),
           "gemm_trans_a": gemm_trans_a(), "tileops_misc": tileops_misc(), "row_softmax": row_softmax()}
    for kind in ("fp32", "bf16_nt", "odd_nt", "shared_acc"):
        out[f"gemm_{kind}"] = gemm_variants(kind)
    for dt in ("float32", "float16", "bfloat16", "float8_e4m3", "float64"):
        out[f"elementwise_{dt}"] = elementwise(dt)
    return out


def row_softmax(M=256, N_=256, bm=16, threads=128):
    """Softmax over rows with fragments in the lane layout: copy in, max, exp2, sum, scale, copy out."""
    X, Y = buf("X", (M, N_), "float16"), buf("Y", (M, N_), "float16")
    x = buf("x", (bm, N_), "float32", "fragment")
    mx, sm = buf("mx", (bm,), "float32", "fragment"), buf("sm", (bm,), "float32", "fragment")
    bx, i, j = v("bx"), v("i"), v("j")
    body = (N.Alloc(x, loc(2)), N.Alloc(mx, loc(2)), N.Alloc(sm, loc(2)),
            N.Copy(region(X, [mul(bx, c(bm)), 0], (bm, N_)), whole(x), loc(3)),
            N.Reduce("max", whole(x), whole(mx), 1, loc=loc(4)),
            par2("i", bm, "j", N_, [st(x, (i, j), call("exp2", bop("-", ld(x, i, j), ld(mx, i))), 5)], 5),
            N.Reduce("sum", whole(x), whole(sm), 1, loc=loc(6)),
            par2("i", bm, "j", N_, [st(x, (i, j), bop("/", ld(x, i, j), ld(sm, i)), 7)], 7),
            N.Copy(whole(x), region(Y, [mul(bx, c(bm)), 0], (bm, N_)), loc(8)))
    launch = N.Launch((c(M // bm),), (bx,), threads, body, loc(1))
    return N.Func("row_softmax", (X, Y), (launch,), loc(1))
