"""The Vector path for ``T.Parallel`` maps: element loops -> AscendC vector instructions in count form.

A nest ``for i, j in T.Parallel(R, C)`` (or a single ``for j in T.Parallel(C)``) whose body is stores
``X[i, j] = f(...)`` into UB tiles becomes, per row (or once for the whole tile when nothing depends on
``i``), a sequence of instructions on float32 temporaries carved from the UB scratch area: loads of
``Y[i, j]`` are views of the row (Cast first for half types), loads of ``b[j]`` are the column vector,
anything not depending on ``j`` is a scalar evaluated on the Scalar unit and folded into Adds/Muls/Maxs/
Mins (or a Duplicate for division, which keeps results bit-identical with the interpreter). Expressions
outside this subset (selects, comparisons, integer math, gathers) return False and stay scalar loops.
"""
from __future__ import annotations

import math

from tilec.ir import dtypes, nodes as N

from .cexpr import CTYPE, VEC_FLOAT, cname, is_const, literal
from .plan import align32


class _Fail(Exception):
    pass


class _NeedRows(Exception):
    pass


def _uses(e, name: str) -> bool:
    if isinstance(e, N.Var):
        return e.name == name
    if isinstance(e, N.Expr):
        return any(_uses(getattr(e, f), name) for f in e.__dataclass_fields__ if f != "loc")
    if isinstance(e, tuple):
        return any(_uses(x, name) for x in e)
    return False


class _MapGen:
    def __init__(self, low, iv, jv, rows: int, cols: int, row_mode: bool):
        self.low, self.iv, self.jv, self.rows, self.cols, self.row_mode = low, iv, jv, rows, cols, row_mode
        self.count = cols if (row_mode or iv is None) else rows * cols
        self.lines: list[str] = []
        self.decls: list[str] = []
        self.vlets: dict[str, tuple[str, str]] = {}   # let names bound to vectors/masks in this map
        self.ntemps = 0
        self.slot = align32(self.count * 4)

    def temp(self, ctype: str = "float") -> str:
        k = self.ntemps
        self.ntemps += 1
        item = {"float": 4, "int32_t": 4, "uint8_t": 1}.get(ctype, 2)
        name = self.low.fresh("vt")
        self.decls.append(f"LocalTensor<{ctype}> {name} = ubBuf.GetWithOffset<{ctype}>({self.slot // item}, "
                          f"kScratch + {k * self.slot});")
        return name

    def view(self, buf: N.Buffer, two: bool) -> str:
        lb = self.low.plan.locals.get(buf.name)
        if lb is None or buf.dtype not in VEC_FLOAT:
            raise _Fail
        item = dtypes.itemsize(buf.dtype)
        if two:
            if len(lb.shape) != 2 or lb.shape[0] < self.rows or lb.shape[1] < self.cols:
                raise _Fail
            pitch = lb.shape[1]
            if self.row_mode:
                if (pitch * item) % 32:
                    raise _Fail
                v = f"{cname(buf.name)}[{cname(self.iv)} * {pitch}]"
            else:
                if pitch != self.cols:
                    raise _NeedRows
                v = cname(buf.name)
        else:
            if len(lb.shape) != 1 or lb.shape[0] < self.cols:
                raise _Fail
            if self.iv is not None and not self.row_mode:
                raise _NeedRows
            v = cname(buf.name)
        if buf.dtype == "float32":
            return v
        t = self.temp()
        self.lines.append(f"Cast({t}, {v}, RoundMode::CAST_NONE, {self.count});")
        return t

    def scalar(self, e: N.Expr) -> str:
        if e.dtype not in ("float32", "float16", "bfloat16", "int32"):
            raise _Fail
        if self.iv is not None and _uses(e, self.iv) and not self.row_mode:
            raise _NeedRows
        if isinstance(e, N.Const):
            return literal(e.value, "float32")
        name = self.low.fresh("s")
        self.lines.append(f"float {name} = (float)({self.low.px(e)});")
        return name

    def dep(self, e: N.Expr) -> bool:
        """Does e vary along j (directly or through a let bound to a vector)?"""
        return _uses(e, self.jv) or any(_uses(e, n) for n in self.vlets)

    def let(self, t: N.Let) -> None:
        if self.dep(t.value):
            self.vlets[t.var.name] = self.value(t.value)
        else:
            self.lines.append(f"{cname(t.var.name)} = {self.low.px(t.value)};")
            if self.iv is not None and _uses(t.value, self.iv) and not self.row_mode:
                raise _NeedRows

    def value(self, e: N.Expr):
        """('s', c_expr) for a scalar, ('v', tensor) for a vector of self.count floats, ('m', mask)."""
        if isinstance(e, N.Var) and e.name in self.vlets:
            return self.vlets[e.name]
        if not self.dep(e):
            return "s", self.scalar(e)
        if isinstance(e, N.Load):
            idx = e.indices
            if len(idx) == 2 and isinstance(idx[0], N.Var) and idx[0].name == self.iv and \
                    isinstance(idx[1], N.Var) and idx[1].name == self.jv:
                return "v", self.view(e.buffer, True)
            if len(idx) == 1 and isinstance(idx[0], N.Var) and idx[0].name == self.jv:
                return "v", self.view(e.buffer, False)
            raise _Fail
        if isinstance(e, N.Var) and e.name == self.jv:
            return "v", self.index_vector()
        if isinstance(e, N.BinOp) and e.op in N.COMPARE_OPS and e.a.dtype in ("float32", "int32"):
            return "m", self.compare(e.op, self.value(e.a), self.value(e.b))
        if isinstance(e, N.BinOp) and e.op in ("and", "or"):
            (ka, a), (kb, b) = self.value(e.a), self.value(e.b)
            if ka != "m" or kb != "m":
                raise _Fail
            m, fn = self.temp("uint8_t"), "And" if e.op == "and" else "Or"
            u16 = ".ReinterpretCast<uint16_t>()"
            self.lines.append(f"{fn}({m}{u16}, {a}{u16}, {b}{u16}, {self.count // 16});  // mask bits, 16 per element")
            return "m", m
        if isinstance(e, N.Select):
            return "v", self.select(self.value(e.cond), self.value(e.a), self.value(e.b))
        # int32 index arithmetic runs in float: exact below 2^24
        if isinstance(e, N.BinOp) and e.op in ("+", "-", "*") and e.dtype == "int32":
            return "v", self.binop(e.op, self.vec_or_scalar(e.a), self.vec_or_scalar(e.b))
        if isinstance(e, N.BinOp) and e.op in ("+", "-", "*", "/", "max", "min") and dtypes.is_float(e.dtype) \
                and e.dtype != "float64":
            return "v", self.binop(e.op, self.vec_or_scalar(e.a), self.vec_or_scalar(e.b))
        if isinstance(e, N.UnaryOp) and e.op == "-":
            return "v", self.op1("Muls", self.value(e.a)[1], "-1.0f")
        if isinstance(e, N.Call):
            return "v", self.call(e)
        if isinstance(e, N.Cast) and e.type == "float32" and e.value.dtype == "int32":
            return self.vec_or_scalar(e.value)   # int32 values are already carried as exact floats
        if isinstance(e, N.Cast) and e.type in VEC_FLOAT and dtypes.is_float(e.value.dtype):
            kind, v = self.value(e.value)
            if e.type == "float32":
                return kind, v
            h, t = self.temp(CTYPE[e.type]), self.temp()
            self.lines.append(f"Cast({h}, {v}, RoundMode::CAST_RINT, {self.count});")
            self.lines.append(f"Cast({t}, {h}, RoundMode::CAST_NONE, {self.count});")
            return "v", t
        raise _Fail

    def vec_or_scalar(self, e: N.Expr):
        kind, v = self.value(e)
        if kind == "m":
            raise _Fail
        return kind, v

    def index_vector(self) -> str:
        """The column index j as floats 0..C-1 (one row: needs row mode for a 2-D nest)."""
        if self.iv is not None and not self.row_mode:
            raise _NeedRows
        ti, tf = self.temp("int32_t"), self.temp()
        self.lines.append(f"CreateVecIndex({ti}, (int32_t)0, {self.count});")
        self.lines.append(f"Cast({tf}, {ti}, RoundMode::CAST_NONE, {self.count});")
        return tf

    def compare(self, op: str, a, b) -> str:
        if (self.count * 4) % 256:
            raise _Fail   # Compare works on whole 256-byte repeats
        (ka, va), (kb, vb) = a, b
        if "m" in (ka, kb):
            raise _Fail
        if ka == "s" and kb == "s":
            raise _Fail
        if ka == "s":
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[op]
            (ka, va), (kb, vb) = (kb, vb), (ka, va)
        mode = {"<": "LT", "<=": "LE", ">": "GT", ">=": "GE", "==": "EQ", "!=": "NE"}[op]
        m = self.temp("uint8_t")
        if kb == "s":
            self.lines.append(f"CompareScalar({m}, {va}, (float)({vb}), CMPMODE::{mode}, {self.count});")
        else:
            self.lines.append(f"Compare({m}, {va}, {vb}, CMPMODE::{mode}, {self.count});")
        return m

    def select(self, cond, a, b) -> str:
        kc, m = cond
        (ka, va), (kb, vb) = a, b
        if kc != "m" or "m" in (ka, kb):
            raise _Fail
        if ka == "s":
            va = self.dup(va)
        t = self.temp()
        if kb == "s":
            self.lines.append(f"Select({t}, {m}, {va}, (float)({vb}), SELMODE::VSEL_TENSOR_SCALAR_MODE, {self.count});")
        else:
            self.lines.append(f"Select({t}, {m}, {va}, {vb}, SELMODE::VSEL_TENSOR_TENSOR_MODE, {self.count});")
        return t

    def op1(self, name: str, src: str, arg: str = "") -> str:
        t = self.temp()
        self.lines.append(f"{name}({t}, {src}, {arg + ', ' if arg else ''}{self.count});")
        return t

    def dup(self, s: str) -> str:
        t = self.temp()
        self.lines.append(f"Duplicate({t}, {s}, {self.count});")
        return t

    def binop(self, op: str, a, b) -> str:
        (ka, va), (kb, vb) = a, b
        if ka == "v" and kb == "v":
            name = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "max": "Max", "min": "Min"}[op]
            t = self.temp()
            self.lines.append(f"{name}({t}, {va}, {vb}, {self.count});")
            return t
        if ka == "s":   # scalar op vector
            if op in ("+", "*", "max", "min"):
                return self.op1({"+": "Adds", "*": "Muls", "max": "Maxs", "min": "Mins"}[op], vb, va)
            if op == "-":
                return self.op1("Adds", self.op1("Muls", vb, "-1.0f"), va)
            return self.binop("/", ("v", self.dup(va)), b)
        if op in ("+", "*", "max", "min"):
            return self.op1({"+": "Adds", "*": "Muls", "max": "Maxs", "min": "Mins"}[op], va, vb)
        if op == "-":
            return self.op1("Adds", va, f"-({vb})")
        return self.binop("/", a, ("v", self.dup(vb)))

    def call(self, e: N.Call) -> str:
        if e.func == "pow" or not dtypes.is_float(e.dtype) or e.dtype == "float64":
            raise _Fail
        kind, v = self.value(e.args[0])
        if kind == "s":
            raise _Fail
        f = e.func
        simple = {"exp": "Exp", "log": "Ln", "sqrt": "Sqrt", "rsqrt": "Rsqrt", "abs": "Abs"}
        if f in simple:
            return self.op1(simple[f], v)
        if f == "exp2":
            return self.op1("Exp", self.op1("Muls", v, f"{math.log(2.0)!r}f"))
        if f == "log2":
            return self.op1("Muls", self.op1("Ln", v), f"{1.0 / math.log(2.0)!r}f")
        if f == "sigmoid":
            den = self.op1("Adds", self.op1("Exp", self.op1("Muls", v, "-1.0f")), "1.0f")
            return self.binop("/", ("s", "1.0f"), ("v", den))
        raise _Fail

    def store(self, s: N.Store) -> None:
        idx = s.indices
        two = self.iv is not None
        if two and not (len(idx) == 2 and isinstance(idx[0], N.Var) and idx[0].name == self.iv
                        and isinstance(idx[1], N.Var) and idx[1].name == self.jv):
            raise _Fail
        if not two and not (len(idx) == 1 and isinstance(idx[0], N.Var) and idx[0].name == self.jv):
            raise _Fail
        buf = s.buffer
        if buf.name not in self.low.plan.locals or buf.dtype not in VEC_FLOAT:
            raise _Fail
        kind, v = self.value(s.value)
        if kind == "m":
            raise _Fail
        dst = self.dst_view(buf, two)
        if buf.dtype != "float32":
            if kind == "s":
                v = self.dup(v)
            self.lines.append(f"Cast({dst}, {v}, RoundMode::CAST_RINT, {self.count});")
        elif kind == "s":
            self.lines.append(f"Duplicate({dst}, {v}, {self.count});")
        elif v.startswith("tc_vt") and self.lines and self.lines[-1].split("(", 1)[1].startswith(v + ","):
            name, rest = self.lines[-1].split("(", 1)
            self.lines[-1] = f"{name}({dst}{rest[len(v):]}"   # the last instruction writes the target directly
            self.decls = [d for d in self.decls if f" {v} = " not in d]
        elif (self.count * 4) % 32 == 0:
            self.lines.append(f"DataCopy({dst}, {v}, {self.count});")
        else:
            self.lines.append(f"Adds({dst}, {v}, 0.0f, {self.count});")

    def dst_view(self, buf: N.Buffer, two: bool) -> str:
        lb = self.low.plan.locals[buf.name]
        item = dtypes.itemsize(buf.dtype)
        if two and (len(lb.shape) != 2 or lb.shape[0] < self.rows or lb.shape[1] < self.cols):
            raise _Fail
        if not two and (len(lb.shape) != 1 or lb.shape[0] < self.cols):
            raise _Fail
        if two and not self.row_mode and lb.shape[1] != self.cols:
            raise _NeedRows
        if two and self.row_mode and (lb.shape[1] * item) % 32:
            raise _Fail
        if two and self.row_mode:
            return f"{cname(buf.name)}[{cname(self.iv)} * {lb.shape[1]}]"
        return cname(buf.name)


def try_vectorize(low, s: N.For) -> bool:
    """Emit the vector form of a parallel map nest; False (nothing emitted) when it does not fit."""
    if s.kind != "parallel" or not is_const(s.start, 0) or not is_const(s.stop):
        return False
    inner = s.body
    if len(inner) == 1 and isinstance(inner[0], N.For) and inner[0].kind == "parallel" and \
            is_const(inner[0].start, 0) and is_const(inner[0].stop):
        iv, jv, stores = s.var.name, inner[0].var.name, inner[0].body
        rows, cols = int(s.stop.value), int(inner[0].stop.value)
    else:
        iv, jv, rows, cols, stores = None, s.var.name, 1, int(s.stop.value), inner
    if not stores or not all(isinstance(t, (N.Store, N.Let)) for t in stores):
        return False
    for row_mode in ((False, True) if iv is not None else (False,)):
        gen = _MapGen(low, iv, jv, rows, cols, row_mode)
        try:
            for t in stores:
                gen.let(t) if isinstance(t, N.Let) else gen.store(t)
        except _NeedRows:
            continue
        except _Fail:
            return False
        if gen.ntemps * gen.slot > 96 * 1024:
            if row_mode:
                return False
            continue
        low.need_scratch(gen.ntemps * gen.slot + 32)
        _emit(low, gen, s)
        return True
    return False


def _emit(low, gen: _MapGen, s: N.For) -> None:
    tag = "T.Parallel map on the Vector unit"
    low.barrier()
    if gen.row_mode:
        low.emit(f"{{  // {tag}, one row per instruction")
    else:
        low.emit(f"{{  // {tag} ({gen.count} elements per instruction)")
    low.ind += 1
    for d in gen.decls:
        low.emit(d)
    if gen.row_mode:
        low.emit(f"for ({cname(gen.iv)} = 0; {cname(gen.iv)} < {gen.rows}; ++{cname(gen.iv)}) {{")
        low.ind += 1
        low.emit("PipeBarrier<PIPE_ALL>();")
    for line in gen.lines:
        low.emit(line)
    if gen.row_mode:
        low.ind -= 1
        low.emit("}")
    low.ind -= 1
    low.emit("}")
    low.emit("PipeBarrier<PIPE_ALL>();")
