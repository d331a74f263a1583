"""tilec.numerics' ml_dtypes-based conversions: bit-identical to the integer reference and to torch.

Decodes (bf16/fp8 -> float32) are checked on every bit pattern; encodes (float32 -> bf16/fp8) on a dense
set: every bf16 value and its neighbours (ties and one ulp either side), every fp8 value with the
midpoints between neighbours, subnormals, overflow, +-inf, NaNs of both signs with payloads.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tilec import numerics as N


def _bits32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def _same_value(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-equal, except that NaN patterns need only both be NaN (torch's decode payloads differ)."""
    gn, wn = np.isnan(got), np.isnan(want)
    assert np.array_equal(gn, wn)
    assert np.array_equal(_bits32(got)[~gn], _bits32(want)[~wn])


def test_bf16_decode_all_patterns_match_torch():
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    got = N.to_float32(bits, "bfloat16")
    want = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).float().numpy()
    _same_value(got, want)


def test_fp8_decode_all_patterns_match_torch():
    bits = np.arange(256, dtype=np.uint8)
    got = N.to_float32(bits, "float8_e4m3")
    want = torch.from_numpy(bits).view(torch.float8_e4m3fn).float().numpy()
    _same_value(got, want)
    assert np.isnan(got[[0x7F, 0xFF]]).all() and np.isfinite(np.delete(got, [0x7F, 0xFF])).all()


def _dense_f32() -> np.ndarray:
    """Every bf16 value as float32 plus the values 1 ulp (f32) below/above it and the exact midpoint
    (a tie) to the next bf16 value, plus random patterns, NaNs with payloads, infinities, huge values."""
    hi = np.arange(2**16, dtype=np.uint32) << 16
    parts = [hi, hi + 0x8000, hi + 0x7FFF, hi + 0x8001, hi - 1, hi + 1]
    rng = np.random.default_rng(17)
    parts.append(rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32))
    parts.append(np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFBFFFFF,
                           0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x80000001], np.uint32))
    u = np.concatenate([p.astype(np.uint32) for p in parts])
    f8 = N.to_float32(np.arange(256, dtype=np.uint8), "float8_e4m3").astype(np.float64)
    f8 = np.sort(f8[np.isfinite(f8)])
    mids = ((f8[1:] + f8[:-1]) / 2).astype(np.float32)  # ties of fp8 (exact in float32)
    near = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)),
                           f8.astype(np.float32), np.float32([449, 464, 465, 480, 1e4, 3e38, -449, -464, -1e30]),
                           (np.arange(-2000, 2000, dtype=np.float32) * np.float32(2.0**-12))])  # subnormals
    return np.concatenate([u.view(np.float32), near.astype(np.float32)])


@pytest.mark.parametrize("dtype,fast,ref,tdtype,tbits", [
    ("bfloat16", N._f32_to_bf16, N._f32_to_bf16_bits, torch.bfloat16, torch.int16),
    ("float8_e4m3", N._f32_to_f8, N._f32_to_f8_bits, torch.float8_e4m3fn, torch.uint8),
])
def test_encode_bit_identical_to_reference_and_torch(dtype, fast, ref, tdtype, tbits):
    x = _dense_f32()
    with np.errstate(all="ignore"):
        got = fast(x)
        old = ref(x)
    assert got.dtype == old.dtype and got.shape == x.shape
    assert np.array_equal(got, old)
    want = torch.from_numpy(x).to(tdtype).view(tbits).numpy().view(got.dtype)
    assert np.array_equal(got, want)
    assert np.array_equal(N.from_float32(x, dtype), got)


def test_encode_edge_values():
    x = np.float32([np.inf, -np.inf, 1e6, -1e6, 448, 464, np.nan, -np.nan, 2.0**-9, 2.0**-10, 3 * 2.0**-10])
    f8 = N.from_float32(x, "float8_e4m3")
    assert list(f8[:6]) == [0x7E, 0xFE, 0x7E, 0xFE, 0x7E, 0x7E]  # saturation like torch, not NaN
    assert f8[6] & 0x7F == 0x7F and f8[7] & 0x7F == 0x7F
    assert list(f8[8:]) == [0x01, 0x00, 0x02]  # smallest subnormal; tie to even (0); 1.5 -> 2 (even)
    bf = N.from_float32(np.float32([3.4e38, -3.4e38, np.nan, -np.nan, 1 + 2.0**-8, 1 + 3 * 2.0**-8]), "bfloat16")
    assert list(bf) == [0x7F80, 0xFF80, 0xFFFF, 0xFFFF, 0x3F80, 0x3F82]


def test_scalars_and_0d_keep_shape_and_float64_goes_through_float32():
    assert N.from_float32(np.float32(1.0), "bfloat16").shape == ()
    assert int(N.from_float32(1.0, "float8_e4m3")) == 0x38
    x = np.random.default_rng(3).standard_normal(1000) * 50
    for dtype, ref in (("bfloat16", N._f32_to_bf16_bits), ("float8_e4m3", N._f32_to_f8_bits)):
        assert np.array_equal(N.from_float32(x, dtype), ref(x.astype(np.float32)))
