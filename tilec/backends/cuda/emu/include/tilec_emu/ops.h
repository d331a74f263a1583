// tilec cuda-emu: the emulation of the prelude helpers that are inline PTX on the GPU (prelude.cuh.j2):
// NaN-propagating min/max, shared addresses, ldmatrix, mma.sync, cp.async and the wgmma ordering ops.
// Collectives are rendezvous of the warp (or warpgroup) that run isa.h's per-lane semantics; cp.async and
// wgmma are deferred to their wait, as the hardware may defer them.
#pragma once
#include "tilec_emu/cuda.h"

#pragma GCC visibility push(hidden)

namespace tilec_emu {

// Shared-memory accesses of a collective: errors (misaligned, outside the window) stop the block; with the
// race checker, each access counts as one of thread `base + t` (t: the lane or warpgroup thread the ISA
// names) at that thread's generated line (lines[t], or line).
struct Sink : isa::AccessSink {
  int base = 0, line = 0;
  const int* lines = nullptr;
  void access(int t, uint32_t off, int bytes, bool write) override {
#if TILEC_EMU_RACECHECK
    shared_access(off, static_cast<uint32_t>(bytes), write ? k_write : k_read, base + t, lines ? lines[t] : line);
#else
    (void)t, (void)off, (void)bytes, (void)write;
#endif
  }
  void error(const char* message) override { fail("%s", message); }
};

struct LdmSlot { uint32_t addr; unsigned* r; int line; };
inline void ldmatrix(int num, bool trans, const char* what, unsigned* r, unsigned addr, int line) {
  LdmSlot mine{addr, r, line};
  warp_collective(what, &mine, [&](void** slot) {
    uint32_t a[32], out[32][4];
    int lines[32];
    for (int l = 0; l < 32; ++l) {
      a[l] = static_cast<LdmSlot*>(slot[l])->addr;
      lines[l] = static_cast<LdmSlot*>(slot[l])->line;
    }
    Sink sink;
    sink.base = g_cur->tid & ~31;
    sink.lines = lines;
    isa::ldmatrix(num, trans, ::smem, g_launch->smem_bytes, a, out, &sink);
    for (int l = 0; l < 32; ++l)
      for (int i = 0; i < num; ++i) static_cast<LdmSlot*>(slot[l])->r[i] = out[l][i];
  });
}

struct MmaSlot { float* c; const unsigned* a; const unsigned* b; };
inline void mma16816(isa::AB ab, const char* what, float* c, const unsigned* a, const unsigned* b) {
  MmaSlot mine{c, a, b};
  warp_collective(what, &mine, [&](void** slot) {
    uint32_t ra[32][4], rb[32][2];
    float rc[32][4], rd[32][4];
    for (int l = 0; l < 32; ++l) {
      const MmaSlot& s = *static_cast<MmaSlot*>(slot[l]);
      for (int i = 0; i < 4; ++i) ra[l][i] = s.a[i], rc[l][i] = s.c[i];
      rb[l][0] = s.b[0];
      rb[l][1] = s.b[1];
    }
    isa::mma_m16n8k16(ab, ra, rb, rc, rd);
    for (int l = 0; l < 32; ++l)
      for (int i = 0; i < 4; ++i) static_cast<MmaSlot*>(slot[l])->c[i] = rd[l][i];
  });
}

// ---- wgmma: wgmma.mma_async records the multiply in the warpgroup's open group; commit_group closes it;
// wait_group<N> performs every group older than the newest N (reading shared memory and the accumulators
// then, as the asynchronous unit may).
struct WgSlot { float* d; uint64_t da, db; };
inline void wgmma_async(isa::AB ab, int n, int trans_b, float* d, uint64_t da, uint64_t db, int line) {
  WgSlot mine{d, da, db};
  warpgroup_collective("wgmma.mma_async", &mine, [&](void** slot) {
    WgmmaOp op{static_cast<int>(ab), n, 0, trans_b, 1, mine.da, mine.db, {}, line};
    for (int t = 0; t < 128; ++t) {
      const WgSlot& s = *static_cast<WgSlot*>(slot[t]);
      if (s.da != op.desc_a || s.db != op.desc_b)
        fail("wgmma.mma_async: the threads of warpgroup %d pass different descriptors", g_cur->tid >> 7);
      op.d[t] = s.d;
    }
    g_launch->wg[g_cur->tid >> 7].open.push_back(op);
  });
}
inline void wgmma_commit() {
  warpgroup_collective("wgmma.commit_group", nullptr, [&](void**) {
    WarpGroup& w = g_launch->wg[g_cur->tid >> 7];
    w.groups.push_back(std::move(w.open));
    w.open.clear();
  });
}
inline void wgmma_wait(int n) {
  warpgroup_collective("wgmma.wait_group", nullptr, [&](void**) {
    WarpGroup& w = g_launch->wg[g_cur->tid >> 7];
    Sink sink;
    sink.base = g_cur->tid & ~127;
    while (static_cast<int>(w.groups.size()) > n) {
      for (WgmmaOp& op : w.groups.front())
        sink.line = op.line, isa::wgmma_m64nNk16(static_cast<isa::AB>(op.ab), op.n, op.desc_a, op.desc_b, op.trans_a, op.trans_b,
                            op.scale_d, ::smem, g_launch->smem_bytes, op.d, &sink);
      w.groups.erase(w.groups.begin());
    }
  });
}

// ---- cp.async: recorded per thread, performed by cp.async.wait_group (nothing else completes them) -----
inline void cp_async_wait(int n) {
  Fiber& f = cur();
  while (static_cast<int>(f.groups.size()) > n) {
    for (const AsyncCopy& c : f.groups.front()) {
#if TILEC_EMU_RACECHECK
      shared_access(static_cast<uint32_t>(static_cast<unsigned char*>(c.dst) - ::smem), 16, k_write, f.tid, c.line);
#endif
      if (c.valid)
        memcpy(c.dst, c.src, 16);
      else
        memset(c.dst, 0, 16);
    }
    f.groups.erase(f.groups.begin());
  }
}

}  // namespace tilec_emu

namespace tilec {

__device__ __forceinline__ float fmax_nan(float a, float b) {
  if (a != a || b != b) return __uint_as_float(0x7fffffffu);  // max.NaN.f32: the canonical NaN
  if (a == b) return std::signbit(a) ? b : a;                  // max(-0, +0) = +0
  return a > b ? a : b;
}
__device__ __forceinline__ float fmin_nan(float a, float b) {
  if (a != a || b != b) return __uint_as_float(0x7fffffffu);
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}

// A shared-memory address: the byte offset into the block's shared window (as cvta.to.shared gives).
__device__ __forceinline__ unsigned smem_u32(const void* p) {
  const unsigned char* q = static_cast<const unsigned char*>(p);
  if (q < ::smem || q >= ::smem + TILEC_EMU_SMEM_MAX)
    ::tilec_emu::fail("a shared-memory address (cvta.to.shared) of a pointer outside shared memory");
  return static_cast<unsigned>(q - ::smem);
}

__device__ __forceinline__ void ldmatrix_x4(unsigned* r, unsigned addr, int line = __builtin_LINE()) {
  ::tilec_emu::ldmatrix(4, false, "ldmatrix.x4", r, addr, line);
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned* r, unsigned addr, int line = __builtin_LINE()) {
  ::tilec_emu::ldmatrix(4, true, "ldmatrix.x4.trans", r, addr, line);
}
__device__ __forceinline__ void ldmatrix_x2(unsigned* r, unsigned addr, int line = __builtin_LINE()) {
  ::tilec_emu::ldmatrix(2, false, "ldmatrix.x2", r, addr, line);
}
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned* r, unsigned addr, int line = __builtin_LINE()) {
  ::tilec_emu::ldmatrix(2, true, "ldmatrix.x2.trans", r, addr, line);
}
__device__ __forceinline__ void mma_f16(float* c, const unsigned* a, const unsigned* b) {
  ::tilec_emu::mma16816(::tilec_emu::isa::AB::f16, "mma.sync.m16n8k16.f16", c, a, b);
}
__device__ __forceinline__ void mma_bf16(float* c, const unsigned* a, const unsigned* b) {
  ::tilec_emu::mma16816(::tilec_emu::isa::AB::bf16, "mma.sync.m16n8k16.bf16", c, a, b);
}

__device__ __forceinline__ void reg_fence(float&) {}
__device__ __forceinline__ void wgmma_fence() {}
__device__ __forceinline__ void wgmma_commit() { ::tilec_emu::wgmma_commit(); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { ::tilec_emu::wgmma_wait(N); }
__device__ __forceinline__ void fence_proxy_async() {}

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid, int line = __builtin_LINE()) {
  const unsigned off = smem_u32(dst);  // the destination must be shared memory
#if TILEC_EMU_RACECHECK
  // The copy may land any time until its wait: a write at the issue and again where it lands.
  ::tilec_emu::shared_access(off, 16, ::tilec_emu::k_write, ::tilec_emu::cur().tid, line);
  if (valid) ::tilec_emu::global_read(src, 16, line);
#else
  (void)off;
#endif
  ::tilec_emu::cur().open.push_back(::tilec_emu::AsyncCopy{dst, src, valid, line});
}
__device__ __forceinline__ void cp_async_commit() {
  ::tilec_emu::Fiber& f = ::tilec_emu::cur();
  f.groups.push_back(std::move(f.open));
  f.open.clear();
}
template <int N>
__device__ __forceinline__ void cp_async_wait() { ::tilec_emu::cp_async_wait(N); }

}  // namespace tilec

#if TILEC_EMU_RACECHECK
// From here on (the generated code), reinterpret_cast keeps checked pointers checked (racecheck.h).
#define reinterpret_cast ::tilec_emu::rcast
#endif

#pragma GCC visibility pop
