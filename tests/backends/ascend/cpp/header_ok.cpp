// Positive tests of tilec's AscendC emulation header: GEMM through Nd2Nz -> LoadData -> Mmad -> Fixpipe,
// a double-buffered vector add with TQue, reductions, Cast, Compare/Select, Sort32/MrgSort, a MIX kernel
// with cross-core flags. Each case prints "CASE name err=<max abs error>"; run from test_header.py.
#include "kernel_operator.h"
#include <random>
#include <vector>
using namespace AscendC;

static std::mt19937 rng(1234);
static float Rand() { return std::uniform_real_distribution<float>(-1.f, 1.f)(rng); }

// ---------------------------------------------------------------- GEMM (one AIC per 32x32 C tile)
struct GemmTiling { uint32_t M, N, K; };
constexpr uint32_t BM = 32, BN = 32, BK = 32;
extern "C" __global__ __aicore__ void gemm_kernel(GM_ADDR a, GM_ADDR b, GM_ADDR c, GM_ADDR tiling) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);
    auto t = reinterpret_cast<__gm__ GemmTiling*>(tiling);
    GlobalTensor<half> aGm, bGm; GlobalTensor<half> cGm;
    aGm.SetGlobalBuffer((__gm__ half*)a, t->M * t->K);
    bGm.SetGlobalBuffer((__gm__ half*)b, t->K * t->N);
    cGm.SetGlobalBuffer((__gm__ half*)c, t->M * t->N);
    TPipe pipe;
    TQue<QuePosition::A1, 1> qa1; TQue<QuePosition::B1, 1> qb1;
    TQue<QuePosition::A2, 1> qa2; TQue<QuePosition::B2, 1> qb2; TQue<QuePosition::CO1, 1> qc;
    pipe.InitBuffer(qa1, 1, BM * BK * 2); pipe.InitBuffer(qb1, 1, BK * BN * 2);
    pipe.InitBuffer(qa2, 1, BM * BK * 2); pipe.InitBuffer(qb2, 1, BK * BN * 2); pipe.InitBuffer(qc, 1, BM * BN * 4);
    uint32_t tilesN = t->N / BN, tiles = (t->M / BM) * tilesN;
    for (uint32_t tile = GetBlockIdx(); tile < tiles; tile += GetBlockNum()) {
        uint32_t m0 = tile / tilesN * BM, n0 = tile % tilesN * BN;
        LocalTensor<float> c0 = qc.AllocTensor<float>();
        for (uint32_t k0 = 0; k0 < t->K; k0 += BK) {
            LocalTensor<half> a1 = qa1.AllocTensor<half>(), b1 = qb1.AllocTensor<half>();
            Nd2NzParams pa; pa.ndNum = 1; pa.nValue = BM; pa.dValue = BK; pa.srcDValue = t->K; pa.dstNzC0Stride = BM; pa.dstNzNStride = 1;
            DataCopy(a1, aGm[m0 * t->K + k0], pa);
            Nd2NzParams pb; pb.ndNum = 1; pb.nValue = BK; pb.dValue = BN; pb.srcDValue = t->N; pb.dstNzC0Stride = BK; pb.dstNzNStride = 1;
            DataCopy(b1, bGm[k0 * t->N + n0], pb);
            SetFlag<HardEvent::MTE2_MTE1>(EVENT_ID0); WaitFlag<HardEvent::MTE2_MTE1>(EVENT_ID0);
            LocalTensor<half> a2 = qa2.AllocTensor<half>(), b2 = qb2.AllocTensor<half>();
            for (uint32_t i = 0; i < BM / 16; ++i) LoadData(a2[i * BK * 16], a1[i * 256], LoadData2DParams(0, BK / 16, BM / 16, 0, 0, false, 0));
            for (uint32_t i = 0; i < BK / 16; ++i) LoadData(b2[i * BN * 16], b1[i * 256], LoadData2DParams(0, BN / 16, BK / 16, 0, 0, true, 0));
            SetFlag<HardEvent::MTE1_M>(EVENT_ID0); WaitFlag<HardEvent::MTE1_M>(EVENT_ID0);
            Mmad(c0, a2, b2, MmadParams(BM, BN, BK, 0, false, k0 == 0));
            qa1.FreeTensor(a1); qb1.FreeTensor(b1); qa2.FreeTensor(a2); qb2.FreeTensor(b2);
        }
        SetFlag<HardEvent::M_FIX>(EVENT_ID0); WaitFlag<HardEvent::M_FIX>(EVENT_ID0);
        FixpipeParamsV220 fp; fp.nSize = BN; fp.mSize = BM; fp.srcStride = BM; fp.dstStride = t->N; fp.quantPre = QuantMode_t::F322F16;
        Fixpipe<half, float, CFG_ROW_MAJOR>(cGm[m0 * t->N + n0], c0, fp);
        qc.FreeTensor(c0);
    }
}

static double CaseGemm() {
    const uint32_t M = 64, N = 96, K = 128;
    half* a = (half*)GmAlloc(M * K * 2); half* b = (half*)GmAlloc(K * N * 2); half* c = (half*)GmAlloc(M * N * 2);
    GemmTiling* t = (GemmTiling*)GmAlloc(sizeof(GemmTiling)); *t = {M, N, K};
    for (uint32_t i = 0; i < M * K; ++i) a[i] = (half)Rand();
    for (uint32_t i = 0; i < K * N; ++i) b[i] = (half)Rand();
    SetKernelMode(KernelMode::AIC_MODE);
    if (!ICPU_RUN_KF(gemm_kernel, 4, (GM_ADDR)a, (GM_ADDR)b, (GM_ADDR)c, (GM_ADDR)t)) return 1e9;
    double err = 0;
    for (uint32_t m = 0; m < M; ++m) for (uint32_t n = 0; n < N; ++n) {
        double s = 0; for (uint32_t k = 0; k < K; ++k) s += (double)(float)a[m * K + k] * (float)b[k * N + n];
        err = std::max(err, std::fabs((double)(float)c[m * N + n] - (double)(float)(half)(float)s));
    }
    GmFree(a); GmFree(b); GmFree(c); GmFree(t);
    return err;
}

// ---------------------------------------------------------------- double-buffered vector add
constexpr int32_t BUFFER_NUM = 2;
class KernelAdd {
  public:
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, GM_ADDR z, uint32_t total, uint32_t tileNum) {
        blockLen = total / GetBlockNum(); tileLen = blockLen / tileNum / BUFFER_NUM; loops = tileNum * BUFFER_NUM;
        xGm.SetGlobalBuffer((__gm__ float*)x + blockLen * GetBlockIdx(), blockLen);
        yGm.SetGlobalBuffer((__gm__ float*)y + blockLen * GetBlockIdx(), blockLen);
        zGm.SetGlobalBuffer((__gm__ float*)z + blockLen * GetBlockIdx(), blockLen);
        pipe.InitBuffer(inQueueX, BUFFER_NUM, tileLen * sizeof(float));
        pipe.InitBuffer(inQueueY, BUFFER_NUM, tileLen * sizeof(float));
        pipe.InitBuffer(outQueueZ, BUFFER_NUM, tileLen * sizeof(float));
    }
    __aicore__ inline void Process() { for (uint32_t i = 0; i < loops; ++i) { CopyIn(i); Compute(i); CopyOut(i); } }
  private:
    __aicore__ inline void CopyIn(uint32_t i) {
        LocalTensor<float> x = inQueueX.AllocTensor<float>(), y = inQueueY.AllocTensor<float>();
        DataCopy(x, xGm[i * tileLen], tileLen); DataCopy(y, yGm[i * tileLen], tileLen);
        inQueueX.EnQue(x); inQueueY.EnQue(y);
    }
    __aicore__ inline void Compute(uint32_t) {
        LocalTensor<float> x = inQueueX.DeQue<float>(), y = inQueueY.DeQue<float>();
        LocalTensor<float> z = outQueueZ.AllocTensor<float>();
        Add(z, x, y, tileLen);
        outQueueZ.EnQue(z); inQueueX.FreeTensor(x); inQueueY.FreeTensor(y);
    }
    __aicore__ inline void CopyOut(uint32_t i) {
        LocalTensor<float> z = outQueueZ.DeQue<float>();
        DataCopy(zGm[i * tileLen], z, tileLen); outQueueZ.FreeTensor(z);
    }
    TPipe pipe;
    TQue<QuePosition::VECIN, BUFFER_NUM> inQueueX, inQueueY;
    TQue<QuePosition::VECOUT, BUFFER_NUM> outQueueZ;
    GlobalTensor<float> xGm, yGm, zGm;
    uint32_t blockLen, tileLen, loops;
};
extern "C" __global__ __aicore__ void add_custom(GM_ADDR x, GM_ADDR y, GM_ADDR z, uint32_t total) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
    KernelAdd op; op.Init(x, y, z, total, 4); op.Process();
}
static double CaseAdd() {
    const uint32_t n = 8 * 4 * 2 * 64;
    float* x = (float*)GmAlloc(n * 4); float* y = (float*)GmAlloc(n * 4); float* z = (float*)GmAlloc(n * 4);
    for (uint32_t i = 0; i < n; ++i) { x[i] = Rand(); y[i] = Rand(); z[i] = NAN; }
    SetKernelMode(KernelMode::AIV_MODE);
    if (!ICPU_RUN_KF(add_custom, 8, (GM_ADDR)x, (GM_ADDR)y, (GM_ADDR)z, n)) return 1e9;
    double err = 0;
    for (uint32_t i = 0; i < n; ++i) err = std::max(err, (double)std::fabs(z[i] - (x[i] + y[i])) + (z[i] != z[i] ? 1e9 : 0));
    GmFree(x); GmFree(y); GmFree(z);
    return err;
}

// ---------------------------------------------------------------- reductions, cast, compare/select, sort
extern "C" __global__ __aicore__ void misc_kernel(GM_ADDR in, GM_ADDR out) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
    GlobalTensor<float> inGm, outGm;
    inGm.SetGlobalBuffer((__gm__ float*)in, 256); outGm.SetGlobalBuffer((__gm__ float*)out, 64);
    TPipe pipe; TBuf<TPosition::VECCALC> buf;
    pipe.InitBuffer(buf, 16384);
    LocalTensor<float> x = buf.GetWithOffset<float>(256, 0), r = buf.GetWithOffset<float>(64, 1024), tmp = buf.GetWithOffset<float>(256, 2048);
    LocalTensor<float> w = buf.GetWithOffset<float>(64, 3072);
    DataCopy(x, inGm, 256);
    SetFlag<HardEvent::MTE2_V>(EVENT_ID0);
    WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);
    Duplicate(r, 0.0f, 64);
    ReduceMax(r, x, tmp, 256, true);                               // r[0] = max, r[1] = index bits
    ReduceSum(r[8], x, tmp, 256);                                   // r[8] = sum
    WholeReduceMax(w, x, 64, 4, 1, 1, 8, ReduceOrder::ORDER_ONLY_VALUE);  // w[0..3] = max of each 64 floats
    PipeBarrier<PIPE_ALL>();   // V -> S before scalar reads
    for (int i = 0; i < 4; ++i) r.SetValue(16 + i, w.GetValue(i));
    WholeReduceSum(w, x, 64, 4, 1, 1, 8);                           // w[0..3] = sums
    PipeBarrier<PIPE_ALL>();
    for (int i = 0; i < 4; ++i) r.SetValue(20 + i, w.GetValue(i));
    ReduceSum(r[40], x, tmp, 64, 4, 8);                             // level-0: r[40] = sum of all 256
    BlockReduceMax(w, x, 1, 64, 1, 1, 8);                           // w[0..7] = max of each 8 floats
    PipeBarrier<PIPE_ALL>();
    for (int i = 0; i < 8; ++i) r.SetValue(24 + i, w.GetValue(i));
    LocalTensor<half> h = buf.GetWithOffset<half>(256, 4096);
    Cast(h, x, RoundMode::CAST_RINT, 256);
    Cast(tmp, h, RoundMode::CAST_NONE, 256);                        // tmp = round-trip through half
    PipeBarrier<PIPE_ALL>();
    float e = 0; for (int i = 0; i < 256; ++i) e = std::max(e, std::fabs(tmp.GetValue(i) - x.GetValue(i)));
    r.SetValue(32, e);
    LocalTensor<uint8_t> mask = buf.GetWithOffset<uint8_t>(64, 5120);
    Duplicate(w, 0.0f, 64);
    Compare(mask, x, tmp, CMPMODE::GE, 64);                          // x >= rounded(x)?
    Select(tmp, mask, x, w, SELMODE::VSEL_TENSOR_TENSOR_MODE, 64);  // tmp = x where GE else 0
    PipeBarrier<PIPE_ALL>();
    float s = 0; for (int i = 0; i < 64; ++i) s += (x.GetValue(i) >= (float)(half)x.GetValue(i)) ? x.GetValue(i) : 0.f;
    float s2 = 0; for (int i = 0; i < 64; ++i) s2 += tmp.GetValue(i);
    r.SetValue(33, s - s2);
    LocalTensor<uint32_t> idx = buf.GetWithOffset<uint32_t>(64, 6144);
    CreateVecIndex(idx.ReinterpretCast<int32_t>(), 0, 64);
    LocalTensor<float> sorted = buf.GetWithOffset<float>(128, 7168), merged = buf.GetWithOffset<float>(128, 8192);
    Sort32(sorted, x, idx, 2);
    MrgSort4Info info; info.elementLengths[0] = 32; info.elementLengths[1] = 32; info.validBit = 3;
    MrgSort(merged, MrgSortSrcList<float>(sorted, sorted[64], sorted, sorted), info);
    PipeBarrier<PIPE_ALL>();
    r.SetValue(34, merged.GetValue(0));          // max of first 64 values
    r.SetValue(35, merged.GetValue(126));        // min of first 64 values
    SetFlag<HardEvent::S_MTE3>(EVENT_ID0);
    WaitFlag<HardEvent::S_MTE3>(EVENT_ID0);
    DataCopy(outGm, r, 64);
}
static double CaseMisc() {
    float* in = (float*)GmAlloc(256 * 4); float* out = (float*)GmAlloc(64 * 4);
    for (int i = 0; i < 256; ++i) in[i] = Rand();
    SetKernelMode(KernelMode::AIV_MODE);
    if (!ICPU_RUN_KF(misc_kernel, 1, (GM_ADDR)in, (GM_ADDR)out)) return 1e9;
    double err = 0;
    int am = (int)(std::max_element(in, in + 256) - in);
    uint32_t ib; std::memcpy(&ib, &out[1], 4);
    err = std::max(err, (double)std::fabs(out[0] - in[am])) + (ib != (uint32_t)am ? 1e9 : 0);
    double sum = 0; for (int i = 0; i < 256; ++i) sum += in[i];
    err = std::max(err, std::fabs(out[8] - sum));
    err = std::max(err, std::fabs(out[40] - sum));
    for (int i = 0; i < 4; ++i) {
        err = std::max(err, (double)std::fabs(out[16 + i] - *std::max_element(in + 64 * i, in + 64 * i + 64)));
        double s = 0; for (int j = 0; j < 64; ++j) s += in[64 * i + j];
        err = std::max(err, std::fabs(out[20 + i] - s));
    }
    for (int i = 0; i < 8; ++i) err = std::max(err, (double)std::fabs(out[24 + i] - *std::max_element(in + 8 * i, in + 8 * i + 8)));
    err = std::max(err, (double)std::fabs(out[32]) > 1e-3 ? 1e9 : 0.0);
    err = std::max(err, (double)std::fabs(out[33]));
    err = std::max(err, (double)std::fabs(out[34] - *std::max_element(in, in + 64)));
    err = std::max(err, (double)std::fabs(out[35] - *std::min_element(in, in + 64)));
    GmFree(in); GmFree(out);
    return err;
}

// ---------------------------------------------------------------- MIX: AIC produces, AIV consumes via GM + flags
extern "C" __global__ __aicore__ void mix_kernel(GM_ADDR ws, GM_ADDR out) {
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_MIX_AIC_1_2);
    GlobalTensor<float> wsGm, outGm;
    wsGm.SetGlobalBuffer((__gm__ float*)ws, 64 * GetBlockNum());
    outGm.SetGlobalBuffer((__gm__ float*)out, 64 * GetBlockNum() * 2);
    if ASCEND_IS_AIC {
        for (int i = 0; i < 64; ++i) wsGm.SetValue(GetBlockIdx() * 64 + i, (float)(GetBlockIdx() * 100 + i));
        CrossCoreSetFlag<2, PIPE_FIX>(0);
        CrossCoreWaitFlag(1);
    }
    if ASCEND_IS_AIV {
        CrossCoreWaitFlag(0);
        TPipe pipe; TBuf<TPosition::VECCALC> b; pipe.InitBuffer(b, 256);
        LocalTensor<float> x = b.Get<float>();
        int64_t blk = GetBlockIdx() / 2;
        DataCopy(x, wsGm[blk * 64], 64);
        SetFlag<HardEvent::MTE2_V>(EVENT_ID0);
        WaitFlag<HardEvent::MTE2_V>(EVENT_ID0);
        Muls(x, x, 2.0f, 64);
        SetFlag<HardEvent::V_MTE3>(EVENT_ID0);
        WaitFlag<HardEvent::V_MTE3>(EVENT_ID0);
        DataCopy(outGm[GetBlockIdx() * 64], x, 64);
        CrossCoreSetFlag<2, PIPE_MTE3>(1);
    }
    SyncAll<false>();
}
static double CaseMix() {
    const int blocks = 3;
    float* ws = (float*)GmAlloc(64 * blocks * 4); float* out = (float*)GmAlloc(64 * blocks * 2 * 4);
    SetKernelMode(KernelMode::MIX_MODE);
    if (!ICPU_RUN_KF(mix_kernel, blocks, (GM_ADDR)ws, (GM_ADDR)out)) return 1e9;
    double err = 0;
    for (int v = 0; v < 2 * blocks; ++v) for (int i = 0; i < 64; ++i) err = std::max(err, (double)std::fabs(out[v * 64 + i] - 2.f * ((v / 2) * 100 + i)));
    GmFree(ws); GmFree(out);
    return err;
}

int main() {
    std::printf("CASE gemm err=%g\n", CaseGemm());
    std::printf("CASE vector_add err=%g\n", CaseAdd());
    std::printf("CASE misc err=%g\n", CaseMisc());
    std::printf("CASE mix err=%g\n", CaseMix());
    return 0;
}
