"""Interop at the call boundary: DLPack objects, non-contiguous arguments (copied, written back, or refused
with strict=True), ml_dtypes bfloat16/float8 numpy arrays in and out. Runs on the cpu target."""
from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest
import torch

import tilec
from tilec import numerics
from tilec.errors import TilecError, TilecWarning

from .conftest import elementwise_add

pytest.importorskip("llvmlite")


def rel(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if not np.isfinite(out).all():
        return float("inf")
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


@pytest.fixture
def add_inplace():
    """``C = A + B`` with C a caller-given argument (no out_idx)."""
    return tilec.compile(elementwise_add(cols=8), target="cpu")


class DLPackOnly:
    """Only the DLPack protocol, the way a foreign library's array looks to tilec."""

    def __init__(self, array):
        self._a = array

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def _fresh(rng, shape=(5, 8)):
    return rng.standard_normal(shape).astype(np.float32)


def test_dlpack_only_inputs_numpy_and_torch_backed():
    k = tilec.compile(elementwise_add(cols=8), out_idx=[2], target="cpu", poison_outputs=True)
    rng = np.random.default_rng(0)
    a, b = _fresh(rng), _fresh(rng)
    out = k(DLPackOnly(a), DLPackOnly(torch.from_numpy(b)))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert rel(out, a + b) < 1e-6
    assert np.from_dlpack(DLPackOnly(out)).shape == (5, 8)   # and goes back through DLPack
    with pytest.raises(TilecError, match=r"parameter 'A': expected a numpy array or torch tensor .*DLPack"):
        k(object(), b)


def test_dlpack_strided_view_is_copied():
    rng = np.random.default_rng(1)
    big, b = _fresh(rng, (5, 16)), _fresh(rng)
    with pytest.warns(TilecWarning):
        out = tilec.compile(elementwise_add(cols=8), out_idx=[2], target="cpu")(DLPackOnly(big[:, ::2]), b)
    assert rel(out, big[:, ::2] + b) < 1e-6


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_non_contiguous_inputs_copied_with_one_warning(lib):
    k = tilec.compile(elementwise_add(cols=8), out_idx=[2], target="cpu", poison_outputs=True)
    rng = np.random.default_rng(2)
    for call in range(2):
        at, big = _fresh(rng, (8, 5)), _fresh(rng, (5, 16))
        a, b = at.T, big[:, 1::2]                      # a transpose and a strided view
        if lib == "torch":
            a, b = torch.from_numpy(at).T, torch.from_numpy(big)[:, 1::2]
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            out = k(a, b)
        copies = [w for w in seen if issubclass(w.category, TilecWarning)]
        assert len(copies) == (1 if call == 0 else 0)   # one warning per kernel
        if call == 0:
            assert "non-contiguous argument(s) A, B" in str(copies[0].message)
        assert isinstance(out, torch.Tensor if lib == "torch" else np.ndarray)
        assert rel(np.asarray(out), at.T + big[:, 1::2]) < 1e-6


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_strict_refuses_non_contiguous(lib):
    k = tilec.compile(elementwise_add(cols=8), out_idx=[2], target="cpu", strict=True)
    a = np.ones((8, 5), np.float32).T
    b = np.ones((5, 8), np.float32)
    if lib == "torch":
        a, b = torch.ones(8, 5).T, torch.ones(5, 8)
    with pytest.raises(TilecError, match=r"parameter 'A': expected a contiguous \(row-major\) array \(strict=True\)"):
        k(a, b)
    assert rel(np.asarray(k(b + 1, b)), np.full((5, 8), 3.0)) == 0  # contiguous calls still work


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_non_contiguous_output_written_through_temporary(add_inplace, lib):
    rng = np.random.default_rng(3)
    a, b = _fresh(rng), _fresh(rng)
    base = np.full((5, 16), np.nan, np.float32)         # poisoned; C is every other column
    base[:, 1::2] = 7.0
    c = base[:, ::2]
    if lib == "torch":
        tbase = torch.from_numpy(base)
        with pytest.warns(TilecWarning, match="C"):
            add_inplace(torch.from_numpy(a), torch.from_numpy(b), tbase[:, ::2])
    else:
        with pytest.warns(TilecWarning, match="C"):
            add_inplace(a, b, c)
    assert rel(base[:, ::2], a + b) < 1e-6
    assert (base[:, 1::2] == 7.0).all()                   # the columns between are untouched
    ct = np.full((8, 5), np.nan, np.float32)                # a transposed output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TilecWarning)
        add_inplace(a, b, ct.T)
    assert rel(ct.T, a + b) < 1e-6


def test_read_only_non_contiguous_input_is_not_written_back():
    k = tilec.compile(elementwise_add(cols=8), target="cpu")
    assert k.written_params() == {"C"}
    a_src = np.arange(80, dtype=np.float32).reshape(5, 16)
    before = a_src.copy()
    c = np.full((5, 8), np.nan, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TilecWarning)
        k(a_src[:, ::2], np.ones((5, 8), np.float32), c)
    assert np.array_equal(a_src, before) and rel(c, a_src[:, ::2] + 1) == 0


@pytest.mark.parametrize("dtype,ml", [("bfloat16", ml_dtypes.bfloat16), ("float8_e4m3", ml_dtypes.float8_e4m3fn)])
def test_ml_dtypes_numpy_round_trip(dtype, ml):
    k = tilec.compile(elementwise_add(dtype, cols=8), out_idx=[2], target="cpu", poison_outputs=True)
    rng = np.random.default_rng(4)
    a32, b32 = _fresh(rng) * 4, _fresh(rng) * 4
    a, b = a32.astype(ml), b32.astype(ml)
    out = k(a, b)
    assert out.dtype == np.dtype(ml) and out.shape == (5, 8)
    tdt = {"bfloat16": torch.bfloat16, "float8_e4m3": torch.float8_e4m3fn}[dtype]
    ta, tb = torch.from_numpy(a.astype(np.float32)), torch.from_numpy(b.astype(np.float32))
    want = (ta + tb).to(tdt).float().numpy()           # the kernel adds in float32, rounds once
    assert np.array_equal(out.astype(np.float32), want)
    assert np.array_equal(numerics.to_float32(out, dtype), want)
    # Bit-pattern inputs give the same values back as ml_dtypes (one kernel's outputs feed the next).
    storage = numerics.from_float32(np.zeros(1), dtype).dtype
    from_bits = k(a.view(storage), b.view(storage))
    assert from_bits.dtype == np.dtype(ml)
    bits = from_bits.view(storage)
    assert np.array_equal(bits, out.view(storage))
    assert np.array_equal(k(out, from_bits).view(storage), k(out, out).view(storage))  # outputs feed the next call
    # Mixed: an ml_dtypes array and bits in one call -> ml_dtypes out; a strided ml_dtypes view is copied.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TilecWarning)
        wide = np.repeat(a, 2, axis=1)
        assert np.array_equal(k(wide[:, ::2], b).view(bits.dtype), bits)


def test_wrong_numpy_dtype_hint_names_ml_dtypes():
    k = tilec.compile(elementwise_add("bfloat16", cols=8), out_idx=[2], target="cpu")
    with pytest.raises(TilecError, match=r"expected dtype bfloat16, got float32 .*ml_dtypes\.bfloat16"):
        k(np.ones((2, 8), np.float32), np.ones((2, 8), np.float32))


def test_symbolic_rows_from_a_transposed_input():
    k = tilec.compile(elementwise_add(cols=8), out_idx=[2], target="cpu", poison_outputs=True)
    rng = np.random.default_rng(5)
    at = _fresh(rng, (8, 11))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TilecWarning)
        out = k(torch.from_numpy(at).T, torch.ones(11, 8))
    assert out.shape == (11, 8) and rel(out.numpy(), at.T + 1) < 1e-6
