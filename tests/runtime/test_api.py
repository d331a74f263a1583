"""The TileLang-compatible surface: `import tilec as tilelang`, @tilelang.jit on real kernels, T.dynamic."""
from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest
import torch

import tilec as tilelang
from tilec import TilecError, numerics

T = tilelang.language


def test_package_surface():
    assert T is importlib.import_module("tilec.language")
    assert isinstance(tilelang.__version__, str) and tilelang.__version__.count(".") == 2
    assert callable(tilelang.compile) and callable(tilelang.jit)


def _scale_kernel(block_M=16, N=32, dtype="float32"):
    M = T.dynamic("M")

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            X_s = T.alloc_fragment((block_M, N), dtype)
            T.copy(X[bx * block_M, 0], X_s)
            for i, j in T.Parallel(block_M, N):
                X_s[i, j] = X_s[i, j] * 2.0 + 1.0
            T.copy(X_s, Y[bx * block_M, 0])
    return main


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_jit_dynamic_rows_torch_and_numpy(target):
    if target != "interp":
        from tilec import targets
        if target not in targets.names() or not targets.get(target).available()[0]:
            pytest.skip(f"{target} is not available here")
    built = []

    @tilelang.jit(out_idx=[-1], target=target)
    def scale(block_M=16, N=32, dtype="float32"):
        built.append(dtype)
        return _scale_kernel(block_M, N, dtype)

    k = scale()
    for rows in (50, 130, 16):  # ragged and exact tilings, one compiled kernel
        x = torch.randn(rows, 32)
        y = k(x)
        assert isinstance(y, torch.Tensor) and y.shape == (rows, 32)
        assert torch.linalg.vector_norm(y - (x * 2 + 1)) / torch.linalg.vector_norm(x * 2 + 1) < 1e-6
    assert scale() is k and built == ["float32"]
    kb = scale(dtype="bfloat16")
    xb = torch.randn(40, 32).to(torch.bfloat16)
    yb = kb(xb)
    assert yb.dtype == torch.bfloat16
    assert torch.equal(yb, (xb.float() * 2 + 1).to(torch.bfloat16))
    out = kb(xb.view(torch.int16).numpy().view(np.uint16))  # numpy bits in: ml_dtypes.bfloat16 out
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(numerics.to_float32(out, "bfloat16"), yb.float().numpy())
    np.testing.assert_array_equal(out.view(np.uint16), yb.view(torch.int16).numpy().view(np.uint16))
    with pytest.raises(TilecError, match=r"parameter 'X': expected shape \[M, 32\], got \[40, 31\]"):
        k(torch.randn(40, 31))
    assert "main" in k.get_kernel_source()


@pytest.mark.parametrize("target", ["cpu", "ascend", "cuda", "cuda-emu"])
def test_a_targets_build_takes_the_decorated_kernel(target):
    """``Target().build`` (the plugin API the backend docs show) accepts a @T.prim_func result as well as
    its ``Func``, and refuses anything else with a TilecError."""
    from tilec import targets
    tgt = targets.get(target)
    kernel = _scale_kernel()
    if target == "cuda-emu" and not tgt.available()[0]:
        pytest.skip(f"cuda-emu: {tgt.available()[1]}")
    if target == "cuda":
        from tilec.backends.cuda.build import nvcc_path
        try:
            nvcc_path()
        except TilecError:
            pytest.skip("nvcc is not installed")
        assert "__global__" in tgt.build(kernel, {"arch": "sm_80"}).source
        return
    x = np.random.default_rng(3).standard_normal((40, 32)).astype(np.float32)
    y = np.full_like(x, np.nan)
    tgt.build(kernel, {}).run([x, y], {"M": 40})
    np.testing.assert_allclose(y, x * 2 + 1, rtol=1e-6)
    with pytest.raises(TilecError, match="prim_func"):
        tgt.build(42, {})
