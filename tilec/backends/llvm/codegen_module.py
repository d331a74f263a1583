"""Builds the LLVM module for one kernel: per launch a block function, a worker entry and a size query.

See codegen.py for the calling convention. ``build_module`` returns the llvmlite ``ir.Module`` and a
small JSON-able description (``KernelMeta``) that the runtime needs to call the compiled code and that
the ahead-of-time shared library carries in its cache entry, so loading it needs no llvmlite.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from llvmlite import ir

from tilec.ir import nodes as n

from .codegen import FnCodegen, kernel_dims
from .types import I32, I64, PTR, VOID, array_alloca


@dataclass
class KernelMeta:
    name: str
    params: list           # [[name, dtype, rank], ...]
    dims: list             # symbolic dimension names, order of the dims array
    launches: list         # [[launch_symbol, nblocks_symbol], ...]
    shapes: list           # per parameter: ints and symbolic dimension names
    stack_bytes: list      # per launch: static stack arrays of one block
    entry: str = ""        # run(params, dims, nthreads, gomp_parallel): every launch in one native call

    def to_json(self) -> dict:
        return asdict(self)


def symbol_base(func: n.Func, tag: str) -> str:
    """External symbol prefix: the kernel name plus a tag derived from its IR, so that kernels that share
    a name (every example's is ``main``) never collide in the process-wide JIT engine."""
    return "tilec_" + re.sub(r"[^A-Za-z0-9_]", "_", func.name) + (f"_{tag}" if tag else "")


def build_module(func: n.Func, vector_floats: int, tag: str = "",
                 bf16dot: bool = False) -> tuple[ir.Module, KernelMeta]:
    module = ir.Module(name=func.name)
    dims = kernel_dims(func)
    base = symbol_base(func, tag)
    launches, stack, fns = [], [], []
    for k, launch in enumerate(func.body):
        if not isinstance(launch, n.Launch):
            raise _not_launch(launch)
        block, nbytes = _block_fn(module, func, dims, launch, f"{base}_block{k}", vector_floats, bf16dot)
        stack.append(nbytes)
        nb = _nblocks_fn(module, func, dims, launch, f"{base}_nblocks{k}", vector_floats)
        lf = _launch_fn(module, func, dims, launch, f"{base}_launch{k}", block, nb, vector_floats)
        fns.append((lf, nb, _team_fn(module, lf, f"{base}_team{k}")))
        launches.append([f"{base}_launch{k}", f"{base}_nblocks{k}"])
    _run_fn(module, f"{base}_run", fns)
    params = [[p.name, p.dtype, len(p.shape)] for p in func.params]
    shapes = [[int(d.value) if isinstance(d, n.Const) else getattr(d, "name", "?") for d in p.shape]
              for p in func.params]
    return module, KernelMeta(func.name, params, dims, launches, shapes, stack, f"{base}_run")


def _not_launch(s: n.Stmt):
    from tilec.errors import TilecError
    return TilecError("cpu target: a kernel body must be a sequence of launches (T.Kernel)", getattr(s, "loc", None))


def _bind_dims_from_array(cg: FnCodegen, dims: list[str], arr: ir.Value) -> None:
    b = cg.b
    for i, name in enumerate(dims):
        p = b.gep(arr, [ir.Constant(I64, i)], inbounds=True, source_etype=I32)
        cg.bind_scalar(name, b.load(p, typ=I32), "int32")


def _grid_total(cg: FnCodegen, launch: n.Launch) -> tuple[list, ir.Value]:
    exts = [cg.index64(g) for g in launch.grid]
    total = ir.Constant(I64, 1)
    for e in exts:
        total = cg.b.mul(total, e)
    return exts, total


def _block_fn(module, func, dims, launch, name, vl, bf16dot):
    nb = len(launch.block_vars)
    ftype = ir.FunctionType(VOID, [PTR] * len(func.params) + [I32] * (len(dims) + nb))
    fn = ir.Function(module, ftype, name=name)
    fn.linkage = "internal"
    for i, p in enumerate(func.params):
        fn.args[i].add_attribute("noalias")
        fn.args[i].name = "p_" + p.name
    cg = FnCodegen(module, fn, vl, bf16dot)
    cg.b, saved = cg.alloca_b, cg.b  # dims, views: entry-block values (allocas sized by dims need them)
    for j, d in enumerate(dims):
        cg.bind_scalar(d, fn.args[len(func.params) + j], "int32")
    for i, p in enumerate(func.params):
        cg.make_view(p, fn.args[i])
    cg.b = saved
    for j, v in enumerate(launch.block_vars):
        cg.bind_scalar(v.name, fn.args[len(func.params) + len(dims) + j], "int32")
    cg.body(launch.body)
    cg.finish()
    return fn, cg.stack_bytes


def _nblocks_fn(module, func, dims, launch, name, vl) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(I64, [PTR]), name=name)
    cg = FnCodegen(module, fn, vl)
    _bind_dims_from_array(cg, dims, fn.args[0])
    _, total = _grid_total(cg, launch)
    cg.finish(total)
    return fn


def _launch_fn(module, func, dims, launch, name, block, nbfn, vl) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, PTR]), name=name)
    params_arr, dims_arr, counter = fn.args
    cg = FnCodegen(module, fn, vl)
    b = cg.b
    ptrs = [b.load(b.gep(params_arr, [ir.Constant(I64, i)], inbounds=True, source_etype=PTR), typ=PTR)
            for i in range(len(func.params))]
    dvals = [b.load(b.gep(dims_arr, [ir.Constant(I64, i)], inbounds=True, source_etype=I32), typ=I32)
             for i in range(len(dims))]
    for name_, v in zip(dims, dvals):
        cg.bind_scalar(name_, v, "int32")
    exts, total = _grid_total(cg, launch)
    head = b.append_basic_block("grab")
    work = b.append_basic_block("work")
    done = b.append_basic_block("done")
    b.branch(head)
    b.position_at_end(head)
    idx = b.atomic_rmw("add", counter, ir.Constant(I64, 1), "monotonic")
    b.cbranch(b.icmp_signed("<", idx, total), work, done)
    b.position_at_end(work)
    coords, rest = [], idx
    for e in exts:  # block_vars[0] varies fastest
        coords.append(b.trunc(b.srem(rest, e), I32))
        rest = b.sdiv(rest, e)
    b.call(block, ptrs + dvals + coords)
    b.branch(head)
    b.position_at_end(done)
    cg.finish()
    return fn


# --- the native entry: every launch in one call, fanned out on the OpenMP runtime ----------------------
# GOMP_parallel(fn, data, num_threads, flags) runs fn(data) on a team of num_threads (the caller is one
# of them) and returns when all are done. The runtime passes its address in, so the object file has no
# link-time dependency on an OpenMP library and the JIT and ahead-of-time paths are the same code.
# TEAM_DATA: three pointers: params, dims, counter
TEAM_FN = ir.FunctionType(VOID, [PTR])
GOMP_PARALLEL = ir.FunctionType(VOID, [PTR, PTR, I32, I32])


def _team_fn(module, launch_fn, name) -> ir.Function:
    """``team(data)``: one team member's share of a launch, ``launch(data->params, data->dims, data->counter)``."""
    fn = ir.Function(module, TEAM_FN, name=name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    fields = [b.load(b.gep(fn.args[0], [ir.Constant(I64, i)], inbounds=True, source_etype=PTR), typ=PTR)
              for i in range(3)]
    b.call(launch_fn, fields)
    b.ret_void()
    return fn


def _run_fn(module, name, fns) -> ir.Function:
    """``run(params, dims, nthreads, gomp_parallel)``: each launch in order on min(nthreads, blocks)
    threads; on the caller alone when that is 1 or ``gomp_parallel`` is null."""
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I32, PTR]), name=name)
    params, dims, nthreads, gomp = fn.args
    gomp = _TypedCallee(gomp, GOMP_PARALLEL)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    counter = array_alloca(b, I64, 1)
    data = array_alloca(b, PTR, 3)           # TEAM_DATA
    for i, v in enumerate((params, dims, counter)):
        b.store(v, b.gep(data, [ir.Constant(I64, i)], inbounds=True, source_etype=PTR))
    no_gomp = b.icmp_unsigned("==", b.ptrtoint(gomp, I64), ir.Constant(I64, 0))
    for launch_fn, nblocks_fn, team_fn in fns:
        total = b.call(nblocks_fn, [dims])
        b.store(ir.Constant(I64, 0), counter)
        width = b.select(b.icmp_signed("<", total, b.sext(nthreads, I64)), total, b.sext(nthreads, I64))
        serial = b.or_(no_gomp, b.icmp_signed("<=", width, ir.Constant(I64, 1)))
        with b.if_else(serial) as (then, otherwise):
            with then:
                with b.if_then(b.icmp_signed(">", total, ir.Constant(I64, 0))):
                    b.call(launch_fn, [params, dims, counter])
            with otherwise:
                b.call(gomp, [team_fn, data, b.trunc(width, I32), ir.Constant(I32, 0)])
    b.ret_void()
    return fn



class _TypedCallee:
    """A function pointer as a callee: an indirect call through an opaque pointer needs the function's
    type, which llvmlite reads from ``function_type``."""

    def __init__(self, value: ir.Value, fnty: ir.FunctionType):
        self.value, self.function_type, self.type = value, fnty, value.type

    def get_reference(self) -> str:
        return self.value.get_reference()
