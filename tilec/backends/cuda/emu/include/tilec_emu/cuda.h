// tilec cuda-emu: what the generated CUDA C++ needs from the CUDA toolkit, for g++ on the CPU.
// Keywords and qualifiers as macros, the built-in index variables per fiber (runtime.h), the narrow float
// types with exact round-to-nearest-even conversions (isa.h), intrinsics and math functions, warp
// shuffles and votes as real rendezvous points, atomics, and the few host API calls the launcher makes.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "tilec_emu/isa.h"
#include "tilec_emu/runtime.h"
#include "tilec_emu/racecheck.h"

#pragma GCC visibility push(hidden)

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
#if TILEC_EMU_RACECHECK
#define __restrict__  // checked pointers (racecheck.h) are classes
#else
#define __restrict__ __restrict
#endif

#define threadIdx (::tilec_emu::g_cur->thread_idx)
#define blockIdx (::tilec_emu::g_launch->block_idx)
#define blockDim (::tilec_emu::g_launch->block_dim)
#define gridDim (::tilec_emu::g_launch->grid)
constexpr int warpSize = 32;

using std::isinf;
using std::isnan;
using std::max;
using std::min;

// ---- narrow float types (storage only: the generated code computes in float) --------------------------
struct __half { uint16_t __x; };
using half = __half;
struct __half2 { __half x, y; };
struct __nv_bfloat16 { uint16_t __x; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
struct __nv_fp8_e4m3 {
  uint8_t __x;
  explicit operator float() const { return ::tilec_emu::isa::e4m3_to_f32(__x); }
};
enum __nv_saturation_t { __NV_NOSAT, __NV_SATFINITE };
enum __nv_fp8_interpretation_t { __NV_E4M3, __NV_E5M2 };

inline float __half2float(__half h) { return ::tilec_emu::isa::f16_to_f32(h.__x); }
inline __half __float2half_rn(float x) { return __half{::tilec_emu::isa::f32_to_f16_rn(x)}; }
inline __half __float2half(float x) { return __float2half_rn(x); }
inline float __bfloat162float(__nv_bfloat16 h) { return ::tilec_emu::isa::bf16_to_f32(h.__x); }
inline __nv_bfloat16 __float2bfloat16_rn(float x) { return __nv_bfloat16{::tilec_emu::isa::f32_to_bf16_rn(x)}; }
inline __nv_bfloat16 __float2bfloat16(float x) { return __float2bfloat16_rn(x); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short v) { return __half{v}; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short v) { return __nv_bfloat16{v}; }
inline __half2 __halves2half2(__half lo, __half hi) { return __half2{lo, hi}; }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 lo, __nv_bfloat16 hi) { return __nv_bfloat162{lo, hi}; }
inline uint8_t __nv_cvt_float_to_fp8(float x, __nv_saturation_t sat, __nv_fp8_interpretation_t kind) {
  (void)sat;  // the generated code always asks for __NV_SATFINITE
  return kind == __NV_E4M3 ? ::tilec_emu::isa::f32_to_e4m3_satfinite(x) : ::tilec_emu::isa::f32_to_e5m2_satfinite(x);
}

inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int u; memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int u) { float x; memcpy(&x, &u, 4); return x; }

#define CUDART_NAN_F __builtin_nanf("")
#define CUDART_INF_F __builtin_inff()
#define CUDART_NAN __builtin_nan("")
#define CUDART_INF __builtin_inf()

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }

struct uint4 { unsigned x, y, z, w; };
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

inline void __syncthreads() { ::tilec_emu::syncthreads(); }
[[noreturn]] inline void __trap() { ::tilec_emu::fail("__trap()"); }

// ---- warp shuffles and votes: rendezvous of the whole warp, isa.h's semantics ------------------------
namespace tilec_emu {
struct ShflSlot { uint32_t v, b, out; bool pred; unsigned mask; };

inline uint32_t shfl32(isa::Shfl mode, const char* what, unsigned mask, uint32_t v, int b, int width) {
  ShflSlot mine{v, static_cast<uint32_t>(b), 0, false, mask};
  const uint32_t c = (static_cast<uint32_t>(32 - width) << 8) | (mode == isa::Shfl::up ? 0u : 31u);
  warp_collective(what, &mine, [&](void** slot) {
    uint32_t in[32], bb[32], out[32];
    bool active[32], pred[32];
    for (int l = 0; l < 32; ++l) {
      const ShflSlot& s = *static_cast<ShflSlot*>(slot[l]);
      in[l] = s.v;
      bb[l] = s.b;
      active[l] = (s.mask >> l) & 1u;
    }
    isa::shfl(mode, in, bb, c, active, out, pred);
    for (int l = 0; l < 32; ++l) {
      ShflSlot& s = *static_cast<ShflSlot*>(slot[l]);
      s.out = out[l];
      s.pred = pred[l];
    }
  });
  return mine.out;
}

template <class T>
inline T shfl(isa::Shfl mode, const char* what, unsigned mask, T v, int b, int width) {
  static_assert(sizeof(T) <= 8, "shuffle of a value wider than 64 bits");
  if constexpr (sizeof(T) == 8) {
    uint64_t u;
    memcpy(&u, &v, 8);
    const uint64_t lo = shfl32(mode, what, mask, static_cast<uint32_t>(u), b, width);
    const uint64_t hi = shfl32(mode, what, mask, static_cast<uint32_t>(u >> 32), b, width);
    u = lo | (hi << 32);
    T r;
    memcpy(&r, &u, 8);
    return r;
  } else if constexpr (std::is_floating_point_v<T> || sizeof(T) == 4) {
    uint32_t u = 0;
    memcpy(&u, &v, sizeof(T));
    u = shfl32(mode, what, mask, u, b, width);
    T r;
    memcpy(&r, &u, sizeof(T));
    return r;
  } else {  // narrow integers and bool promote to int, as CUDA's overloads do
    const int x = static_cast<int>(v);
    return static_cast<T>(static_cast<int>(shfl32(mode, what, mask, static_cast<uint32_t>(x), b, width)));
  }
}

struct VoteSlot { bool p; unsigned mask; uint32_t out; };
inline uint32_t ballot_all(unsigned mask, bool p, const char* what) {
  VoteSlot mine{p, mask, 0};
  warp_collective(what, &mine, [&](void** slot) {
    bool pp[32], active[32];
    for (int l = 0; l < 32; ++l) {
      const VoteSlot& s = *static_cast<VoteSlot*>(slot[l]);
      pp[l] = s.p;
      active[l] = (s.mask >> l) & 1u;
    }
    const uint32_t r = isa::ballot(pp, active);
    for (int l = 0; l < 32; ++l) static_cast<VoteSlot*>(slot[l])->out = r;
  });
  return mine.out;
}
}  // namespace tilec_emu

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::tilec_emu::shfl(::tilec_emu::isa::Shfl::idx, "__shfl_sync", mask, v, src, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::tilec_emu::shfl(::tilec_emu::isa::Shfl::up, "__shfl_up_sync", mask, v, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::tilec_emu::shfl(::tilec_emu::isa::Shfl::down, "__shfl_down_sync", mask, v, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::tilec_emu::shfl(::tilec_emu::isa::Shfl::bfly, "__shfl_xor_sync", mask, v, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int p) { return ::tilec_emu::ballot_all(mask, p != 0, "__ballot_sync"); }
inline int __all_sync(unsigned mask, int p) {
  const unsigned b = ::tilec_emu::ballot_all(mask, p != 0, "__all_sync");
  return (b & mask) == (mask & 0xffffffffu);
}
inline int __any_sync(unsigned mask, int p) { return ::tilec_emu::ballot_all(mask, p != 0, "__any_sync") != 0; }

// ---- atomics (real atomics: the emulator may run blocks on several OS threads in the future) -----------
template <class T>
inline T atomicCAS(T* p, T compare, T value) {
  static_assert(std::is_integral_v<T>, "atomicCAS on integers");
  __atomic_compare_exchange_n(p, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;  // the old value
}
template <class T, class F>
inline T tilec_emu_atomic_update(T* p, F f) {
  using U = std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
  U* a = reinterpret_cast<U*>(p);
  U old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
  for (;;) {
    T ov;
    memcpy(&ov, &old, sizeof(T));
    const T nv = f(ov);
    U nb;
    memcpy(&nb, &nv, sizeof(T));
    if (__atomic_compare_exchange_n(a, &old, nb, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return ov;
  }
}
inline float atomicAdd(float* p, float v) { return tilec_emu_atomic_update(p, [v](float o) { return o + v; }); }
inline double atomicAdd(double* p, double v) { return tilec_emu_atomic_update(p, [v](double o) { return o + v; }); }
inline __half atomicAdd(__half* p, __half v) {
  return tilec_emu_atomic_update(p, [v](__half o) { return __float2half_rn(__half2float(o) + __half2float(v)); });
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
  return tilec_emu_atomic_update(
      p, [v](__nv_bfloat16 o) { return __float2bfloat16_rn(__bfloat162float(o) + __bfloat162float(v)); });
}
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
template <class T>
inline T atomicMax(T* p, T v) { return tilec_emu_atomic_update(p, [v](T o) { return o < v ? v : o; }); }
template <class T>
inline T atomicMin(T* p, T v) { return tilec_emu_atomic_update(p, [v](T o) { return v < o ? v : o; }); }

#if TILEC_EMU_RACECHECK
// Atomics through checked pointers (racecheck.h): bounds-checked and recorded as atomic accesses, which
// race with other threads' plain accesses but never with their atomics.
#define TILEC_EMU_CHECKED_ATOMIC(NAME)                                                          \
  template <class T, class... V>                                                                \
  inline auto NAME(::tilec_emu::Ptr<T> p, V... v) {                                             \
    ::tilec_emu::access(p.region, p.p, sizeof(T), ::tilec_emu::k_atomic, p.line);               \
    return NAME(p.p, v...);                                                                     \
  }
TILEC_EMU_CHECKED_ATOMIC(atomicAdd)
TILEC_EMU_CHECKED_ATOMIC(atomicMax)
TILEC_EMU_CHECKED_ATOMIC(atomicMin)
TILEC_EMU_CHECKED_ATOMIC(atomicCAS)
#undef TILEC_EMU_CHECKED_ATOMIC
#endif

// ---- host API used by the generated launcher -----------------------------------------------------------
using cudaError_t = int;
using cudaStream_t = void*;
constexpr cudaError_t cudaSuccess = 0;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
template <class F>
inline cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int bytes) {
  if (bytes > TILEC_EMU_SMEM_MAX) {
    snprintf(::tilec_emu::g_error, sizeof(::tilec_emu::g_error), "%d bytes of dynamic shared memory (at most %d)",
             bytes, TILEC_EMU_SMEM_MAX);
    return 1;
  }
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() {
  const int e = ::tilec_emu::g_last_error;
  ::tilec_emu::g_last_error = 0;
  return e;
}
inline const char* cudaGetErrorString(cudaError_t e) { return e ? ::tilec_emu::g_error : "no error"; }

namespace tilec_emu {
// The launch that replaces `kernel<<<grid, threads, smem, stream>>>(args...)`: every fiber calls the
// kernel with a copy of the arguments, converted to its parameter types.
template <class... P, class... A>
inline void launch(const char* name, void (*kernel)(P...), dim3 grid, int threads, unsigned smem_bytes,
                   cudaStream_t stream, A... args) {
  (void)stream;
  struct Ctx {
    void (*kernel)(P...);
    std::tuple<P...> args;
  } ctx{kernel, std::tuple<P...>(args...)};
  auto body = [](void* c) {
    Ctx& x = *static_cast<Ctx*>(c);
    std::apply(x.kernel, x.args);
  };
  run_grid(name, grid, threads, smem_bytes, body, &ctx);
}
}  // namespace tilec_emu

#pragma GCC visibility pop
