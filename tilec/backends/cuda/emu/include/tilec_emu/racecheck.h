// tilec cuda-emu race and bounds checker (compile-time switch TILEC_EMU_RACECHECK, target option racecheck).
//
// The emulation flavour declares kernel parameters and shared buffers as TILEC_EMU_PTR(T): a plain T*
// without the switch (zero cost, the cuda target's code), a checked pointer `Ptr<T>` with it. A checked
// pointer knows its region (the block's shared memory, or the numpy array passed for a parameter, which
// EmuLibrary.call registers through tilec_emu_set_args); p[i] and *p give a `Ref<T>` that records the
// access when it is read (conversion to T) or written (assignment), with the generated line of the
// expression (__builtin_LINE() in the index's default argument). Shared accesses go into a per-block
// shadow of one cell per byte, valid for one barrier epoch (__syncthreads starts a new one): a byte
// written by one thread and read or written by another in the same epoch is a race; atomics do not race
// with atomics. Warp collectives (shuffles, votes, ldmatrix, mma) order nothing (CUDA guarantees memory
// ordering only at __syncwarp / barriers), so they do not start an epoch. Emulated instructions record
// their shared accesses as the threads the ISA names (ops.h). Accesses outside the region are errors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tilec_emu/runtime.h"

#pragma GCC visibility push(hidden)

#if TILEC_EMU_RACECHECK
#define TILEC_EMU_PTR(...) ::tilec_emu::Ptr<__VA_ARGS__>
#else
#define TILEC_EMU_PTR(...) __VA_ARGS__*
#endif

namespace tilec_emu {

enum Kind { k_read = 0, k_write = 1, k_atomic = 2 };
inline const char* kind_name(int k) { return k == k_read ? "read" : k == k_write ? "write" : "atomic"; }

#if TILEC_EMU_RACECHECK

struct Who { int32_t line; int16_t tid; };
// One shadow byte: up to two distinct threads per kind of access in the current epoch (two suffice: a
// third thread differs from at least one of them).
struct Cell {
  uint32_t epoch;
  Who who[3][2];
};

struct Shadow {
  std::vector<Cell> cells;
  uint32_t epoch = 1;
};
inline Shadow g_shadow;

// A new barrier epoch (every __syncthreads, and the start of each block).
inline void race_epoch() {
  if (++g_shadow.epoch == 0) {  // wrapped: forget every cell
    for (Cell& c : g_shadow.cells) c.epoch = 0;
    g_shadow.epoch = 1;
  }
}
inline void race_block(unsigned smem_bytes) {
  if (g_shadow.cells.size() < smem_bytes) g_shadow.cells.resize(smem_bytes, Cell{0, {}});
  race_epoch();
}

inline bool conflict(int a, int b) { return !(a == k_read && b == k_read) && !(a == k_atomic && b == k_atomic); }

// Record an access of `bytes` shared bytes at offset `off` by thread `tid` at generated line `line`.
inline void shared_access(uint32_t off, uint32_t bytes, int kind, int tid, int line) {
  Launch& L = *g_launch;
  if (static_cast<uint64_t>(off) + bytes > L.smem_bytes)
    fail("shared-memory %s out of bounds at generated line %d: byte offset %u (%u bytes), the kernel has %u "
         "bytes of dynamic shared memory", kind_name(kind), line, off, bytes, L.smem_bytes);
  const uint32_t epoch = g_shadow.epoch;
  for (uint32_t b = off; b < off + bytes; ++b) {
    Cell& c = g_shadow.cells[b];
    if (c.epoch != epoch) {
      c.epoch = epoch;
      for (auto& k : c.who)
        for (auto& w : k) w.tid = -1;
    }
    for (int k = 0; k < 3; ++k) {
      if (!conflict(k, kind)) continue;
      for (const Who& w : c.who[k])
        if (w.tid >= 0 && w.tid != tid)
          fail("shared-memory race on byte offset %u: %s by thread %d at generated line %d, then %s by thread %d "
               "at generated line %d, with no __syncthreads between them", b, kind_name(k), w.tid, w.line,
               kind_name(kind), tid, line);
    }
    Who* slot = c.who[kind];
    if (slot[0].tid == tid || slot[1].tid == tid) continue;
    Who& w = slot[0].tid < 0 ? slot[0] : slot[1];
    if (w.tid < 0) w = Who{line, static_cast<int16_t>(tid)};
  }
}

// Where a pointer points: the block's shared memory, parameter array `region`, or unknown (not checked).
constexpr int kShared = -1, kUnknown = -2;
inline int region_of(const void* p) {
  const unsigned char* q = static_cast<const unsigned char*>(p);
  if (q >= ::smem && q < ::smem + TILEC_EMU_SMEM_MAX) return kShared;
  for (int i = 0; i < g_nargs; ++i)
    if (q >= g_args[i].lo && (q < g_args[i].lo + g_args[i].bytes || q == g_args[i].lo)) return i;
  return kUnknown;
}

// Check (and for shared memory record) an access of `bytes` at p in region `region`.
inline void access(int region, const void* p, size_t bytes, int kind, int line) {
  const unsigned char* q = static_cast<const unsigned char*>(p);
  if (region == kShared) {
    if (!g_cur) return;  // host code (the launcher) does not touch shared memory
    shared_access(static_cast<uint32_t>(q - ::smem), static_cast<uint32_t>(bytes), kind, g_cur->tid, line);
  } else if (region >= 0) {
    const GlobalArg& a = g_args[region];
    if (q < a.lo || q + bytes > a.lo + a.bytes)
      fail("global %s of '%s' out of bounds at generated line %d: byte offset %lld (%zu bytes), the array has %zu "
           "bytes", kind_name(kind), a.name, line, static_cast<long long>(q - a.lo), bytes, a.bytes);
  }
}
// The global memory a cp.async reads (its source is a plain pointer): it must lie inside one parameter.
inline void global_read(const void* p, size_t bytes, int line) {
  const int r = region_of(p);
  if (r >= 0) return access(r, p, bytes, k_read, line);
  const unsigned char* q = static_cast<const unsigned char*>(p);
  for (int i = 0; i < g_nargs; ++i)  // just past an array's end: name that array
    if (q == g_args[i].lo + g_args[i].bytes) return access(i, p, bytes, k_read, line);
  fail("global read at generated line %d of %zu bytes at an address in no parameter's array", line, bytes);
}

template <class T>
struct Ptr;

// A checked lvalue: records the access when read or written.
template <class T>
struct Ref {
  using V = std::remove_const_t<T>;
  T* p;
  int region;
  int line;
  operator V() const {
    access(region, p, sizeof(T), k_read, line);
    return *p;
  }
  // static_cast<float>(fp8 lvalue): a second user conversion (the fp8 type's explicit operator float).
  template <class U, class = std::enable_if_t<!std::is_same_v<U, V> && !std::is_convertible_v<V, U> &&
                                             std::is_constructible_v<U, V>>>
  explicit operator U() const { return static_cast<U>(static_cast<V>(*this)); }
  template <class U = T, class = std::enable_if_t<!std::is_const_v<U>>>
  const Ref& operator=(const V& v) const {
    access(region, p, sizeof(T), k_write, line);
    *p = v;
    return *this;
  }
  const Ref& operator=(const Ref& o) const { return *this = static_cast<V>(o); }
  template <class U>
  const Ref& operator=(const Ref<U>& o) const { return *this = static_cast<V>(o); }
#define TILEC_EMU_COMPOUND(OP)                       \
  template <class X>                                 \
  const Ref& operator OP##=(const X& x) const {      \
    V v = static_cast<V>(*this);                     \
    v = static_cast<V>(v OP x);                      \
    return *this = v;                                \
  }
  TILEC_EMU_COMPOUND(+)
  TILEC_EMU_COMPOUND(-)
  TILEC_EMU_COMPOUND(*)
  TILEC_EMU_COMPOUND(/)
  TILEC_EMU_COMPOUND(|)
  TILEC_EMU_COMPOUND(&)
  TILEC_EMU_COMPOUND(^)
#undef TILEC_EMU_COMPOUND
  Ptr<T> operator&() const { return Ptr<T>(p, region, line); }
};

// The index of p[i], carrying the generated line of the expression (an operator[] has no room for it).
struct Idx {
  long long i;
  int line;
  template <class I, class = std::enable_if_t<std::is_integral_v<I> || std::is_enum_v<I>>>
  Idx(I i_, int line_ = __builtin_LINE()) : i(static_cast<long long>(i_)), line(line_) {}
};

template <class T>
struct Ptr {
  T* p = nullptr;
  int region = kUnknown;
  int line = 0;
  Ptr() = default;
  Ptr(std::nullptr_t) {}
  Ptr(T* q, int r, int l) : p(q), region(r), line(l) {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  Ptr(U* q, int l = __builtin_LINE()) : p(q), region(region_of(q)), line(l) {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  Ptr(const Ptr<U>& o) : p(o.p), region(o.region), line(o.line) {}
  // Only void pointers convert implicitly (smem_u32, cp_async16, gmma_desc take them): a conversion to T*
  // would make p[i] ambiguous with the built-in subscript.
  template <class U, class = std::enable_if_t<std::is_void_v<U> && std::is_convertible_v<T*, U*>>>
  operator U*() const { return p; }
  Ref<T> operator[](Idx i) const { return Ref<T>{p + i.i, region, i.line}; }
  Ref<T> operator*() const { return Ref<T>{p, region, line}; }
  Ptr operator+(Idx i) const { return Ptr(p + i.i, region, i.line); }
  Ptr operator-(Idx i) const { return Ptr(p - i.i, region, i.line); }
  T* raw() const { return p; }
};

template <class T>
struct is_ptr : std::false_type {};
template <class T>
struct is_ptr<Ptr<T>> : std::true_type {};

// reinterpret_cast in the generated code (a macro below): a checked pointer stays checked, with its region.
template <class To, class From>
inline auto rcast(From x, int line = __builtin_LINE()) {
  if constexpr (is_ptr<From>::value && std::is_pointer_v<To>) {
    return Ptr<std::remove_pointer_t<To>>(reinterpret_cast<To>(x.p), x.region, line);
  } else {
    (void)line;
    return reinterpret_cast<To>(x);
  }
}

#else  // !TILEC_EMU_RACECHECK

inline void race_epoch() {}
inline void race_block(unsigned) {}

#endif

}  // namespace tilec_emu

#pragma GCC visibility pop
