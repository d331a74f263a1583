// tilec_emu/isa.h -- exact semantics of the warp-level PTX instructions tilec's CUDA code uses.
//
// Header-only, C++17, no globals: pure functions over the registers of all lanes of one warp (or the 128
// threads of one warpgroup) and a shared-memory byte window. Sources of truth: the PTX ISA's fragment
// layout figures (ldmatrix, mma.m16n8k16 / m16n8k32, wgmma D), its shfl.sync pseudo-code, its matrix
// descriptor format and canonical (swizzled) shared-memory layouts. Checked in tests/backends/cuda_emu/
// against tables written out independently, and on a GPU by benchmarks/gpu/emu_isa_check.py.
//
// Contract notes (beyond docs in /work/brief/isa_api.md):
// * shfl: lanes with active[l] == false get pred[l] = false and out[l] left untouched. A source lane that is
//   not active yields its in[] value (the PTX ISA leaves it undefined).
// * mma / wgmma arithmetic: each product exact, summed in float32 in increasing k order, then added to c
//   (the hardware's internal accumulation differs in the last bits for inexact sums; exact for small ints).
// * wgmma: a descriptor with a non-zero matrix base offset is reported through sink->error (not modelled).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tilec_emu {
namespace isa {

struct AccessSink {
  virtual void access(int thread, uint32_t offset, int bytes, bool write) = 0;
  virtual void error(const char* message) = 0;
  virtual ~AccessSink() = default;
};

namespace detail {
inline uint32_t fbits(float x) { uint32_t u; std::memcpy(&u, &x, 4); return u; }
inline float bitsf(uint32_t u) { float x; std::memcpy(&x, &u, 4); return x; }

// NaN results: every conversion that yields a NaN yields the destination's canonical NaN, sign dropped
// (f32 0x7fffffff, f16 and bf16 0x7fff), as the software paths of CUDA's cuda_fp16.hpp, cuda_bf16.hpp
// and cuda_fp8.hpp do (__internal_half2float, __internal_float2half, __internal_float2bfloat16,
// __nv_cvt_fp8_to_halfraw); bf16 -> f32 is a shift and keeps the bits.
constexpr uint32_t kCanonicalNanF32 = 0x7fffffffu;
constexpr uint16_t kCanonicalNan16 = 0x7fffu;

// Decode a small float (1 sign, E exponent, M mantissa bits, bias B). ieee_top: the all-ones exponent
// means inf/NaN (f16, e5m2); otherwise only S.1111.111 is NaN (e4m3 "fn").
inline float decode_small(uint32_t v, int E, int M, int bias, bool ieee_top) {
  const uint32_t sign = (v >> (E + M)) & 1u;
  const uint32_t e = (v >> M) & ((1u << E) - 1u);
  const uint32_t m = v & ((1u << M) - 1u);
  uint32_t out;
  if (e == (1u << E) - 1u && (ieee_top || m == (1u << M) - 1u)) {
    if (ieee_top && m == 0) return bitsf(0x7f800000u | (sign << 31));  // inf
    return bitsf(kCanonicalNanF32);
  } else if (e == 0) {
    if (m == 0) {
      out = 0;
    } else {  // subnormal: m * 2^(1 - bias - M)
      int sh = 0;
      uint32_t mm = m;
      while (!(mm & (1u << M))) { mm <<= 1; ++sh; }
      out = (uint32_t(1 - bias - sh + 127) << 23) | ((mm & ((1u << M) - 1u)) << (23 - M));
    }
  } else {
    out = (uint32_t(int(e) - bias + 127) << 23) | (m << (23 - M));
  }
  return bitsf(out | (sign << 31));
}

// |x| (finite, non-NaN float bits without sign) -> code of a small float, round-to-nearest-even, no clamp
// (the returned code may exceed the format's largest finite code; callers saturate or map to inf).
inline uint32_t encode_mag(uint32_t u, int M, int bias) {
  const int e = int(u >> 23);
  const uint32_t m = u & 0x7fffffu;
  const int emin = 1 - bias;  // unbiased exponent of the smallest normal
  uint32_t mant, shift, base;
  if (e - 127 >= emin) {
    mant = m;
    shift = uint32_t(23 - M);
    base = uint32_t(e - 127 + bias) << M;
  } else {
    if (e == 0) return 0;  // float subnormals are far below every target's smallest subnormal
    mant = m | 0x800000u;
    const int s = (emin - M) - (e - 150);  // value = mant * 2^(e-150); unit = 2^(emin-M)
    if (s > 25) return 0;
    shift = uint32_t(s);
    base = 0;
  }
  uint32_t r = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (r & 1u))) ++r;
  return base + r;  // carries from the mantissa into the exponent are correct by construction
}
}  // namespace detail

// ---- number formats ----------------------------------------------------------------------------------
inline float f16_to_f32(uint16_t h) { return detail::decode_small(h, 5, 10, 15, true); }
inline uint16_t f32_to_f16_rn(float x) {
  const uint32_t u = detail::fbits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return detail::kCanonicalNan16;
  if (a == 0x7f800000u) return uint16_t(sign | 0x7c00u);
  const uint32_t c = detail::encode_mag(a, 10, 15);
  return uint16_t(sign | (c > 0x7bffu ? 0x7c00u : c));
}
inline float bf16_to_f32(uint16_t h) { return detail::bitsf(uint32_t(h) << 16); }
inline uint16_t f32_to_bf16_rn(float x) {
  const uint32_t u = detail::fbits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return detail::kCanonicalNan16;
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float e4m3_to_f32(uint8_t v) { return detail::decode_small(v, 4, 3, 7, false); }
inline uint8_t f32_to_e4m3_satfinite(float x) {
  const uint32_t u = detail::fbits(x), sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7f;
  if (a == 0x7f800000u) return uint8_t(sign | 0x7eu);
  const uint32_t c = detail::encode_mag(a, 3, 7);
  return uint8_t(sign | (c > 0x7eu ? 0x7eu : c));
}
inline float e5m2_to_f32(uint8_t v) { return detail::decode_small(v, 5, 2, 15, true); }
inline uint8_t f32_to_e5m2_satfinite(float x) {
  const uint32_t u = detail::fbits(x), sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7f;
  if (a == 0x7f800000u) return uint8_t(sign | 0x7bu);
  const uint32_t c = detail::encode_mag(a, 2, 15);
  return uint8_t(sign | (c > 0x7bu ? 0x7bu : c));
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{,.trans}.shared.b16 ------------------------------------------
// Matrix i's row j is at the address of lane 8i+j. Lane l's register i holds matrix i's elements
// (row l/4, cols 2(l%4), 2(l%4)+1) -- low half first; with .trans, (rows 2(l%4), 2(l%4)+1, col l/4).
inline void ldmatrix(int num, bool trans, const uint8_t* smem, uint32_t smem_bytes, const uint32_t addr[32],
                     uint32_t out[32][4], AccessSink* sink) {
  if (num != 1 && num != 2 && num != 4) {
    if (sink) sink->error("ldmatrix: .num must be x1, x2 or x4");
    return;
  }
  uint16_t rows[4][8][8];
  for (int i = 0; i < num; ++i)
    for (int j = 0; j < 8; ++j) {
      const int src = 8 * i + j;
      const uint32_t a = addr[src];
      if ((a & 15u) || smem_bytes < 16 || a > smem_bytes - 16) {
        if (sink) sink->error((a & 15u) ? "ldmatrix: row address not 16-byte aligned"
                                        : "ldmatrix: row address outside shared memory");
        std::memset(rows[i][j], 0, sizeof(rows[i][j]));
        continue;
      }
      if (sink) sink->access(src, a, 16, false);
      std::memcpy(rows[i][j], smem + a, 16);
    }
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < num; ++i) {
      const int g = l >> 2, t = l & 3;
      const uint16_t lo = trans ? rows[i][2 * t][g] : rows[i][g][2 * t];
      const uint16_t hi = trans ? rows[i][2 * t + 1][g] : rows[i][g][2 * t + 1];
      out[l][i] = uint32_t(lo) | (uint32_t(hi) << 16);
    }
}

enum class AB { f16, bf16, e4m3, e5m2 };

namespace detail {
inline float elem16(AB ab, uint32_t reg, int half) {
  const uint16_t h = uint16_t(reg >> (16 * half));
  return ab == AB::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
}
inline float elem8(AB ab, uint32_t reg, int byte) {
  const uint8_t v = uint8_t(reg >> (8 * byte));
  return ab == AB::e5m2 ? e5m2_to_f32(v) : e4m3_to_f32(v);
}
inline void mma_finish(const float acc[16][8], const float c[32][4], float d[32][4]) {
  float res[32][4];
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < 4; ++i) res[l][i] = acc[(l >> 2) + 8 * (i >> 1)][2 * (l & 3) + (i & 1)] + c[l][i];
  std::memcpy(d, res, sizeof(res));  // d may alias c
}
}  // namespace detail

// ---- mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 -----------------------------------
// g = lane/4, t = lane%4. A reg r, half h: row g + 8(r&1), col 2t + h + 8(r>>1). B reg r, half h: k = 2t + h
// + 8r, n = g. C/D reg i: row g + 8(i>>1), col 2t + (i&1).
inline void mma_m16n8k16(AB ab, const uint32_t a[32][4], const uint32_t b[32][2], const float c[32][4],
                         float d[32][4]) {
  float A[16][16], B[16][8], acc[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    for (int r = 0; r < 4; ++r)
      for (int h = 0; h < 2; ++h) A[g + 8 * (r & 1)][2 * t + h + 8 * (r >> 1)] = detail::elem16(ab, a[l][r], h);
    for (int r = 0; r < 2; ++r)
      for (int h = 0; h < 2; ++h) B[2 * t + h + 8 * r][g] = detail::elem16(ab, b[l][r], h);
  }
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      float s = 0.0f;
      for (int k = 0; k < 16; ++k) s += A[m][k] * B[k][n];
      acc[m][n] = s;
    }
  detail::mma_finish(acc, c, d);
}

// ---- mma.sync.aligned.m16n8k32.row.col.f32.{e4m3,e5m2}.{e4m3,e5m2}.f32 ---------------------------------
// A reg r, byte j: row g + 8(r&1), col 4t + j + 16(r>>1). B reg r, byte j: k = 4t + j + 16r, n = g.
inline void mma_m16n8k32(AB ab, const uint32_t a[32][4], const uint32_t b[32][2], const float c[32][4],
                         float d[32][4]) {
  float A[16][32], B[32][8], acc[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    for (int r = 0; r < 4; ++r)
      for (int j = 0; j < 4; ++j) A[g + 8 * (r & 1)][4 * t + j + 16 * (r >> 1)] = detail::elem8(ab, a[l][r], j);
    for (int r = 0; r < 2; ++r)
      for (int j = 0; j < 4; ++j) B[4 * t + j + 16 * r][g] = detail::elem8(ab, b[l][r], j);
  }
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      float s = 0.0f;
      for (int k = 0; k < 32; ++k) s += A[m][k] * B[k][n];
      acc[m][n] = s;
    }
  detail::mma_finish(acc, c, d);
}

// ---- shfl.sync.{idx,up,down,bfly}.b32 (the PTX ISA's pseudo-code) -----------------------------------
enum class Shfl { idx, up, down, bfly };
inline void shfl(Shfl mode, const uint32_t in[32], const uint32_t b[32], uint32_t c, const bool active[32],
                 uint32_t out[32], bool pred[32]) {
  uint32_t res[32];
  bool pv[32];
  const int cval = int(c & 31u), segmask = int((c >> 8) & 31u);
  for (int lane = 0; lane < 32; ++lane) {
    if (!active[lane]) continue;
    const int bval = int(b[lane] & 31u);
    const int max_lane = (lane & segmask) | (cval & ~segmask), min_lane = lane & segmask;
    int j;
    bool p;
    switch (mode) {
      case Shfl::up: j = lane - bval; p = j >= max_lane; break;
      case Shfl::down: j = lane + bval; p = j <= max_lane; break;
      case Shfl::bfly: j = lane ^ bval; p = j <= max_lane; break;
      default: j = min_lane | (bval & ~segmask); p = j <= max_lane; break;
    }
    if (!p) j = lane;
    res[lane] = in[j];
    pv[lane] = p;
  }
  for (int lane = 0; lane < 32; ++lane) {
    if (!active[lane]) { pred[lane] = false; continue; }
    out[lane] = res[lane];
    pred[lane] = pv[lane];
  }
}
// CUDA's __shfl_*_sync(mask, v, lane_or_delta, width) c operand.
inline uint32_t shfl_c(Shfl mode, int width) { return (uint32_t(32 - width) << 8) | (mode == Shfl::up ? 0u : 31u); }

// ---- vote.sync ------------------------------------------------------------------------------------------
inline uint32_t ballot(const bool p[32], const bool active[32]) {
  uint32_t m = 0;
  for (int l = 0; l < 32; ++l)
    if (active[l] && p[l]) m |= 1u << l;
  return m;
}
inline uint32_t active_mask(const bool active[32]) {
  uint32_t m = 0;
  for (int l = 0; l < 32; ++l)
    if (active[l]) m |= 1u << l;
  return m;
}
inline bool vote_all(const bool p[32], const bool active[32]) { return ballot(p, active) == active_mask(active); }
inline bool vote_any(const bool p[32], const bool active[32]) { return ballot(p, active) != 0; }
inline bool vote_uni(const bool p[32], const bool active[32]) {
  const uint32_t b = ballot(p, active);
  return b == 0 || b == active_mask(active);
}

// ---- Hopper shared-memory matrix descriptors ------------------------------------------------------------
struct MatrixDesc { uint32_t start, lbo, sbo, base_offset; int swizzle; };  // start/lbo/sbo in bytes
inline MatrixDesc decode_desc(uint64_t desc) {
  MatrixDesc d;
  d.start = uint32_t(desc & 0x3fffu) << 4;
  d.lbo = uint32_t((desc >> 16) & 0x3fffu) << 4;
  d.sbo = uint32_t((desc >> 32) & 0x3fffu) << 4;
  d.base_offset = uint32_t((desc >> 49) & 7u);
  d.swizzle = int((desc >> 62) & 3u);
  return d;
}
inline uint64_t encode_desc(const MatrixDesc& d) {
  return uint64_t((d.start >> 4) & 0x3fffu) | (uint64_t((d.lbo >> 4) & 0x3fffu) << 16) |
         (uint64_t((d.sbo >> 4) & 0x3fffu) << 32) | (uint64_t(d.base_offset & 7u) << 49) |
         (uint64_t(d.swizzle & 3) << 62);
}
// Width in bytes of one swizzled row (the swizzle atom is 8 such rows): mode 1 128B, 2 64B, 3 32B, 0 16B.
inline int swizzle_bytes(int mode) { return mode == 1 ? 128 : mode == 2 ? 64 : mode == 3 ? 32 : 16; }
// The swizzle on absolute shared addresses: 16-byte chunk bits [4, 4+b) ^= address bits [7, 7+b).
inline uint32_t swizzle_addr(uint32_t addr, int mode) {
  const uint32_t bits = mode == 1 ? 3u : mode == 2 ? 2u : mode == 3 ? 1u : 0u;
  return addr ^ (((addr >> 7) & ((1u << bits) - 1u)) << 4);
}
// Canonical layouts (PTX ISA "Shared memory matrix layout", T = 16 bytes, W = swizzle_bytes):
//  K-major:  (mn, k) -> (mn%8)*W + (mn/8)*SBO + (kb%W) + (kb/W)*LBO                 (kb = k*elem_bytes)
//            no swizzle: core matrices of 8 rows x 16 B: (mn%8)*16 + (mn/8)*SBO + (kb%16) + (kb/16)*LBO
//  MN-major: (mn, k) -> (mb%W) + (mb/W)*LBO + (k%8)*W + (k/8)*SBO                   (mb = mn*elem_bytes)
// then swizzled on the absolute address.
inline uint32_t desc_element_offset(const MatrixDesc& d, bool k_major, int elem_bytes, int mn, int k) {
  const uint32_t W = uint32_t(swizzle_bytes(d.swizzle));
  uint32_t off;
  if (k_major) {
    const uint32_t kb = uint32_t(k * elem_bytes);
    off = uint32_t(mn % 8) * W + uint32_t(mn / 8) * d.sbo + kb % W + (kb / W) * d.lbo;
  } else {
    const uint32_t mb = uint32_t(mn * elem_bytes);
    off = mb % W + (mb / W) * d.lbo + uint32_t(k % 8) * W + uint32_t(k / 8) * d.sbo;
  }
  return swizzle_addr(d.start + off, d.swizzle);
}

// ---- wgmma.mma_async.sync.aligned.m64n{N}k16.f32.{f16,bf16}.{f16,bf16} (both operands from descriptors) -
// Accumulator fragment: thread t (warp w = t/32, lane l), register i < N/2: row 16w + 8((i>>1)&1) + l/4,
// col 8(i>>2) + 2(l%4) + (i&1). trans_a / trans_b: 0 = K-major, 1 = MN-major. scale_d 0: d = a*b.
inline void wgmma_m64nNk16(AB ab, int n, uint64_t desc_a, uint64_t desc_b, int trans_a, int trans_b, int scale_d,
                           const uint8_t* smem, uint32_t smem_bytes, float* const d[128], AccessSink* sink) {
  if (n < 8 || n > 256 || n % 8 || (ab != AB::f16 && ab != AB::bf16)) {
    if (sink) sink->error("wgmma: N must be a multiple of 8 in [8, 256] and the type f16 or bf16");
    return;
  }
  const MatrixDesc da = decode_desc(desc_a), db = decode_desc(desc_b);
  if (da.base_offset || db.base_offset) {
    if (sink) sink->error("wgmma: non-zero matrix base offset is not modelled");
    return;
  }
  static thread_local float A[64][16], B[256][16];
  bool ok = true;
  auto load = [&](const MatrixDesc& md, bool k_major, int mn, int k, int thread) -> float {
    const uint32_t off = desc_element_offset(md, k_major, 2, mn, k);
    if (smem_bytes < 2 || off > smem_bytes - 2) {
      if (sink && ok) sink->error("wgmma: descriptor addresses outside shared memory");
      ok = false;
      return 0.0f;
    }
    if (sink) sink->access(thread, off, 2, false);
    uint16_t h;
    std::memcpy(&h, smem + off, 2);
    return ab == AB::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  };
  // Which thread "did" an operand access is not defined by the ISA; attribute it to thread (mn % 128).
  for (int m = 0; m < 64; ++m)
    for (int k = 0; k < 16; ++k) A[m][k] = load(da, trans_a == 0, m, k, m);
  for (int j = 0; j < n; ++j)
    for (int k = 0; k < 16; ++k) B[j][k] = load(db, trans_b == 0, j, k, j % 128);
  if (!ok) return;
  for (int t = 0; t < 128; ++t) {
    const int w = t >> 5, l = t & 31;
    for (int i = 0; i < n / 2; ++i) {
      const int row = 16 * w + 8 * ((i >> 1) & 1) + (l >> 2), col = 8 * (i >> 2) + 2 * (l & 3) + (i & 1);
      float s = 0.0f;
      for (int k = 0; k < 16; ++k) s += A[row][k] * B[col][k];
      d[t][i] = scale_d ? s + d[t][i] : s;
    }
  }
}

}  // namespace isa
}  // namespace tilec_emu
