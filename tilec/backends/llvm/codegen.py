"""Tile IR ``Func`` -> LLVM IR module: the per-function code generator of the CPU backend.

Each ``Launch`` k becomes three functions with C linkage names derived from the kernel name:
``<f>_block<k>`` (internal) runs one grid block; ``<f>_launch<k>(ptr params, ptr dims, ptr counter)``
is what every worker thread calls: it takes block numbers from a shared atomic counter until the
grid is exhausted (so blocks are load balanced and the result does not depend on the thread count);
``<f>_nblocks<k>(ptr dims)`` returns the grid size. ``params`` is an array of data pointers, one per
kernel parameter; ``dims`` an array of int32, one per symbolic dimension (``kernel_dims(func)``
order). Block-local buffers (shared/fragment/local) are stack arrays at function entry, or malloc'd
when large. Tile ops are lowered by the mixins in lower_tileops.py and lower_gemm.py; a copy whose tile
only gemms read may be forwarded to them (gemm_forward.py decides, once per launch body).
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as n

from . import gemm_forward
from .codegen_expr import ExprLowering
from .lower_gemm import GemmLowering
from .lower_tileops import TileOpLowering
from .types import I1, I32, I64, PTR, VOID, array_alloca, convert, storage_type, to_storage

HEAP_THRESHOLD = 256 * 1024  # bytes: larger block-local buffers go to the heap, not the stack


@dataclass
class BufView:
    """A buffer as codegen sees it: base pointer, dtype and i64 shape/strides (row-major)."""
    buffer: n.Buffer
    ptr: ir.Value
    shape: list
    strides: list


def kernel_dims(func: n.Func) -> list[str]:
    """Names of the symbolic dimensions of ``func``, in first-appearance order over the parameters."""
    names: list[str] = []
    for p in func.params:
        for s in p.shape:
            for v in _vars_in(s):
                if v not in names:
                    names.append(v)
    return names


def _vars_in(e: n.Expr) -> list[str]:
    if isinstance(e, n.Var):
        return [e.name]
    out: list[str] = []
    for f in ("a", "b", "value", "cond"):
        sub = getattr(e, f, None)
        if isinstance(sub, n.Expr):
            out += _vars_in(sub)
    return out


class FnCodegen(ExprLowering, TileOpLowering, GemmLowering):
    """Emits one LLVM function body; statements are lowered in ``stmt``."""

    def __init__(self, module: ir.Module, fn: ir.Function, vector_floats: int, bf16dot: bool = False):
        self.module = module
        self.fn = fn
        self.vl = vector_floats
        self.bf16dot = bf16dot  # T.gemm of bfloat16 may use vdpbf16ps (gemm_bf16.py)
        self.entry = fn.append_basic_block("entry")
        self.alloca_b = ir.IRBuilder(self.entry)
        body = fn.append_basic_block("body")
        self.body_start = body
        self.b = ir.IRBuilder(body)
        self.env: dict = {}
        self.env64: dict = {}
        self.views: dict[str, BufView] = {}
        self.heap: list = []
        self.stack_bytes = 0  # static stack arrays of this function (the runtime sizes threads by it)
        self.forward_plan = None  # ids of copies whose tile the gemms read from the source (gemm_forward.py)
        self.forwarded: dict = {}  # tile name -> (source operand, in-bounds flag) of its latest copy

    # -- bookkeeping -------------------------------------------------------------------------------
    def finish(self, ret: ir.Value = None) -> None:
        self.alloca_b.branch(self.body_start)
        free = self.module.globals.get("free") or ir.Function(self.module, ir.FunctionType(VOID, [PTR]), "free")
        for p in self.heap:
            self.b.call(free, [p])
        if ret is None:
            self.b.ret_void()
        else:
            self.b.ret(ret)

    def bind_scalar(self, name: str, v: ir.Value, dt: str) -> None:
        self.env[name] = v
        if dtypes.is_int(dt):
            self.env64[name] = self.to_i64(v, dt)

    def make_view(self, buf: n.Buffer, ptr: ir.Value) -> BufView:
        shape = [self.index64(s) for s in buf.shape]
        strides = [None] * len(shape)
        acc = ir.Constant(I64, 1)
        for i in range(len(shape) - 1, -1, -1):
            strides[i] = acc
            acc = self.b.mul(acc, shape[i], flags=["nsw"])
        view = BufView(buf, ptr, shape, strides)
        self.views[buf.name] = view
        return view

    def view(self, buf: n.Buffer) -> BufView:
        if buf.name not in self.views:
            raise TilecError(f"cpu target: buffer '{buf.name}' used before its allocation", buf.loc)
        return self.views[buf.name]

    def elem_ptr(self, buf: n.Buffer, idx: list) -> ir.Value:
        v = self.view(buf)
        if not idx:
            return v.ptr
        lin = None
        for i, s in zip(idx, v.strides):
            term = i if (isinstance(s, ir.Constant) and s.constant == 1) else self.b.mul(i, s, flags=["nsw"])
            lin = term if lin is None else self.b.add(lin, term, flags=["nsw"])
        return self.b.gep(v.ptr, [lin], inbounds=True, source_etype=storage_type(buf.dtype))

    def entry_alloca(self, ty: ir.Type, count: ir.Value = None) -> ir.Value:
        return self.alloca_b.alloca(ty, size=count)

    # -- control flow helpers ------------------------------------------------------------------------
    def loop(self, lo: ir.Value, hi: ir.Value, body_fn, name: str = "i") -> None:
        """for (i64 i = lo; i < hi; ++i) body_fn(i)"""
        b = self.b
        pre = b.block
        header = b.append_basic_block(f"{name}.head")
        body = b.append_basic_block(f"{name}.body")
        exit_ = b.append_basic_block(f"{name}.exit")
        b.branch(header)
        b.position_at_end(header)
        phi = b.phi(I64, name=name)
        phi.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", phi, hi), body, exit_)
        b.position_at_end(body)
        body_fn(phi)
        nxt = b.add(phi, ir.Constant(I64, 1), flags=["nsw"])
        phi.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(exit_)

    def when(self, cond: ir.Value, then_fn, else_fn=None) -> None:
        if else_fn is None:
            with self.b.if_then(cond):
                then_fn()
        else:
            with self.b.if_else(cond) as (then, other):
                with then:
                    then_fn()
                with other:
                    else_fn()

    # -- statements ----------------------------------------------------------------------------------
    def body(self, stmts) -> None:
        if self.forward_plan is None:  # the first body lowered is the launch's
            self.forward_plan = gemm_forward.plan(tuple(stmts))
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: n.Stmt) -> None:
        m = getattr(self, "_s_" + type(s).__name__, None)
        if m is None:
            raise TilecError(f"cpu target: unsupported statement {type(s).__name__}", getattr(s, "loc", None))
        m(s)

    def _s_Alloc(self, s: n.Alloc) -> None:
        buf = s.buffer
        st = storage_type(buf.dtype)
        saved = self.b
        self.b = self.alloca_b  # sizes, shape and strides are entry-block code (shapes use dims only)
        const = 1
        for d in buf.shape:
            const = const * int(d.value) if (const is not None and isinstance(d, n.Const)) else None
        if const is not None and const * dtypes.itemsize(buf.dtype) <= HEAP_THRESHOLD:
            ptr = array_alloca(self.alloca_b, st, const, align=64)
            self.stack_bytes += const * dtypes.itemsize(buf.dtype)
        else:
            count = ir.Constant(I64, 1)
            for d in buf.shape:
                count = self.b.mul(count, self.index64(d))
            ptr = self.heap_alloc(self.b.mul(count, ir.Constant(I64, dtypes.itemsize(buf.dtype))))
            self.heap.append(ptr)
        self.make_view(buf, ptr)
        self.b = saved

    def heap_alloc(self, nbytes: ir.Value) -> ir.Value:
        malloc = self.module.globals.get("malloc") or ir.Function(self.module, ir.FunctionType(PTR, [I64]), "malloc")
        return self.b.call(malloc, [self.b.add(nbytes, ir.Constant(I64, 64))])

    def _s_Let(self, s: n.Let) -> None:
        v = self.expr(s.value)
        if s.value.dtype != s.var.type:
            v = convert(self.b, v, s.value.dtype, s.var.type)
        self.bind_scalar(s.var.name, v, s.var.type)

    def _s_Store(self, s: n.Store) -> None:
        ptr = self.elem_ptr(s.buffer, [self.index64(i) for i in s.indices])
        v = self.expr(s.value)
        dt = s.buffer.dtype
        if s.value.dtype != dt:
            v = convert(self.b, v, s.value.dtype, dt)
        self.b.store(to_storage(self.b, v, dt), ptr)

    def _s_For(self, s: n.For) -> None:
        lo, hi = self.index64(s.start), self.index64(s.stop)

        def body(i):
            self.env64[s.var.name] = i
            self.env[s.var.name] = self.b.trunc(i, I32) if s.var.type == "int32" else \
                convert(self.b, i, "int64", s.var.type)
            self.body(s.body)
        self.loop(lo, hi, body, name=s.var.name)

    def _s_While(self, s: n.While) -> None:
        b = self.b
        header = b.append_basic_block("while.head")
        body = b.append_basic_block("while.body")
        exit_ = b.append_basic_block("while.exit")
        b.branch(header)
        b.position_at_end(header)
        b.cbranch(self.expr(s.cond), body, exit_)
        b.position_at_end(body)
        self.body(s.body)
        b.branch(header)
        b.position_at_end(exit_)

    def _s_If(self, s: n.If) -> None:
        cond = self.expr(s.cond)
        if cond.type != I1:
            cond = convert(self.b, cond, s.cond.dtype, "bool")
        self.when(cond, lambda: self.body(s.then_body), (lambda: self.body(s.else_body)) if s.else_body else None)

    def _s_Hint(self, s: n.Hint) -> None:
        pass  # scheduling hints have no meaning on the CPU

    def _s_Launch(self, s: n.Launch) -> None:
        raise TilecError("cpu target: a launch nested inside a launch is not supported", s.loc)
