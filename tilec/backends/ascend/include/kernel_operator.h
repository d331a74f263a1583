// tilec's CPU emulation of the AscendC API (Ascend 910B / arch 2201), header-only C++17.
//
// Generated AscendC sources (and hand-written ones) compile against this header with g++ and run on the
// host: ICPU_RUN_KF starts one thread per core (AIV, AIC, or 1 AIC + 2 AIV per block in MIX mode) and a
// baton lets exactly one core run at a time, switching only inside blocking primitives (CrossCoreWaitFlag,
// SyncAll), so runs are deterministic and a deadlock is reported with every waiter. Local memories are
// per core and poisoned with 0xFF at start. The hardware rules of docs/backends/ascend.md, "Rules checked" (1-16) are checked on
// every call; a violation throws, the launch stops, and ICPU_RUN_KF reports "rule N (name) violated on
// <core>: detail" (also available as AscendC::emu::LastError()).
//
// Pieces: tilec_ascend/types.h (macros, enums, half/bfloat16_t), runtime.h (cores, scheduler, GM, launch,
// sync), tensor.h (GlobalTensor, LocalTensor, TPipe, TQue, TBuf), copy.h (DataCopy*, Nd2Nz, LoadData,
// Mmad, Fixpipe), vector.h (vector instructions), reduce.h (reductions, sorting).
#pragma once
#include "tilec_ascend/types.h"
#include "tilec_ascend/runtime.h"
#include "tilec_ascend/tensor.h"
#include "tilec_ascend/copy.h"
#include "tilec_ascend/vector.h"
#include "tilec_ascend/reduce.h"

namespace AscendC {
template <typename... A> inline void PRINTF(const char* fmt, A... a) { std::printf(fmt, a...); }
template <typename T> inline void DumpTensor(const LocalTensor<T>&, uint32_t, uint32_t) {}
}  // namespace AscendC
