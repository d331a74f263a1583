"""Tile IR written by hand (no frontend) on the cpu target vs the interpreter: buffers sized by symbolic
dimensions (heap allocations), a gemm whose extents are symbolic, large block-local buffers, Let and
Reinterpret nodes, and a hand-built GEMM with symbolic M."""
import numpy as np

from cpu_harness import check, check_exact, rand
from llvm_irb import add, bop, c, func, gbuf, gemm_kernel, launch, lbuf, load, loop, mul, region, store, v
from tilec.ir import nodes as n


def test_dynamic_alloc_and_gemm():
    """One block: copy A[M, K] and B[K, N] (symbolic) into buffers of those shapes, C = A @ B."""
    A, B, C = gbuf("A", ("M", "K")), gbuf("B", ("K", "N")), gbuf("C", ("M", "N"))
    As, Bs, Cf = lbuf("As", ("M", "K"), scope="shared"), lbuf("Bs", ("K", "N"), scope="shared"), lbuf("Cf", ("M", "N"))
    full = lambda b: n.Region(b, (c(0), c(0)), b.shape)  # noqa: E731
    body = [n.Alloc(As), n.Alloc(Bs), n.Alloc(Cf), n.Copy(full(A), full(As)), n.Copy(full(B), full(Bs)),
            n.Gemm(full(As), full(Bs), full(Cf), clear_accum=True), n.Copy(full(Cf), full(C))]
    f = func("dyn_gemm", [A, B, C], [launch([1], ["bx"], body)])
    rng = np.random.default_rng(40)
    for M, N, K in [(70, 33, 21), (5, 130, 64)]:
        check(f, [rand((M, K), "float32", rng), rand((K, N), "float32", rng), rand((M, N), "float32", rng)], [2],
              1e-6, dims={"M": M, "N": N, "K": K})


def test_large_block_buffer_goes_to_heap():
    """A 512x256 float32 shared buffer (512 KiB) per block: heap allocated, still correct."""
    X, Y = gbuf("X", (4, 512, 256)), gbuf("Y", (4, 512, 256))
    S = lbuf("S", (512, 256), scope="shared")
    i, j, bx = v("i"), v("j"), v("bx")
    body = [n.Alloc(S),
            n.Copy(n.Region(X, (bx, c(0), c(0)), (c(1), c(512), c(256))), region(S)),
            loop("i", 0, 512, [loop("j", 0, 256, [store(S, [i, j], mul(load(S, i, j), 3.0))], "parallel")],
                 "parallel"),
            n.Copy(region(S), n.Region(Y, (bx, c(0), c(0)), (c(1), c(512), c(256))))]
    f = func("big", [X, Y], [launch([4], ["bx"], body)])
    rng = np.random.default_rng(41)
    check_exact(f, [rand((4, 512, 256), "float32", rng), rand((4, 512, 256), "float32", rng)], [1])


def test_let_and_reinterpret():
    X, Y = gbuf("X", (64,)), gbuf("Y", (64,), "int32")
    i = v("i")
    t = n.Var("t", "int32")
    body = [loop("i", 0, 64, [
        n.Let(t, n.Reinterpret("int32", load(X, i))),
        store(Y, [i], bop(">>", bop("^", t, c(12345)), c(3))),
    ])]
    f = func("bits", [X, Y], [launch([1], ["bx"], body)])
    rng = np.random.default_rng(42)
    check_exact(f, [rand((64,), "float32", rng), np.zeros(64, np.int32)], [1])


def test_hand_gemm_symbolic_m():
    f = gemm_kernel("M", 96, 80, bm=32, bn=64, bk=16)
    rng = np.random.default_rng(43)
    M = 77
    check(f, [rand((M, 80), "float32", rng), rand((80, 96), "float32", rng), rand((M, 96), "float32", rng)], [2],
          1e-6, dims={"M": M})


def test_select_and_logic_do_not_load_the_arm_not_taken():
    """select(c, X[far], 0) must not touch X[far] when c is false (C's ?:, the interpreter's masked
    lanes): an unconditional load 400 MB past the buffer would crash (fuzz seed 5026 found the pattern).
    Inside the taken arm, ``and`` guarding a load short-circuits like C's && as well."""
    X, Y, Z = gbuf("X", (64,)), gbuf("Y", (64,)), gbuf("Z", (64,))
    i = v("i")
    far = add(i, mul(i, 100000000))
    ok = bop("<", i, c(1))
    body = [loop("i", 0, 64, [
        store(Y, [i], n.Select(ok, load(X, far), c(-1.0))),
        store(Z, [i], n.Select(ok, n.Select(bop("or", bop(">=", i, c(1)), bop(">", load(X, far), c(0.0))),
                                            c(1.0), c(2.0)), c(3.0))),
    ], "parallel")]
    f = func("guarded", [X, Y, Z], [launch([1], ["bx"], body)])
    rng = np.random.default_rng(44)
    check_exact(f, [rand((64,), "float32", rng), np.zeros(64, np.float32), np.zeros(64, np.float32)], [1, 2])
