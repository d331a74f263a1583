"""Bit-exactness of tilec.numerics against torch's conversions, and the integer conversion rules."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tilec import numerics
from tilec.ir import dtypes

TORCH = {"bfloat16": (torch.bfloat16, torch.uint16), "float8_e4m3": (torch.float8_e4m3fn, torch.uint8),
         "float16": (torch.float16, torch.int16)}


def _interesting_float32(n: int = 200_000) -> np.ndarray:
    rng = np.random.default_rng(0)
    random_bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    normals = (rng.standard_normal(n) * rng.choice([1e-8, 1e-3, 1.0, 100.0, 1e4], n)).astype(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 448, 449, 464, 464.5, 479.9, 480,
                         1e30, -1e30, 2**-6, 2**-7, 2**-9, 2**-10, 3 * 2**-10, 1.5 * 2**-9, 65504,
                         65520, 3.4e38, 1e-45, -1e-45, 1.00390625, 1.01171875], np.float32)
    # Exact ties between neighbouring representable values of the narrow types, to test round-to-even.
    ties = np.concatenate([numerics.to_float32(np.arange(256, dtype=np.uint8), "float8_e4m3"),
                           numerics.to_float32(np.arange(0, 65536, 7, dtype=np.uint16), "bfloat16")])
    ties = ties[np.isfinite(ties)]
    ties = (np.sort(ties)[:-1] + np.diff(np.sort(ties)) / 2).astype(np.float32)
    return np.concatenate([random_bits, normals, specials, ties])


@pytest.mark.parametrize("dtype", sorted(TORCH))
def test_from_float32_matches_torch_bitwise(dtype):
    x = _interesting_float32()
    tdtype, tbits = TORCH[dtype]
    want = torch.from_numpy(x).to(tdtype).view(tbits).numpy()
    got = numerics.from_float32(x, dtype)
    assert got.dtype == dtypes.storage_numpy(dtype)
    mismatch = np.flatnonzero(got.view(want.dtype) != want)   # compared as bit patterns
    assert mismatch.size == 0, (dtype, x[mismatch[:5]], got[mismatch[:5]], want[mismatch[:5]])


@pytest.mark.parametrize("dtype", sorted(TORCH))
def test_to_float32_matches_torch_on_every_pattern(dtype):
    tdtype, tbits = TORCH[dtype]
    n = 256 if dtype == "float8_e4m3" else 65536
    bits = np.arange(n, dtype=np.int64)
    storage = bits.astype(np.uint8 if n == 256 else np.uint16).view(dtypes.storage_numpy(dtype))
    want = torch.from_numpy(bits).to(tbits).view(tdtype).float().numpy()
    got = numerics.to_float32(storage, dtype)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.array_equal(got[ok].view(np.uint32), want[ok].view(np.uint32))


def test_float8_saturates_like_torch():
    x = np.array([448, 460, 500, 1e6, np.inf, -np.inf, -470, np.nan], np.float32)
    got = numerics.from_float32(x, "float8_e4m3")
    assert list(got[:7]) == [0x7E, 0x7E, 0x7E, 0x7E, 0x7E, 0xFE, 0xFE]
    assert got[7] & 0x7F == 0x7F


def test_float_to_int_truncates_and_saturates():
    x = np.array([1.7, -1.7, -0.5, 2.5, 3e9, -3e9, np.nan, np.inf, -np.inf, 2147483647.0], np.float64)
    assert numerics.from_float32(x, "int32").tolist() == [1, -1, 0, 2, 2**31 - 1, -2**31, 0, 2**31 - 1,
                                                          -2**31, 2**31 - 1]
    assert numerics.from_float32(np.array([-3.0, 300.0, 255.9]), "uint8").tolist() == [0, 255, 255]
    assert numerics.from_float32(np.array([1e30, -1e30]), "int64").tolist() == [2**63 - 1, -2**63]
    assert numerics.from_float32(np.array([300, -129], np.int32), "int8").tolist() == [44, 127]


def test_bool_and_compute_types():
    assert numerics.from_float32(np.array([0.0, -0.0, 0.1, np.nan]), "bool").tolist() == [False, False,
                                                                                           True, True]
    assert numerics.compute_numpy("bfloat16") == np.float32
    assert numerics.compute_numpy("float64") == np.float64
    assert numerics.compute_numpy("int8") == np.int8
    r = numerics.round_to(np.array([1.0 + 2**-9], np.float32), "bfloat16")
    assert r.dtype == np.float32 and r[0] == 1.0
