// tilec cuda-emu runtime: the blocks of a grid run one after another on the calling OS thread; the threads
// of a block are cooperative fibers (a hand-rolled x86-64 / aarch64 stack switch, ucontext elsewhere) that
// run until they reach a rendezvous (__syncthreads, a warp or warpgroup collective) or exit. The last
// member to arrive at a rendezvous performs it over every member's operands and releases them. A block in
// which no fiber can run while some have not exited is a deadlock: reported as an error naming the kernel,
// the block and where each thread waits, never a hang.
#pragma once
#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>
#include <sys/mman.h>
#if !defined(__x86_64__) && !defined(__aarch64__)
#include <ucontext.h>
#endif

// Every emulator symbol is private to its library (several kernels' libraries live in one process, built
// with different flags): hidden visibility, and -fno-gnu-unique in build.py.
#pragma GCC visibility push(hidden)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#ifndef TILEC_EMU_SMEM_MAX
#define TILEC_EMU_SMEM_MAX (228 * 1024)
#endif
// The block's dynamic shared memory: the generated kernels declare `extern __shared__ unsigned char smem[]`.
alignas(1024) unsigned char smem[TILEC_EMU_SMEM_MAX];

namespace tilec_emu {

#if defined(__x86_64__)
extern "C" void tilec_emu_switch(void** save, void* next) __attribute__((visibility("hidden")));
asm(R"(
.text
.p2align 4
.type tilec_emu_switch,@function
tilec_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size tilec_emu_switch,.-tilec_emu_switch
)");
#elif defined(__aarch64__)
extern "C" void tilec_emu_switch(void** save, void* next) __attribute__((visibility("hidden")));
asm(R"(
.text
.p2align 4
.type tilec_emu_switch,%function
tilec_emu_switch:
  sub sp, sp, #176
  stp x19, x20, [sp, #0]
  stp x21, x22, [sp, #16]
  stp x23, x24, [sp, #32]
  stp x25, x26, [sp, #48]
  stp x27, x28, [sp, #64]
  stp x29, x30, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  mov x9, sp
  str x9, [x0]
  mov sp, x1
  ldp x19, x20, [sp, #0]
  ldp x21, x22, [sp, #16]
  ldp x23, x24, [sp, #32]
  ldp x25, x26, [sp, #48]
  ldp x27, x28, [sp, #64]
  ldp x29, x30, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  add sp, sp, #176
  ret
.size tilec_emu_switch,.-tilec_emu_switch
)");
#endif

enum class State { runnable, waiting, done };

struct AsyncCopy { void* dst; const void* src; bool valid; int line; };  // line: the cp.async's generated line

struct Fiber {
  dim3 thread_idx;
  int tid = 0;
  State state = State::runnable;
  const char* wait_what = "";  // the rendezvous this fiber waits at
  void* sp = nullptr;
  char* stack = nullptr;
#if !defined(__x86_64__) && !defined(__aarch64__)
  ucontext_t ctx;
#endif
  // cp.async: the open (uncommitted) group and the committed groups, oldest first.
  std::vector<AsyncCopy> open;
  std::vector<std::vector<AsyncCopy>> groups;
};

// A rendezvous of `size` consecutive threads (a warp, a warpgroup or the block).
struct Group {
  int arrived = 0;
  const char* what = nullptr;
  void* slot[1024];
};

// A pending warpgroup MMA (wgmma.mma_async), performed at wgmma.wait_group.
struct WgmmaOp {
  int ab, n, trans_a, trans_b, scale_d;
  uint64_t desc_a, desc_b;
  float* d[128];
  int line;  // the generated line of the wgmma call (race reports)
};
struct WarpGroup {
  std::vector<WgmmaOp> open;
  std::vector<std::vector<WgmmaOp>> groups;
};

struct BlockErr {};

struct Launch {
  const char* kernel = "";
  dim3 grid, block_idx, block_dim;
  int threads = 0;
  unsigned smem_bytes = 0;
  std::vector<Fiber> fibers;
  Group warps[32];
  Group warpgroups[8];
  Group block;
  WarpGroup wg[8];
  void (*body)(void*) = nullptr;
  void* body_ctx = nullptr;
  void* main_sp = nullptr;
#if !defined(__x86_64__) && !defined(__aarch64__)
  ucontext_t main_ctx;
#endif
  bool failed = false;
  char message[2048] = {0};
};

inline Launch* g_launch = nullptr;
inline Fiber* g_cur = nullptr;
inline char g_error[4096] = {0};
inline int g_last_error = 0;
inline std::mutex g_mutex;

// The arrays passed for the kernel's parameters (EmuLibrary.call registers them through tilec_emu_set_args):
// the race checker's global bounds.
struct GlobalArg { const unsigned char* lo; size_t bytes; char name[64]; };
constexpr int kMaxArgs = 64;
inline GlobalArg g_args[kMaxArgs];
inline int g_nargs = 0;
// Race checker hooks (racecheck.h; no-ops without TILEC_EMU_RACECHECK): a new barrier epoch, a new block.
inline void race_epoch();
inline void race_block(unsigned smem_bytes);
constexpr size_t kStack = 256 * 1024;
inline std::vector<char*> g_stacks;  // reused across launches (mmap'd, touched lazily)

inline Fiber& cur() { return *g_cur; }

inline void to_scheduler() {
  Fiber& f = *g_cur;
#if defined(__x86_64__) || defined(__aarch64__)
  tilec_emu_switch(&f.sp, g_launch->main_sp);
#else
  swapcontext(&f.ctx, &g_launch->main_ctx);
#endif
}

// Stop the block with an error (called on a fiber): the scheduler abandons every fiber of the block.
[[noreturn]] inline void fail(const char* fmt, ...) {
  Launch& L = *g_launch;
  if (!L.failed) {
    L.failed = true;
    int n = snprintf(L.message, sizeof(L.message), "kernel %s, block (%u, %u, %u), thread %d: ", L.kernel,
                     L.block_idx.x, L.block_idx.y, L.block_idx.z, g_cur ? g_cur->tid : -1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L.message + n, sizeof(L.message) - n, fmt, ap);
    va_end(ap);
  }
  g_cur->state = State::done;
  to_scheduler();
  __builtin_unreachable();
}

// Arrive at the rendezvous of group `g` (members first..first+size-1) as member `idx`, posting `mine`.
// The last to arrive runs fn(slots) and releases the others; every member returns after fn ran.
template <class Fn>
inline void rendezvous(Group& g, int first, int size, int idx, const char* what, void* mine, Fn&& fn) {
  Launch& L = *g_launch;
  if (g.arrived == 0) {
    g.what = what;
  } else if (g.what != what && strcmp(g.what, what) != 0) {
    fail("threads %d..%d meet at different collectives: %s and %s (divergent control flow)", first,
         first + size - 1, g.what, what);
  }
  g.slot[idx] = mine;
  if (++g.arrived == size) {
    g.arrived = 0;
    fn(g.slot);
    for (int t = first; t < first + size; ++t)
      if (L.fibers[t].state == State::waiting) L.fibers[t].state = State::runnable;
    return;
  }
  Fiber& f = *g_cur;
  f.state = State::waiting;
  f.wait_what = what;
  to_scheduler();
  if (L.failed) fail("aborted");
}

template <class Fn>
inline void warp_collective(const char* what, void* mine, Fn&& fn) {
  Launch& L = *g_launch;
  const int t = g_cur->tid, w = t >> 5;
  const int size = std::min(32, L.threads - w * 32);
  if (size != 32) fail("%s needs a whole warp (the block has %d threads)", what, L.threads);
  rendezvous(L.warps[w], w * 32, 32, t & 31, what, mine, fn);
}

template <class Fn>
inline void warpgroup_collective(const char* what, void* mine, Fn&& fn) {
  Launch& L = *g_launch;
  const int t = g_cur->tid, w = t >> 7;
  if (L.threads < (w + 1) * 128) fail("%s needs a whole warpgroup of 128 threads (the block has %d)", what, L.threads);
  rendezvous(L.warpgroups[w], w * 128, 128, t & 127, what, mine, fn);
}

inline void syncthreads() {
  Launch& L = *g_launch;
  rendezvous(L.block, 0, L.threads, g_cur->tid, "__syncthreads", nullptr, [](void**) { race_epoch(); });
}

inline void fiber_main() {
  Launch& L = *g_launch;
  L.body(L.body_ctx);
  g_cur->state = State::done;
  to_scheduler();
  __builtin_unreachable();
}

#if defined(__x86_64__) || defined(__aarch64__)
extern "C" inline void tilec_emu_fiber_entry() { fiber_main(); }
#endif

inline void start_fiber(Fiber& f) {
#if defined(__x86_64__)
  // Initial frame popped by tilec_emu_switch: mxcsr/fpu word, r15 r14 r13 r12 rbx rbp, return address.
  uintptr_t top = reinterpret_cast<uintptr_t>(f.stack + kStack) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                                     // alignment: entry sees rsp % 16 == 8
  *--sp = reinterpret_cast<uint64_t>(&tilec_emu_fiber_entry);    // return address
  for (int i = 0; i < 6; ++i) *--sp = 0;
  uint32_t csr[2];
  __asm__ volatile("stmxcsr %0" : "=m"(csr[0]));
  __asm__ volatile("fnstcw %0" : "=m"(csr[1]));
  --sp;
  memcpy(sp, csr, 8);
  f.sp = sp;
#elif defined(__aarch64__)
  uintptr_t top = reinterpret_cast<uintptr_t>(f.stack + kStack) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 176);
  memset(sp, 0, 176);
  sp[11] = reinterpret_cast<uint64_t>(&tilec_emu_fiber_entry);  // x30
  f.sp = sp;
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStack;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, reinterpret_cast<void (*)()>(&fiber_main), 0);
#endif
}

inline void switch_to(Launch& L, Fiber& f) {
  g_cur = &f;
#if defined(__x86_64__) || defined(__aarch64__)
  tilec_emu_switch(&L.main_sp, f.sp);
#else
  swapcontext(&L.main_ctx, &f.ctx);
#endif
  g_cur = nullptr;
}

inline void describe_deadlock(Launch& L) {
  int n = snprintf(L.message, sizeof(L.message), "kernel %s, block (%u, %u, %u): deadlock: ", L.kernel,
                   L.block_idx.x, L.block_idx.y, L.block_idx.z);
  // Summarise runs of threads in the same state.
  int t = 0;
  while (t < L.threads && n < static_cast<int>(sizeof(L.message)) - 100) {
    const Fiber& f = L.fibers[t];
    int e = t;
    while (e + 1 < L.threads && L.fibers[e + 1].state == f.state &&
           (f.state != State::waiting || strcmp(L.fibers[e + 1].wait_what, f.wait_what) == 0))
      ++e;
    const char* what = f.state == State::done ? "exited" : f.wait_what;
    n += snprintf(L.message + n, sizeof(L.message) - n, "%sthreads %d..%d %s%s", t ? "; " : "", t, e,
                  f.state == State::done ? "" : "wait at ", what);
    t = e + 1;
  }
  snprintf(L.message + n, sizeof(L.message) - n, " (a barrier or collective some threads never reach)");
  L.failed = true;
}

// Run one block of `threads` fibers to completion; false (with L.message) on an error.
inline bool run_block(Launch& L) {
  for (int t = 0; t < L.threads; ++t) {
    Fiber& f = L.fibers[t];
    f.tid = t;
    f.thread_idx = dim3(t, 0, 0);
    f.state = State::runnable;
    f.wait_what = "";
    f.open.clear();
    f.groups.clear();
    start_fiber(f);
  }
  for (auto& g : L.warps) g.arrived = 0;
  for (auto& g : L.warpgroups) g.arrived = 0;
  for (auto& w : L.wg) { w.open.clear(); w.groups.clear(); }
  L.block.arrived = 0;
  memset(smem, 0xff, L.smem_bytes);  // poison: every float type reads NaN, integers -1
  race_block(L.smem_bytes);
  // The lowest-numbered runnable fiber runs next, so low threads run as far ahead as the rendezvous let
  // them: a round-robin order kept warpgroups in step at every collective and hid a missing barrier before
  // a deferred read (wgmma reads shared memory at its wait_group, after the other warpgroup had caught up).
  for (;;) {
    int t = 0;
    while (t < L.threads && L.fibers[t].state != State::runnable) ++t;
    if (t == L.threads) {
      for (int u = 0; u < L.threads; ++u)
        if (L.fibers[u].state != State::done) {
          describe_deadlock(L);
          return false;
        }
      return true;
    }
    switch_to(L, L.fibers[t]);
    if (L.failed) return false;
  }
}

inline void set_error(const char* msg) {
  snprintf(g_error, sizeof(g_error), "%s", msg);
  g_last_error = 1;
}

// Run a grid: every block in order (x fastest), every thread a fiber calling body(ctx).
inline int run_grid(const char* kernel, dim3 grid, int threads, unsigned smem_bytes, void (*body)(void*),
                    void* ctx) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (threads <= 0 || threads > 1024) {
    char m[256];
    snprintf(m, sizeof(m), "kernel %s: %d threads per block (1..1024)", kernel, threads);
    set_error(m);
    return 1;
  }
  if (smem_bytes > TILEC_EMU_SMEM_MAX) {
    char m[256];
    snprintf(m, sizeof(m), "kernel %s: %u bytes of dynamic shared memory (the emulator holds %d)", kernel,
             smem_bytes, TILEC_EMU_SMEM_MAX);
    set_error(m);
    return 1;
  }
  static Launch* launch = new Launch();  // large (the rendezvous slots): one per library, reused
  Launch& L = *launch;
  L.kernel = kernel;
  L.grid = grid;
  L.block_dim = dim3(threads, 1, 1);
  L.threads = threads;
  L.smem_bytes = smem_bytes;
  L.body = body;
  L.body_ctx = ctx;
  L.failed = false;
  L.message[0] = 0;
  if (L.fibers.size() < static_cast<size_t>(threads)) L.fibers.resize(threads);
  while (g_stacks.size() < static_cast<size_t>(threads)) {
    void* p = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      set_error("cuda-emu: cannot map fiber stacks");
      return 1;
    }
    g_stacks.push_back(static_cast<char*>(p));
  }
  for (int t = 0; t < threads; ++t) L.fibers[t].stack = g_stacks[t];
  g_launch = &L;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        L.block_idx = dim3(x, y, z);
        if (!run_block(L)) {
          set_error(L.message);
          g_launch = nullptr;
          return 1;
        }
      }
  g_launch = nullptr;
  return 0;
}

}  // namespace tilec_emu

// Not inline: it must be emitted (and exported) even though nothing in the library calls it.
extern "C" __attribute__((visibility("default"), used)) void tilec_emu_set_args(int n, void* const* ptrs,
                                                                             const long long* bytes,
                                                                             const char* const* names) {
  ::tilec_emu::g_nargs = n < ::tilec_emu::kMaxArgs ? n : ::tilec_emu::kMaxArgs;
  for (int i = 0; i < ::tilec_emu::g_nargs; ++i) {
    ::tilec_emu::GlobalArg& a = ::tilec_emu::g_args[i];
    a.lo = static_cast<const unsigned char*>(ptrs[i]);
    a.bytes = static_cast<size_t>(bytes[i]);
    snprintf(a.name, sizeof(a.name), "%s", names[i]);
  }
}

#pragma GCC visibility pop
