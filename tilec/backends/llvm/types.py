"""Scalar types of the CPU backend: how each tilec dtype is stored and computed in LLVM IR.

A value has two LLVM forms. *Storage* is what sits in memory (``half`` for float16, the raw ``i16``
bits of bfloat16, the raw ``i8`` bits of float8_e4m3, ``i8`` for bool). *Compute* is what expressions
work on: float32 for every float type narrower than 32 bits (the IR's rule: half types compute in
float32 and round only at stores and casts), ``double`` for float64, ``iN`` for integers, ``i1`` for
bool. ``to_compute``/``to_storage`` convert between the two with round-to-nearest-even, written as
branch-free integer code that the loop vectorizer can widen and that matches ``tilec.numerics`` (and
torch) bit for bit. ``convert`` implements ``Cast`` between compute forms.
"""
from __future__ import annotations

import struct

import numpy as np
from llvmlite import ir

from tilec.ir import dtypes

F32 = ir.FloatType()
F64 = ir.DoubleType()
F16 = ir.HalfType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

NARROW_FLOATS = ("float16", "bfloat16", "float8_e4m3")


def array_alloca(b: ir.IRBuilder, elem: ir.Type, count: int, align: int = 0) -> ir.Value:
    """``alloca [count x elem]`` typed as an opaque pointer (llvmlite would give a typed one)."""
    a = b.alloca(ir.ArrayType(elem, max(count, 1)))
    if align:
        a.align = align
    a.type = PTR
    return a


def compute_type(dt: str) -> ir.Type:
    if dt in NARROW_FLOATS or dt == "float32":
        return F32
    if dt == "float64":
        return F64
    if dt == "bool":
        return I1
    return ir.IntType(dtypes.info(dt).bits)


def storage_type(dt: str) -> ir.Type:
    if dt == "float16":
        return F16
    if dt == "bfloat16":
        return I16
    if dt in ("float8_e4m3", "bool"):
        return I8
    return compute_type(dt)


def is_unsigned(dt: str) -> bool:
    return dtypes.info(dt).kind == "uint"


def _f32(v: float) -> ir.Constant:
    return ir.Constant(F32, v)


def to_compute(b: ir.IRBuilder, v: ir.Value, dt: str) -> ir.Value:
    """Storage value of dtype ``dt`` -> compute value."""
    if dt == "float16":
        return b.fpext(v, F32)
    if dt == "bfloat16":
        return b.bitcast(b.shl(b.zext(v, I32), ir.Constant(I32, 16)), F32)
    if dt == "float8_e4m3":
        return _fp8_to_f32(b, v)
    if dt == "bool":
        return b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
    return v


def to_storage(b: ir.IRBuilder, v: ir.Value, dt: str) -> ir.Value:
    """Compute value of dtype ``dt`` -> storage value (rounding to nearest even for narrow floats)."""
    if dt == "float16":
        return b.fptrunc(v, F16)
    if dt == "bfloat16":
        return _f32_to_bf16(b, v)
    if dt == "float8_e4m3":
        return _f32_to_fp8(b, v)
    if dt == "bool":
        return b.zext(v, I8)
    return v


def _f32_to_bf16(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    # Round to nearest even: bits + 0x7fff + lsb; every NaN -> 0xffff (tilec.numerics, torch's CPU kernel).
    bits = b.bitcast(v, I32)
    lsb = b.and_(b.lshr(bits, ir.Constant(I32, 16)), ir.Constant(I32, 1))
    rounded = b.add(b.add(bits, ir.Constant(I32, 0x7FFF)), lsb)
    hi = b.trunc(b.lshr(rounded, ir.Constant(I32, 16)), I16)
    isnan = b.fcmp_unordered("uno", v, v)
    return b.select(isnan, ir.Constant(I16, 0xFFFF), hi)


def _f32_to_fp8(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """torch's saturation to +-448, then c10::detail::fp8e4m3fn_from_fp32_value, branch-free."""
    c = lambda x: ir.Constant(I32, x)  # noqa: E731
    lim = ir.Constant(F32, 448.0)
    v = b.select(b.fcmp_ordered(">", v, lim), lim, v)      # ordered compares leave NaN alone
    v = b.select(b.fcmp_ordered("<", v, b.fneg(lim)), b.fneg(lim), v)
    bits = b.bitcast(v, I32)
    sign = b.and_(bits, c(0x80000000))
    mag = b.xor(bits, sign)
    # Subnormal path: add 2^-6 * 2^... (denorm_mask = 141 << 23) in float and take the low bits.
    denorm = c(141 << 23)
    sub_f = b.fadd(b.bitcast(mag, F32), b.bitcast(denorm, F32))
    sub_r = b.sub(b.bitcast(sub_f, I32), denorm)
    # Normal path: rebias the exponent and round to nearest even on bit 20.
    odd = b.and_(b.lshr(mag, c(20)), c(1))
    norm_r = b.lshr(b.add(b.add(mag, c(((7 - 127) << 23) + 0x7FFFF)), odd), c(20))
    small = b.icmp_unsigned("<", mag, c(121 << 23))
    r = b.select(small, sub_r, norm_r)
    big = b.icmp_unsigned(">", mag, c(0x7F800000))  # only NaN is left above 448
    r = b.select(big, c(0x7F), r)
    r = b.or_(b.and_(r, c(0xFF)), b.lshr(sign, c(24)))
    return b.trunc(r, I8)


def _fp8_to_f32(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """float8_e4m3fn bits -> float32: exact, NaN for S.1111.111, no infinities."""
    c = lambda x: ir.Constant(I32, x)  # noqa: E731
    x = b.zext(v, I32)
    sign = b.shl(b.and_(x, c(0x80)), c(24))
    exp = b.and_(b.lshr(x, c(3)), c(0xF))
    man = b.and_(x, c(0x7))
    normal = b.or_(b.shl(b.add(exp, c(120)), c(23)), b.shl(man, c(20)))
    sub = b.bitcast(b.fmul(b.uitofp(man, F32), _f32(2.0 ** -9)), I32)
    mag = b.select(b.icmp_unsigned("==", exp, c(0)), sub, normal)
    bits = b.or_(mag, sign)
    # Both NaN codes read as the positive quiet NaN (tilec.numerics' table does the same).
    bits = b.select(b.icmp_unsigned("==", b.and_(x, c(0x7F)), c(0x7F)), c(0x7FC00000), bits)
    return b.bitcast(bits, F32)


def round_to(b: ir.IRBuilder, v: ir.Value, dt: str) -> ir.Value:
    """Round a float32 compute value to ``dt`` and back (the effect of Cast to a narrow float)."""
    if dt in NARROW_FLOATS:
        return to_compute(b, to_storage(b, v, dt), dt)
    return v


def convert(b: ir.IRBuilder, v: ir.Value, src: str, dst: str) -> ir.Value:
    """``Cast``: compute value of ``src`` -> compute value of ``dst`` (floats round RNE, float->int truncates)."""
    if src == dst:
        return v
    st, dt_ = compute_type(src), compute_type(dst)
    sk, dk = dtypes.info(src).kind, dtypes.info(dst).kind
    if dk == "bool":
        if sk == "float":
            return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
        return b.icmp_unsigned("!=", v, ir.Constant(st, 0))
    if sk == "bool":
        if dk == "float":
            return round_to(b, b.uitofp(v, dt_), dst)
        return b.zext(v, dt_)
    if sk == "float" and dk == "float":
        if st != dt_:
            v = b.fpext(v, dt_) if dt_ == F64 else b.fptrunc(v, dt_)
        return round_to(b, v, dst)
    if sk == "float":  # truncate, saturate, NaN -> 0 (tilec.numerics.float_to_int)
        name = f"llvm.fpto{'u' if dk == 'uint' else 's'}i.sat.i{dt_.width}.{'f64' if st == F64 else 'f32'}"
        fn = b.module.globals.get(name) or ir.Function(b.module, ir.FunctionType(dt_, [st]), name=name)
        return b.call(fn, [v])
    if dk == "float":
        f = b.uitofp(v, dt_) if sk == "uint" else b.sitofp(v, dt_)
        return round_to(b, f, dst)
    # int -> int
    if st.width == dt_.width:
        return v
    if st.width > dt_.width:
        return b.trunc(v, dt_)
    return b.zext(v, dt_) if sk == "uint" else b.sext(v, dt_)


def const_value(value, dt: str) -> ir.Constant:
    """A literal of dtype ``dt`` in compute form; narrow-float literals are rounded to their dtype."""
    t = compute_type(dt)
    kind = dtypes.info(dt).kind
    if kind == "bool":
        return ir.Constant(I1, int(bool(value)))
    if kind in ("int", "uint"):
        bits = t.width
        iv = int(value) & ((1 << bits) - 1)
        if kind == "int" and iv >= 1 << (bits - 1):
            iv -= 1 << bits
        return ir.Constant(t, iv)
    fv = float(value)
    if dt in NARROW_FLOATS:
        fv = float(round_const(np.float32(fv), dt))
    elif dt == "float32":
        fv = float(np.float32(fv))
    return ir.Constant(t, fv)


def round_const(v: np.float32, dt: str) -> np.float32:
    """Round one float32 to a narrow float and back, in Python (for constants)."""
    try:
        from tilec import numerics
        arr = np.array([v], dtype=np.float32)
        return numerics.to_float32(numerics.from_float32(arr, dt), dt)[0]
    except Exception:  # numerics not importable: same algorithms, scalar
        if dt == "float16":
            return np.float32(np.float16(v))
        bits = struct.unpack("<I", struct.pack("<f", float(v)))[0]
        if dt == "bfloat16":
            if np.isnan(v):
                return np.float32("nan")
            r = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
            return np.float32(struct.unpack("<f", struct.pack("<I", r & 0xFFFFFFFF))[0])
        raise
