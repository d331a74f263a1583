"""Scalar conversions between tilec dtypes, vectorized on numpy: the one definition every host target uses.

Arrays of a tilec dtype live in their *storage* numpy dtype (``dtypes.storage_numpy``): bfloat16 as
uint16 bit patterns, float8_e4m3 as uint8 bit patterns, the rest natively. Expressions compute half
types in float32 (``compute_numpy``); rounding happens only where a value is stored or cast. The
interpreter, the LLVM and Ascend hosts and the runtime convert through this module so they round alike.

Rules (checked bit for bit against torch in tests/interp/test_interp_numerics.py):
- float32 -> bfloat16/float8 use ml_dtypes' C casts (2-3x faster than the integer arithmetic kept as
  ``_f32_to_bf16_bits`` / ``_f32_to_f8_bits``; benchmarks/numerics.py), with NaN and fp8 overflow handled
  explicitly so the bits are the same; the decodes stay table/shift based (faster than ml_dtypes' casts).
- Floats round to nearest even. bfloat16 matches torch 2.13's CPU ``float32 -> bfloat16``: overflow
  gives +-inf and every NaN becomes 0xffff (torch's vectorized kernel writes that pattern whatever the
  sign or payload). float16 NaNs are quieted keeping sign and top payload bits, as torch (F16C) does.
- float8_e4m3 is torch's ``float8_e4m3fn`` (no inf, max 448, NaN 0x7f/0xff). torch 2.13's CPU tensor
  conversion *saturates*: every |x| > 448, +-inf included, becomes +-448 (0x7e/0xfe); NaN keeps its sign
  (0x7f/0xff). Below that it is RNE, subnormals (2^-9 steps) included. (c10's scalar routine would give
  NaN above 464; we follow what ``tensor.to(torch.float8_e4m3fn)`` does.)
- float -> integer truncates toward zero (C) and *saturates* to the integer range; NaN gives 0
  (CUDA's cvt.rzi.sat and LLVM's fptosi.sat behave this way, so every target can match it cheaply).
- integer -> narrower integer wraps (two's complement, C); integer -> float rounds to nearest even.
- to bool: nonzero is true; bool -> number: 0 or 1.
- float64 -> bfloat16/float8 goes through float32 (a double rounding: it can differ from one direct
  rounding only when the float32 rounding lands exactly on a tie of the narrow type; kernels do not
  store float64 values into half types in practice).
"""
from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np

from .ir import dtypes

_F32 = np.dtype(np.float32)
_ML_BF16, _ML_F8 = np.dtype(ml_dtypes.bfloat16), np.dtype(ml_dtypes.float8_e4m3fn)

# Storage bit patterns of the quiet NaN each float dtype is poisoned with.
_BF16_NAN = np.uint16(0xFFFF)
_F8_NAN = np.uint8(0x7F)


def compute_numpy(dtype: str) -> np.dtype:
    """The numpy dtype values of ``dtype`` have inside expressions (float32 for the half types)."""
    info = dtypes.info(dtype)
    if info.kind == "float":
        return np.dtype(np.float64) if info.bits == 64 else _F32
    return np.dtype(info.numpy)


# ---------------------------------------------------------------------------------------------------
# bfloat16


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits: ml_dtypes' C cast (RNE, overflow -> inf), every NaN made 0xffff."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.array(x.astype(ml_dtypes.bfloat16).view(np.uint16))  # (keeps 0-d arrays 0-d)
    nan = np.isnan(x)
    if nan.any():  # ml_dtypes keeps the sign and payload of a NaN; torch (and tilec) write 0xffff
        out[nan] = _BF16_NAN
    return out


def _f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """The integer-arithmetic reference of ``_f32_to_bf16`` (kept for tests and benchmarks/numerics.py)."""
    x = np.array(x, dtype=np.float32, order="C")  # (keeps 0-d arrays 0-d)
    u = x.view(np.uint32)
    # Round to nearest even on the low 16 bits; the carry rolls into the exponent (overflow -> inf).
    lsb = (u >> 16) & 1
    rounded = ((u + np.uint32(0x7FFF) + lsb) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), _BF16_NAN, rounded)


# ---------------------------------------------------------------------------------------------------
# float8_e4m3 (torch.float8_e4m3fn)


def _f8_table() -> np.ndarray:
    """The float32 value of each of the 256 e4m3fn bit patterns."""
    codes = np.arange(256, dtype=np.int64)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp = (codes >> 3) & 0xF
    man = codes & 0x7
    normal = (1.0 + man / 8.0) * np.exp2(exp - 7.0)
    subnormal = (man / 8.0) * np.exp2(-6.0)
    value = sign * np.where(exp == 0, subnormal, normal)
    value[(codes & 0x7F) == 0x7F] = np.nan
    return value.astype(np.float32)


_F8_TO_F32 = _f8_table()


def _f8_to_f32(bits: np.ndarray) -> np.ndarray:
    return _F8_TO_F32[np.asarray(bits, np.uint8)]


def _f32_to_f8(x: np.ndarray) -> np.ndarray:
    """float32 -> float8_e4m3fn bits: torch's saturation to +-448 (NaN passes np.clip unchanged), then
    ml_dtypes' C cast (RNE, subnormals; it would give NaN above 464, which the clip rules out)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        clipped = np.clip(x, np.float32(-448), np.float32(448))
        return np.array(clipped.astype(ml_dtypes.float8_e4m3fn).view(np.uint8))


def _f32_to_f8_bits(x: np.ndarray) -> np.ndarray:
    """c10's fp8e4m3fn_from_fp32_value, vectorized, after torch's saturation to +-448: the integer-arithmetic
    reference of ``_f32_to_f8`` (kept for tests and benchmarks/numerics.py)."""
    x = np.asarray(x, dtype=np.float32)
    x = np.array(np.where(np.isnan(x), x, np.clip(x, np.float32(-448), np.float32(448))), order="C")
    bits = x.view(np.uint32)
    sign = bits & np.uint32(0x80000000)
    mag = bits ^ sign
    nan = mag > np.uint32(0x7F800000)        # only NaN is left above 448 after the clip
    denorm_mask = np.uint32(141 << 23)
    small = mag < np.uint32(121 << 23)       # below 2^-6: subnormal range, rounded by an fp32 add
    with np.errstate(all="ignore"):          # the unsigned sums below wrap on purpose
        # Subnormals: adding 2^(141-127) aligns the mantissa so the FPU's RNE does the rounding.
        sub = (mag.view(np.float32) + denorm_mask.view(np.float32)).view(np.uint32) - denorm_mask
        # Normals: rebias the exponent and round to nearest even on the 20 dropped bits.
        mant_odd = (mag >> 20) & 1
        norm = (mag + np.uint32(((7 - 127) << 23) & 0xFFFFFFFF) + np.uint32(0x7FFFF) + mant_odd) >> 20
    result = np.where(small, sub, norm)
    result = np.where(nan, np.uint32(0x7F), result)
    return ((result & 0xFF) | (sign >> 24)).astype(np.uint8)


def _to_f16(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = x.astype(np.float16)
    if x.dtype != np.float32 or not np.isnan(x).any():
        return out
    # Quiet NaNs the way torch (F16C vcvtps2ph) does: sign, quiet bit, top 10 payload bits.
    u = np.array(x, order="C").view(np.uint32)
    quiet = (((u >> 16) & 0x8000) | 0x7E00 | ((u >> 13) & 0x3FF)).astype(np.uint16)
    return np.where(np.isnan(x), quiet.view(np.float16), out)


# ---------------------------------------------------------------------------------------------------
# integers


def float_to_int(x: np.ndarray, np_dtype: np.dtype) -> np.ndarray:
    """Truncate toward zero, saturate to ``np_dtype``'s range, NaN -> 0."""
    x = np.asarray(x, np.float64)
    info = np.iinfo(np_dtype)
    t = np.trunc(x)
    lo, hi = float(info.min), float(info.max)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isnan(t), 0.0, np.clip(t, lo, hi)).astype(np_dtype)
    # float(int64 max) rounds up to 2^63, which does not convert back: pin the top explicitly.
    return np.where(t >= hi, np_dtype.type(info.max), out)


# ---------------------------------------------------------------------------------------------------
# public conversions


def to_float32(storage: np.ndarray, dtype: str) -> np.ndarray:
    """Values of a storage array of ``dtype`` as float32 (exact for every float type but float64)."""
    dtype = dtypes.canonical(dtype)
    if isinstance(storage, np.ndarray) and storage.dtype in (_ML_BF16, _ML_F8):  # values, not bits
        return np.asarray(storage).astype(np.float32)
    if dtype == "bfloat16":
        return _bf16_to_f32(storage)
    if dtype == "float8_e4m3":
        return _f8_to_f32(storage)
    return np.asarray(storage).astype(np.float32)


def from_float32(x: np.ndarray, dtype: str) -> np.ndarray:
    """Float values (float32, or any float/int array) to a storage array of ``dtype`` with tilec rounding."""
    dtype = dtypes.canonical(dtype)
    x = np.asarray(x)
    info = dtypes.info(dtype)
    if dtype == "bfloat16":
        return _f32_to_bf16(x)
    if dtype == "float8_e4m3":
        return _f32_to_f8(x)
    if dtype == "float16":
        return _to_f16(x)
    if info.kind == "float":
        return x.astype(info.numpy)
    if info.kind == "bool":
        return x != 0
    if x.dtype.kind == "f":
        return float_to_int(x, np.dtype(info.numpy))
    return x.astype(info.numpy)


def to_compute(storage: np.ndarray, dtype: str) -> np.ndarray:
    """Storage array -> the values expressions see (``compute_numpy(dtype)``)."""
    if dtype in ("bfloat16", "float8_e4m3"):
        return to_float32(storage, dtype)
    if dtype == "float16":
        return np.asarray(storage).astype(np.float32)
    return np.asarray(storage)


def from_compute(values: np.ndarray, dtype: str) -> np.ndarray:
    """Computed values (any numeric numpy array) -> storage array of ``dtype``, rounded/converted."""
    return from_float32(values, dtype)


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """``cast<dtype>(values)`` as a computed value: convert to ``dtype`` and back to its compute type."""
    return to_compute(from_compute(values, dtype), dtype)


def nan_storage(dtype: str) -> np.generic:
    """The storage pattern local buffers of float ``dtype`` are poisoned with."""
    if dtype == "bfloat16":
        return _BF16_NAN
    if dtype == "float8_e4m3":
        return _F8_NAN
    return dtypes.storage_numpy(dtype).type(np.nan)


def _float64(x: Any) -> np.ndarray:
    # torch tensors through torch (any device, bf16/fp8 included); everything else through numpy, so
    # numpy-only callers never need torch.
    if type(x).__module__.startswith("torch"):
        import torch
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def relative_error(out: Any, ref: Any) -> float:
    """``||out - ref|| / ||ref||`` in float64 (absolute when ref is all zeros); inf on NaN or shape mismatch."""
    o, r = _float64(out), _float64(ref)
    if o.shape != r.shape:
        if o.size != r.size:
            return float("inf")
        r = r.reshape(o.shape)
    if not bool(np.isfinite(o).all()) and not bool((o == r).all()):
        return float("inf")
    diff = float(np.linalg.norm((o - r).ravel()))
    base = float(np.linalg.norm(r.ravel()))
    err = diff / base if base > 0 else diff
    return float("inf") if math.isnan(err) else err
