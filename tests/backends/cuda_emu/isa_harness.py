"""ctypes access to tilec_emu/isa.h: a few extern "C" wrappers compiled with g++, cached by content hash.

Shared by tests/backends/cuda_emu/test_isa_*.py and benchmarks/gpu/emu_isa_check.py (the host side of the
hardware check), so both run the very same code.
"""
from __future__ import annotations

import ctypes
import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from tilec.runtime import cache as runtime_cache

INCLUDE = Path(__file__).resolve().parents[3] / "tilec" / "backends" / "cuda" / "emu" / "include"
HEADER = INCLUDE / "tilec_emu" / "isa.h"

SOURCE = r"""
#include "tilec_emu/isa.h"
using namespace tilec_emu::isa;
struct Rec : AccessSink {
  int n = 0, errors = 0;
  void access(int, uint32_t, int, bool) override { ++n; }
  void error(const char*) override { ++errors; }
};
extern "C" {
void conv16(int kind, const uint16_t* in, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = kind ? bf16_to_f32(in[i]) : f16_to_f32(in[i]);
}
void enc16(int kind, const float* in, uint16_t* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = kind ? f32_to_bf16_rn(in[i]) : f32_to_f16_rn(in[i]);
}
void conv8(int kind, const uint8_t* in, float* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = kind ? e5m2_to_f32(in[i]) : e4m3_to_f32(in[i]);
}
void enc8(int kind, const float* in, uint8_t* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = kind ? f32_to_e5m2_satfinite(in[i]) : f32_to_e4m3_satfinite(in[i]);
}
int ldm(int num, int trans, const uint8_t* smem, uint32_t bytes, const uint32_t* addr, uint32_t* out) {
  Rec r;
  ldmatrix(num, trans != 0, smem, bytes, addr, reinterpret_cast<uint32_t(*)[4]>(out), &r);
  return r.errors ? -r.errors : r.n;
}
void mma(int shape_k, int ab, const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  auto A = reinterpret_cast<const uint32_t(*)[4]>(a);
  auto B = reinterpret_cast<const uint32_t(*)[2]>(b);
  auto C = reinterpret_cast<const float(*)[4]>(c);
  auto D = reinterpret_cast<float(*)[4]>(d);
  if (shape_k == 16) mma_m16n8k16(AB(ab), A, B, C, D); else mma_m16n8k32(AB(ab), A, B, C, D);
}
void shf(int mode, const uint32_t* in, const uint32_t* b, uint32_t c, const uint8_t* act, uint32_t* out,
         uint8_t* pred) {
  bool a[32], p[32];
  for (int i = 0; i < 32; ++i) { a[i] = act[i] != 0; p[i] = pred[i] != 0; }
  shfl(Shfl(mode), in, b, c, a, out, p);
  for (int i = 0; i < 32; ++i) pred[i] = p[i];
}
uint32_t shc(int mode, int width) { return shfl_c(Shfl(mode), width); }
uint32_t vote(int kind, const uint8_t* p, const uint8_t* act) {
  bool a[32], q[32];
  for (int i = 0; i < 32; ++i) { a[i] = act[i] != 0; q[i] = p[i] != 0; }
  if (kind == 0) return ballot(q, a);
  if (kind == 1) return vote_all(q, a);
  if (kind == 2) return vote_any(q, a);
  return vote_uni(q, a);
}
void desc(uint64_t d, uint32_t* f) {
  MatrixDesc m = decode_desc(d);
  f[0] = m.start; f[1] = m.lbo; f[2] = m.sbo; f[3] = m.base_offset; f[4] = uint32_t(m.swizzle);
}
uint32_t elem_off(uint64_t d, int k_major, int eb, int mn, int k) {
  return desc_element_offset(decode_desc(d), k_major != 0, eb, mn, k);
}
int wgmma(int ab, int n, uint64_t da, uint64_t db, int ta, int tb, int sd, const uint8_t* smem, uint32_t bytes,
          float* d) {
  float* ptr[128];
  for (int t = 0; t < 128; ++t) ptr[t] = d + t * (n / 2);
  Rec r;
  wgmma_m64nNk16(AB(ab), n, da, db, ta, tb, sd, smem, bytes, ptr, &r);
  return r.errors ? -r.errors : r.n;
}
}
"""

_U32, _F32, _U8, _U16 = (np.ctypeslib.ndpointer(t, flags="C_CONTIGUOUS") for t in
                         (np.uint32, np.float32, np.uint8, np.uint16))


@lru_cache(maxsize=1)
def lib() -> ctypes.CDLL:
    key = hashlib.sha256((SOURCE + HEADER.read_text()).encode()).hexdigest()[:20]
    out = runtime_cache.cache_dir("cuda-emu-isa") / f"isa-{key}.so"
    if not out.exists():
        src = out.with_suffix(".cpp")
        src.write_text(SOURCE)
        tmp = out.with_suffix(f".tmp{id(out)}.so")
        subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{INCLUDE}",
                        str(src), "-o", str(tmp)], check=True)
        tmp.replace(out)
    so = ctypes.CDLL(str(out))
    u32, i32, u64 = ctypes.c_uint32, ctypes.c_int, ctypes.c_uint64
    for name, args, res in [
        ("conv16", [i32, _U16, _F32, i32], None), ("enc16", [i32, _F32, _U16, i32], None),
        ("conv8", [i32, _U8, _F32, i32], None), ("enc8", [i32, _F32, _U8, i32], None),
        ("ldm", [i32, i32, _U8, u32, _U32, _U32], i32), ("mma", [i32, i32, _U32, _U32, _F32, _F32], None),
        ("shf", [i32, _U32, _U32, u32, _U8, _U32, _U8], None), ("shc", [i32, i32], u32),
        ("vote", [i32, _U8, _U8], u32), ("desc", [u64, _U32], None),
        ("elem_off", [u64, i32, i32, i32, i32], u32),
        ("wgmma", [i32, i32, u64, u64, i32, i32, i32, _U8, u32, _F32], i32)]:
        fn = getattr(so, name)
        fn.argtypes, fn.restype = args, res
    return so


AB = {"f16": 0, "bf16": 1, "e4m3": 2, "e5m2": 3}
SHFL = {"idx": 0, "up": 1, "down": 2, "bfly": 3}


def decode16(kind: str, bits: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(bits, np.uint16)
    out = np.empty(bits.shape, np.float32)
    lib().conv16(int(kind == "bf16"), bits, out, bits.size)
    return out


def encode16(kind: str, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty(x.shape, np.uint16)
    lib().enc16(int(kind == "bf16"), x, out, x.size)
    return out


def decode8(kind: str, bits: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(bits, np.uint8)
    out = np.empty(bits.shape, np.float32)
    lib().conv8(int(kind == "e5m2"), bits, out, bits.size)
    return out


def encode8(kind: str, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty(x.shape, np.uint8)
    lib().enc8(int(kind == "e5m2"), x, out, x.size)
    return out


def ldmatrix(num: int, trans: bool, smem: np.ndarray, addr) -> tuple[np.ndarray, int]:
    """(out[32, 4] uint32, accesses or -errors)."""
    smem = np.ascontiguousarray(smem, np.uint8)
    out = np.zeros((32, 4), np.uint32)
    n = lib().ldm(num, int(trans), smem, smem.size, np.ascontiguousarray(addr, np.uint32), out)
    return out, n


def mma(k: int, ab: str, a, b, c) -> np.ndarray:
    d = np.empty((32, 4), np.float32)
    lib().mma(k, AB[ab], np.ascontiguousarray(a, np.uint32), np.ascontiguousarray(b, np.uint32),
              np.ascontiguousarray(c, np.float32), d)
    return d


def shfl(mode: str, vals, b, c: int, active, out=None) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(32, np.uint32) if out is None else np.array(out, np.uint32)
    pred = np.full(32, 7, np.uint8)
    lib().shf(SHFL[mode], np.ascontiguousarray(vals, np.uint32), np.ascontiguousarray(b, np.uint32), c,
              np.ascontiguousarray(active, np.uint8), out, pred)
    return out, pred.astype(bool)


def shfl_c(mode: str, width: int) -> int:
    return lib().shc(SHFL[mode], width)


def vote(kind: str, p, active) -> int:
    return lib().vote({"ballot": 0, "all": 1, "any": 2, "uni": 3}[kind], np.ascontiguousarray(p, np.uint8),
                      np.ascontiguousarray(active, np.uint8))


def decode_desc(d: int) -> tuple[int, int, int, int, int]:
    f = np.zeros(5, np.uint32)
    lib().desc(d, f)
    return tuple(int(v) for v in f)  # type: ignore[return-value]


def elem_off(d: int, k_major: bool, eb: int, mn: int, k: int) -> int:
    return lib().elem_off(d, int(k_major), eb, mn, k)


def wgmma(ab: str, n: int, da: int, db: int, ta: int, tb: int, sd: int, smem: np.ndarray, d=None):
    """(d[128, n/2] float32, accesses or -errors); d is the accumulator before (poisoned if None)."""
    d = np.full((128, n // 2), np.nan, np.float32) if d is None else np.array(d, np.float32)
    smem = np.ascontiguousarray(smem, np.uint8)
    r = lib().wgmma(AB[ab], n, da, db, ta, tb, sd, smem, smem.size, d)
    return d, r
