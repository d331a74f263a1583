"""Statement lowering for the Vector core (AIV): Tile IR statements -> AscendC C++ lines.

Tile ops map to AscendC instructions where their shape allows (DataCopyPad row moves with ragged clipping,
Duplicate, Cast, DataCopy, ReduceMax/ReduceSum per row) and otherwise to loops on the Scalar unit
(GetValue/SetValue): correct first. ``PipeBarrier<PIPE_ALL>()`` separates instruction groups of different
pipes, the conservative synchronisation tilelang-ascend also emits. Gemm requests go to ``cube.py``.
"""
from __future__ import annotations

from math import prod
from typing import Optional

from tilec.errors import TilecError
from tilec.ir import dtypes, nodes as N

from .cexpr import ExprPrinter, cname, is_const, to_storage
from .plan import LaunchPlan, align32
from .vecmap import try_vectorize

DUP_TYPES = ("float32", "float16", "int32", "int16", "uint16", "uint32", "bfloat16")


class Lowerer:
    """Emits one kernel's AIV code. ``self.scratch`` grows to the scratch bytes the lowering needs."""

    def __init__(self, plan: LaunchPlan, globals_: dict[str, N.Buffer], cube):
        self.plan = plan
        self.globals = globals_
        self.cube = cube
        self.lines: list[str] = []
        self.methods: list[tuple[str, list[str]]] = []
        self.pipelined = 0
        self.ind = 2
        self.scratch = 0
        self.tmp = 0
        self.px = ExprPrinter(self.load)

    # ------------------------------------------------------------------ helpers
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.ind + line)

    def barrier(self) -> None:
        """PipeBarrier<PIPE_ALL>() unless the previous line already is one (orders S/V/MTE work)."""
        if not (self.lines and self.lines[-1].strip() == "PipeBarrier<PIPE_ALL>();"):
            self.emit("PipeBarrier<PIPE_ALL>();")

    def fresh(self, base: str) -> str:
        """A C++ temporary; the tc_ prefix keeps it apart from every IR name (see cexpr.cname)."""
        self.tmp += 1
        return f"tc_{base}{self.tmp}"

    def need_scratch(self, nbytes: int) -> None:
        self.scratch = max(self.scratch, align32(nbytes))

    def shape_exprs(self, buf: N.Buffer) -> list[str]:
        if buf.name in self.plan.locals:
            return [str(d) for d in self.plan.locals[buf.name].shape]
        return [self.px(d) for d in buf.shape]

    def strides(self, buf: N.Buffer) -> list[str]:
        shape = self.shape_exprs(buf)
        out, acc = [], "1"
        for d in reversed(shape):
            out.append(acc)
            if acc == "1":
                acc = d
            elif acc.isdigit() and d.isdigit():
                acc = str(int(acc) * int(d))
            else:
                acc = f"{acc} * {d}"
        return list(reversed(out))

    def linear(self, buf: N.Buffer, idx: list[str]) -> str:
        if not idx:
            return "0"
        terms = []
        for i, s in zip(idx, self.strides(buf)):
            if i == "0":
                continue
            terms.append(i if s == "1" else f"({i}) * ({s})")
        return " + ".join(terms) if terms else "0"

    def tensor(self, buf: N.Buffer) -> str:
        return f"{cname(buf.name)}Gm" if buf.scope == "global" else cname(buf.name)

    def load(self, e: N.Load) -> str:
        buf = e.buffer
        if buf.name in self.plan.scalars:
            return cname(buf.name)
        idx = self.linear(buf, [self.px(i) for i in e.indices])
        return f"{self.tensor(buf)}.GetValue({idx})"

    def store(self, buf: N.Buffer, idx: list[str], value_compute: str) -> None:
        v = to_storage(value_compute, buf.dtype)
        if buf.name in self.plan.scalars:
            self.emit(f"{cname(buf.name)} = {v};")
        else:
            self.emit(f"{self.tensor(buf)}.SetValue({self.linear(buf, idx)}, {v});")

    # ------------------------------------------------------------------ statements
    def body(self, stmts: N.Body) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: N.Stmt) -> None:
        if isinstance(s, (N.Copy, N.Fill, N.Reduce, N.Gemm, N.Atomic, N.Cumsum)):
            self.barrier()   # instructions of other pipes may read what the Scalar unit just wrote
        getattr(self, "_" + type(s).__name__)(s)

    def _Alloc(self, s: N.Alloc) -> None:
        pass

    def _Hint(self, s: N.Hint) -> None:
        self.emit(f"// hint {s.name}{s.args!r} (no effect on Ascend)")

    def _Let(self, s: N.Let) -> None:
        self.emit(f"{cname(s.var.name)} = {self.px(s.value)};")

    def _Store(self, s: N.Store) -> None:
        self.store(s.buffer, [self.px(i) for i in s.indices], self.px(s.value))

    def _If(self, s: N.If) -> None:
        self.emit(f"if ({self.px(s.cond)}) {{")
        self.ind += 1
        self.body(s.then_body)
        self.ind -= 1
        if s.else_body:
            self.emit("} else {")
            self.ind += 1
            self.body(s.else_body)
            self.ind -= 1
        self.emit("}")

    def _While(self, s: N.While) -> None:
        self.emit(f"while ({self.px(s.cond)}) {{")
        self.ind += 1
        self.body(s.body)
        self.ind -= 1
        self.emit("}")

    def _For(self, s: N.For) -> None:
        if s.kind == "parallel" and try_vectorize(self, s):
            return
        v = cname(s.var.name)
        queued = self.plan.queued_loops.get(id(s), [])
        note = {"parallel": "  // T.Parallel: element loop on the Scalar unit",
                "pipelined": f"  // T.Pipelined(num_stages={s.stages}): double-buffered TQue" if queued else "",
                "unrolled": "  // unrolled"}.get(s.kind, "")
        self.emit(f"for ({v} = {self.px(s.start)}; {v} < {self.px(s.stop)}; ++{v}) {{{note}")
        self.ind += 1
        if s.kind == "pipelined":
            self.pipelined_stages(s.body)
        else:
            self.body(s.body)
        for name in queued:
            q = self.plan.locals[name].queue
            self.emit(f"{q}.FreeTensor({cname(name)});")
        self.ind -= 1
        self.emit("}")

    def pipelined_stages(self, body: N.Body) -> None:
        """The body of a T.Pipelined loop as the classic CopyIn / Compute / CopyOut methods."""
        n = len(body)
        a = 0
        while a < n and isinstance(body[a], N.Copy) and body[a].src.buffer.scope == "global":
            a += 1
        b = n
        while b > a and isinstance(body[b - 1], N.Copy) and body[b - 1].dst.buffer.scope == "global":
            b -= 1
        suffix = str(self.pipelined) if self.pipelined else ""
        self.pipelined += 1
        for name, part in (("CopyIn", body[:a]), ("Compute", body[a:b]), ("CopyOut", body[b:])):
            if not part:
                continue
            saved, saved_ind = self.lines, self.ind
            self.lines, self.ind = [], 2
            self.body(part)
            self.methods.append((name + suffix, self.lines))
            self.lines, self.ind = saved, saved_ind
            self.emit(f"{name}{suffix}();")

    def _Launch(self, s: N.Launch) -> None:
        raise TilecError("ascend target: nested launch", s.loc)

    # ------------------------------------------------------------------ fill
    def _Fill(self, s: N.Fill) -> None:
        r = s.dst
        buf = r.buffer
        if buf.name in self.plan.locals and self.plan.locals[buf.name].resident:
            self.emit(f"{cname(buf.name)}Fresh = 1;  // clear: the next Mmad initialises the resident L0C accumulator")
            return
        span = self.contiguous_span(r)
        if span is not None and buf.dtype in DUP_TYPES and buf.scope != "global" and buf.name in self.plan.locals:
            off, count = span
            val = to_storage(self.px(s.value), buf.dtype)
            self.emit(f"Duplicate({self.view(buf, off)}, {val}, {count});")
            self.emit("PipeBarrier<PIPE_ALL>();")
            return
        self.region_loop(r, lambda idx: self.store(buf, idx, self.px(s.value)), guard=True)

    # ------------------------------------------------------------------ region helpers
    def view(self, buf: N.Buffer, off: str) -> str:
        return cname(buf.name) if off == "0" else f"{cname(buf.name)}[{off}]"

    def contiguous_span(self, r: N.Region) -> Optional[tuple[str, int]]:
        """(element offset, count) when a UB region is one contiguous, 32-byte aligned run; else None."""
        buf = r.buffer
        lb = self.plan.locals.get(buf.name)
        if lb is None or not all(is_const(e) for e in r.extents):
            return None
        ext = [int(e.value) for e in r.extents]
        shape = lb.shape
        k = next((i for i, e in enumerate(ext) if e != 1), len(ext) - 1)
        for j in range(k + 1, len(ext)):
            if not (is_const(r.starts[j], 0) and ext[j] == shape[j]):
                return None
        item = dtypes.itemsize(buf.dtype)
        strides = [prod(shape[j + 1:]) for j in range(len(shape))]
        for j in range(len(shape)):
            st = r.starts[j]
            if not is_const(st) and (strides[j] * item) % 32:
                return None
            if is_const(st) and (int(st.value) * strides[j] * item) % 32:
                return None
            if is_const(st) and not (0 <= int(st.value) and int(st.value) + ext[j] <= shape[j]):
                return None
        count = prod(ext)
        off = self.linear(buf, [self.px(st) for st in r.starts])
        return off, count

    def region_loop(self, r: N.Region, body, guard: bool) -> None:
        """Scalar loops over a region; body(idx) emits the element statement. guard: skip out-of-buffer."""
        names = []
        idx = []
        shape = self.shape_exprs(r.buffer)
        conds = []
        for d, (st, ex) in enumerate(zip(r.starts, r.extents)):
            if is_const(ex, 1):
                i = self.px(st)
            else:
                v = self.fresh("i")
                names.append(v)
                self.emit(f"for (int32_t {v} = 0; {v} < {self.px(ex)}; ++{v}) {{")
                self.ind += 1
                i = f"{self.px(st)} + {v}" if not is_const(st, 0) else v
            idx.append(i)
            if guard:
                conds.append(f"({i}) >= 0 && ({i}) < {shape[d]}")
        if guard and conds:
            self.emit(f"if ({' && '.join(conds)}) {{")
            self.ind += 1
        body(idx)
        if guard and conds:
            self.ind -= 1
            self.emit("}")
        for _ in names:
            self.ind -= 1
            self.emit("}")
