// tilec AscendC emulation: rule errors, per-core context, the deterministic core scheduler ("baton"),
// GM allocation registry, CANN CPU-mode launch (ICPU_RUN_KF), kernel type, and all synchronisation
// primitives (SetFlag/WaitFlag, PipeBarrier, CrossCore flags, SyncAll).
#pragma once
#include "types.h"
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace AscendC {

inline thread_local CoreType g_coreType = AIV;

namespace emu {

// ---------------------------------------------------------------- rule errors (docs/backends/ascend.md, "Rules checked")
inline const char* RuleName(int rule) {
    static const char* names[] = {
        "", "UB/L1 operand address must be 32-byte aligned", "L0A/L0B/L0C address alignment",
        "DataCopy count*sizeof(T) must be a multiple of 32 bytes", "DataCopy parameter units/ranges",
        "tensor size overflow", "buffer capacity exceeded by InitBuffer", "core ownership of local memory",
        "cube data-movement parameters", "Mmad shape/dtype", "level-0 vector parameters",
        "Compare alignment/mode", "TQue discipline", "SetFlag/WaitFlag pairing", "CrossCore flags",
        "kernel type / SyncAll", "GM access out of bounds", "cross-pipe access without synchronisation"};
    return (rule >= 1 && rule <= 17) ? names[rule] : "emulation error";
}

struct RuleError : std::runtime_error {
    int rule;
    RuleError(int r, const std::string& msg) : std::runtime_error(msg), rule(r) {}
};
struct Aborted {};       // thrown in a core when another core failed or a deadlock was found
struct NotLaunched {};   // a core the kernel type does not start (the 2nd AIV in MIX 1:1)

std::string CoreName();

[[noreturn]] inline void Fail(int rule, const std::string& detail) {
    std::ostringstream os;
    os << "rule " << rule << " (" << RuleName(rule) << ") violated on " << CoreName() << ": " << detail;
    throw RuleError(rule, os.str());
}
inline void Warn(int rule, const std::string& detail) {
    std::fprintf(stderr, "[tilec ascend emulation] warning: rule %d (%s) on %s: %s\n", rule, RuleName(rule),
                 CoreName().c_str(), detail.c_str());
}
template <typename... A> std::string Str(const A&... a) {
    std::ostringstream os;
    (os << ... << a);
    return os.str();
}

// ---------------------------------------------------------------- memories of one core (910B)
constexpr uint32_t kUbSize = 192 * 1024 - 256;
constexpr uint32_t kL1Size = 512 * 1024 - 256;
constexpr uint32_t kL0ASize = 64 * 1024, kL0BSize = 64 * 1024, kL0CSize = 128 * 1024, kBtSize = 1024,
                   kFbSize = 2048;

inline uint32_t HwCapacity(Hardware h) {
    switch (h) {
        case Hardware::UB: return kUbSize;
        case Hardware::L1: return kL1Size;
        case Hardware::L0A: return kL0ASize;
        case Hardware::L0B: return kL0BSize;
        case Hardware::L0C: return kL0CSize;
        case Hardware::BIAS: return kBtSize;
        case Hardware::FIXBUF: return kFbSize;
        default: return 0;
    }
}
inline const char* HwName(Hardware h) {
    static const char* n[] = {"GM", "UB", "L1", "L0A", "L0B", "L0C", "BT", "FB"};
    return n[(int)h];
}
inline Hardware PosToHw(TPosition p) {
    switch (p) {
        case TPosition::A1: case TPosition::B1: case TPosition::C1: case TPosition::TSCM: return Hardware::L1;
        case TPosition::A2: return Hardware::L0A;
        case TPosition::B2: return Hardware::L0B;
        case TPosition::CO1: return Hardware::L0C;
        case TPosition::C2: return Hardware::BIAS;
        case TPosition::GM: return Hardware::GM;
        default: return Hardware::UB;   // VECIN, VECOUT, VECCALC, CO2
    }
}

struct CoreCtx {
    CoreType type = AIV;
    int id = 0;          // index in the launch's core list
    int group = 0;       // AI Core index (block) this core belongs to
    int sub = 0;         // sub-block index of an AIV inside its AI Core
    int blockIdx = 0;    // GetBlockIdx()
    bool done = false;
    bool launched = true;
    std::vector<uint8_t> mem[(int)Hardware::MAX];
    uint8_t events[(int)HardEvent::MAX][8] = {};
    int atomic = 0;              // 0 none, 1 add, 2 max, 3 min for MTE3/FIX writes to GM
    std::function<bool()> waitCond;
    std::string waitDesc;
    // cross-core flag state owned by this core
    int p2p[16] = {};            // mode-2 flags set by the AIC (on an AIV)
    int fromSub[2][16] = {};     // mode-2 flags set by each AIV (on an AIC)
    int used0[16] = {}, used1[16] = {};
    uint64_t syncGen = 0;
    // rule 17 hazard tracker: per 32 B chunk the pipe and op number of its last writer
    std::vector<uint8_t> wpipe[(int)Hardware::MAX];
    std::vector<uint32_t> wseq[(int)Hardware::MAX];
    uint32_t seq[8] = {};            // ops issued per pipe
    uint32_t synced[8][8] = {};      // synced[p][q]: ops of p up to this number are visible to q
    uint32_t pending[64][8] = {};    // SetFlag: the source pipe's op number per (event, id)
    uint8_t curPipe = 0;             // pipe of the API being executed (Scalar outside APIs)
    std::vector<uint32_t> warned;
};

inline thread_local CoreCtx* tl_core = nullptr;

struct Launch {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<CoreCtx*> cores;
    int turn = -1;
    bool aborted = false;
    std::string error;
    std::string kernelName;
    int blockDim = 1;
    KernelMode mode = AIV_MODE;
    int kernelType = 0;
    int sets0[2][16] = {};                  // mode-0 Set counts per core type
    std::map<int, std::vector<int>> sets1;  // mode-1 Set counts per AI Core
    int syncArrived[2] = {};
    uint64_t syncGen[2] = {};
};
inline Launch*& CurLaunch() { static Launch* l = nullptr; return l; }

inline std::string CoreName() {
    CoreCtx* c = tl_core;
    if (!c) return "host";
    return Str(c->type == AIC ? "AIC" : "AIV", " core (block ", c->group, c->type == AIV ? Str(", sub ", c->sub) : "",
               ")");
}
inline CoreCtx& Core() {
    if (!tl_core) throw std::runtime_error("AscendC API called outside a kernel launched by ICPU_RUN_KF");
    return *tl_core;
}

inline uint8_t* HwBase(Hardware h) {
    CoreCtx& c = Core();
    bool aivMem = (h == Hardware::UB);
    if (aivMem && c.type != AIV) Fail(7, Str("the Cube core (AIC) touched ", HwName(h), ", which belongs to the Vector cores"));
    if (!aivMem && c.type != AIC) Fail(7, Str("a Vector core (AIV) touched ", HwName(h), ", which belongs to the Cube core"));
    return c.mem[(int)h].data();
}


// ---------------------------------------------------------------- rule 17: cross-pipe hazards
// Instructions execute synchronously here, but on hardware each pipe runs its own in-order queue. The
// tracker remembers, per 32-byte chunk of local memory, which pipe wrote it last (and that pipe's op
// number); a read or write by another pipe must come after a synchronisation that covers that op:
// SetFlag/WaitFlag<SRC_DST>, TQue EnQue/DeQue, or PipeBarrier<PIPE_ALL>. Default: warn once per pipe pair
// and buffer; TILEC_ASCEND_SYNC=error makes it an error, =off disables it.
enum Pipe : uint8_t { P_S = 0, P_V, P_M, P_MTE1, P_MTE2, P_MTE3, P_FIX, P_NONE = 7 };
inline const char* PipeName(int p) {
    static const char* n[] = {"S", "V", "M", "MTE1", "MTE2", "MTE3", "FIX", "-"};
    return n[p & 7];
}
inline int& SyncMode() {   // 0 off, 1 warn, 2 error
    static int m = [] {
        const char* e = std::getenv("TILEC_ASCEND_SYNC");
        if (!e) return 1;
        std::string v(e);
        return v == "off" ? 0 : v == "error" ? 2 : 1;
    }();
    return m;
}
inline void HzAccess(Hardware h, uint64_t byteOff, uint64_t bytes, bool write) {
    if (!SyncMode() || bytes == 0) return;
    CoreCtx& c = Core();
    int hi = (int)h;
    if (c.wpipe[hi].empty()) { c.wpipe[hi].assign(c.mem[hi].size() / 32 + 1, P_NONE); c.wseq[hi].assign(c.mem[hi].size() / 32 + 1, 0); }
    int q = c.curPipe;
    uint32_t cur = c.seq[q];
    for (uint64_t k = byteOff / 32; k <= (byteOff + bytes - 1) / 32 && k < c.wpipe[hi].size(); ++k) {
        int p = c.wpipe[hi][k];
        if (p != P_NONE && p != q && c.wseq[hi][k] > c.synced[p][q]) {
            uint32_t key = (uint32_t)(p * 64 + q * 8 + hi);
            bool seen = false;
            for (uint32_t w : c.warned) seen = seen || w == key;
            std::string msg = Str(PipeName(q), write ? " writes " : " reads ", HwName(h), " bytes [", k * 32, ", ", k * 32 + 32,
                                  ") last written by ", PipeName(p), " with no SetFlag/WaitFlag<HardEvent::", PipeName(p), "_",
                                  PipeName(q), ">, TQue EnQue/DeQue or PipeBarrier<PIPE_ALL> in between");
            if (SyncMode() == 2) Fail(17, msg);
            if (!seen) { c.warned.push_back(key); Warn(17, msg); }
        }
        if (write) { c.wpipe[hi][k] = (uint8_t)q; c.wseq[hi][k] = cur; }
    }
}
inline void HzClear(Hardware h, uint64_t byteOff, uint64_t bytes) {
    CoreCtx& c = Core();
    int hi = (int)h;
    if (c.wpipe[hi].empty()) return;
    for (uint64_t k = byteOff / 32; k <= (byteOff + bytes - 1) / 32 && k < c.wpipe[hi].size(); ++k) c.wpipe[hi][k] = P_NONE;
}
inline void HzSync(int src, int dst) {
    CoreCtx& c = Core();
    if (c.synced[src][dst] < c.seq[src]) c.synced[src][dst] = c.seq[src];
}
inline void HzBarrierAll() {
    CoreCtx& c = Core();
    for (int p = 0; p < 7; ++p)
        for (int q = 0; q < 7; ++q) c.synced[p][q] = c.seq[p];
}
// Source and destination pipe of a HardEvent.
inline std::pair<int, int> EventPipes(HardEvent e) {
    static const int t[][2] = {{P_MTE2, P_MTE1}, {P_MTE1, P_MTE2}, {P_MTE1, P_M}, {P_M, P_MTE1}, {P_MTE2, P_V}, {P_V, P_MTE2},
        {P_MTE3, P_V}, {P_V, P_MTE3}, {P_M, P_V}, {P_V, P_M}, {P_V, P_V}, {P_MTE3, P_MTE1}, {P_MTE1, P_MTE3}, {P_MTE1, P_V},
        {P_MTE2, P_M}, {P_M, P_MTE2}, {P_V, P_MTE1}, {P_M, P_FIX}, {P_FIX, P_M}, {P_MTE3, P_MTE2}, {P_MTE2, P_MTE3},
        {P_S, P_V}, {P_V, P_S}, {P_S, P_MTE2}, {P_MTE2, P_S}, {P_S, P_MTE3}, {P_MTE3, P_S}, {P_MTE2, P_FIX},
        {P_FIX, P_MTE2}, {P_FIX, P_S}, {P_M, P_S}, {P_FIX, P_MTE3}, {P_MTE1, P_FIX}, {P_FIX, P_MTE1}, {P_FIX, P_FIX}};
    return {t[(int)e][0], t[(int)e][1]};
}
// RAII: the API being executed issues one op on `pipe`; accesses inside it are attributed to that pipe.
struct PipeScope {
    uint8_t saved;
    explicit PipeScope(int pipe) {
        CoreCtx& c = Core();
        saved = c.curPipe;
        c.curPipe = (uint8_t)pipe;
        c.seq[pipe]++;
    }
    ~PipeScope() { if (tl_core) tl_core->curPipe = saved; }
};
// A Scalar-unit access outside any API is one S op.
inline void HzScalar() {
    CoreCtx& c = Core();
    if (c.curPipe == P_S) c.seq[P_S]++;
}

// ---------------------------------------------------------------- baton scheduling
inline std::string DeadlockReport(Launch& L) {
    std::ostringstream os;
    os << "deadlock: every live core is blocked (on hardware: a hang until the watchdog fires)";
    for (CoreCtx* c : L.cores)
        if (!c->done) {
            CoreCtx* saved = tl_core;
            tl_core = c;
            os << "\n    " << CoreName() << " waits in " << c->waitDesc;
            tl_core = saved;
        }
    return os.str();
}

// Pass the baton to the next runnable core after `me` (round robin); me may get it back.
inline void PassTurn(Launch& L, int me) {
    int n = (int)L.cores.size();
    for (int k = 1; k <= n; ++k) {
        CoreCtx* c = L.cores[(me + k) % n];
        if (!c->done && (!c->waitCond || c->waitCond())) {
            L.turn = c->id;
            L.cv.notify_all();
            return;
        }
    }
    bool allDone = true;
    for (CoreCtx* c : L.cores) allDone = allDone && c->done;
    if (allDone) { L.turn = -1; L.cv.notify_all(); return; }
    L.error = Str("rule 14 (", RuleName(14), "): ", DeadlockReport(L));
    L.aborted = true;
    L.cv.notify_all();
}

// Block the calling core until cond() holds; other cores run meanwhile (one at a time).
inline void BlockUntil(const std::function<bool()>& cond, const std::string& desc) {
    Launch& L = *CurLaunch();
    CoreCtx& me = Core();
    std::unique_lock<std::mutex> lk(L.mu);
    if (cond()) return;
    me.waitCond = cond;
    me.waitDesc = desc;
    PassTurn(L, me.id);
    L.cv.wait(lk, [&] { return L.turn == me.id || L.aborted; });
    me.waitCond = nullptr;
    if (L.aborted) throw Aborted{};
}

// ---------------------------------------------------------------- GM registry
struct GmRegion { size_t size; };
inline std::map<uintptr_t, size_t>& GmRegions() { static std::map<uintptr_t, size_t> m; return m; }
inline std::mutex& GmMutex() { static std::mutex m; return m; }

// Size of the GmAlloc region that holds p, from p to the region's end (0 when p is not GM).
inline size_t GmRemaining(const void* p) {
    std::lock_guard<std::mutex> g(GmMutex());
    auto& m = GmRegions();
    uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin()) return 0;
    --it;
    if (a >= it->first + it->second) return 0;
    return it->first + it->second - a;
}

inline int& KernelModeRef() { static int m = AIV_MODE; return m; }
inline uint64_t& TilingKeyRef() { static uint64_t k = 0; return k; }
inline std::string& LastErrorRef() { static std::string e; return e; }
inline bool& QuietRef() { static bool q = false; return q; }

}  // namespace emu

// ---------------------------------------------------------------- CANN CPU-debug host API
inline void* GmAlloc(size_t size) {
    size_t sz = (size + 63) / 64 * 64;
    if (sz == 0) sz = 64;
    void* p = std::aligned_alloc(64, sz);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, sz);
    std::lock_guard<std::mutex> g(emu::GmMutex());
    emu::GmRegions()[(uintptr_t)p] = size;
    return p;
}
inline void GmFree(void* p) {
    if (!p) return;
    {
        std::lock_guard<std::mutex> g(emu::GmMutex());
        emu::GmRegions().erase((uintptr_t)p);
    }
    std::free(p);
}
inline void SetKernelMode(KernelMode m) { emu::KernelModeRef() = m; }

inline int64_t GetBlockIdx() { return emu::Core().blockIdx; }
inline int64_t GetBlockNum() { return emu::CurLaunch()->blockDim; }
inline int64_t GetSubBlockIdx() { return emu::Core().sub; }
inline int64_t GetTaskRatio() {
    emu::Launch& L = *emu::CurLaunch();
    return (L.mode == MIX_MODE && emu::Core().type == AIV && L.kernelType != KERNEL_TYPE_MIX_AIC_1_1) ? 2 : 1;
}
inline GM_ADDR GetUserWorkspace(GM_ADDR workspace) { return workspace; }
inline GM_ADDR GetSysWorkSpacePtr() { return nullptr; }
inline void SetSysWorkspace(GM_ADDR) {}

namespace emu {
inline void SetKernelType(int type) {
    Launch& L = *CurLaunch();
    CoreCtx& c = Core();
    bool mix = type >= KERNEL_TYPE_MIX_AIV_1_0;
    int mode = L.mode;
    bool ok = (type == KERNEL_TYPE_AIV_ONLY && mode == AIV_MODE) || (type == KERNEL_TYPE_AIC_ONLY && mode == AIC_MODE) ||
              (type == KERNEL_TYPE_MIX_AIV_1_0 && mode == AIV_MODE) || (type == KERNEL_TYPE_MIX_AIC_1_0 && mode == AIC_MODE) ||
              (mix && type >= KERNEL_TYPE_MIX_AIC_1_1 && mode == MIX_MODE);
    if (!ok)
        Fail(15, Str("KERNEL_TASK_TYPE_DEFAULT(", type, ") does not match SetKernelMode(",
                     mode == AIV_MODE ? "AIV_MODE" : mode == AIC_MODE ? "AIC_MODE" : "MIX_MODE", ")"));
    L.kernelType = type;
    if (type == KERNEL_TYPE_MIX_AIC_1_1 && c.type == AIV) {
        if (c.sub != 0) { c.launched = false; throw NotLaunched{}; }
        c.blockIdx = c.group;
    }
}
}  // namespace emu

// ---------------------------------------------------------------- intra-core synchronisation
namespace emu {
inline const char* EventName(HardEvent e) {
    static const char* n[] = {"MTE2_MTE1", "MTE1_MTE2", "MTE1_M", "M_MTE1", "MTE2_V", "V_MTE2", "MTE3_V", "V_MTE3", "M_V",
        "V_M", "V_V", "MTE3_MTE1", "MTE1_MTE3", "MTE1_V", "MTE2_M", "M_MTE2", "V_MTE1", "M_FIX", "FIX_M", "MTE3_MTE2",
        "MTE2_MTE3", "S_V", "V_S", "S_MTE2", "MTE2_S", "S_MTE3", "MTE3_S", "MTE2_FIX", "FIX_MTE2", "FIX_S", "M_S",
        "FIX_MTE3", "MTE1_FIX", "FIX_MTE1", "FIX_FIX"};
    return (int)e < (int)HardEvent::MAX ? n[(int)e] : "?";
}
}  // namespace emu
template <HardEvent E> inline void SetFlag(int32_t id) {
    emu::CoreCtx& c = emu::Core();
    if (id < 0 || id > 7) emu::Fail(13, emu::Str("event id ", id, " out of range 0..7"));
    if (id >= 6) emu::Warn(13, emu::Str("event id ", id, " is reserved by the framework"));
    uint8_t& f = c.events[(int)E][id];
    if (f) emu::Fail(13, emu::Str("SetFlag<HardEvent::", emu::EventName(E), ">(", id, ") set twice without a WaitFlag in between"));
    f = 1;
    c.pending[(int)E][id] = c.seq[emu::EventPipes(E).first];
}
template <HardEvent E> inline void WaitFlag(int32_t id) {
    emu::CoreCtx& c = emu::Core();
    if (id < 0 || id > 7) emu::Fail(13, emu::Str("event id ", id, " out of range 0..7"));
    uint8_t& f = c.events[(int)E][id];
    if (!f) emu::Fail(13, emu::Str("WaitFlag<HardEvent::", emu::EventName(E), ">(", id, ") without a prior SetFlag with the same event and id"));
    f = 0;
    auto pq = emu::EventPipes(E);
    if (c.synced[pq.first][pq.second] < c.pending[(int)E][id]) c.synced[pq.first][pq.second] = c.pending[(int)E][id];
}
template <pipe_t P> inline void PipeBarrier() { if (P == PIPE_ALL) emu::HzBarrierAll(); }
inline void pipe_barrier(pipe_t p) { if (p == PIPE_ALL) emu::HzBarrierAll(); }
template <pipe_t SRC, pipe_t DST> struct TQueSync {
    void SetFlag(int32_t id) { SetFlagImpl(id); }
    void WaitFlag(int32_t id) { WaitFlagImpl(id); }
  private:
    static uint8_t& Slot(int32_t id) {
        static thread_local uint8_t f[16][16][8];
        return f[SRC][DST][id & 7];
    }
    void SetFlagImpl(int32_t id) {
        if (Slot(id)) emu::Fail(13, emu::Str("TQueSync SetFlag(", id, ") set twice"));
        Slot(id) = 1;
    }
    void WaitFlagImpl(int32_t id) {
        if (!Slot(id)) emu::Fail(13, emu::Str("TQueSync WaitFlag(", id, ") without SetFlag"));
        Slot(id) = 0;
    }
};

// ---------------------------------------------------------------- cross-core synchronisation
template <uint8_t MODE, pipe_t PIPE> inline void CrossCoreSetFlag(uint16_t flagId) {
    emu::Launch& L = *emu::CurLaunch();
    emu::CoreCtx& me = emu::Core();
    if (flagId > 10) emu::Fail(14, emu::Str("CrossCoreSetFlag id ", flagId, " > 10"));
    if (MODE > 2) emu::Fail(14, emu::Str("CrossCoreSetFlag mode ", (int)MODE, " (valid: 0, 1, 2)"));
    std::lock_guard<std::mutex> g(L.mu);
    if (MODE == 2) {
        if (L.mode != MIX_MODE) emu::Fail(14, "CrossCoreSetFlag mode 2 (AIC<->AIV) needs a MIX kernel");
        for (emu::CoreCtx* c : L.cores) {
            if (c->group != me.group || c->type == me.type || !c->launched) continue;
            int& cnt = (me.type == AIC) ? c->p2p[flagId] : c->fromSub[me.sub][flagId];
            if (++cnt > 15) emu::Fail(14, emu::Str("cross-core flag ", flagId, " counter exceeds 15 pending sets"));
        }
    } else if (MODE == 0) {
        L.sets0[me.type][flagId]++;
    } else {
        if (me.type != AIV) emu::Fail(14, "CrossCoreSetFlag mode 1 synchronises the two AIVs of one AI Core");
        auto& v = L.sets1[me.group];
        v.resize(16);
        v[flagId]++;
    }
}

namespace emu {
inline int LaunchedCount(Launch& L, CoreType t, int group = -1) {
    int n = 0;
    for (CoreCtx* c : L.cores) n += (c->type == t && c->launched && !(c->done && !c->launched) && (group < 0 || c->group == group));
    return n;
}
// Is flag `id` available to core c (any mode)? Consumes it when `take`.
inline bool CrossAvailable(Launch& L, CoreCtx& c, int id, bool take) {
    if (c.type == AIV && c.p2p[id] > 0) { if (take) c.p2p[id]--; return true; }
    if (c.type == AIC) {
        bool any = false, all = true;
        for (CoreCtx* v : L.cores)
            if (v->group == c.group && v->type == AIV && v->launched) { any = true; all = all && c.fromSub[v->sub][id] > 0; }
        if (any && all) {
            if (take) for (CoreCtx* v : L.cores) if (v->group == c.group && v->type == AIV && v->launched) c.fromSub[v->sub][id]--;
            return true;
        }
    }
    int n0 = LaunchedCount(L, c.type);
    if (L.sets0[c.type][id] >= (c.used0[id] + 1) * n0) { if (take) c.used0[id]++; return true; }
    if (c.type == AIV && L.sets1.count(c.group)) {
        int n1 = LaunchedCount(L, AIV, c.group);
        if (L.sets1[c.group][id] >= (c.used1[id] + 1) * n1) { if (take) c.used1[id]++; return true; }
    }
    return false;
}
}  // namespace emu

template <uint8_t MODE = 0, pipe_t PIPE = PIPE_S> inline void CrossCoreWaitFlag(uint16_t flagId) {
    emu::Launch& L = *emu::CurLaunch();
    emu::CoreCtx& me = emu::Core();
    if (flagId > 10) emu::Fail(14, emu::Str("CrossCoreWaitFlag id ", flagId, " > 10"));
    emu::BlockUntil([&L, &me, flagId] { return emu::CrossAvailable(L, me, flagId, false); },
                    emu::Str("CrossCoreWaitFlag(", flagId, ")"));
    std::lock_guard<std::mutex> g(L.mu);
    emu::CrossAvailable(L, me, flagId, true);
}

template <bool isAIVOnly = true> inline void SyncAll() {
    emu::Launch& L = *emu::CurLaunch();
    emu::CoreCtx& me = emu::Core();
    if (!isAIVOnly && L.mode != MIX_MODE) emu::Fail(15, "SyncAll<false>() synchronises AIC and AIV and needs a MIX kernel");
    if (isAIVOnly && me.type != AIV) emu::Fail(15, "SyncAll<true>() is an AIV-only barrier but was called on an AIC");
    int k = isAIVOnly ? 0 : 1;
    int parties = isAIVOnly ? emu::LaunchedCount(L, AIV) : emu::LaunchedCount(L, AIV) + emu::LaunchedCount(L, AIC);
    uint64_t gen;
    {
        std::lock_guard<std::mutex> g(L.mu);
        gen = L.syncGen[k];
        if (++L.syncArrived[k] == parties) { L.syncArrived[k] = 0; L.syncGen[k]++; return; }
    }
    emu::BlockUntil([&L, k, gen] { return L.syncGen[k] != gen; }, "SyncAll");
}

template <typename T, CacheLine L = CacheLine::SINGLE_CACHE_LINE, DcciDst D = DcciDst::CACHELINE_OUT, typename G>
inline void DataCacheCleanAndInvalid(const G&) {}

namespace emu {
// ---------------------------------------------------------------- launch (ICPU_RUN_KF)
inline void CoreMain(Launch& L, CoreCtx& c, const std::function<void()>& body) {
    tl_core = &c;
    g_coreType = c.type;
    std::unique_lock<std::mutex> lk(L.mu);
    L.cv.wait(lk, [&] { return L.turn == c.id || L.aborted; });
    if (L.aborted) { c.done = true; return; }
    lk.unlock();
    std::string err;
    try {
        body();
        for (int e = 0; e < (int)HardEvent::MAX; ++e)
            for (int i = 0; i < 8; ++i)
                if (c.events[e][i]) Fail(13, Str("SetFlag<HardEvent::", EventName((HardEvent)e), ">(", i, ") was never waited for (unbalanced at kernel end)"));
    } catch (const NotLaunched&) {
        std::memset(c.p2p, 0, sizeof(c.p2p));
    } catch (const Aborted&) {
    } catch (const std::exception& ex) {
        err = ex.what();
    }
    lk.lock();
    c.done = true;
    c.waitCond = nullptr;
    if (!err.empty() && !L.aborted) { L.aborted = true; L.error = err; L.cv.notify_all(); return; }
    if (!L.aborted) PassTurn(L, c.id);
    tl_core = nullptr;
}

inline bool RunKernel(const char* name, int blockDim, const std::function<void()>& body) {
    Launch L;
    L.kernelName = name;
    L.blockDim = blockDim;
    L.mode = (KernelMode)KernelModeRef();
    std::vector<std::unique_ptr<CoreCtx>> owned;
    auto add = [&](CoreType t, int group, int sub, int idx) {
        owned.emplace_back(new CoreCtx);
        CoreCtx* c = owned.back().get();
        c->type = t; c->group = group; c->sub = sub; c->blockIdx = idx; c->id = (int)L.cores.size();
        if (t == AIV) c->mem[(int)Hardware::UB].assign(kUbSize, 0xFF);
        else for (Hardware h : {Hardware::L1, Hardware::L0A, Hardware::L0B, Hardware::L0C, Hardware::BIAS, Hardware::FIXBUF})
            c->mem[(int)h].assign(HwCapacity(h), 0xFF);   // poisoned: NaN for half/float
        L.cores.push_back(c);
    };
    for (int b = 0; b < blockDim; ++b) {
        if (L.mode == AIV_MODE) add(AIV, b, 0, b);
        else if (L.mode == AIC_MODE) add(AIC, b, 0, b);
        else { add(AIC, b, 0, b); add(AIV, b, 0, 2 * b); add(AIV, b, 1, 2 * b + 1); }
    }
    CurLaunch() = &L;
    L.turn = 0;
    std::vector<std::thread> threads;
    for (CoreCtx* c : L.cores) threads.emplace_back([&L, c, &body] { CoreMain(L, *c, body); });
    for (auto& t : threads) t.join();
    if (!L.aborted) {
        for (CoreCtx* c : L.cores)
            for (int i = 0; i < 16; ++i)
                if (c->p2p[i] || c->fromSub[0][i] || c->fromSub[1][i]) {
                    tl_core = c;
                    L.error = Str("rule 14 (", RuleName(14), ") violated on ", CoreName(), ": cross-core flag ", i,
                                  " still has pending sets at kernel end");
                    tl_core = nullptr;
                    L.aborted = true;
                }
    }
    CurLaunch() = nullptr;
    if (L.aborted) {
        LastErrorRef() = Str("kernel '", name, "' aborted: ", L.error);
        if (!QuietRef()) std::fprintf(stderr, "[tilec ascend emulation] %s\n", LastErrorRef().c_str());
        return false;
    }
    LastErrorRef().clear();
    return true;
}
inline const char* LastError() { return LastErrorRef().c_str(); }
}  // namespace emu
}  // namespace AscendC

#define ASCEND_IS_AIV (AscendC::g_coreType == AscendC::AIV)
#define ASCEND_IS_AIC (AscendC::g_coreType == AscendC::AIC)
#define ASCEND_IS_NOT_AIV (AscendC::g_coreType != AscendC::AIV)
#define ASCEND_IS_NOT_AIC (AscendC::g_coreType != AscendC::AIC)
#define KERNEL_TASK_TYPE_DEFAULT(type) AscendC::emu::SetKernelType(type)
#define KERNEL_TASK_TYPE(key, type) AscendC::emu::SetKernelType(type)
#define ICPU_SET_TILING_KEY(key) (AscendC::emu::TilingKeyRef() = (uint64_t)(key))
#define TILING_KEY_IS(key) (AscendC::emu::TilingKeyRef() == (uint64_t)(key))
#define ICPU_RUN_KF(func, blockDim, ...) \
    AscendC::emu::RunKernel(#func, (int)(blockDim), [&]() { func(__VA_ARGS__); })
