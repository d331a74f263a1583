// tilec AscendC emulation: reductions (count form, WholeReduce per 256 B repeat, BlockReduce per 32 B
// block, the 2-D Pattern::Reduce::AR/RA form) and sorting (Sort32, MrgSort). ReduceMax/Min with calIndex
// store the index as the element type's bit pattern (ties -> lowest index), as the hardware does.
#pragma once
#include "vector.h"
#include <algorithm>

namespace AscendC {

namespace emu {
enum RK { RMAX, RMIN, RSUM };
template <typename T> inline T IndexBits(uint32_t idx) {
    T r{};
    if constexpr (sizeof(T) == 2) { uint16_t b = (uint16_t)idx; std::memcpy(&r, &b, 2); }
    else if constexpr (sizeof(T) == 4) std::memcpy(&r, &idx, 4);
    else r = (T)idx;
    return r;
}
// Reduce n values produced by get(i); returns (value, index).
template <typename T, typename G> inline std::pair<CompT<T>, uint32_t> ReduceN(uint32_t n, RK k, G get) {
    using C = CompT<T>;
    C best = get(0);
    uint32_t bi = 0;
    if (k == RSUM) {
        double s = 0;
        for (uint32_t i = 0; i < n; ++i) s += (double)get(i);
        return {(C)s, 0};
    }
    for (uint32_t i = 1; i < n; ++i) {
        C v = get(i);
        if (best != best) break;
        if (v != v || (k == RMAX ? v > best : v < best)) { best = v; bi = i; }
    }
    return {best, bi};
}
template <typename T>
inline void ReduceCount(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, int32_t count, bool calIndex,
                        RK k, const char* what) {
    VecCheck(dst, what); VecCheck(src, what); VecCheck(tmp, what);
    if (count <= 0) Fail(10, Str(what, ": count ", count, " must be positive"));
    PipeScope ps(P_V);
    const T* s = src.RPtr(0, count);
    auto r = ReduceN<T>(count, k, [s](uint32_t i) { return ToComp(s[i]); });
    dst.SetValue(0, FromComp<T>(r.first));
    if (calIndex) dst.SetValue(1, IndexBits<T>(r.second));
}
}  // namespace emu

template <typename T>
inline void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, const int32_t count, bool calIndex = false) {
    emu::ReduceCount(dst, src, tmp, count, calIndex, emu::RMAX, "ReduceMax");
}
template <typename T>
inline void ReduceMin(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, const int32_t count, bool calIndex = false) {
    emu::ReduceCount(dst, src, tmp, count, calIndex, emu::RMIN, "ReduceMin");
}
template <typename T>
inline void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, const int32_t count) {
    emu::ReduceCount(dst, src, tmp, count, false, emu::RSUM, "ReduceSum");
}

// Level-0 forms: every masked lane of `repeat` repeats (srcRepStride in 32 B blocks) -> one result.
namespace emu {
template <typename T>
inline void ReduceRep(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, const MaskBits& mk,
                      int32_t repeat, int32_t srcRepStride, bool calIndex, RK k, const char* what) {
    VecCheck(dst, what); VecCheck(src, what); VecCheck(tmp, what);
    emu::PipeScope ps_(emu::P_V);
    if (repeat < 1 || repeat > 255) Fail(10, Str(what, ": repeatTime ", repeat, " outside 1..255"));
    std::vector<uint64_t> offs;
    for (int32_t r = 0; r < repeat; ++r)
        for (uint32_t l = 0; l < 256 / sizeof(T); ++l)
            if (mk.On(l)) offs.push_back(LaneOff<T>(r, l, 1, srcRepStride));
    if (offs.empty()) return;
    auto res = ReduceN<T>((uint32_t)offs.size(), k, [&](uint32_t i) { return ToComp(src.GetValue(offs[i])); });
    dst.SetValue(0, FromComp<T>(res.first));
    if (calIndex) dst.SetValue(1, IndexBits<T>((uint32_t)offs[res.second]));
}
}  // namespace emu
template <typename T>
inline void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, const int32_t mask,
                      const int32_t repeat, const int32_t srcRepStride, bool calIndex = false) {
    emu::ReduceRep(dst, src, tmp, emu::CountMask<T>(mask, "ReduceMax"), repeat, srcRepStride, calIndex, emu::RMAX, "ReduceMax");
}
template <typename T>
inline void ReduceMin(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, const int32_t mask,
                      const int32_t repeat, const int32_t srcRepStride, bool calIndex = false) {
    emu::ReduceRep(dst, src, tmp, emu::CountMask<T>(mask, "ReduceMin"), repeat, srcRepStride, calIndex, emu::RMIN, "ReduceMin");
}
template <typename T>
inline void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, const int32_t mask,
                      const int32_t repeat, const int32_t srcRepStride) {
    emu::ReduceRep(dst, src, tmp, emu::CountMask<T>(mask, "ReduceSum"), repeat, srcRepStride, false, emu::RSUM, "ReduceSum");
}

namespace emu {
template <typename T>
inline void WholeReduce(const LocalTensor<T>& dst, const LocalTensor<T>& src, const MaskBits& mk, int32_t repeat, int32_t dstRepStride,
                        int32_t srcBlkStride, int32_t srcRepStride, RK k, ReduceOrder order, const char* what) {
    VecCheck(src, what);
    emu::PipeScope ps_(emu::P_V);
    RequireUB(dst, what);
    if (repeat < 0 || repeat > 255) Fail(10, Str(what, ": repeatTime ", repeat, " outside 0..255"));
    const uint32_t lanes = 256 / sizeof(T);
    for (int32_t r = 0; r < repeat; ++r) {
        std::vector<uint32_t> act;
        for (uint32_t l = 0; l < lanes; ++l) if (mk.On(l)) act.push_back(l);
        if (act.empty()) continue;
        auto res = ReduceN<T>((uint32_t)act.size(), k, [&](uint32_t i) {
            return ToComp(src.GetValue(LaneOff<T>(r, act[i], srcBlkStride, srcRepStride)));
        });
        uint32_t idx = act[res.second];
        if (k == RSUM || order == ReduceOrder::ORDER_ONLY_VALUE) dst.SetValue(r * dstRepStride, FromComp<T>(res.first));
        else if (order == ReduceOrder::ORDER_ONLY_INDEX) dst.SetValue(r * dstRepStride, IndexBits<T>(idx));
        else {
            bool vi = order == ReduceOrder::ORDER_VALUE_INDEX;
            dst.SetValue(r * dstRepStride * 2 + (vi ? 0 : 1), FromComp<T>(res.first));
            dst.SetValue(r * dstRepStride * 2 + (vi ? 1 : 0), IndexBits<T>(idx));
        }
    }
}
}  // namespace emu
#define TILEC_WHOLE(NAME, KIND, ORD, ...)                                                                           \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask,      \
                                           const int32_t repeat, const int32_t dstRepStride, const int32_t srcBlkStride, \
                                           const int32_t srcRepStride __VA_ARGS__) {                                       \
        emu::WholeReduce(dst, src, emu::CountMask<T>(mask, #NAME), repeat, dstRepStride, srcBlkStride, srcRepStride, KIND, ORD, #NAME); \
    }                                                                                                                    \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint64_t mask[],   \
                                           const int32_t repeat, const int32_t dstRepStride, const int32_t srcBlkStride, \
                                           const int32_t srcRepStride __VA_ARGS__) {                                       \
        emu::WholeReduce(dst, src, emu::BitMask<T>(mask, #NAME), repeat, dstRepStride, srcBlkStride, srcRepStride, KIND, ORD, #NAME); \
    }
TILEC_WHOLE(WholeReduceMax, emu::RMAX, order, , ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX)
TILEC_WHOLE(WholeReduceMin, emu::RMIN, order, , ReduceOrder order = ReduceOrder::ORDER_VALUE_INDEX)
TILEC_WHOLE(WholeReduceSum, emu::RSUM, ReduceOrder::ORDER_ONLY_VALUE)
#undef TILEC_WHOLE

// BlockReduce*: one result per 32 B block, 8 per repeat. dstRepStride unit: one repeat's 8 results ([U]).
namespace emu {
template <typename T>
inline void BlockReduce(const LocalTensor<T>& dst, const LocalTensor<T>& src, int32_t repeat, const MaskBits& mk, int32_t dstRepStride,
                        int32_t srcBlkStride, int32_t srcRepStride, RK k, const char* what) {
    VecCheck(src, what);
    emu::PipeScope ps_(emu::P_V);
    RequireUB(dst, what);
    if (repeat < 0 || repeat > 255) Fail(10, Str(what, ": repeatTime ", repeat, " outside 0..255"));
    const uint32_t be = 32 / sizeof(T);
    for (int32_t r = 0; r < repeat; ++r)
        for (uint32_t b = 0; b < 8; ++b) {
            std::vector<uint32_t> act;
            for (uint32_t l = b * be; l < (b + 1) * be; ++l) if (mk.On(l)) act.push_back(l);
            if (act.empty()) continue;
            auto res = ReduceN<T>((uint32_t)act.size(), k, [&](uint32_t i) {
                return ToComp(src.GetValue(LaneOff<T>(r, act[i], srcBlkStride, srcRepStride)));
            });
            dst.SetValue(r * dstRepStride * 8 + b, FromComp<T>(res.first));
        }
}
}  // namespace emu
#define TILEC_BLOCK(NAME, KIND)                                                                                         \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t repeat,   \
                                           const int32_t mask, const int32_t dstRepStride, const int32_t srcBlkStride,   \
                                           const int32_t srcRepStride) {                                                \
        emu::BlockReduce(dst, src, repeat, emu::CountMask<T>(mask, #NAME), dstRepStride, srcBlkStride, srcRepStride, KIND, #NAME); \
    }                                                                                                                    \
    template <typename T> inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t repeat,   \
                                           const uint64_t mask[], const int32_t dstRepStride, const int32_t srcBlkStride, \
                                           const int32_t srcRepStride) {                                                \
        emu::BlockReduce(dst, src, repeat, emu::BitMask<T>(mask, #NAME), dstRepStride, srcBlkStride, srcRepStride, KIND, #NAME); \
    }
TILEC_BLOCK(BlockReduceMax, emu::RMAX)
TILEC_BLOCK(BlockReduceMin, emu::RMIN)
TILEC_BLOCK(BlockReduceSum, emu::RSUM)
#undef TILEC_BLOCK

// ---- 2-D reduce of a [rows, cols] tile: AR reduces each row (dst[rows]), RA each column (dst[cols]).
namespace Pattern { namespace Reduce { struct AR {}; struct RA {}; } }
namespace emu {
template <typename T, typename P>
inline void Reduce2D(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t shape[2], bool srcInnerPad, RK k, const char* what) {
    VecCheck(dst, what); VecCheck(src, what);
    emu::PipeScope ps_(emu::P_V);
    uint32_t rows = shape[0], cols = shape[1];
    uint32_t pitch = srcInnerPad ? (cols * sizeof(T) + 31) / 32 * 32 / sizeof(T) : cols;
    if (std::is_same<P, Pattern::Reduce::AR>::value)
        for (uint32_t r = 0; r < rows; ++r)
            dst.SetValue(r, FromComp<T>(ReduceN<T>(cols, k, [&](uint32_t i) { return ToComp(src.GetValue(r * pitch + i)); }).first));
    else
        for (uint32_t c = 0; c < cols; ++c)
            dst.SetValue(c, FromComp<T>(ReduceN<T>(rows, k, [&](uint32_t i) { return ToComp(src.GetValue(i * pitch + c)); }).first));
}
}  // namespace emu
template <typename T, typename P, typename U>
inline void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<U>&, const uint32_t shape[2], bool srcInnerPad) {
    emu::Reduce2D<T, P>(dst, src, shape, srcInnerPad, emu::RMAX, "ReduceMax<Pattern>");
}
template <typename T, typename P, typename U>
inline void ReduceMin(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<U>&, const uint32_t shape[2], bool srcInnerPad) {
    emu::Reduce2D<T, P>(dst, src, shape, srcInnerPad, emu::RMIN, "ReduceMin<Pattern>");
}
template <typename T, typename P, typename U>
inline void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<U>&, const uint32_t shape[2], bool srcInnerPad) {
    emu::Reduce2D<T, P>(dst, src, shape, srcInnerPad, emu::RSUM, "ReduceSum<Pattern>");
}

// ---- sorting: (score, index) pairs of 8 bytes; score in the low bytes, uint32 index in bytes 4..7.
namespace emu {
template <typename T> struct Pair { float score; uint32_t idx; };
template <typename T> inline Pair<T> ReadPair(const LocalTensor<T>& t, uint32_t i) {
    LocalTensor<uint8_t> b = t.template ReinterpretCast<uint8_t>();
    const uint8_t* p = b.RPtr(i * 8, 8);
    T s; std::memcpy(&s, p, sizeof(T));
    uint32_t idx; std::memcpy(&idx, p + 4, 4);
    return {(float)ToComp(s), idx};
}
template <typename T> inline void WritePair(const LocalTensor<T>& t, uint32_t i, float score, uint32_t idx) {
    LocalTensor<uint8_t> b = t.template ReinterpretCast<uint8_t>();
    uint8_t* p = b.WPtr(i * 8, 8);
    T s = FromComp<T>(score);
    std::memset(p, 0, 8);
    std::memcpy(p, &s, sizeof(T));
    std::memcpy(p + 4, &idx, 4);
}
}  // namespace emu
template <typename T>
inline void Sort32(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<uint32_t>& src1, const int32_t repeat) {
    emu::VecCheck(dst, "Sort32"); emu::VecCheck(src0, "Sort32"); emu::VecCheck(src1, "Sort32");
    emu::PipeScope ps_(emu::P_V);
    if (repeat < 0 || repeat > 255) emu::Fail(10, emu::Str("Sort32: repeatTime ", repeat, " outside 0..255"));
    for (int32_t r = 0; r < repeat; ++r) {
        std::vector<emu::Pair<T>> v;
        for (uint32_t i = 0; i < 32; ++i) v.push_back({(float)ToComp(src0.GetValue(r * 32 + i)), src1.GetValue(r * 32 + i)});
        std::stable_sort(v.begin(), v.end(), [](const emu::Pair<T>& a, const emu::Pair<T>& b) { return a.score > b.score; });
        for (uint32_t i = 0; i < 32; ++i) emu::WritePair(dst, r * 32 + i, v[i].score, v[i].idx);
    }
}
template <typename T> struct MrgSortSrcList {
    LocalTensor<T> src1, src2, src3, src4;
    MrgSortSrcList() = default;
    MrgSortSrcList(const LocalTensor<T>& a, const LocalTensor<T>& b, const LocalTensor<T>& c, const LocalTensor<T>& d)
        : src1(a), src2(b), src3(c), src4(d) {}
};
struct MrgSort4Info {
    uint16_t elementLengths[4] = {0, 0, 0, 0}; bool ifExhaustedSuspension = false; uint16_t validBit = 3; uint16_t repeatTimes = 1;
    MrgSort4Info() = default;
    MrgSort4Info(const uint16_t len[4], bool s, uint16_t v, uint16_t r) : ifExhaustedSuspension(s), validBit(v), repeatTimes(r) {
        for (int i = 0; i < 4; ++i) elementLengths[i] = len[i];
    }
};
template <typename T> inline void MrgSort(const LocalTensor<T>& dst, const MrgSortSrcList<T>& src, const MrgSort4Info& info) {
    emu::VecCheck(dst, "MrgSort");
    emu::PipeScope ps_(emu::P_V);
    const LocalTensor<T>* lists[4] = {&src.src1, &src.src2, &src.src3, &src.src4};
    int nl = info.validBit == 3 ? 2 : info.validBit == 7 ? 3 : info.validBit == 15 ? 4 : 0;
    if (!nl) emu::Fail(10, emu::Str("MrgSort: validBit ", info.validBit, " (3, 7 or 15)"));
    uint32_t pos[4] = {0, 0, 0, 0}, out = 0;
    while (true) {
        int best = -1;
        float bs = 0;
        for (int l = 0; l < nl; ++l) {
            if (pos[l] >= info.elementLengths[l]) { if (info.ifExhaustedSuspension) { best = -2; break; } continue; }
            float s = emu::ReadPair(*lists[l], pos[l]).score;
            if (best < 0 || s > bs) { best = l; bs = s; }
        }
        if (best < 0) break;
        auto p = emu::ReadPair(*lists[best], pos[best]++);
        emu::WritePair(dst, out++, p.score, p.idx);
    }
}

}  // namespace AscendC
