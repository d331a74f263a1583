"""Shared helpers of the CPU backend tests: run a kernel on the interpreter and on ``cpu`` and compare.

Outputs are poisoned with NaN (the interpreter's pattern) before both runs; NaN in the CPU result never
passes. The compile cache of these tests lives in a per-session temporary directory (conftest.py).
"""
from __future__ import annotations

import numpy as np

from tilec.backends.llvm.target import CpuTarget
from tilec import numerics
from tilec.interp import run as interp_run
from tilec.ir import dtypes
from tilec.ir import nodes as N


def rand(shape, dtype: str, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Fresh random normals in ``dtype``'s storage form."""
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    if dtypes.is_int(dtype):
        return (x * 20).astype(dtypes.storage_numpy(dtype))
    return numerics.from_float32(x, dtype)


def poison(a: np.ndarray, dtype: str) -> np.ndarray:
    if dtypes.is_float(dtype):
        return np.full(a.shape, numerics.nan_storage(dtype), a.dtype)
    return np.full(a.shape, -77 if dtypes.info(dtype).kind == "int" else 77, a.dtype)


def run_both(func: N.Func, args: list, outs: list[int], dims=None, options=None):
    """(interp results, cpu results): fresh copies of ``args`` with the ``outs`` positions poisoned."""
    ref = [a.copy() for a in args]
    got = [a.copy() for a in args]
    for i in outs:
        ref[i] = poison(ref[i], func.params[i].dtype)
        got[i] = poison(got[i], func.params[i].dtype)
    interp_run(func, ref, dict(dims or {}))
    exe = CpuTarget().build(func, dict(options or {}))
    exe.run(got, dict(dims or {}))
    return ref, got


def rel_err(got: np.ndarray, ref: np.ndarray, dtype: str) -> float:
    g = numerics.to_float32(got, dtype).astype(np.float64) if dtypes.is_float(dtype) else got.astype(np.float64)
    r = numerics.to_float32(ref, dtype).astype(np.float64) if dtypes.is_float(dtype) else ref.astype(np.float64)
    if np.any(np.isnan(g) != np.isnan(r)):
        return float("inf")
    ok = ~np.isnan(r)
    g, r = g[ok], r[ok]
    if np.any(np.isinf(g) | np.isinf(r)):
        if not np.array_equal(g[np.isinf(r)], r[np.isinf(r)]):
            return float("inf")
        fin = ~np.isinf(r)
        g, r = g[fin], r[fin]
    den = np.linalg.norm(r)
    return float(np.linalg.norm(g - r) / (den if den > 0 else 1.0))


def check(func: N.Func, args: list, outs: list[int], tol: float, dims=None, options=None) -> list[float]:
    ref, got = run_both(func, args, outs, dims, options)
    errs = []
    for i in outs:
        e = rel_err(got[i], ref[i], func.params[i].dtype)
        assert e <= tol, f"output {func.params[i].name}: rel err {e} > {tol}"
        errs.append(e)
    return errs


def check_exact(func: N.Func, args: list, outs: list[int], dims=None, options=None) -> None:
    """Bit-for-bit equality with the interpreter (conversions, integer code, copies)."""
    ref, got = run_both(func, args, outs, dims, options)
    for i in outs:
        r, g = ref[i], got[i]
        if g.dtype.kind == "f":
            same = (r.view(f"u{r.itemsize}") == g.view(f"u{g.itemsize}")) | (np.isnan(r) & np.isnan(g))
        else:
            same = r == g
        bad = np.argwhere(~same)
        assert bad.size == 0, (f"output {func.params[i].name}: {len(bad)} elements differ, first at "
                               f"{bad[0].tolist()}: interp {r[tuple(bad[0])]!r} cpu {g[tuple(bad[0])]!r}")
