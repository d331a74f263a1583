"""CUDA C spelling of Tile IR scalar types and expressions.

Part of the CUDA backend's codegen (docs/design.md, "Targets"). Every IR expression becomes one C
expression string. Following the IR's numerics, float16/bfloat16/float8 values compute as ``float``:
a load of a half buffer converts to float, a store rounds to nearest even, and ``Cast`` to a half type
rounds and widens again. How a buffer element is addressed is not decided here: the emitter passes an
``access(buffer, indices)`` callback that returns the C lvalue of the element in its storage type.
"""
from __future__ import annotations

import math
from typing import Callable

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as N

# Storage type of each dtype in CUDA C.
CTYPE = {
    "float32": "float", "float16": "half", "bfloat16": "__nv_bfloat16", "float8_e4m3": "__nv_fp8_e4m3",
    "float64": "double", "int8": "signed char", "int16": "short", "int32": "int", "int64": "long long",
    "uint8": "unsigned char", "uint16": "unsigned short", "uint32": "unsigned int", "bool": "bool",
}
HALF_TYPES = ("float16", "bfloat16", "float8_e4m3")

C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float for
goto if inline int long register restrict return short signed sizeof static struct switch typedef union
unsigned void volatile while bool true false class namespace template typename this new delete operator
private public protected virtual friend using half min max asm threadIdx blockIdx blockDim gridDim
warpSize smem tid lane warp_id""".split())

Access = Callable[[N.Buffer, tuple[str, ...]], str]


def cname(name: str) -> str:
    """A C identifier for an IR name (tilec reserves names starting with '_' for generated code)."""
    return "v_" + name if name in C_KEYWORDS or name.startswith("_") else name


def ctype(dtype: str) -> str:
    return CTYPE[dtype]


def compute_ctype(dtype: str) -> str:
    """The C type an expression of ``dtype`` is computed in (half types compute in float)."""
    return "float" if dtype in HALF_TYPES else CTYPE[dtype]


def to_compute(dtype: str, storage: str) -> str:
    """Convert a storage-typed C value of ``dtype`` to its compute type."""
    if dtype == "float16":
        return f"__half2float({storage})"
    if dtype == "bfloat16":
        return f"__bfloat162float({storage})"
    if dtype == "float8_e4m3":
        return f"static_cast<float>({storage})"
    return storage


def from_compute(dtype: str, value: str, value_dtype: str) -> str:
    """Convert a compute-typed C value (of IR dtype ``value_dtype``) to the storage type of ``dtype``."""
    if dtype == "float16":
        return f"__float2half_rn({_as_float(value, value_dtype)})"
    if dtype == "bfloat16":
        return f"tilec::f32_to_bf16({_as_float(value, value_dtype)})"
    if dtype == "float8_e4m3":
        return f"tilec::f32_to_e4m3({_as_float(value, value_dtype)})"
    if dtype == value_dtype or (dtype == "float32" and value_dtype in HALF_TYPES):
        return value
    if dtype == "bool":
        return f"({value} != 0)"
    return _float_to_int(value, value_dtype, dtype) or f"static_cast<{CTYPE[dtype]}>({value})"


def _float_to_int(value: str, src: str, dst: str) -> str:
    """float -> int8/int16/uint8/uint16 saturating with NaN -> 0 ("" when not such a conversion)."""
    if not dtypes.is_float(src) or dst not in ("int8", "int16", "uint8", "uint16"):
        return ""
    info = dtypes.info(dst)
    lo, hi = (-(2 ** (info.bits - 1)), 2 ** (info.bits - 1) - 1) if info.kind == "int" else (0, 2 ** info.bits - 1)
    return f"tilec::f2i_narrow<{CTYPE[dst]}, {lo}, {hi}>({_as_float(value, src)})"


def _as_float(value: str, value_dtype: str) -> str:
    if value_dtype in HALF_TYPES or value_dtype == "float32":
        return value
    return f"static_cast<float>({value})"


def convert(value: str, src: str, dst: str) -> str:
    """Value conversion between compute types: the semantics of ``Cast``."""
    if src == dst:
        return value
    if dst in HALF_TYPES:
        rounder = {"float16": "round_f16", "bfloat16": "round_bf16", "float8_e4m3": "round_e4m3"}[dst]
        return f"tilec::{rounder}({_as_float(value, src)})"
    if dst == "bool":
        return f"({value} != 0)"
    if src in HALF_TYPES and dst == "float32":
        return value
    return _float_to_int(value, src, dst) or f"static_cast<{CTYPE[dst]}>({value})"


def const(value: object, dtype: str) -> str:
    """A C literal of compute type for ``Const(value, dtype)``."""
    if dtype == "bool":
        return "true" if value else "false"
    if dtypes.is_int(dtype):
        v = int(value)  # type: ignore[arg-type]
        suffix = {"int64": "LL", "uint32": "u", "uint8": "u", "uint16": "u"}.get(dtype, "")
        if dtype == "int32" and v == -2**31:
            return "(-2147483647 - 1)"
        if dtype == "int64" and v == -2**63:
            return "(-9223372036854775807LL - 1)"
        text = f"{v}{suffix}"
        if dtype not in ("int32", "int64", "uint32"):
            text = f"static_cast<{CTYPE[dtype]}>({v})"
        return f"({text})" if v < 0 else text
    v = float(value)  # type: ignore[arg-type]
    if dtype in HALF_TYPES:
        v = round_to(v, dtype)
    double = dtype == "float64"
    if math.isnan(v):
        return "CUDART_NAN" if double else "CUDART_NAN_F"
    if math.isinf(v):
        inf = "CUDART_INF" if double else "CUDART_INF_F"
        return inf if v > 0 else f"(-{inf})"
    text = repr(v)
    if "e" not in text and "." not in text:
        text += ".0"
    text = text if double else text + "f"
    return f"({text})" if v < 0 else text


def round_to(v: float, dtype: str) -> float:
    """Round a Python float to ``dtype`` (RNE), as the value a half constant holds."""
    import torch
    tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float8_e4m3": torch.float8_e4m3fn}[dtype]
    return float(torch.tensor(v, dtype=torch.float32).to(tdt).to(torch.float32).item())


_FLOAT_FUNCS = {
    "abs": "fabsf", "exp": "expf", "exp2": "exp2f", "log": "logf", "log2": "log2f", "sqrt": "sqrtf",
    "rsqrt": "rsqrtf", "tanh": "tanhf", "sin": "sinf", "cos": "cosf", "floor": "floorf", "ceil": "ceilf",
    "round": "rintf", "trunc": "truncf", "pow": "powf",
}


class ExprEmitter:
    """Turns IR expressions into C expressions; ``names`` maps IR variable names to C names."""

    def __init__(self, names: dict[str, str], access: Access, target: str = "cuda"):
        self.names = names
        self.access = access
        self.target = target

    def __call__(self, e: N.Expr) -> str:
        return self.emit(e)

    def emit(self, e: N.Expr) -> str:
        method = getattr(self, "_" + type(e).__name__, None)
        if method is None:
            raise TilecError(f"{self.target}: expression {type(e).__name__} is not supported",
                             getattr(e, "loc", None))
        return method(e)

    def _Const(self, e: N.Const) -> str:
        return const(e.value, e.type)

    def _Var(self, e: N.Var) -> str:
        if e.name not in self.names:
            raise TilecError(f"{self.target}: unbound name '{e.name}'", e.loc)
        return self.names[e.name]

    def _Load(self, e: N.Load) -> str:
        idx = tuple(self.emit(i) for i in e.indices)
        return to_compute(e.buffer.dtype, self.access(e.buffer, idx))

    def _Cast(self, e: N.Cast) -> str:
        return convert(self.emit(e.value), e.value.dtype, e.type)

    def _Reinterpret(self, e: N.Reinterpret) -> str:
        src, dst = e.value.dtype, e.type
        bits = from_compute(src, self.emit(e.value), src)
        return to_compute(dst, f"tilec::bitcast<{CTYPE[dst]}>({bits})")

    def _Select(self, e: N.Select) -> str:
        return f"({self.emit(e.cond)} ? {self.emit(e.a)} : {self.emit(e.b)})"

    def _UnaryOp(self, e: N.UnaryOp) -> str:
        op = {"-": "-", "not": "!", "~": "~"}[e.op]
        return f"({op}{self.emit(e.a)})"

    def _BinOp(self, e: N.BinOp) -> str:
        a, b, dt = self.emit(e.a), self.emit(e.b), e.a.dtype
        is_f = dtypes.is_float(dt)
        if e.op in ("min", "max"):
            if is_f:
                return f"tilec::f{e.op}_nan({a}, {b})"
            return f"tilec::{e.op}_({a}, {b})"
        if e.op in ("//", "%"):
            fn = "floordiv" if e.op == "//" else "floormod"
            return f"tilec::{fn}_f({a}, {b})" if is_f else f"tilec::{fn}({a}, {b})"
        if e.op == "/" and not is_f:
            return f"tilec::idiv({a}, {b})"
        op = {"and": "&&", "or": "||"}.get(e.op, e.op)
        return f"({a} {op} {b})"

    def _Call(self, e: N.Call) -> str:
        args = [self.emit(a) for a in e.args]
        dt = e.args[0].dtype
        if e.func in ("isnan", "isinf"):
            return f"{e.func}({args[0]})" if dtypes.is_float(dt) else "false"
        if e.func == "abs" and not dtypes.is_float(dt):
            return f"{'llabs' if dt == 'int64' else 'abs'}({args[0]})" if dtypes.info(dt).kind == "int" \
                else args[0]
        if not dtypes.is_float(dt):
            raise TilecError(f"{self.target}: intrinsic {e.func} on {dt} is not supported (cast to float)",
                             e.loc)
        double = dt == "float64"
        if e.func == "sigmoid":
            one = "1.0" if double else "1.0f"
            return f"({one} / ({one} + {'exp' if double else 'expf'}(-{args[0]})))"
        fn = _FLOAT_FUNCS[e.func]
        if double:
            fn = {"fabsf": "fabs", "rintf": "rint"}.get(fn, fn[:-1])
        return f"{fn}({', '.join(args)})"
