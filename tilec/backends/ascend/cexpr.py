"""C++ spelling of Tile IR scalars for the Ascend backend: types, names, expressions, and the helper prelude.

Half types (float16, bfloat16, float8_e4m3) compute in float inside expressions, exactly as the
interpreter does; values are converted to storage only by ``store_value`` (a Store, a tile op writing a
buffer) or by an explicit Cast, with the same rounding rules as ``tilec.numerics``.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from tilec.errors import TilecError
from tilec.ir import dtypes, nodes as N

CTYPE = {
    "float32": "float", "float16": "half", "bfloat16": "bfloat16_t", "float8_e4m3": "uint8_t", "float64": "double",
    "int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t", "uint8": "uint8_t",
    "uint16": "uint16_t", "uint32": "uint32_t", "bool": "uint8_t",
}
# Type values have inside expressions.
COMPUTE = dict(CTYPE, float16="float", bfloat16="float", float8_e4m3="float", bool="bool")

CPP_RESERVED = {
    "auto", "bool", "break", "case", "char", "class", "const", "continue", "default", "delete", "do", "double",
    "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "new", "operator", "private",
    "public", "register", "return", "short", "signed", "sizeof", "static", "struct", "switch", "template", "this",
    "typedef", "union", "unsigned", "void", "volatile", "while", "half", "pipe", "tiling", "workspace", "main",
    "Init", "Process", "exp", "max", "min", "abs", "log", "sqrt", "signed", "int8_t", "int32_t", "float8", "blk",
}


# The float types the Vector unit computes on directly (others go through the Scalar unit or a cast).
VEC_FLOAT = ("float32", "float16", "bfloat16")


def is_const(e: N.Expr, v: Optional[int] = None) -> bool:
    return isinstance(e, N.Const) and (v is None or e.value == v)


def ctype(dtype: str) -> str:
    return CTYPE[dtype]


# Names the generated code itself uses (AscendC API, class members, helpers): IR names never take them.
GENERATED_NAMES = {
    "Add", "Sub", "Mul", "Div", "Max", "Min", "And", "Or", "Adds", "Muls", "Maxs", "Mins", "Exp", "Ln", "Abs", "Sqrt",
    "Rsqrt", "Reciprocal", "Relu", "Not", "Duplicate", "Cast", "Compare", "CompareScalar", "Select", "DataCopy",
    "DataCopyPad", "LoadData", "Mmad", "Fixpipe", "ReduceMax", "ReduceMin", "ReduceSum", "CreateVecIndex",
    "PipeBarrier", "SetFlag", "WaitFlag", "GetBlockIdx", "GetBlockNum", "InitConstValue", "LocalTensor", "GlobalTensor",
    "TPipe", "TQue", "TBuf", "ubBuf", "wsBase", "ctrlGm", "wsCf", "wsCi", "cRes", "total", "td", "op", "kScratch",
    "kWsA", "kWsB", "kWsC", "kWsPerCore", "ProcessBlock", "CopyIn", "Compute", "CopyOut", "CubeService", "StopCube",
    "CubeFlush", "inQueueA1", "inQueueB1", "inQueueA2", "inQueueB2", "outQueueCO1", "TileGmToUb", "TileUbToGm",
    "AscendC", "bfloat16_t", "std", "req", "nd", "fp", "mp", "kc", "kl", "ws", "off", "vr", "vc",
}
DERIVED_SUFFIXES = ("Gm", "Off", "Rows", "Cols", "Fresh", "Dirty")


def cname(name: str) -> str:
    """A C++ identifier for an IR name (names are unique per kernel; clashes with C++ words, the names the
    generated code uses itself, and its ``tc_`` temporaries get a trailing underscore)."""
    out = "".join(c if (c.isalnum() or c == "_") else "_" for c in name)
    if not out or out[0].isdigit():
        out = "v" + out
    clash = out in CPP_RESERVED or out in GENERATED_NAMES or out.startswith(("__", "tc_", "tilec_", "inQueue")) \
        or out.endswith(DERIVED_SUFFIXES) or out.startswith("wsA_") or out.startswith("wsB_")
    return out + "_" if clash else out


def literal(value, dtype: str) -> str:
    """A C++ literal of ``value`` in ``dtype``'s compute type."""
    if dtype == "bool":
        return "true" if value else "false"
    if dtypes.is_float(dtype):
        v = float(value)
        if math.isnan(v):
            return "NAN"
        if math.isinf(v):
            return "INFINITY" if v > 0 else "(-INFINITY)"
        if dtype == "float64":
            return repr(v)
        text = repr(v)
        if "e" not in text and "." not in text:
            text += ".0"
        return f"{text}f" if not text.startswith("-") else f"({text}f)"
    v = int(value)
    suffix = {"int64": "LL", "uint32": "U", "uint64": "ULL"}.get(dtype, "")
    if dtype == "int32" and v == -2**31:
        return "(-2147483647 - 1)"
    return f"({v}{suffix})" if v < 0 else f"{v}{suffix}"


def to_compute(expr: str, dtype: str) -> str:
    """A stored value of ``dtype`` (C++ storage type) as its compute type."""
    if dtype in ("float16", "bfloat16"):
        return f"(float){expr}"
    if dtype == "float8_e4m3":
        return f"tilec_f8_to_f32({expr})"
    if dtype == "bool":
        return f"({expr} != 0)"
    return expr


def to_storage(expr: str, dtype: str) -> str:
    """A compute-type value as ``dtype``'s C++ storage type (RNE rounding for floats)."""
    if dtype == "float16":
        return f"(half)({expr})"
    if dtype == "bfloat16":
        return f"bfloat16_t((float)({expr}))"
    if dtype == "float8_e4m3":
        return f"tilec_f32_to_f8({expr})"
    if dtype == "bool":
        return f"(uint8_t)(({expr}) ? 1 : 0)"
    return f"({CTYPE[dtype]})({expr})"


INTRIN = {"exp": "expf", "exp2": "exp2f", "log": "logf", "log2": "log2f", "sqrt": "sqrtf", "tanh": "tanhf",
          "sin": "sinf", "cos": "cosf", "floor": "floorf", "ceil": "ceilf", "round": "nearbyintf", "trunc": "truncf",
          "pow": "powf", "abs": "fabsf"}


class ExprPrinter:
    """Prints IR expressions; ``load`` renders a buffer element read (as its storage value)."""

    def __init__(self, load: Callable[[N.Load], str]):
        self.load = load

    def __call__(self, e: N.Expr) -> str:
        return self.expr(e)

    def expr(self, e: N.Expr) -> str:
        method = getattr(self, "_" + type(e).__name__, None)
        if method is None:
            raise TilecError(f"ascend target: unsupported expression {type(e).__name__}", getattr(e, "loc", None))
        return method(e)

    def _RawExpr(self, e) -> str:
        return e.text

    def _Const(self, e: N.Const) -> str:
        return literal(e.value, e.type)

    def _Var(self, e: N.Var) -> str:
        return cname(e.name)

    def _Load(self, e: N.Load) -> str:
        return to_compute(self.load(e), e.buffer.dtype)

    def _BinOp(self, e: N.BinOp) -> str:
        a, b, op, dt = self.expr(e.a), self.expr(e.b), e.op, e.a.dtype
        isf = dtypes.is_float(dt)
        if op in ("min", "max"):
            return f"tilec_{op}<{COMPUTE[dt]}>({a}, {b})"
        if op == "//":
            return f"floorf(({a}) / ({b}))" if isf else f"tilec_floordiv<{COMPUTE[dt]}>({a}, {b})"
        if op == "%":
            return f"tilec_fmod_floor({a}, {b})" if isf else f"tilec_floormod<{COMPUTE[dt]}>({a}, {b})"
        if op == "and":
            return f"({a} && {b})"
        if op == "or":
            return f"({a} || {b})"
        if op in N.ARITH_OPS and not isf and dt != "bool" and op in ("+", "-", "*", "<<", ">>", "&", "|", "^", "/"):
            return f"({COMPUTE[dt]})({a} {op} {b})"
        return f"({a} {op} {b})"

    def _UnaryOp(self, e: N.UnaryOp) -> str:
        a = self.expr(e.a)
        if e.op == "not":
            return f"(!{a})"
        return f"({COMPUTE[e.a.dtype]})({e.op}{a})"

    def _Call(self, e: N.Call) -> str:
        args = [self.expr(a) for a in e.args]
        dt = e.args[0].dtype
        f = e.func
        if f == "isnan":
            return f"std::isnan((double){args[0]})"
        if f == "isinf":
            return f"std::isinf((double){args[0]})"
        if not dtypes.is_float(dt):
            if f == "abs":
                return f"({COMPUTE[dt]})std::abs({args[0]})"
            args = [f"(float)({a})" for a in args]
            return f"({COMPUTE[dt]})tilec_{f}_f({', '.join(args)})"
        if dt == "float64":
            name = {"rsqrt": None, "sigmoid": None}.get(f, f)
            if f == "rsqrt":
                return f"(1.0 / std::sqrt({args[0]}))"
            if f == "sigmoid":
                return f"(1.0 / (1.0 + std::exp(-({args[0]}))))"
            return f"std::{'nearbyint' if name == 'round' else name}({', '.join(args)})"
        if f == "rsqrt":
            return f"(1.0f / sqrtf({args[0]}))"
        if f == "sigmoid":
            return f"(1.0f / (1.0f + expf(-({args[0]}))))"
        return f"{INTRIN[f]}({', '.join(args)})"

    def _Cast(self, e: N.Cast) -> str:
        src, dst = e.value.dtype, e.type
        v = self.expr(e.value)
        if dst == src:
            return v
        if dst == "bool":
            return f"(({v}) != 0)"
        if dtypes.is_float(dst):
            if dst in ("float32", "float64"):
                return f"({COMPUTE[dst]})({v})"
            # Half types: convert through float, round to storage (RNE), widen back to compute.
            return to_compute(to_storage(f"(float)({v})", dst), dst)
        if dtypes.is_float(src):
            return f"tilec_f2i<{CTYPE[dst]}>((double)({v}))"
        return f"({CTYPE[dst]})({v})"

    def _Reinterpret(self, e: N.Reinterpret) -> str:
        src, dst = e.value.dtype, e.type
        stored = to_storage(self.expr(e.value), src)
        return to_compute(f"tilec_bitcast<{CTYPE[dst]}>({stored})", dst)

    def _Select(self, e: N.Select) -> str:
        return f"(({self.expr(e.cond)}) ? ({self.expr(e.a)}) : ({self.expr(e.b)}))"


PRELUDE = r"""
// ---- tilec scalar helpers (Scalar unit): floor division, conversions of float8_e4m3 (OCP e4m3fn),
// float->int with truncation and saturation (tilec's numeric rules).
template <typename T> __aicore__ inline T tilec_min(T a, T b) { return (b < a) ? b : a; }
template <typename T> __aicore__ inline T tilec_max(T a, T b) { return (a < b) ? b : a; }
template <typename T> __aicore__ inline T tilec_floordiv(T a, T b) {
    T q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
template <typename T> __aicore__ inline T tilec_floormod(T a, T b) {
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
__aicore__ inline float tilec_fmod_floor(float a, float b) { return a - floorf(a / b) * b; }
__aicore__ inline double tilec_fmod_floor(double a, double b) { return a - std::floor(a / b) * b; }
template <typename T> __aicore__ inline T tilec_f2i(double v) {
    if (v != v) return 0;
    v = std::trunc(v);
    if (v <= (double)std::numeric_limits<T>::lowest()) return std::numeric_limits<T>::lowest();
    if (v >= (double)std::numeric_limits<T>::max()) return std::numeric_limits<T>::max();
    return (T)v;
}
template <typename D, typename S> __aicore__ inline D tilec_bitcast(S v) {
    static_assert(sizeof(D) == sizeof(S), "reinterpret needs equal widths");
    D d; std::memcpy(&d, &v, sizeof(D)); return d;
}
__aicore__ inline float tilec_f8_to_f32(uint8_t b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    float v = e == 0 ? std::ldexp((float)m, -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
    return s ? -v : v;
}
__aicore__ inline uint8_t tilec_f32_to_f8(float x) {
    if (x != x) return std::signbit(x) ? 0xFF : 0x7F;
    uint8_t sign = std::signbit(x) ? 0x80 : 0;
    float a = std::fabs(x);
    if (a >= 448.0f) return sign | 0x7E;
    int e;
    std::frexp(a, &e);              // a = f * 2^e, f in [0.5, 1)
    int exp = e - 1;                // a = 1.x * 2^exp
    if (exp < -6) exp = -6;         // subnormal range: step 2^-9
    float q = std::ldexp(a, 3 - exp);                   // units of the last mantissa bit
    float r = std::nearbyint(q);                        // round half to even
    int code = (int)r;
    int biased = exp + 7;
    if (code >= 16) { code >>= 1; biased += 1; }
    if (code < 8) return sign | (uint8_t)code;          // subnormal (biased exponent 0)
    if (biased > 15 || (biased == 15 && (code & 7) == 7)) return sign | 0x7E;
    return sign | (uint8_t)((biased << 3) | (code & 7));
}
__aicore__ inline float tilec_exp_f(float x) { return expf(x); }
"""

TILE_HELPERS = r"""
// ---- tilec tile movers: a [rows, cols] tile between GM (row pitch gmPitch) and UB (row pitch ubPitch),
// clipped at run time to the rows/columns that exist in GM (out-of-range source elements read as 0,
// out-of-range destination elements are not written). DataCopyPad moves the rows; the ragged tail of a
// row is padded with zeros inside its 32-byte block.
__aicore__ inline int64_t tilec_clip(int64_t start, int64_t dim, int64_t ext) {
    int64_t v = dim - start;
    return v < 0 ? 0 : (v > ext ? ext : v);
}
template <typename T>
__aicore__ inline void TileGmToUb(const LocalTensor<T>& dst, const GlobalTensor<T>& gm, int64_t off,
                                  uint32_t rows, uint32_t cols, uint32_t ubPitch, int64_t gmPitch,
                                  int64_t rowStart, int64_t rowDim, int64_t colStart, int64_t colDim, bool otherValid) {
    int64_t vr = otherValid ? tilec_clip(rowStart, rowDim, rows) : 0, vc = tilec_clip(colStart, colDim, cols);
    bool fullRows = cols == ubPitch;
    if (rowStart < 0 || colStart < 0 || (vc < cols && !fullRows && (vc * sizeof(T)) % 32 != 0)) {
        PipeBarrier<PIPE_ALL>();   // Scalar-unit fallback
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t c = 0; c < cols; ++c) {
                int64_t gr = rowStart + r, gc = colStart + c;
                bool in = otherValid && gr >= 0 && gr < rowDim && gc >= 0 && gc < colDim;
                dst.SetValue(r * ubPitch + c, in ? gm.GetValue(off + (int64_t)r * gmPitch + c) : T(0));
            }
        PipeBarrier<PIPE_ALL>();
        return;
    }
    if (vr < rows || vc < cols) {
        if (fullRows) Duplicate(dst, T(0), (int32_t)(rows * ubPitch));
        else for (uint32_t r = 0; r < rows; ++r) Duplicate(dst[r * ubPitch], T(0), (int32_t)cols);
        SetFlag<HardEvent::V_MTE2>(EVENT_ID0);   // the zeros land before DataCopyPad writes the data
        WaitFlag<HardEvent::V_MTE2>(EVENT_ID0);
    }
    if (vr == 0 || vc == 0) return;
    uint32_t bytes = (uint32_t)(vc * sizeof(T)), padded = (bytes + 31) / 32 * 32;
    DataCopyExtParams p((uint16_t)vr, bytes, (uint32_t)((gmPitch - vc) * sizeof(T)),
                        (ubPitch * sizeof(T) - padded) / 32, 0);
    DataCopyPadExtParams<T> pad(true, 0, (uint8_t)((padded - bytes) / sizeof(T)), T(0));
    DataCopyPad(dst, gm[off], p, pad);
}
template <typename T>
__aicore__ inline void TileUbToGm(const GlobalTensor<T>& gm, int64_t off, const LocalTensor<T>& src,
                                  uint32_t rows, uint32_t cols, uint32_t ubPitch, int64_t gmPitch,
                                  int64_t rowStart, int64_t rowDim, int64_t colStart, int64_t colDim, bool otherValid) {
    int64_t vr = otherValid ? tilec_clip(rowStart, rowDim, rows) : 0, vc = tilec_clip(colStart, colDim, cols);
    if (rowStart < 0 || colStart < 0) {
        PipeBarrier<PIPE_ALL>();
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t c = 0; c < cols; ++c) {
                int64_t gr = rowStart + r, gc = colStart + c;
                if (otherValid && gr >= 0 && gr < rowDim && gc >= 0 && gc < colDim)
                    gm.SetValue(off + (int64_t)r * gmPitch + c, src.GetValue(r * ubPitch + c));
            }
        return;
    }
    if (vr == 0 || vc == 0) return;
    uint32_t bytes = (uint32_t)(vc * sizeof(T)), padded = (bytes + 31) / 32 * 32;
    DataCopyExtParams p((uint16_t)vr, bytes, (ubPitch * sizeof(T) - padded) / 32,
                        (uint32_t)((gmPitch - vc) * sizeof(T)), 0);
    DataCopyPad(gm[off], src, p);
}
"""
