"""The CUDA kernel emitter: one ``Launch`` of Tile IR -> the body of one ``__global__`` function.

Sits between layout inference (infer.py) and the templates (codegen.py). Every thread runs the block's
program; ``T.Parallel`` nests are split over the threads (over the registers of a register fragment's
layout, or thread-strided), block-level stores and atomics run on thread 0, tile operations are lowered
by tileops.py / gemm.py / pipeline.py, and barriers are placed by sync.py's rules. Buffers keep their
IR names; every block-level statement is preceded by a comment with its source location and IR text.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from tilec.errors import InternalError, TilecError
from tilec.ir import nodes as N

from . import gemm, pipeline, smem, tileops, wgmma
from .cexpr import ExprEmitter, cname, compute_ctype, ctype, from_compute
from .infer import Binding, bind_nest, infer_layouts
from .layout import LaneLayout, LaneRow, Layout, MmaLayout, at, is_tile, parallel_nest, static_int
from .sync import SyncSim, SyncState, is_block_loop


def ir_text(s: N.Stmt) -> str:
    try:
        from tilec.ir.printer import print_stmt
        text = print_stmt(s, locs=False).strip().splitlines()[0]
    except Exception:  # the printer is optional for codegen: fall back to the node's kind
        text = type(s).__name__.lower()
    return text.rstrip(" {")


# Register of a RowLayout fragment holding the row of register _r of its MmaLayout.
ROW_OF_REG = "((_r >> 2) / {nt}) * 2 + ((_r >> 1) & 1)"


class KernelEmitter:
    def __init__(self, func: N.Func, launch: N.Launch, index: int, dims: list[str], wgmma: bool = False):
        self.func, self.launch = func, launch
        if not 0 < launch.threads <= 1024:
            raise TilecError(f"cuda: threads={launch.threads} must be in [1, 1024]", launch.loc)
        # Whole warps: shuffles and warp-level reductions need them, and the result does not depend on
        # the thread count, so threads=1 or 100 runs on 32 or 128 threads.
        self.threads = -(-launch.threads // 32) * 32
        if self.threads != launch.threads:
            launch = N.Launch(launch.grid, launch.block_vars, self.threads, launch.body, launch.loc)
            self.launch = launch
        self.name = f"{func.name}_kernel{index}" if len(func.body) > 1 else f"{func.name}_kernel"
        self.wgmma = wgmma
        self.layouts: dict[str, Layout] = infer_layouts(launch, wgmma)
        self.helpers: dict[str, str] = {}       # extra device functions (wgmma wrappers), by name
        self.fenced: set[str] = set()           # shared buffers already published to the async proxy
        self.names: dict[str, str] = {d: cname(d) for d in dims}
        self.ex = ExprEmitter(self.names, self.lvalue)
        self.lines: list[str] = []
        self.depth = 1
        self.counter = 0
        self.binding: Optional[Binding] = None
        self.stage: dict[str, str] = {}
        self.pipes = pipeline.plan_all(self)
        self.smem = smem.plan(self)
        self.sim = SyncSim(self.is_mem, self._special_sim)
        self.sync = SyncState()

    # ---- output helpers -------------------------------------------------------------------------
    def line(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    @contextlib.contextmanager
    def block(self, header: str, trailer: str = "}") -> Iterator[None]:
        self.line(f"{header} {{" if header else "{")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.line(trailer)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"

    def barrier(self) -> None:
        self.line("__syncthreads();")
        self.sync.clear()

    def comment(self, s: N.Stmt) -> None:
        self.line(f"// {at(s)}{ir_text(s)}")

    # ---- buffers --------------------------------------------------------------------------------
    def is_reg(self, b: N.Buffer) -> bool:
        return b.name in self.layouts

    def is_mem(self, b: N.Buffer) -> bool:
        return b.scope in ("global", "shared") or (b.scope == "fragment" and b.name not in self.layouts)

    def in_smem(self, b: N.Buffer) -> bool:
        return b.scope == "shared" or (b.scope == "fragment" and b.name not in self.layouts)

    def dim(self, b: N.Buffer, d: int) -> str:
        return self.ex(b.shape[d])

    def lvalue(self, b: N.Buffer, idx: tuple[str, ...]) -> str:
        n = cname(b.name)
        if b.name in self.layouts:
            return f"{n}[{self.reg_index(b)}]"
        if b.scope == "local":
            return n if not b.shape else f"{n}[{self.flat(b, idx)}]"
        if b.scope == "global":
            return f"{n}[{self.flat(b, idx, wide=True)}]"
        return f"{n}[{self.smem_offset(b, idx)}]"

    def flat(self, b: N.Buffer, idx: tuple[str, ...], wide: bool = False) -> str:
        if len(idx) != len(b.shape):
            raise InternalError(f"buffer {b.name} indexed with {len(idx)} of {len(b.shape)} indices",
                                "cuda.codegen")
        if not idx:
            return "0"
        out = f"(long long)({idx[0]})" if wide and len(idx) > 1 else idx[0]
        for d in range(1, len(idx)):
            out = f"({out} * {self.dim(b, d)} + {idx[d]})"
        return out

    def smem_offset(self, b: N.Buffer, idx: tuple[str, ...]) -> str:
        info = self.smem.bufs[b.name]
        if info.panel is not None:
            off = f"tilec::swz_panel<{info.panel[0]}, {info.panel[1]}>({idx[0]}, {idx[1]})"
        elif info.swizzle is not None:
            c, v, nc = info.swizzle
            off = f"tilec::swz<{c}, {v}, {nc}>({idx[0]}, {idx[1]})"
        else:
            off = self.flat(b, idx)
        if b.name in self.stage:
            off = f"{self.stage[b.name]} * {info.elems} + {off}"
        return off

    def reg_index(self, b: N.Buffer) -> str:
        lay, bd = self.layouts[b.name], self.binding
        if bd is None or bd.kind == "strided":
            raise InternalError(f"register fragment {b.name} used outside its layout", "cuda.codegen")
        if lay == bd.layout:
            return "_r"
        if isinstance(bd.layout, MmaLayout) and lay == bd.layout.row():
            return ROW_OF_REG.format(nt=bd.layout.nt)
        if isinstance(bd.layout, LaneLayout) and lay == bd.layout.row():
            return f"_r / {bd.layout.nb}"
        raise InternalError(f"register fragment {b.name} used under another layout", "cuda.codegen")

    # ---- register loops -------------------------------------------------------------------------
    @contextlib.contextmanager
    def reg_loop(self, lay: Layout, row: str = "", col: str = "") -> Iterator[None]:
        """Loop over this thread's registers of ``lay``, defining row/col (C names) of each."""
        saved = self.binding
        self.binding = Binding("mma" if is_tile(lay) else "row", lay, ())
        self.line("#pragma unroll")
        with self.block(f"for (int _r = 0; _r < {lay.regs}; ++_r)"):
            if isinstance(lay, (LaneLayout, LaneRow)):
                rpw = lay.m // lay.warps
                if row:
                    self.line(f"const int {row} = _warp * {rpw} + _r"
                              + (f" / {lay.nb};" if isinstance(lay, LaneLayout) else ";"))
                if col and isinstance(lay, LaneLayout):
                    self.line(f"const int {col} = (_r % {lay.nb}) * 32 + _lane;")
            elif isinstance(lay, MmaLayout):
                if row:
                    self.line(f"const int {row} = tilec::mma_row<{lay.template_args()}>(_r, _warp, _lane);")
                if col:
                    wg = str(lay.wg).lower()
                    self.line(f"const int {col} = tilec::mma_col<{lay.n // lay.wn}, {lay.wn}, {lay.nt}, {wg}>"
                              f"(_r, _warp, _lane);")
            elif row:
                self.line(f"const int {row} = tilec::row_row<{lay.template_args()}>(_r, _warp, _lane);")
            yield
        self.binding = saved

    # ---- statements -----------------------------------------------------------------------------
    def emit_launch(self) -> list[str]:
        bvars = self.launch.block_vars
        for v in bvars:
            self.names[v.name] = cname(v.name)
        panel = self.raster_panel()
        if panel and len(bvars) == 2:
            # Grouped rasterization (T.use_swizzle): consecutive blocks walk `panel` rows of the grid
            # column by column, so a wave of blocks shares A rows and B columns in L2. A bijection.
            bx, by = cname(bvars[0].name), cname(bvars[1].name)
            self.line(f"// block rasterization in panels of {panel} rows (L2 reuse); a permutation of the grid")
            self.line("const int _lin = blockIdx.y * gridDim.x + blockIdx.x;")
            self.line(f"const int _first = (_lin / ({panel} * gridDim.x)) * {panel};")
            self.line(f"const int _rows = min(static_cast<int>(gridDim.y) - _first, {panel});")
            self.line("const int _in = _lin - _first * gridDim.x;")
            self.line(f"const int {by} = _first + _in % _rows;")
            self.line(f"const int {bx} = _in / _rows;")
        else:
            for d, v in enumerate(bvars):
                self.line(f"const int {cname(v.name)} = blockIdx.{'xyz'[d]};")
        self.emit_block(self.launch.body)
        return self.lines

    def raster_panel(self) -> int:
        """Panel size of grouped rasterization: the use_swizzle hint's, or 8 for tensor-core gemms."""
        from .layout import walk
        for s in walk(self.launch.body):
            if isinstance(s, N.Hint) and s.name == "use_swizzle":
                return int(s.args[0]) if s.args and isinstance(s.args[0], int) and s.args[0] > 0 else 0
        gemms = [s for s in walk(self.launch.body) if isinstance(s, N.Gemm)]
        return 8 if any(gemm.uses_mma(self, g) or wgmma.uses_wgmma(self, g) for g in gemms) else 0

    def emit_block(self, body: N.Body) -> None:
        for s in body:
            self.block_stmt(s)

    def _special_sim(self, s: N.Stmt, st: SyncState) -> Optional[SyncState]:
        if isinstance(s, N.For) and id(s) in self.pipes:
            return pipeline.sim(self, s, st)
        return None

    def block_stmt(self, s: N.Stmt) -> None:
        if isinstance(s, N.Alloc):
            self.alloc(s)
            return
        if isinstance(s, N.Hint):
            done = s.name == "use_swizzle" and len(self.launch.block_vars) == 2
            self.line(f"// {at(s)}hint {s.name}{s.args}" + (" (block rasterization above)" if done else
                                                            " (no effect in this backend)"))
            return
        self.comment(s)
        if isinstance(s, N.For) and id(s) in self.pipes:
            pipeline.emit(self, s)
        elif is_block_loop(s):
            self.block_loop(s)
        elif isinstance(s, N.If):
            self._header_barrier(s)
            entry = self.sync.copy()
            with self.block(f"if ({self.ex(s.cond)})"):
                self.emit_block(s.then_body)
            then_state, self.sync = self.sync, entry
            if s.else_body:
                with self.block("else"):
                    self.emit_block(s.else_body)
            self.sync = self.sync.union(then_state)
        else:
            need, st = self.sim.step(s, self.sync)
            if need:
                self.barrier()
            self.sync = st
            self.simple_stmt(s)

    def _header_barrier(self, s: N.Stmt) -> None:
        if self.sync.conflicts(self.sim.header_reads(s), set()):
            self.barrier()
        self.sync = self.sim.header_state(s, self.sync)

    def block_loop(self, s: N.Stmt) -> None:
        self._header_barrier(s)
        head = self.sync
        self.sync = self.sim.loop_entry(s.body, head)  # type: ignore[attr-defined]
        if isinstance(s, N.While):
            header = f"while ({self.ex(s.cond)})"
        else:
            header = self.for_header(s)  # type: ignore[arg-type]
        with self.block(header):
            self.emit_block(s.body)  # type: ignore[attr-defined]
        self.sync = head.union(self.sync)

    def for_header(self, s: N.For) -> str:
        v = cname(s.var.name)
        self.names[s.var.name] = v
        if s.kind == "unrolled":
            self.line("#pragma unroll")
        return f"for (int {v} = {self.ex(s.start)}; {v} < {self.ex(s.stop)}; ++{v})"

    def simple_stmt(self, s: N.Stmt) -> None:
        if isinstance(s, N.Let):
            self.let(s)
        elif isinstance(s, N.Store):
            if self.is_mem(s.buffer):
                with self.block("if (_tid == 0)"):
                    self.store(s)
            else:
                self.store(s)
        elif isinstance(s, N.For) and s.kind == "parallel":
            self.parallel(s)
        elif isinstance(s, N.Atomic) and not isinstance(s.value, N.Region):
            with self.block("if (_tid == 0)"):
                tileops.atomic_scalar(self, s)
        elif isinstance(s, N.Gemm):
            if wgmma.uses_wgmma(self, s):
                wgmma.emit(self, s)
            else:
                gemm.emit(self, s)
        elif isinstance(s, (N.Copy, N.Fill, N.Reduce, N.Atomic, N.Cumsum)):
            tileops.emit(self, s)
        else:
            raise TilecError(f"cuda: statement {type(s).__name__} is not supported here",
                             getattr(s, "loc", None))

    def alloc(self, s: N.Alloc) -> None:
        b = s.buffer
        n = cname(b.name)
        if b.name in self.layouts:
            lay = self.layouts[b.name]
            if isinstance(lay, (LaneLayout, LaneRow)):
                kind = "rows over warps, columns over lanes" if isinstance(lay, LaneLayout) else \
                    "rows over warps, replicated over lanes"
                self.line(f"{ctype(b.dtype)} {n}[{lay.regs}];  // {at(s)}fragment {b.name}: registers, {kind}")
                return
            kind = "mma accumulator layout" if isinstance(lay, MmaLayout) else "rows of an mma layout"
            kind = kind.replace("mma", "wgmma") if lay.wg else kind
            self.line(f"{ctype(b.dtype)} {n}[{lay.regs}];  // {at(s)}fragment {b.name}: registers, "
                      f"{kind}, {lay.wm}x{lay.wn} warps{' (warpgroups of 4 along rows)' if lay.wg else ''}")
        elif b.scope == "local":
            dims = [static_int(d) for d in b.shape]
            if any(d is None for d in dims):
                raise TilecError(f"cuda: local buffer {b.name} needs a constant shape", s.loc)
            size = f"[{eval_prod(dims)}]" if dims else ""  # row-major, indexed through flat()
            self.line(f"{ctype(b.dtype)} {n}{size};  // {at(s)}local {b.name}")
        # shared buffers and shared-placed fragments are declared at the top of the kernel (smem.py)

    def let(self, s: N.Let) -> None:
        v = cname(s.var.name)
        value = self.ex(s.value)
        self.names[s.var.name] = v
        self.line(f"const {compute_ctype(s.var.type)} {v} = {value};")

    def store(self, s: N.Store) -> None:
        lv = self.lvalue(s.buffer, tuple(self.ex(i) for i in s.indices))
        self.line(f"{lv} = {from_compute(s.buffer.dtype, self.ex(s.value), s.value.dtype)};")

    # ---- parallel loops and per-thread code -----------------------------------------------------
    def parallel(self, s: N.For) -> None:
        loops, inner = parallel_nest(s)
        b = bind_nest(loops, inner, self.layouts)
        if b.kind == "strided":
            exts = []
            for lp in loops:
                start, stop = static_int(lp.start), static_int(lp.stop)
                exts.append(str(stop - start) if start is not None and stop is not None
                            else f"({self.ex(lp.stop)} - {self.ex(lp.start)})")
            total = " * ".join(exts)
            with self.block(f"for (int _p = _tid; _p < {total}; _p += {self.threads})"):
                rest = "_p"
                for k in range(len(loops) - 1, -1, -1):
                    v = cname(loops[k].var.name)
                    self.names[loops[k].var.name] = v
                    part = rest if k == 0 else f"{rest} % {exts[k]}"
                    self.line(f"const int {v} = {self.ex(loops[k].start)} + {part};")
                    rest = f"({rest} / {exts[k]})" if k > 0 else rest
                self.thread_body(inner)
            return
        for lp in loops:
            self.names[lp.var.name] = cname(lp.var.name)
        row = cname(b.vars[0])
        col = cname(b.vars[1]) if len(b.vars) > 1 else ""
        with self.reg_loop(b.layout, row, col):  # type: ignore[arg-type]
            self.binding = b
            self.thread_body(inner)

    def thread_body(self, body: N.Body) -> None:
        for s in body:
            if isinstance(s, N.Let):
                self.let(s)
            elif isinstance(s, N.Store):
                self.store(s)
            elif isinstance(s, N.For):
                with self.block(self.for_header(s)):
                    self.thread_body(s.body)
            elif isinstance(s, N.While):
                with self.block(f"while ({self.ex(s.cond)})"):
                    self.thread_body(s.body)
            elif isinstance(s, N.If):
                with self.block(f"if ({self.ex(s.cond)})"):
                    self.thread_body(s.then_body)
                if s.else_body:
                    with self.block("else"):
                        self.thread_body(s.else_body)
            elif isinstance(s, N.Alloc):
                self.alloc(s)
            elif isinstance(s, N.Atomic) and not isinstance(s.value, N.Region):
                tileops.atomic_scalar(self, s)
            elif isinstance(s, N.Hint):
                continue
            else:
                raise TilecError(f"cuda: {ir_text(s).split(' ')[0]} inside T.Parallel is not supported "
                                 "(move the tile operation out of the parallel loop)", getattr(s, "loc", None))


def eval_prod(dims: list) -> int:
    out = 1
    for d in dims:
        out *= d
    return out
