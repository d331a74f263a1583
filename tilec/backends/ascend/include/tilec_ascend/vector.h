// tilec AscendC emulation: Vector-unit instructions on UB (count form and level-0 mask/repeat form),
// Cast with RoundModes, Compare/Select, Brcb, index vectors, Gather/GatherMask. Every instruction reads its
// operands, computes in float (or the native integer type) and rounds to the destination type with RNE.
#pragma once
#include "copy.h"

namespace AscendC {

struct BinaryRepeatParams {
    uint8_t dstBlkStride = 1, src0BlkStride = 1, src1BlkStride = 1, dstRepStride = 8, src0RepStride = 8, src1RepStride = 8;
    BinaryRepeatParams() = default;
    BinaryRepeatParams(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t e, uint8_t f)
        : dstBlkStride(a), src0BlkStride(b), src1BlkStride(c), dstRepStride(d), src0RepStride(e), src1RepStride(f) {}
};
struct UnaryRepeatParams {
    uint16_t dstBlkStride = 1, srcBlkStride = 1; uint8_t dstRepStride = 8, srcRepStride = 8;
    UnaryRepeatParams() = default;
    UnaryRepeatParams(uint16_t a, uint16_t b, uint8_t c, uint8_t d) : dstBlkStride(a), srcBlkStride(b), dstRepStride(c), srcRepStride(d) {}
};
struct BrcbRepeatParams {
    uint16_t dstBlkStride = 1, dstRepStride = 8;
    BrcbRepeatParams() = default;
    BrcbRepeatParams(uint16_t a, uint16_t b) : dstBlkStride(a), dstRepStride(b) {}
};
struct GatherMaskParams {
    uint8_t src0BlockStride = 1; uint16_t repeatTimes = 1, src0RepeatStride = 8; uint8_t src1RepeatStride = 8;
    GatherMaskParams() = default;
    GatherMaskParams(uint8_t a, uint16_t b, uint16_t c, uint8_t d) : src0BlockStride(a), repeatTimes(b), src0RepeatStride(c), src1RepeatStride(d) {}
};

namespace emu {
template <typename T> inline void VecCheck(const LocalTensor<T>& t, const char* what) {
    RequireUB(t, what);
    CheckAlign(t, what);
}
inline void CheckCount(int64_t n, const char* what) {
    if (n < 0) Fail(10, Str(what, ": negative count ", n));
}
struct MaskBits {
    uint64_t m[2] = {0, 0};
    bool On(uint32_t l) const { return (m[l / 64] >> (l % 64)) & 1u; }
};
template <typename T> inline MaskBits CountMask(uint64_t n, const char* what) {
    const uint64_t lanes = 256 / sizeof(T);
    if (n == 0 || n > lanes) Fail(10, Str(what, ": mask ", n, " outside 1..", lanes, " for this type"));
    MaskBits mk;
    for (uint64_t i = 0; i < n; ++i) mk.m[i / 64] |= 1ull << (i % 64);
    return mk;
}
template <typename T> inline MaskBits BitMask(const uint64_t* m, const char* what) {
    const uint64_t lanes = 256 / sizeof(T);
    if (lanes <= 64 && m[1]) Fail(10, Str(what, ": mask[1] must be 0 for ", sizeof(T), "-byte types"));
    MaskBits mk; mk.m[0] = m[0]; mk.m[1] = lanes > 64 ? m[1] : 0;
    return mk;
}
// Element offset of lane l in repeat r, for block stride bs and repeat stride rs (both in 32 B blocks).
template <typename T> inline uint64_t LaneOff(uint32_t r, uint32_t l, uint32_t bs, uint32_t rs) {
    const uint32_t be = 32 / sizeof(T);
    return ((uint64_t)r * rs + (uint64_t)(l / be) * bs) * be + l % be;
}
template <typename D, typename S, typename F>
inline void UnCount(const LocalTensor<D>& dst, const LocalTensor<S>& src, int64_t n, F f, const char* what) {
    VecCheck(dst, what); VecCheck(src, what); CheckCount(n, what);
    if (n == 0) return;
    PipeScope ps(P_V);
    const S* s = src.RPtr(0, n);
    D* d = dst.WPtr(0, n);
    for (int64_t i = 0; i < n; ++i) d[i] = FromComp<D>(f(ToComp(s[i])));
}
template <typename D, typename F>
inline void BinCount(const LocalTensor<D>& dst, const LocalTensor<D>& a, const LocalTensor<D>& b, int64_t n, F f, const char* what) {
    VecCheck(dst, what); VecCheck(a, what); VecCheck(b, what); CheckCount(n, what);
    if (n == 0) return;
    PipeScope ps(P_V);
    const D* x = a.RPtr(0, n);
    const D* y = b.RPtr(0, n);
    D* d = dst.WPtr(0, n);
    for (int64_t i = 0; i < n; ++i) d[i] = FromComp<D>(f(ToComp(x[i]), ToComp(y[i])));
}
template <typename D, typename F>
inline void BinRep(const LocalTensor<D>& dst, const LocalTensor<D>& a, const LocalTensor<D>& b, const MaskBits& mk, uint8_t rep,
                   const BinaryRepeatParams& p, F f, const char* what) {
    VecCheck(dst, what); VecCheck(a, what); VecCheck(b, what);
    emu::PipeScope ps_(emu::P_V);
    if (p.dstBlkStride == 0) Fail(10, Str(what, ": dstBlkStride must not be 0"));
    const uint32_t lanes = 256 / sizeof(D);
    for (uint32_t r = 0; r < rep; ++r)
        for (uint32_t l = 0; l < lanes; ++l) {
            if (!mk.On(l)) continue;
            D x = a.GetValue(LaneOff<D>(r, l, p.src0BlkStride, p.src0RepStride));
            D y = b.GetValue(LaneOff<D>(r, l, p.src1BlkStride, p.src1RepStride));
            dst.SetValue(LaneOff<D>(r, l, p.dstBlkStride, p.dstRepStride), FromComp<D>(f(ToComp(x), ToComp(y))));
        }
}
template <typename D, typename S, typename F>
inline void UnRep(const LocalTensor<D>& dst, const LocalTensor<S>& src, const MaskBits& mk, uint8_t rep, const UnaryRepeatParams& p,
                  F f, const char* what) {
    VecCheck(dst, what); VecCheck(src, what);
    emu::PipeScope ps_(emu::P_V);
    if (p.dstBlkStride == 0) Fail(10, Str(what, ": dstBlkStride must not be 0"));
    const uint32_t lanes = 256 / (sizeof(D) > sizeof(S) ? sizeof(D) : sizeof(S));
    for (uint32_t r = 0; r < rep; ++r)
        for (uint32_t l = 0; l < lanes; ++l) {
            if (!mk.On(l)) continue;
            S x = src.GetValue(LaneOff<S>(r, l, p.srcBlkStride, p.srcRepStride));
            dst.SetValue(LaneOff<D>(r, l, p.dstBlkStride, p.dstRepStride), FromComp<D>(f(ToComp(x))));
        }
}
template <typename T> inline T Bits(T a, T b, int op) {
    if constexpr (std::is_integral<T>::value) return op == 0 ? (T)(a & b) : (T)(a | b);
    else {
        static_assert(sizeof(T) <= 8, "");
        uint64_t x = 0, y = 0;
        std::memcpy(&x, &a, sizeof(T)); std::memcpy(&y, &b, sizeof(T));
        uint64_t z = op == 0 ? (x & y) : (x | y);
        T r; std::memcpy(&r, &z, sizeof(T)); return r;
    }
}
}  // namespace emu

// ---- binary (count form + level-0 forms)
#define TILEC_BINARY(NAME, EXPR)                                                                                       \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b,  \
                                           const int32_t& count) {                                                    \
        emu::BinCount(dst, a, b, count, [](auto x, auto y) { return EXPR; }, #NAME);                                  \
    }                                                                                                                  \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b,  \
                                           uint64_t mask, const uint8_t repeat, const BinaryRepeatParams& p) {        \
        emu::BinRep(dst, a, b, emu::CountMask<T>(mask, #NAME), repeat, p, [](auto x, auto y) { return EXPR; }, #NAME); \
    }                                                                                                                  \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b,  \
                                           const uint64_t mask[], const uint8_t repeat, const BinaryRepeatParams& p) { \
        emu::BinRep(dst, a, b, emu::BitMask<T>(mask, #NAME), repeat, p, [](auto x, auto y) { return EXPR; }, #NAME);   \
    }
TILEC_BINARY(Add, x + y)
TILEC_BINARY(Sub, x - y)
TILEC_BINARY(Mul, x * y)
TILEC_BINARY(Div, x / y)
TILEC_BINARY(Max, (x > y || x != x) ? x : y)
TILEC_BINARY(Min, (x < y || x != x) ? x : y)
#undef TILEC_BINARY
template <typename T> inline void And(const LocalTensor<T>& d, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& n) {
    emu::VecCheck(d, "And"); emu::VecCheck(a, "And"); emu::VecCheck(b, "And");
    emu::PipeScope ps_(emu::P_V);
    for (int32_t i = 0; i < n; ++i) d.SetValue(i, emu::Bits<T>(a.GetValue(i), b.GetValue(i), 0));
}
template <typename T> inline void Or(const LocalTensor<T>& d, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& n) {
    emu::VecCheck(d, "Or"); emu::VecCheck(a, "Or"); emu::VecCheck(b, "Or");
    emu::PipeScope ps_(emu::P_V);
    for (int32_t i = 0; i < n; ++i) d.SetValue(i, emu::Bits<T>(a.GetValue(i), b.GetValue(i), 1));
}

// ---- tensor-scalar
#define TILEC_SCALAR(NAME, EXPR)                                                                                    \
    template <typename T, typename U> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const U& sv, \
                                                       const int32_t& count) {                                       \
        const auto s = ToComp((T)sv);                                                                           \
        emu::UnCount(dst, src, count, [s](auto x) { return EXPR; }, #NAME);                                          \
    }                                                                                                               \
    template <typename T, typename U> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const U& sv, \
                                                       uint64_t mask, const uint8_t repeat, const UnaryRepeatParams& p) { \
        const auto s = ToComp((T)sv);                                                                           \
        emu::UnRep(dst, src, emu::CountMask<T>(mask, #NAME), repeat, p, [s](auto x) { return EXPR; }, #NAME);         \
    }
TILEC_SCALAR(Adds, x + s)
TILEC_SCALAR(Muls, x * s)
TILEC_SCALAR(Maxs, (x > s || x != x) ? x : s)
TILEC_SCALAR(Mins, (x < s || x != x) ? x : s)
TILEC_SCALAR(LeakyRelu, x >= 0 ? x : x * s)
#undef TILEC_SCALAR

// ---- unary
#define TILEC_UNARY(NAME, EXPR)                                                                                      \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count) { \
        emu::UnCount(dst, src, count, [](auto x) { return EXPR; }, #NAME);                                            \
    }                                                                                                                \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint64_t mask,       \
                                           const uint8_t repeat, const UnaryRepeatParams& p) {                        \
        emu::UnRep(dst, src, emu::CountMask<T>(mask, #NAME), repeat, p, [](auto x) { return EXPR; }, #NAME);          \
    }
TILEC_UNARY(Exp, std::exp((float)x))
TILEC_UNARY(Ln, std::log((float)x))
TILEC_UNARY(Abs, x < 0 ? -x : x)
TILEC_UNARY(Sqrt, std::sqrt((float)x))
TILEC_UNARY(Rsqrt, 1.0f / std::sqrt((float)x))
TILEC_UNARY(Reciprocal, 1.0f / (float)x)
TILEC_UNARY(Relu, x > 0 ? x : decltype(x)(0))
#undef TILEC_UNARY
template <typename T> inline void Not(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count) {
    emu::VecCheck(dst, "Not"); emu::VecCheck(src, "Not");
    emu::PipeScope ps_(emu::P_V);
    for (int32_t i = 0; i < count; ++i) { T v = src.GetValue(i); T r; uint64_t b = 0; std::memcpy(&b, &v, sizeof(T)); b = ~b; std::memcpy(&r, &b, sizeof(T)); dst.SetValue(i, r); }
}

// ---- fill / index vectors / broadcast
template <typename T, typename U> inline void Duplicate(const LocalTensor<T>& dst, const U& v, const int32_t& count) {
    emu::VecCheck(dst, "Duplicate"); emu::CheckCount(count, "Duplicate");
    if (count == 0) return;
    emu::PipeScope ps(emu::P_V);
    T* d = dst.WPtr(0, count);
    const T t = (T)v;
    for (int32_t i = 0; i < count; ++i) d[i] = t;
}
template <typename T, typename U> inline void Duplicate(const LocalTensor<T>& dst, const U& v, uint64_t mask, const uint8_t repeat,
                                                        const uint16_t dstBlkStride, const uint8_t dstRepStride) {
    emu::VecCheck(dst, "Duplicate");
    emu::PipeScope ps_(emu::P_V);
    emu::MaskBits mk = emu::CountMask<T>(mask, "Duplicate");
    if (dstBlkStride == 0) emu::Fail(10, "Duplicate: dstBlkStride must not be 0");
    for (uint32_t r = 0; r < repeat; ++r)
        for (uint32_t l = 0; l < 256 / sizeof(T); ++l)
            if (mk.On(l)) dst.SetValue(emu::LaneOff<T>(r, l, dstBlkStride, dstRepStride), (T)v);
}
template <typename T> inline void ArithProgression(const LocalTensor<T>& dst, const T first, const T diff, const int32_t count) {
    emu::VecCheck(dst, "ArithProgression");
    emu::PipeScope ps_(emu::P_V);
    for (int32_t i = 0; i < count; ++i) dst.SetValue(i, FromComp<T>(ToComp(first) + ToComp(diff) * i));
}
template <typename T> inline void CreateVecIndex(const LocalTensor<T>& dst, const T first, uint32_t count) {
    emu::VecCheck(dst, "CreateVecIndex");
    emu::PipeScope ps_(emu::P_V);
    for (uint32_t i = 0; i < count; ++i) dst.SetValue(i, FromComp<T>(ToComp(first) + i));
}
template <typename T> inline void Brcb(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint8_t repeat,
                                       const BrcbRepeatParams& p) {
    emu::VecCheck(dst, "Brcb"); emu::VecCheck(src, "Brcb");
    emu::PipeScope ps_(emu::P_V);
    const uint32_t be = 32 / sizeof(T);
    for (uint32_t r = 0; r < repeat; ++r)
        for (uint32_t j = 0; j < 8; ++j) {
            T v = src.GetValue(r * 8 + j);
            T* d = dst.WPtr(((uint64_t)r * p.dstRepStride + (uint64_t)j * p.dstBlkStride) * be, be);
            for (uint32_t i = 0; i < be; ++i) d[i] = v;
        }
}

// ---- Cast with rounding modes
namespace emu {
template <typename T> inline T StepUlp(T v, bool up) {
    if constexpr (std::is_same<T, float>::value) return std::nextafter(v, up ? INFINITY : -INFINITY);
    else {
        uint16_t b;
        std::memcpy(&b, &v, 2);
        bool neg = b & 0x8000;
        if ((b & 0x7fff) == 0) { b = up ? 1 : 0x8001; }
        else if (up != neg) b++;
        else b--;
        T r; std::memcpy(&r, &b, 2); return r;
    }
}
template <typename D, typename S> inline D CastOne(S v, RoundMode m) {
    double x = (double)ToComp(v);
    if constexpr (std::is_integral<D>::value) {
        if (x != x) return 0;
        double r = m == RoundMode::CAST_FLOOR ? std::floor(x) : m == RoundMode::CAST_CEIL ? std::ceil(x)
                 : m == RoundMode::CAST_ROUND ? std::round(x) : m == RoundMode::CAST_TRUNC ? std::trunc(x) : std::nearbyint(x);
        if (r < (double)std::numeric_limits<D>::lowest()) return std::numeric_limits<D>::lowest();
        if (r > (double)std::numeric_limits<D>::max()) return std::numeric_limits<D>::max();
        return (D)r;
    } else {
        D r = FromComp<D>((float)x);
        if constexpr (std::is_same<D, float>::value) {
            if constexpr (std::is_integral<S>::value) r = (float)x; else return r;
        }
        double y = (double)ToComp(r);
        if (y == x || x != x || std::isinf(y)) return r;
        bool up = false, step = false;
        switch (m) {
            case RoundMode::CAST_FLOOR: step = y > x; up = false; break;
            case RoundMode::CAST_CEIL: step = y < x; up = true; break;
            case RoundMode::CAST_TRUNC: step = std::fabs(y) > std::fabs(x); up = x < 0; break;
            case RoundMode::CAST_ODD: {
                uint32_t bits = 0; std::memcpy(&bits, &r, sizeof(D) < 4 ? sizeof(D) : 4);
                step = (bits & 1) == 0; up = y < x; break;
            }
            default: break;
        }
        return step ? StepUlp<D>(r, up) : r;
    }
}
}  // namespace emu
template <typename D, typename S>
inline void Cast(const LocalTensor<D>& dst, const LocalTensor<S>& src, const RoundMode& mode, const uint32_t count) {
    emu::VecCheck(dst, "Cast"); emu::VecCheck(src, "Cast");
    if (count == 0) return;
    emu::PipeScope ps(emu::P_V);
    const S* s = src.RPtr(0, count);
    D* d = dst.WPtr(0, count);
    for (uint32_t i = 0; i < count; ++i) d[i] = emu::CastOne<D, S>(s[i], mode);
}
template <typename D, typename S>
inline void Cast(const LocalTensor<D>& dst, const LocalTensor<S>& src, const RoundMode& mode, uint64_t mask, const uint8_t repeat,
                 const UnaryRepeatParams& p) {
    emu::VecCheck(dst, "Cast"); emu::VecCheck(src, "Cast");
    emu::PipeScope ps_(emu::P_V);
    emu::MaskBits mk = emu::CountMask<std::conditional_t<(sizeof(D) > sizeof(S)), D, S>>(mask, "Cast");
    const uint32_t lanes = 256 / (sizeof(D) > sizeof(S) ? sizeof(D) : sizeof(S));
    for (uint32_t r = 0; r < repeat; ++r)
        for (uint32_t l = 0; l < lanes; ++l)
            if (mk.On(l))
                dst.SetValue(emu::LaneOff<D>(r, l, p.dstBlkStride, p.dstRepStride),
                             emu::CastOne<D, S>(src.GetValue(emu::LaneOff<S>(r, l, p.srcBlkStride, p.srcRepStride)), mode));
}

// ---- Compare / Select (bit masks in uint8_t)
namespace emu {
template <typename T> inline bool CmpOne(T a, T b, CMPMODE m) {
    auto x = ToComp(a), y = ToComp(b);
    switch (m) {
        case CMPMODE::LT: return x < y;
        case CMPMODE::GT: return x > y;
        case CMPMODE::EQ: return x == y;
        case CMPMODE::LE: return x <= y;
        case CMPMODE::GE: return x >= y;
        default: return x != y;
    }
}
template <typename T> inline void CmpChecks(CMPMODE m, uint32_t count, const char* what) {
    if ((count * sizeof(T)) % 256) Fail(11, Str(what, ": count ", count, " x ", sizeof(T), " bytes is not a multiple of 256 bytes"));
    if (std::is_same<T, int32_t>::value && m != CMPMODE::EQ) Fail(11, Str(what, ": int32 supports only CMPMODE::EQ"));
    if (!kIsFloat<T> && !std::is_same<T, int32_t>::value) Fail(11, Str(what, ": unsupported element type"));
}
}  // namespace emu
template <typename U, typename T>
inline void Compare(const LocalTensor<U>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, CMPMODE m, uint32_t count) {
    emu::VecCheck(dst, "Compare"); emu::VecCheck(a, "Compare"); emu::VecCheck(b, "Compare");
    emu::PipeScope ps_(emu::P_V);
    emu::CmpChecks<T>(m, count, "Compare");
    LocalTensor<uint8_t> bits = dst.template ReinterpretCast<uint8_t>();
    for (uint32_t i = 0; i < count; i += 8) {
        uint8_t byte = 0;
        for (uint32_t j = 0; j < 8 && i + j < count; ++j) byte |= (uint8_t)(emu::CmpOne(a.GetValue(i + j), b.GetValue(i + j), m) << j);
        bits.SetValue(i / 8, byte);
    }
}
template <typename U, typename T>
inline void CompareScalar(const LocalTensor<U>& dst, const LocalTensor<T>& a, const T b, CMPMODE m, uint32_t count) {
    emu::VecCheck(dst, "CompareScalar"); emu::VecCheck(a, "CompareScalar");
    emu::PipeScope ps_(emu::P_V);
    emu::CmpChecks<T>(m, count, "CompareScalar");
    LocalTensor<uint8_t> bits = dst.template ReinterpretCast<uint8_t>();
    for (uint32_t i = 0; i < count; i += 8) {
        uint8_t byte = 0;
        for (uint32_t j = 0; j < 8 && i + j < count; ++j) byte |= (uint8_t)(emu::CmpOne(a.GetValue(i + j), b, m) << j);
        bits.SetValue(i / 8, byte);
    }
}
template <typename U, typename T>
inline void Compares(const LocalTensor<U>& dst, const LocalTensor<T>& a, const T b, CMPMODE m, uint32_t count) {
    CompareScalar(dst, a, b, m, count);
}
template <typename T, typename U>
inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& mask, const LocalTensor<T>& a, const LocalTensor<T>& b, SELMODE,
                   uint32_t count) {
    emu::VecCheck(dst, "Select"); emu::VecCheck(mask, "Select"); emu::VecCheck(a, "Select"); emu::VecCheck(b, "Select");
    emu::PipeScope ps_(emu::P_V);
    LocalTensor<uint8_t> bits = mask.template ReinterpretCast<uint8_t>();
    for (uint32_t i = 0; i < count; ++i) dst.SetValue(i, ((bits.GetValue(i / 8) >> (i % 8)) & 1) ? a.GetValue(i) : b.GetValue(i));
}
template <typename T, typename U>
inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& mask, const LocalTensor<T>& a, T b, SELMODE, uint32_t count) {
    emu::VecCheck(dst, "Select"); emu::VecCheck(mask, "Select"); emu::VecCheck(a, "Select");
    emu::PipeScope ps_(emu::P_V);
    LocalTensor<uint8_t> bits = mask.template ReinterpretCast<uint8_t>();
    for (uint32_t i = 0; i < count; ++i) dst.SetValue(i, ((bits.GetValue(i / 8) >> (i % 8)) & 1) ? a.GetValue(i) : b);
}

// ---- gathers
template <typename T>
inline void Gather(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<uint32_t>& byteOffsets, const uint32_t srcBase,
                   const uint32_t count) {
    emu::VecCheck(dst, "Gather"); emu::VecCheck(src, "Gather"); emu::VecCheck(byteOffsets, "Gather");
    emu::PipeScope ps_(emu::P_V);
    for (uint32_t i = 0; i < count; ++i) {
        uint32_t off = byteOffsets.GetValue(i) + srcBase;
        if (off % sizeof(T)) emu::Fail(1, emu::Str("Gather: byte offset ", off, " is not a multiple of sizeof(T)"));
        dst.SetValue(i, src.GetValue(off / sizeof(T)));
    }
}
template <typename T>
inline void GatherMask(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint8_t pattern, const bool reduceMode,
                       const uint32_t mask, const GatherMaskParams& p, uint64_t& rsvdCnt) {
    emu::VecCheck(dst, "GatherMask"); emu::VecCheck(src, "GatherMask");
    emu::PipeScope ps_(emu::P_V);
    if (pattern < 1 || pattern > 7) emu::Fail(10, emu::Str("GatherMask: pattern ", (int)pattern, " (1..7)"));
    const uint32_t lanes = reduceMode ? mask : 256 / sizeof(T);
    uint64_t n = 0;
    for (uint32_t r = 0; r < (reduceMode ? 1u : p.repeatTimes); ++r)
        for (uint32_t l = 0; l < lanes; ++l) {
            bool take = pattern == 1 ? l % 2 == 0 : pattern == 2 ? l % 2 == 1 : pattern == 7 ? true : l % 4 == (uint32_t)(pattern - 3);
            if (take) dst.SetValue(n++, src.GetValue(emu::LaneOff<T>(r, l, p.src0BlockStride, p.src0RepeatStride)));
        }
    rsvdCnt = n;
}

}  // namespace AscendC
