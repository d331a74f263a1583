"""Math intrinsics of the CPU backend, emitted as straight-line LLVM IR so loops stay vectorizable.

``llvm.exp.*`` is scalarized into calls to ``expf`` (docs/backends/cpu.md), which stops the loop
vectorizer and costs a call per element. ``exp`` and ``exp2`` are therefore written here in IR:
Cody-Waite range reduction ``x = n*ln2 + r`` (|r| <= ln2/2), the Cephes ``expf`` polynomial for
``e^r``, and the scale ``2^n`` built from exponent bits in two halves (so results down to the
subnormal range and up to FLT_MAX come out without overflow in the scale). Measured error against a
float64 reference over [-104, 89] (tests/backends/llvm/test_math.py): exp <= 2 ulp, exp2 <= 2 ulp on
normal results; +-inf and NaN inputs give exactly e^x's IEEE result. Other intrinsics map to LLVM
intrinsics (sqrt, floor, ... vectorize natively) or libm (log, tanh, sin, ... stay scalar calls).
"""
from __future__ import annotations

from llvmlite import ir

from .types import F32, F64, I1, I32

LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
LOG2E = 1.44269504088896341
LN2 = 0.6931471805599453
# Cephes expf coefficients for e^r - 1 - r = r^2 * P(r), |r| <= ln2/2.
EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
            5.0000001201e-1)


def intrinsic(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    """Declare (once) and return an LLVM intrinsic or libm function."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    return fn


def _suffix(t: ir.Type) -> str:
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_suffix(t.element)}"
    return {F32: "f32", F64: "f64"}.get(t, f"i{getattr(t, 'width', 0)}")


def call_intr(b: ir.IRBuilder, base: str, *args: ir.Value) -> ir.Value:
    t = args[0].type
    fn = intrinsic(b.module, f"llvm.{base}.{_suffix(t)}", t, [a.type for a in args])
    return b.call(fn, list(args))


def call_libm(b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    t = args[0].type
    fname = name + ("f" if t == F32 else "")
    fn = intrinsic(b.module, fname, t, [a.type for a in args])
    return b.call(fn, list(args))


def _splat(t: ir.Type, v: float) -> ir.Constant:
    return ir.Constant(t, v)


def _exp_core(b: ir.IRBuilder, r: ir.Value, n: ir.Value) -> ir.Value:
    """e^r * 2^n for |r| <= ln2/2 (float32) and integral float n in [-151, 130]."""
    z = b.fmul(r, r)
    p = _splat(F32, EXP_POLY[0])
    for c in EXP_POLY[1:]:
        p = b.fadd(b.fmul(p, r), _splat(F32, c))
    y = b.fadd(b.fadd(b.fmul(p, z), r), _splat(F32, 1.0))
    ni = b.fptosi(n, I32)
    half = b.ashr(ni, ir.Constant(I32, 1))
    rest = b.sub(ni, half)
    s1 = b.bitcast(b.shl(b.add(half, ir.Constant(I32, 127)), ir.Constant(I32, 23)), F32)
    s2 = b.bitcast(b.shl(b.add(rest, ir.Constant(I32, 127)), ir.Constant(I32, 23)), F32)
    return b.fmul(b.fmul(y, s1), s2)


def _clamp(b: ir.IRBuilder, x: ir.Value, lo: float, hi: float) -> ir.Value:
    # Ordered compares leave NaN untouched; the caller selects NaN back in at the end.
    x = b.select(b.fcmp_ordered(">", x, _splat(F32, hi)), _splat(F32, hi), x)
    return b.select(b.fcmp_ordered("<", x, _splat(F32, lo)), _splat(F32, lo), x)


def exp_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    xc = _clamp(b, x, -104.0, 89.0)
    n = call_intr(b, "roundeven", b.fmul(xc, _splat(F32, LOG2E)))
    r = b.fsub(b.fsub(xc, b.fmul(n, _splat(F32, LN2_HI))), b.fmul(n, _splat(F32, LN2_LO)))
    y = _exp_core(b, r, n)
    return b.select(b.fcmp_unordered("uno", x, x), x, y)


def exp2_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    xc = _clamp(b, x, -151.0, 129.0)
    n = call_intr(b, "roundeven", xc)
    r = b.fmul(b.fsub(xc, n), _splat(F32, LN2))
    y = _exp_core(b, r, n)
    return b.select(b.fcmp_unordered("uno", x, x), x, y)


def exp(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    if x.type == F32:
        return exp_f32(b, x)
    return call_intr(b, "exp", x)


def exp2(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    if x.type == F32:
        return exp2_f32(b, x)
    return call_intr(b, "exp2", x)


def float_intrinsic(b: ir.IRBuilder, func: str, args: list[ir.Value]) -> ir.Value:
    """An ``INTRINSICS`` call on float compute values (float32 or float64)."""
    x = args[0]
    t = x.type
    one = ir.Constant(t, 1.0)
    if func == "abs":
        return call_intr(b, "fabs", x)
    if func == "exp":
        return exp(b, x)
    if func == "exp2":
        return exp2(b, x)
    if func in ("log", "log2", "sqrt", "sin", "cos", "floor", "ceil", "trunc"):
        return call_intr(b, func, x)
    if func == "round":  # numpy rounds half to even
        return call_intr(b, "roundeven", x)
    if func == "rsqrt":
        return b.fdiv(one, call_intr(b, "sqrt", x))
    if func == "tanh":
        return call_libm(b, "tanh", x)
    if func == "sigmoid":
        return b.fdiv(one, b.fadd(one, exp(b, b.fneg(x))))
    if func == "pow":
        return call_intr(b, "pow", x, args[1])
    if func == "isnan":
        return b.fcmp_unordered("uno", x, x)
    if func == "isinf":
        return b.fcmp_ordered("==", call_intr(b, "fabs", x), ir.Constant(t, float("inf")))
    raise KeyError(func)


def int_intrinsic(b: ir.IRBuilder, func: str, args: list[ir.Value], unsigned: bool) -> ir.Value:
    """An ``INTRINSICS`` call on integer values (abs, rounding are identities; isnan/isinf false)."""
    x = args[0]
    if func == "abs":
        if unsigned:
            return x
        fn = intrinsic(b.module, f"llvm.abs.i{x.type.width}", x.type, [x.type, I1])
        return b.call(fn, [x, ir.Constant(I1, 0)])
    if func in ("floor", "ceil", "round", "trunc"):
        return x
    if func in ("isnan", "isinf"):
        return ir.Constant(I1, 0)
    raise KeyError(func)
