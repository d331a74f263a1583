// Kernels that break a hardware rule of docs/backends/ascend.md, "Rules checked"; each must be stopped by the emulation with a
// message naming the rule. `header_rules <case>` runs one case and prints "ERROR: <message>".
#include "kernel_operator.h"
#include <string>
using namespace AscendC;

#define VEC_PROLOGUE                                                 \
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);                  \
    GlobalTensor<float> g; g.SetGlobalBuffer((__gm__ float*)gm, 1024); \
    TPipe pipe; TBuf<TPosition::VECCALC> buf; pipe.InitBuffer(buf, 8192); \
    LocalTensor<float> x = buf.Get<float>();

extern "C" __global__ __aicore__ void misaligned(GM_ADDR gm) { VEC_PROLOGUE DataCopy(x[4], g, 64); }
extern "C" __global__ __aicore__ void count_not_32b(GM_ADDR gm) { VEC_PROLOGUE DataCopy(x, g, 7); }
extern "C" __global__ __aicore__ void ub_overflow(GM_ADDR gm) {
    VEC_PROLOGUE
    TQue<QuePosition::VECIN, 2> q; pipe.InitBuffer(q, 2, 100 * 1024);
}
extern "C" __global__ __aicore__ void wait_without_set(GM_ADDR gm) {
    VEC_PROLOGUE DataCopy(x, g, 64); WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);
}
extern "C" __global__ __aicore__ void set_never_waited(GM_ADDR gm) {
    VEC_PROLOGUE DataCopy(x, g, 64); SetFlag<HardEvent::MTE2_V>(EVENT_ID1);
}
extern "C" __global__ __aicore__ void double_set(GM_ADDR gm) {
    VEC_PROLOGUE SetFlag<HardEvent::V_MTE3>(EVENT_ID0); SetFlag<HardEvent::V_MTE3>(EVENT_ID0);
}
extern "C" __global__ __aicore__ void vector_touches_l1(GM_ADDR gm) {
    VEC_PROLOGUE
    TQue<QuePosition::A1, 1> qa; pipe.InitBuffer(qa, 1, 4096);     // bookkeeping is allowed on both cores
    LocalTensor<float> a1 = qa.AllocTensor<float>();               // touching L1 is not
    DataCopy(a1, g, 64);
}
extern "C" __global__ __aicore__ void deque_empty(GM_ADDR gm) {
    VEC_PROLOGUE
    TQue<QuePosition::VECIN, 1> q; pipe.InitBuffer(q, 1, 256);
    LocalTensor<float> t = q.DeQue<float>();
    (void)t;
}
extern "C" __global__ __aicore__ void alloc_too_many(GM_ADDR gm) {
    VEC_PROLOGUE
    TQue<QuePosition::VECIN, 2> q; pipe.InitBuffer(q, 2, 256);
    auto a = q.AllocTensor<float>(); auto b = q.AllocTensor<float>(); auto c = q.AllocTensor<float>();
    (void)a; (void)b; (void)c;
}
extern "C" __global__ __aicore__ void gm_out_of_bounds(GM_ADDR gm) { VEC_PROLOGUE DataCopy(x, g[1000], 64); }
extern "C" __global__ __aicore__ void local_overflow(GM_ADDR gm) { VEC_PROLOGUE Add(x, x, x, 4096); }
extern "C" __global__ __aicore__ void compare_unaligned(GM_ADDR gm) {
    VEC_PROLOGUE
    DataCopy(x, g, 128);
    LocalTensor<uint8_t> m = buf.GetWithOffset<uint8_t>(64, 4096);
    Compare(m, x, x[64], CMPMODE::LT, 40);
}
extern "C" __global__ __aicore__ void level0_bad_mask(GM_ADDR gm) {
    VEC_PROLOGUE
    Add(x, x, x, (uint64_t)100, 1, BinaryRepeatParams());   // float has 64 lanes per repeat
}
extern "C" __global__ __aicore__ void wrong_kernel_type(GM_ADDR gm) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);           // launched in AIV_MODE
}
extern "C" __global__ __aicore__ void cross_deadlock(GM_ADDR gm) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
    if ASCEND_IS_AIC { CrossCoreWaitFlag(1); CrossCoreSetFlag<2, PIPE_FIX>(0); }
    if ASCEND_IS_AIV { CrossCoreWaitFlag(0); CrossCoreSetFlag<2, PIPE_MTE3>(1); }
}
extern "C" __global__ __aicore__ void cross_pending(GM_ADDR gm) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
    if ASCEND_IS_AIC { CrossCoreSetFlag<2, PIPE_FIX>(3); }
}
extern "C" __global__ __aicore__ void fixpipe_nsize(GM_ADDR gm) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);
    GlobalTensor<float> g; g.SetGlobalBuffer((__gm__ float*)gm, 1024);
    TPipe pipe; TBuf<TPosition::CO1> c; pipe.InitBuffer(c, 4096);
    FixpipeParamsV220 p; p.nSize = 20; p.mSize = 16; p.srcStride = 16; p.dstStride = 20;
    Fixpipe<float, float, CFG_ROW_MAJOR>(g, c.Get<float>(), p);
}
extern "C" __global__ __aicore__ void mmad_dtype(GM_ADDR gm) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);
    TPipe pipe; TBuf<TPosition::A2> a; TBuf<TPosition::B2> b; TBuf<TPosition::CO1> c;
    pipe.InitBuffer(a, 4096); pipe.InitBuffer(b, 4096); pipe.InitBuffer(c, 4096);
    Mmad(c.Get<float>(), a.Get<int8_t>(), b.Get<int8_t>(), MmadParams(16, 16, 32, 0, false, true));
}
extern "C" __global__ __aicore__ void missing_sync(GM_ADDR gm) {
    VEC_PROLOGUE
    DataCopy(x, g, 64);          // MTE2 writes x ...
    Exp(x, x, 64);               // ... and V reads it with no MTE2_V flag in between
}
extern "C" __global__ __aicore__ void scalar_after_vector(GM_ADDR gm) {
    VEC_PROLOGUE
    DataCopy(x, g, 64);
    PipeBarrier<PIPE_ALL>();
    Muls(x, x, 2.0f, 64);
    float v = x.GetValue(3);     // S reads what V wrote: needs V_S (or PipeBarrier<PIPE_ALL>)
    (void)v;
}
extern "C" __global__ __aicore__ void cube_touches_ub(GM_ADDR gm) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);
    GlobalTensor<float> g; g.SetGlobalBuffer((__gm__ float*)gm, 1024);
    TPipe pipe; TBuf<TPosition::VECCALC> buf; pipe.InitBuffer(buf, 1024);
    DataCopy(buf.Get<float>(), g, 64);
}

int main(int argc, char** argv) {
    std::string c = argc > 1 ? argv[1] : "";
    GM_ADDR gm = (GM_ADDR)GmAlloc(4096);
    emu::QuietRef() = true;
    bool ok = true;
#define RUN(NAME, MODE) else if (c == #NAME) { SetKernelMode(MODE); ok = ICPU_RUN_KF(NAME, 1, gm); }
    if (false) {}
    RUN(misaligned, AIV_MODE) RUN(count_not_32b, AIV_MODE) RUN(ub_overflow, AIV_MODE) RUN(wait_without_set, AIV_MODE)
    RUN(set_never_waited, AIV_MODE) RUN(double_set, AIV_MODE) RUN(vector_touches_l1, AIV_MODE) RUN(deque_empty, AIV_MODE)
    RUN(alloc_too_many, AIV_MODE) RUN(gm_out_of_bounds, AIV_MODE) RUN(local_overflow, AIV_MODE) RUN(compare_unaligned, AIV_MODE)
    RUN(level0_bad_mask, AIV_MODE) RUN(wrong_kernel_type, AIV_MODE) RUN(cross_deadlock, MIX_MODE) RUN(cross_pending, MIX_MODE)
    RUN(fixpipe_nsize, AIC_MODE) RUN(mmad_dtype, AIC_MODE) RUN(cube_touches_ub, AIC_MODE)
    RUN(missing_sync, AIV_MODE) RUN(scalar_after_vector, AIV_MODE)
    else { std::printf("unknown case %s\n", c.c_str()); return 2; }
    if (ok) std::printf("OK (no rule violated)\n");
    else std::printf("ERROR: %s\n", emu::LastError());
    GmFree(gm);
    return 0;
}
