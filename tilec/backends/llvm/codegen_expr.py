"""Expression lowering for the CPU backend: Tile IR ``Expr`` -> LLVM values in compute form.

``ExprLowering`` is a mixin of the per-function code generator (codegen.py). Values are in compute form
(types.py): narrow floats as float32, bool as i1. Index expressions take a second path, ``index64``,
that evaluates int32 ``+ - *`` trees in i64 with ``nsw`` so that LLVM's scalar evolution sees affine
addresses and the loop vectorizer finds consecutive accesses (an index that overflowed int32 would be
out of bounds anyway). Integer ``//`` and ``%`` are floor division/modulo, ``/`` truncates; float
``//`` and ``%`` follow numpy's ``divmod`` (fmod-based), as the interpreter does; float ``min``/``max``
propagate NaN and break ties exactly like ``np.minimum``/``np.maximum``.
"""
from __future__ import annotations

from llvmlite import ir

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as n

from . import mathlib
from .types import I1, I64, compute_type, const_value, convert, is_unsigned, storage_type, to_compute, to_storage

def _reads_memory(e: n.Expr) -> bool:
    """Whether evaluating ``e`` loads from a buffer (then it must not be evaluated speculatively)."""
    if isinstance(e, n.Load):
        return True
    for f in ("a", "b", "value", "cond"):
        sub = getattr(e, f, None)
        if isinstance(sub, n.Expr) and _reads_memory(sub):
            return True
    return any(_reads_memory(x) for x in getattr(e, "args", ()))


_FCMP = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class ExprLowering:
    """Mixin: needs ``self.b`` (IRBuilder), ``self.env``/``self.env64`` (name -> value) and
    ``self.elem_ptr(buffer, index_values)``."""

    b: ir.IRBuilder
    env: dict
    env64: dict

    # ----------------------------------------------------------------------------------------------
    def expr(self, e: n.Expr) -> ir.Value:
        m = getattr(self, "_e_" + type(e).__name__, None)
        if m is None:
            raise TilecError(f"cpu target: unsupported expression {type(e).__name__}", getattr(e, "loc", None))
        return m(e)

    def _e_Const(self, e: n.Const) -> ir.Value:
        return const_value(e.value, e.type)

    def _e_Var(self, e: n.Var) -> ir.Value:
        if e.name not in self.env:
            raise TilecError(f"cpu target: unbound name '{e.name}'", e.loc)
        return self.env[e.name]

    def _e_Load(self, e: n.Load) -> ir.Value:
        ptr = self.elem_ptr(e.buffer, [self.index64(i) for i in e.indices])
        v = self.b.load(ptr, typ=storage_type(e.buffer.dtype))
        return to_compute(self.b, v, e.buffer.dtype)

    def _e_Cast(self, e: n.Cast) -> ir.Value:
        return convert(self.b, self.expr(e.value), e.value.dtype, e.type)

    def _e_Reinterpret(self, e: n.Reinterpret) -> ir.Value:
        src, dst = e.value.dtype, e.type
        bits = to_storage(self.b, self.expr(e.value), src)
        st = storage_type(dst)
        if bits.type != st:
            if isinstance(bits.type, ir.IntType) and isinstance(st, ir.IntType):
                bits = self.b.trunc(bits, st) if bits.type.width > st.width else self.b.zext(bits, st)
            else:
                bits = self.b.bitcast(bits, st)
        return to_compute(self.b, bits, dst)

    def _e_Select(self, e: n.Select) -> ir.Value:
        cond = self.expr(e.cond)
        if _reads_memory(e.a) or _reads_memory(e.b):
            # Like C's ?: (TileLang's if_then_else): the arm not taken may index out of bounds
            # (select(i + 1 < n, X[i + 1], 0)), so it must not be loaded. The vectorizer turns the
            # branch into masked loads.
            return self._lazy(cond, lambda: self.expr(e.a), lambda: self.expr(e.b))
        return self.b.select(cond, self.expr(e.a), self.expr(e.b))

    def _lazy(self, cond: ir.Value, then_fn, else_fn) -> ir.Value:
        b = self.b
        with b.if_else(cond) as (then, other):
            with then:
                va, ba = then_fn(), b.block
            with other:
                vb, bb = else_fn(), b.block
        phi = b.phi(va.type)
        phi.add_incoming(va, ba)
        phi.add_incoming(vb, bb)
        return phi

    def _e_UnaryOp(self, e: n.UnaryOp) -> ir.Value:
        v = self.expr(e.a)
        if e.op == "not":
            return self.b.xor(v, ir.Constant(I1, 1))
        if e.op == "~":
            return self.b.xor(v, ir.Constant(v.type, -1))
        if dtypes.is_float(e.a.dtype):
            return self.b.fneg(v)
        return self.b.neg(v)

    def _e_Call(self, e: n.Call) -> ir.Value:
        args = [self.expr(a) for a in e.args]
        dt = e.args[0].dtype
        try:
            if dtypes.is_float(dt):
                return mathlib.float_intrinsic(self.b, e.func, args)
            if e.func == "pow":
                raise KeyError(e.func)
            return mathlib.int_intrinsic(self.b, e.func, args, is_unsigned(dt))
        except KeyError:
            raise TilecError(f"cpu target: intrinsic '{e.func}' is not supported on {dt}", e.loc) from None

    def _e_BinOp(self, e: n.BinOp) -> ir.Value:
        if e.op in n.LOGIC_OPS and _reads_memory(e.b):  # short-circuit, as C's && and || guard a load
            a = self.expr(e.a)
            false, true = ir.Constant(I1, 0), ir.Constant(I1, 1)
            if e.op == "and":
                return self._lazy(a, lambda: self.expr(e.b), lambda: false)
            return self._lazy(a, lambda: true, lambda: self.expr(e.b))
        a, c = self.expr(e.a), self.expr(e.b)
        dt = e.a.dtype
        if e.b.dtype != dt:  # the frontend casts operands to one type; tolerate IR written by hand
            t = dtypes.promote(dt, e.b.dtype)
            a, c, dt = convert(self.b, a, dt, t), convert(self.b, c, e.b.dtype, t), t
        if e.op in n.LOGIC_OPS:
            return self.b.and_(a, c) if e.op == "and" else self.b.or_(a, c)
        if dtypes.is_float(dt):
            return self._float_binop(e.op, a, c, e)
        return self._int_binop(e.op, a, c, dt, e)

    def _float_binop(self, op: str, a: ir.Value, c: ir.Value, e: n.Expr) -> ir.Value:
        b = self.b
        if op in n.COMPARE_OPS:
            return b.fcmp_unordered("!=", a, c) if op == "!=" else b.fcmp_ordered(_FCMP[op], a, c)
        simple = {"+": b.fadd, "-": b.fsub, "*": b.fmul, "/": b.fdiv}
        if op in simple:
            return simple[op](a, c)
        if op in ("max", "min"):  # numpy: a NaN operand wins, a tie (0 vs -0) gives the second operand
            pick_a = b.fcmp_ordered(">" if op == "max" else "<", a, c)
            return b.select(b.or_(pick_a, b.fcmp_unordered("uno", a, a)), a, c)
        if op in ("//", "%"):
            return self._float_divmod(a, c, op == "//")
        raise TilecError(f"cpu target: operator '{op}' is not defined on floats", e.loc)

    def _float_divmod(self, a: ir.Value, c: ir.Value, want_div: bool) -> ir.Value:
        """numpy's npy_divmod: mod = fmod(a, b) adjusted to b's sign; div = floor((a - mod) / b)."""
        b = self.b
        t = a.type
        zero = ir.Constant(t, 0.0)
        mod = b.frem(a, c)
        div = b.fdiv(b.fsub(a, mod), c)
        adjust = b.and_(b.fcmp_unordered("!=", mod, zero),
                        b.xor(b.fcmp_ordered("<", c, zero), b.fcmp_ordered("<", mod, zero)))
        mod = b.select(adjust, b.fadd(mod, c), mod)
        div = b.select(adjust, b.fsub(div, ir.Constant(t, 1.0)), div)
        if not want_div:
            signed_zero = mathlib.call_intr(b, "copysign", zero, c)
            return b.select(b.fcmp_ordered("==", mod, zero), signed_zero, mod)
        fl = mathlib.call_intr(b, "floor", div)
        fl = b.select(b.fcmp_ordered(">", b.fsub(div, fl), ir.Constant(t, 0.5)), b.fadd(fl, ir.Constant(t, 1.0)), fl)
        quotient = b.fdiv(a, c)
        res = b.select(b.fcmp_ordered("==", div, zero), mathlib.call_intr(b, "copysign", zero, quotient), fl)
        return b.select(b.fcmp_ordered("==", c, zero), quotient, res)

    def _int_binop(self, op: str, a: ir.Value, c: ir.Value, dt: str, e: n.Expr) -> ir.Value:
        b = self.b
        uns = is_unsigned(dt) or dt == "bool"
        if op in n.COMPARE_OPS:
            return b.icmp_unsigned(op, a, c) if uns else b.icmp_signed(op, a, c)
        simple = {"+": b.add, "-": b.sub, "*": b.mul, "&": b.and_, "|": b.or_, "^": b.xor, "<<": b.shl}
        if op in simple:
            return simple[op](a, c)
        if op == ">>":
            return b.lshr(a, c) if uns else b.ashr(a, c)
        if op in ("min", "max"):
            name = ("u" if uns else "s") + op
            return mathlib.call_intr(b, name, a, c)
        if op in ("/", "//", "%"):
            return self._int_division(op, a, c, uns)
        raise TilecError(f"cpu target: operator '{op}' is not defined on {dt}", e.loc)

    def _int_division(self, op: str, a: ir.Value, c: ir.Value, uns: bool) -> ir.Value:
        """Integer division that never traps: x/0 gives 0 (numpy), INT_MIN/-1 wraps."""
        b = self.b
        t = a.type
        zero, one = ir.Constant(t, 0), ir.Constant(t, 1)
        if isinstance(c, ir.Constant) and c.constant not in (0, -1):
            safe, bad = c, None
        else:
            bad = b.icmp_unsigned("==", c, zero)
            if not uns:
                bad = b.or_(bad, b.icmp_signed("==", c, ir.Constant(t, -1)))
            safe = b.select(bad, one, c)
        if uns:
            r = b.udiv(a, safe) if op != "%" else b.urem(a, safe)
        elif op == "/":
            r = b.sdiv(a, safe)
        else:
            r = self._int_floordiv(a, safe, op == "//")
        if bad is None:
            return r
        # c == -1: a / -1 = -a (wrapping), a % -1 = 0; c == 0: 0 as numpy gives
        alt = b.select(b.icmp_unsigned("==", c, zero), zero, zero if op == "%" else b.neg(a))
        return b.select(bad, alt, r)

    def _int_floordiv(self, a: ir.Value, c: ir.Value, want_div: bool) -> ir.Value:
        b = self.b
        zero = ir.Constant(a.type, 0)
        q, r = b.sdiv(a, c), b.srem(a, c)
        fix = b.and_(b.icmp_signed("!=", r, zero),
                     b.icmp_signed("!=", b.icmp_signed("<", r, zero), b.icmp_signed("<", c, zero)))
        if want_div:
            return b.select(fix, b.sub(q, ir.Constant(a.type, 1)), q)
        return b.select(fix, b.add(r, c), r)

    # ----------------------------------------------------------------------------------------------
    def index64(self, e: n.Expr) -> ir.Value:
        """Evaluate an integer index expression as i64 (``+ - *`` of int32 in i64 with nsw)."""
        b = self.b
        if isinstance(e, n.Const) and dtypes.is_int(e.type):
            return ir.Constant(I64, int(e.value))
        if isinstance(e, n.Var) and e.name in self.env64:
            return self.env64[e.name]
        if isinstance(e, n.BinOp) and e.op in ("+", "-", "*") and e.a.dtype == "int32":
            x, y = self.index64(e.a), self.index64(e.b)
            return {"+": b.add, "-": b.sub, "*": b.mul}[e.op](x, y, flags=["nsw"])
        v = self.expr(e)
        return self.to_i64(v, e.dtype)

    def to_i64(self, v: ir.Value, dt: str) -> ir.Value:
        if dtypes.is_float(dt):
            v = convert(self.b, v, dt, "int64")
            return v
        if v.type.width == 64:
            return v
        return self.b.zext(v, I64) if (is_unsigned(dt) or dt == "bool") else self.b.sext(v, I64)

    def cast_to(self, v: ir.Value, src: str, dst: str) -> ir.Value:
        return convert(self.b, v, src, dst)

    def compute_type(self, dt: str) -> ir.Type:
        return compute_type(dt)
