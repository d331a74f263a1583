// tilec AscendC emulation: keyword macros, enums and numeric types (half, bfloat16_t).
// Part of kernel_operator.h; see tilec/backends/ascend/include/kernel_operator.h for the overview.
#pragma once
#include <cstdint>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <stdexcept>
#include <type_traits>
#include <limits>

#ifndef ASCENDC_CPU_DEBUG
#define ASCENDC_CPU_DEBUG 1
#endif
#ifndef __CCE_KT_TEST__
#define __CCE_KT_TEST__ 1
#endif
#define __aicore__
#define __global__
#define __gm__
#define __ubuf__
#define __cbuf__
#define __ca__
#define __cb__
#define __cc__
#define __vector__
#define __cube__
#define __mix__(a, b)
#define __inout_pipe__(x)
#define __in_pipe__(x)
#define __out_pipe__(x)
#define GM_ADDR uint8_t*

#ifndef __FLT16_MANT_DIG__
#error "tilec's AscendC emulation needs a compiler with _Float16 (g++ >= 12 on x86-64)"
#endif
using half = _Float16;

// bfloat16: storage struct; conversion from float rounds to nearest even (NaN stays NaN).
struct bfloat16_t {
    uint16_t bits = 0;
    bfloat16_t() = default;
    bfloat16_t(float f) { bits = FromFloat(f); }
    bfloat16_t(double f) { bits = FromFloat((float)f); }
    bfloat16_t(int v) { bits = FromFloat((float)v); }
    operator float() const {
        uint32_t u = (uint32_t)bits << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    static uint16_t FromFloat(float f) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
        uint32_t lsb = (u >> 16) & 1u;
        u += 0x7fffu + lsb;
        return (uint16_t)(u >> 16);
    }
    static bfloat16_t FromBits(uint16_t b) { bfloat16_t r; r.bits = b; return r; }
};

// Names CANN declares at global scope (compiler builtins and kernel meta types).
enum KernelMetaType {
    KERNEL_TYPE_AIV_ONLY = 1, KERNEL_TYPE_AIC_ONLY, KERNEL_TYPE_MIX_AIV_1_0, KERNEL_TYPE_MIX_AIC_1_0,
    KERNEL_TYPE_MIX_AIC_1_1, KERNEL_TYPE_MIX_AIC_1_2
};
enum pipe_t : uint8_t { PIPE_S = 0, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL, PIPE_FIX = 10 };
enum TEventID : int32_t { EVENT_ID0 = 0, EVENT_ID1, EVENT_ID2, EVENT_ID3, EVENT_ID4, EVENT_ID5, EVENT_ID6,
                          EVENT_ID7 };
using event_t = int32_t;
enum QuantMode_t : uint8_t { NoQuant = 0, F322F16, F322BF16, DEQF16, VDEQF16, QF322B8_PRE, VQF322B8_PRE,
                             REQ8, VREQ8 };

namespace AscendC {

enum class TPosition : uint8_t { GM, A1, A2, B1, B2, C1, C2, CO1, CO2, VECIN, VECOUT, VECCALC, LCM = VECCALC,
                                 SPM, SHM = SPM, TSCM, C2PIPE2GM, MAX };
using QuePosition = TPosition;
enum class Hardware : uint8_t { GM, UB, L1, L0A, L0B, L0C, BIAS, FIXBUF, MAX };

enum KernelMode { AIV_MODE = 0, AIC_MODE = 1, MIX_MODE = 2 };
enum CoreType : uint8_t { AIC = 0, AIV = 1 };


enum class HardEvent : uint8_t {
    MTE2_MTE1, MTE1_MTE2, MTE1_M, M_MTE1, MTE2_V, V_MTE2, MTE3_V, V_MTE3, M_V, V_M, V_V, MTE3_MTE1, MTE1_MTE3,
    MTE1_V, MTE2_M, M_MTE2, V_MTE1, M_FIX, FIX_M, MTE3_MTE2, MTE2_MTE3, S_V, V_S, S_MTE2, MTE2_S, S_MTE3,
    MTE3_S, MTE2_FIX, FIX_MTE2, FIX_S, M_S, FIX_MTE3, MTE1_FIX, FIX_MTE1, FIX_FIX, MAX
};

enum class RoundMode : uint8_t { CAST_NONE = 0, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC,
                                 CAST_ODD };
enum class CMPMODE : uint8_t { LT = 0, GT, EQ, LE, GE, NE };
enum class SELMODE : uint8_t { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };
enum class ReduceOrder : uint8_t { ORDER_VALUE_INDEX = 0, ORDER_INDEX_VALUE, ORDER_ONLY_VALUE, ORDER_ONLY_INDEX };
enum class CacheLine : uint8_t { SINGLE_CACHE_LINE = 0, ENTIRE_DATA_CACHE };
enum class DcciDst : uint8_t { CACHELINE_ALL = 0, CACHELINE_UB, CACHELINE_OUT, CACHELINE_ATOMIC };

// ---- element conversions: every vector instruction computes in float (or the native int) and rounds.
template <typename T> struct IsHalfLike : std::false_type {};
template <> struct IsHalfLike<half> : std::true_type {};
template <> struct IsHalfLike<bfloat16_t> : std::true_type {};
template <typename T> constexpr bool kIsFloat = std::is_floating_point<T>::value || IsHalfLike<T>::value;
template <typename T> using CompT = std::conditional_t<kIsFloat<T>, float, T>;

template <typename T> inline CompT<T> ToComp(T v) {
    if constexpr (kIsFloat<T>) return (float)v; else return v;
}
template <typename T, typename F> inline T FromComp(F v) {
    if constexpr (std::is_same<T, bfloat16_t>::value) return bfloat16_t((float)v);
    else if constexpr (std::is_same<T, half>::value) return (half)(float)v;
    else return (T)v;
}

}  // namespace AscendC
