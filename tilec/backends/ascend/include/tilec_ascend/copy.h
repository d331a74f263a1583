// tilec AscendC emulation: data movement (DataCopy, DataCopyPad, Nd2Nz, LoadData, Fixpipe), the Cube
// (Mmad with the Zz/Zn/Nz fractal layouts of docs/backends/ascend.md) and GM atomics.
#pragma once
#include "tensor.h"

namespace AscendC {

struct DataCopyParams {
    uint16_t blockCount = 1, blockLen = 0, srcStride = 0, dstStride = 0;
    DataCopyParams() = default;
    DataCopyParams(uint16_t c, uint16_t l, uint16_t s, uint16_t d) : blockCount(c), blockLen(l), srcStride(s), dstStride(d) {}
};
struct DataCopyExtParams {
    uint16_t blockCount = 1; uint32_t blockLen = 0; uint32_t srcStride = 0, dstStride = 0; uint32_t rsv = 0;
    DataCopyExtParams() = default;
    DataCopyExtParams(uint16_t c, uint32_t l, uint32_t s, uint32_t d, uint32_t r = 0)
        : blockCount(c), blockLen(l), srcStride(s), dstStride(d), rsv(r) {}
};
template <typename T> struct DataCopyPadExtParams {
    bool isPad = false; uint8_t leftPadding = 0, rightPadding = 0; T paddingValue = T(0);
    DataCopyPadExtParams() = default;
    DataCopyPadExtParams(bool p, uint8_t l, uint8_t r, T v) : isPad(p), leftPadding(l), rightPadding(r), paddingValue(v) {}
};
struct DataCopyPadParams {
    bool isPad = false; uint8_t leftPadding = 0, rightPadding = 0; uint64_t paddingValue = 0;
    DataCopyPadParams() = default;
    DataCopyPadParams(bool p, uint8_t l, uint8_t r, uint64_t v) : isPad(p), leftPadding(l), rightPadding(r), paddingValue(v) {}
};
struct Nd2NzParams {
    uint16_t ndNum = 1, nValue = 0, dValue = 0, srcNdMatrixStride = 0, srcDValue = 0, dstNzC0Stride = 0,
             dstNzNStride = 1, dstNzMatrixStride = 0;
    Nd2NzParams() = default;
    Nd2NzParams(uint16_t a, uint16_t n, uint16_t d, uint16_t sm, uint16_t sd, uint16_t c0, uint16_t ns, uint16_t dm)
        : ndNum(a), nValue(n), dValue(d), srcNdMatrixStride(sm), srcDValue(sd), dstNzC0Stride(c0), dstNzNStride(ns),
          dstNzMatrixStride(dm) {}
};
struct LoadData2DParams {
    uint16_t startIndex = 0; uint8_t repeatTimes = 0; uint16_t srcStride = 0; uint8_t sid = 0; uint16_t dstGap = 0;
    bool ifTranspose = false; uint8_t addrMode = 0;
    LoadData2DParams() = default;
    LoadData2DParams(uint16_t s, uint8_t r, uint16_t ss, uint8_t sid_, uint16_t g, bool t, uint8_t a)
        : startIndex(s), repeatTimes(r), srcStride(ss), sid(sid_), dstGap(g), ifTranspose(t), addrMode(a) {}
};
struct MmadParams {
    uint16_t m = 0, n = 0, k = 0; bool isBias = false; int32_t fmOffset = 0; bool enSsparse = false,
    enWinogradA = false, enWinogradB = false; uint8_t unitFlag = 0; bool kDirectionAlign = false,
    cmatrixSource = false, cmatrixInitVal = true;
    MmadParams() = default;
    MmadParams(uint16_t m_, uint16_t n_, uint16_t k_, uint8_t uf, bool src, bool init)
        : m(m_), n(n_), k(k_), unitFlag(uf), cmatrixSource(src), cmatrixInitVal(init) {}
    MmadParams(uint16_t m_, uint16_t n_, uint16_t k_, bool bias, int32_t off, bool sp, bool wa, bool wb)
        : m(m_), n(n_), k(k_), isBias(bias), fmOffset(off), enSsparse(sp), enWinogradA(wa), enWinogradB(wb) {}
};
struct FixpipeParamsV220 {
    uint16_t nSize = 0, mSize = 0, srcStride = 0; uint32_t dstStride = 0; bool reluEn = false;
    QuantMode_t quantPre = NoQuant; uint64_t deqScalar = 0; uint16_t ndNum = 1, srcNdStride = 0, dstNdStride = 0;
    uint8_t unitFlag = 0;
};
enum class CO2Layout : uint8_t { NZ = 0, ROW_MAJOR, COLUMN_MAJOR };
struct FixpipeConfig { CO2Layout format; };
inline constexpr FixpipeConfig CFG_NZ = {CO2Layout::NZ};
inline constexpr FixpipeConfig CFG_ROW_MAJOR = {CO2Layout::ROW_MAJOR};
template <typename T> struct InitConstValueParams {
    uint16_t repeatTimes = 0, blockNum = 0, dstGap = 0; T initValue = T(0);
    InitConstValueParams() = default;
    InitConstValueParams(uint16_t r, uint16_t b, uint16_t g, T v) : repeatTimes(r), blockNum(b), dstGap(g), initValue(v) {}
};

// ---------------------------------------------------------------- GM atomics (MTE3 and FIX writes)
template <typename T> inline void SetAtomicAdd() { emu::Core().atomic = 1; }
template <typename T> inline void SetAtomicMax() { emu::Core().atomic = 2; }
template <typename T> inline void SetAtomicMin() { emu::Core().atomic = 3; }
inline void SetAtomicNone() { emu::Core().atomic = 0; }
inline void DisableDmaAtomic() { emu::Core().atomic = 0; }

namespace emu {
template <typename T> inline void GmStore(T* dst, T v) {
    int a = Core().atomic;
    if (a == 0) { *dst = v; return; }
    auto x = ToComp(*dst), y = ToComp(v);
    *dst = FromComp<T>(a == 1 ? x + y : a == 2 ? (x > y ? x : y) : (x < y ? x : y));
}
template <typename T> inline void CheckMovable(const LocalTensor<T>& t, const char* what) {
    Hardware h = t.Hw();
    if (h != Hardware::UB && h != Hardware::L1) {
        HwBase(h);
        Fail(5, Str(what, ": DataCopy does not move ", HwName(h), " (use LoadData / Fixpipe)"));
    }
    HwBase(h);
    CheckAlign(t, what);
}
inline void CheckCount32(uint32_t count, size_t size, const char* what) {
    if ((count * size) % 32)
        Fail(3, Str(what, ": count ", count, " x ", size, " bytes = ", count * size,
                    " bytes is not a multiple of 32 (the hardware would silently round down; use DataCopyPad)"));
}
}  // namespace emu

// ---------------------------------------------------------------- DataCopy, count form
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, uint32_t count) {
    emu::CheckMovable(dst, "DataCopy(GM->local)");
    emu::CheckCount32(count, sizeof(T), "DataCopy(GM->local)");
    emu::PipeScope ps(emu::P_MTE2);
    std::memcpy(dst.WPtr(0, count), src.Ptr(0, count), count * sizeof(T));
}
template <typename T> inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count) {
    emu::CheckMovable(src, "DataCopy(local->GM)");
    emu::CheckCount32(count, sizeof(T), "DataCopy(local->GM)");
    emu::PipeScope ps(emu::P_MTE3);
    const T* s = src.RPtr(0, count);
    T* d = dst.Ptr(0, count);
    for (uint32_t i = 0; i < count; ++i) emu::GmStore(d + i, s[i]);
}
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count) {
    emu::CheckMovable(dst, "DataCopy(local->local)");
    emu::CheckMovable(src, "DataCopy(local->local)");
    emu::CheckCount32(count, sizeof(T), "DataCopy(local->local)");
    emu::PipeScope ps(emu::P_V);
    const T* s = src.RPtr(0, count);
    std::memmove(dst.WPtr(0, count), s, count * sizeof(T));
}

// ---------------------------------------------------------------- DataCopy, DataCopyParams (32 B units)
namespace emu {
inline void CheckParams(const DataCopyParams& p, const char* what) {
    if (p.blockCount == 0 || p.blockCount > 4095) Fail(4, Str(what, ": blockCount ", p.blockCount, " outside 1..4095"));
    if (p.blockLen == 0) Fail(4, Str(what, ": blockLen is 0 (unit: 32-byte blocks)"));
}
}  // namespace emu
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p) {
    emu::CheckMovable(dst, "DataCopy(GM->local, DataCopyParams)");
    emu::CheckParams(p, "DataCopy(GM->local, DataCopyParams)");
    emu::PipeScope ps(emu::P_MTE2);
    uint32_t e = 32 / sizeof(T), len = p.blockLen * e;
    for (uint32_t b = 0; b < p.blockCount; ++b)
        std::memcpy(dst.WPtr(b * (p.blockLen + p.dstStride) * e, len), src.Ptr(b * (p.blockLen + p.srcStride) * e, len), len * sizeof(T));
}
template <typename T> inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& p) {
    emu::CheckMovable(src, "DataCopy(local->GM, DataCopyParams)");
    emu::CheckParams(p, "DataCopy(local->GM, DataCopyParams)");
    emu::PipeScope ps(emu::P_MTE3);
    uint32_t e = 32 / sizeof(T), len = p.blockLen * e;
    for (uint32_t b = 0; b < p.blockCount; ++b) {
        const T* s = src.RPtr(b * (p.blockLen + p.srcStride) * e, len);
        T* d = dst.Ptr(b * (p.blockLen + p.dstStride) * e, len);
        for (uint32_t i = 0; i < len; ++i) emu::GmStore(d + i, s[i]);
    }
}
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& p) {
    emu::CheckMovable(dst, "DataCopy(local->local, DataCopyParams)");
    emu::CheckMovable(src, "DataCopy(local->local, DataCopyParams)");
    emu::CheckParams(p, "DataCopy(local->local, DataCopyParams)");
    emu::PipeScope ps(emu::P_V);
    uint32_t e = 32 / sizeof(T), len = p.blockLen * e;
    for (uint32_t b = 0; b < p.blockCount; ++b) {
        const T* s = src.RPtr(b * (p.blockLen + p.srcStride) * e, len);
        std::memmove(dst.WPtr(b * (p.blockLen + p.dstStride) * e, len), s, len * sizeof(T));
    }
}

// ---------------------------------------------------------------- DataCopyPad (blockLen in bytes)
namespace emu {
template <typename T> inline void PadIn(const LocalTensor<T>& dst, const GlobalTensor<T>& src, uint16_t count, uint32_t blockLen,
                                        uint32_t srcStrideBytes, uint32_t dstStrideBlocks, bool isPad, uint8_t left,
                                        uint8_t right, T padVal) {
    const char* what = "DataCopyPad(GM->UB)";
    if (dst.Hw() != Hardware::UB) { HwBase(dst.Hw()); Fail(5, Str(what, ": destination must be UB")); }
    HwBase(Hardware::UB);
    CheckAlign(dst, what);
    if (count == 0 || count > 4095) Fail(4, Str(what, ": blockCount ", count, " outside 1..4095"));
    if (blockLen % sizeof(T)) Fail(4, Str(what, ": blockLen ", blockLen, " bytes is not a multiple of sizeof(T)=", sizeof(T)));
    if ((left + right) * sizeof(T) > 32) Fail(4, Str(what, ": padding of ", left + right, " elements exceeds 32 bytes"));
    uint32_t n = blockLen / sizeof(T), padded = ((left + n) * sizeof(T) + 31) / 32 * 32 / sizeof(T);
    uint32_t dstPitch = padded + dstStrideBlocks * 32 / sizeof(T);
    uint64_t srcPos = 0;
    PipeScope ps(P_MTE2);
    for (uint32_t b = 0; b < count; ++b) {
        const T* s = src.Ptr(srcPos / sizeof(T), n);
        T* d = dst.WPtr(b * dstPitch, padded);
        if (isPad) for (uint32_t i = 0; i < padded; ++i) d[i] = padVal;
        std::memcpy(d + left, s, blockLen);
        srcPos += blockLen + srcStrideBytes;
        if (srcStrideBytes % sizeof(T)) Fail(4, Str(what, ": GM stride ", srcStrideBytes, " bytes is not a multiple of sizeof(T)"));
    }
}
}  // namespace emu
template <typename T>
inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p,
                        const DataCopyPadExtParams<T>& pad) {
    emu::PadIn(dst, src, p.blockCount, p.blockLen, p.srcStride, p.dstStride, pad.isPad, pad.leftPadding, pad.rightPadding,
               pad.paddingValue);
}
template <typename T>
inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p,
                        const DataCopyPadParams& pad) {
    T v;
    if constexpr (sizeof(T) <= 8) { uint64_t raw = pad.paddingValue; std::memcpy(&v, &raw, sizeof(T)); }
    emu::PadIn(dst, src, p.blockCount, p.blockLen, p.srcStride, p.dstStride, pad.isPad, pad.leftPadding, pad.rightPadding, v);
}
namespace emu {
template <typename T> inline void PadOut(const GlobalTensor<T>& dst, const LocalTensor<T>& src, uint16_t count,
                                         uint32_t blockLen, uint32_t srcStrideBlocks, uint32_t dstStrideBytes) {
    const char* what = "DataCopyPad(UB->GM)";
    if (src.Hw() != Hardware::UB) { HwBase(src.Hw()); Fail(5, Str(what, ": source must be UB")); }
    HwBase(Hardware::UB);
    CheckAlign(src, what);
    if (count == 0 || count > 4095) Fail(4, Str(what, ": blockCount ", count, " outside 1..4095"));
    if (blockLen % sizeof(T)) Fail(4, Str(what, ": blockLen ", blockLen, " bytes is not a multiple of sizeof(T)=", sizeof(T)));
    if (dstStrideBytes % sizeof(T)) Fail(4, Str(what, ": GM stride ", dstStrideBytes, " bytes is not a multiple of sizeof(T)"));
    uint32_t n = blockLen / sizeof(T), padded = (blockLen + 31) / 32 * 32 / sizeof(T);
    uint32_t srcPitch = padded + srcStrideBlocks * 32 / sizeof(T);
    uint64_t dstPos = 0;
    PipeScope ps(P_MTE3);
    for (uint32_t b = 0; b < count; ++b) {
        const T* s = src.RPtr(b * srcPitch, n);
        T* d = dst.Ptr(dstPos / sizeof(T), n);
        for (uint32_t i = 0; i < n; ++i) GmStore(d + i, s[i]);
        dstPos += blockLen + dstStrideBytes;
    }
}
}  // namespace emu
template <typename T> inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p) {
    emu::PadOut(dst, src, p.blockCount, p.blockLen, p.srcStride, p.dstStride);
}
template <typename T> inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& p) {
    emu::PadOut(dst, src, p.blockCount, p.blockLen, p.srcStride, p.dstStride);
}

// ---------------------------------------------------------------- GM (ND) -> L1 (NZ)
template <typename T> inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const Nd2NzParams& p) {
    const char* what = "DataCopy(GM->L1, Nd2NzParams)";
    if (dst.Hw() != Hardware::L1) { emu::HwBase(dst.Hw()); emu::Fail(8, emu::Str(what, ": destination must be L1 (A1/B1)")); }
    emu::HwBase(Hardware::L1);
    emu::CheckAlign(dst, what);
    if (p.ndNum == 0 || p.nValue == 0 || p.dValue == 0) emu::Fail(8, emu::Str(what, ": ndNum/nValue/dValue must be > 0"));
    if (p.srcDValue < p.dValue) emu::Fail(8, emu::Str(what, ": srcDValue ", p.srcDValue, " < dValue ", p.dValue));
    const uint32_t c0 = 32 / sizeof(T);
    if (p.dstNzC0Stride * c0 < p.nValue) emu::Fail(8, emu::Str(what, ": dstNzC0Stride ", p.dstNzC0Stride, " (32 B units) < nValue ", p.nValue));
    uint32_t dPad = (p.dValue + c0 - 1) / c0 * c0;
    emu::PipeScope ps(emu::P_MTE2);
    for (uint32_t m = 0; m < p.ndNum; ++m)
        for (uint32_t r = 0; r < p.nValue; ++r) {
            const T* s = src.Ptr((uint64_t)m * p.srcNdMatrixStride + (uint64_t)r * p.srcDValue, p.dValue);
            for (uint32_t c = 0; c < dPad; ++c) {
                uint32_t o = m * p.dstNzMatrixStride + (c / c0) * p.dstNzC0Stride * c0 + r * p.dstNzNStride * c0 + c % c0;
                *dst.WPtr(o, 1) = c < p.dValue ? s[c] : T(0);
            }
        }
}

// ---------------------------------------------------------------- L1 -> L0A/L0B (512 B fractals)
namespace emu {
template <typename T> inline void LoadFractals(T* dst, const T* srcFrac, bool transpose) {
    const uint32_t c0 = 32 / sizeof(T), n = 512 / sizeof(T);
    if (!transpose) { std::memcpy(dst, srcFrac, 512); return; }
    for (uint32_t i = 0; i < 16; ++i)
        for (uint32_t j = 0; j < c0; ++j) dst[j * 16 + i] = srcFrac[i * c0 + j];
    (void)n;
}
}  // namespace emu
template <typename T> inline void LoadData(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LoadData2DParams& p) {
    const char* what = "LoadData(L1->L0, LoadData2DParams)";
    if (src.Hw() != Hardware::L1) { emu::HwBase(src.Hw()); emu::Fail(8, emu::Str(what, ": source must be L1 (A1/B1)")); }
    if (dst.Hw() != Hardware::L0A && dst.Hw() != Hardware::L0B) {
        emu::HwBase(dst.Hw());
        emu::Fail(8, emu::Str(what, ": destination must be L0A (A2) or L0B (B2)"));
    }
    emu::CheckAlign(src, what);
    emu::CheckAlign(dst, what);
    if (p.repeatTimes == 0) emu::Fail(8, emu::Str(what, ": repeatTimes is 0 (1..255)"));
    if (p.ifTranspose && sizeof(T) != 2) emu::Fail(8, emu::Str(what, ": ifTranspose is only supported for 16-bit types"));
    const uint32_t fe = 512 / sizeof(T);
    emu::PipeScope ps(emu::P_MTE1);
    for (uint32_t i = 0; i < p.repeatTimes; ++i) {
        const T* s = src.RPtr((p.startIndex + p.srcStride * i) * fe, fe);
        T* d = dst.WPtr(i * (p.dstGap + 1) * fe, fe);
        emu::LoadFractals(d, s, p.ifTranspose);
    }
}
template <typename T> inline void LoadData(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const LoadData2DParams& p) {
    const char* what = "LoadData(GM->L0, LoadData2DParams)";
    if (dst.Hw() != Hardware::L0A && dst.Hw() != Hardware::L0B) {
        emu::HwBase(dst.Hw());
        emu::Fail(8, emu::Str(what, ": destination must be L0A (A2) or L0B (B2)"));
    }
    emu::CheckAlign(dst, what);
    if (p.repeatTimes == 0) emu::Fail(8, emu::Str(what, ": repeatTimes is 0"));
    const uint32_t fe = 512 / sizeof(T);
    emu::PipeScope ps(emu::P_MTE2);
    for (uint32_t i = 0; i < p.repeatTimes; ++i)
        emu::LoadFractals(dst.WPtr(i * (p.dstGap + 1) * fe, fe), src.Ptr((p.startIndex + p.srcStride * i) * fe, fe), p.ifTranspose);
}

// L1 clears (tail rows of a fractal that Nd2Nz does not write).
template <typename T> inline void InitConstValue(const LocalTensor<T>& dst, const InitConstValueParams<T>& p) {
    emu::HwBase(dst.Hw());
    emu::CheckAlign(dst, "InitConstValue");
    const uint32_t e = 32 / sizeof(T);
    emu::PipeScope ps(emu::P_MTE2);
    for (uint32_t r = 0; r < p.repeatTimes; ++r) {
        T* d = dst.WPtr(r * (p.blockNum + p.dstGap) * e, (uint64_t)p.blockNum * e);
        for (uint32_t i = 0; i < (uint32_t)p.blockNum * e; ++i) d[i] = p.initValue;
    }
}

// ---------------------------------------------------------------- Cube
namespace emu {
template <typename C, typename A, typename B> constexpr bool MmadTypesOk() {
    return (std::is_same<A, half>::value && std::is_same<B, half>::value && std::is_same<C, float>::value) ||
           (std::is_same<A, bfloat16_t>::value && std::is_same<B, bfloat16_t>::value && std::is_same<C, float>::value) ||
           (std::is_same<A, int8_t>::value && std::is_same<B, int8_t>::value && std::is_same<C, int32_t>::value) ||
           (std::is_same<A, float>::value && std::is_same<B, float>::value && std::is_same<C, float>::value);
}
}  // namespace emu
template <typename C, typename A, typename B>
inline void Mmad(const LocalTensor<C>& c, const LocalTensor<A>& a, const LocalTensor<B>& b, const MmadParams& p) {
    if (!emu::MmadTypesOk<C, A, B>())
        emu::Fail(9, "Mmad dtype combination is not legal (half*half->float, bf16*bf16->float, int8*int8->int32, float*float->float)");
    emu::RequireHw(a, Hardware::L0A, "Mmad A");
    emu::RequireHw(b, Hardware::L0B, "Mmad B");
    emu::RequireHw(c, Hardware::L0C, "Mmad C");
    emu::HwBase(Hardware::L0C);
    emu::CheckAlign(a, "Mmad A");
    emu::CheckAlign(b, "Mmad B");
    emu::CheckAlign(c, "Mmad C", 1024);
    if (p.m == 0 || p.n == 0 || p.k == 0 || p.m > 4095 || p.n > 4095 || p.k > 4095)
        emu::Fail(9, emu::Str("Mmad m=", p.m, " n=", p.n, " k=", p.k, " (each must be 1..4095)"));
    const uint32_t c0 = 32 / sizeof(A);
    uint32_t M1 = (p.m + 15) / 16, N1 = (p.n + 15) / 16, K1 = (p.k + c0 - 1) / c0;
    emu::PipeScope ps(emu::P_M);
    const A* pa = a.RPtr(0, (uint64_t)M1 * K1 * 16 * c0);
    const B* pb = b.RPtr(0, (uint64_t)N1 * K1 * 16 * c0);
    if (!p.cmatrixInitVal) c.RPtr(0, (uint64_t)M1 * N1 * 256);
    C* pc = c.WPtr(0, (uint64_t)M1 * N1 * 256);
    using Acc = std::conditional_t<std::is_same<C, int32_t>::value, int64_t, double>;
    for (uint32_t m = 0; m < p.m; ++m)
        for (uint32_t n = 0; n < p.n; ++n) {
            Acc s = 0;
            for (uint32_t k = 0; k < p.k; ++k) {
                Acc x = (Acc)ToComp(pa[((m / 16) * K1 + k / c0) * 16 * c0 + (m % 16) * c0 + k % c0]);
                Acc y = (Acc)ToComp(pb[((k / c0) * N1 + n / 16) * 16 * c0 + (n % 16) * c0 + k % c0]);
                s += x * y;
            }
            C& out = pc[(n / 16) * M1 * 256 + (m / 16) * 256 + (m % 16) * 16 + n % 16];
            out = p.cmatrixInitVal ? (C)s : (C)(out + (C)s);
        }
}

// ---------------------------------------------------------------- L0C -> GM (NZ -> ND, quantisation)
namespace emu {
template <typename T, typename U> inline T FixConvert(U v, const FixpipeParamsV220& p) {
    auto x = ToComp(v);
    if (p.reluEn && x < 0) x = 0;
    if constexpr (std::is_same<U, float>::value) {
        if (p.quantPre == F322F16 && !std::is_same<T, half>::value) Fail(8, "Fixpipe quantPre F322F16 needs a half destination");
        if (p.quantPre == F322BF16 && !std::is_same<T, bfloat16_t>::value) Fail(8, "Fixpipe quantPre F322BF16 needs a bfloat16_t destination");
        if (p.quantPre == NoQuant && !std::is_same<T, float>::value) Fail(8, "Fixpipe NoQuant from float needs a float destination");
    }
    return FromComp<T>(x);
}
}  // namespace emu
template <typename T, typename U, const FixpipeConfig& CFG = CFG_ROW_MAJOR>
inline void Fixpipe(const GlobalTensor<T>& dst, const LocalTensor<U>& src, const FixpipeParamsV220& p) {
    const char* what = "Fixpipe(L0C->GM)";
    emu::RequireHw(src, Hardware::L0C, what);
    emu::HwBase(Hardware::L0C);
    emu::CheckAlign(src, what, 64);
    if (p.nSize == 0 || p.nSize % 16) emu::Fail(8, emu::Str(what, ": nSize ", p.nSize, " must be a positive multiple of 16"));
    if (p.mSize == 0) emu::Fail(8, emu::Str(what, ": mSize is 0"));
    if (p.srcStride < (p.mSize + 15) / 16 * 16)
        emu::Fail(8, emu::Str(what, ": srcStride ", p.srcStride, " < ceil16(mSize)=", (p.mSize + 15) / 16 * 16));
    emu::PipeScope ps(emu::P_FIX);
    const U* s = src.RPtr(0, (uint64_t)(p.nSize / 16) * p.srcStride * 16);
    for (uint32_t m = 0; m < p.mSize; ++m)
        for (uint32_t n = 0; n < p.nSize; ++n) {
            U v = s[(n / 16) * p.srcStride * 16 + m * 16 + n % 16];
            uint64_t o = CFG.format == CO2Layout::NZ ? (uint64_t)(n / 16) * p.dstStride + m * 16 + n % 16
                                                     : (uint64_t)m * p.dstStride + n;
            emu::GmStore(dst.Ptr(o, 1), emu::FixConvert<T, U>(v, p));
        }
}

}  // namespace AscendC
