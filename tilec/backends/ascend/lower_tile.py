"""Tile-op lowering on the Vector core: copy, reduce, atomic, cumsum (mixed into ``lower.Lowerer``).

A GM<->UB ``T.copy`` whose rows are contiguous on both sides becomes ``TileGmToUb``/``TileUbToGm`` (DataCopyPad
with run-time clipping of ragged tiles), a dtype change adds a ``Cast`` through a UB staging area, a UB->UB
copy of a contiguous run is ``DataCopy``/``Cast``; everything else is an exact element loop on the Scalar unit.
"""
from __future__ import annotations

from math import prod

from tilec.errors import TilecError
from tilec.ir import dtypes, nodes as N

from .cexpr import COMPUTE, CTYPE, cname, literal, to_compute, to_storage
from .cexpr import VEC_FLOAT, is_const
from .lower import Lowerer


def _nonunit(r: N.Region) -> list[int]:
    return [d for d, e in enumerate(r.extents) if not is_const(e, 1)]


class TileLowerer(Lowerer):
    # ------------------------------------------------------------------ copy
    def _Copy(self, s: N.Copy) -> None:
        dst = s.dst.buffer
        if dst.name in self.plan.locals and self.plan.locals[dst.name].direct:
            self.cube.record_tile(self, s)
            return
        q = self.plan.locals[dst.name].queue if dst.name in self.plan.locals else None
        src_lb = self.plan.locals.get(s.src.buffer.name)
        if src_lb is not None and src_lb.resident:
            self.cube.flush(self, src_lb)
        if q:
            self.emit(f"{cname(dst.name)} = {q}.AllocTensor<{CTYPE[dst.dtype]}>();")
        done = False
        if s.src.buffer.scope == "global" and dst.name in self.plan.locals:
            done = self.copy_gm_ub(s.src, s.dst, to_ub=True)
        elif s.src.buffer.name in self.plan.locals and dst.scope == "global":
            done = self.copy_gm_ub(s.dst, s.src, to_ub=False)
        elif s.src.buffer.name in self.plan.locals and dst.name in self.plan.locals:
            done = self.copy_ub_ub(s.src, s.dst)
        if not done:
            self.copy_scalar(s.src, s.dst)
        self.emit("PipeBarrier<PIPE_ALL>();")
        if q:
            self.emit(f"{q}.EnQue({cname(dst.name)});")
            self.emit(f"{cname(dst.name)} = {q}.DeQue<{CTYPE[dst.dtype]}>();")

    def tile_geometry(self, gm: N.Region, ub: N.Region):
        """Rows/cols description of a GM<->UB copy, or None when its rows are not contiguous."""
        gd, ud = _nonunit(gm), _nonunit(ub)
        if len(gd) != len(ud) or len(gd) > 2 or not gd:
            return None
        if not all(is_const(gm.extents[d]) and is_const(ub.extents[e]) and gm.extents[d].value == ub.extents[e].value
                   for d, e in zip(gd, ud)):
            return None
        gbuf, ubuf = gm.buffer, ub.buffer
        if gd[-1] != len(gbuf.shape) - 1 or ud[-1] != len(ubuf.shape) - 1:
            return None
        shape = self.plan.locals[ubuf.name].shape
        item = dtypes.itemsize(ubuf.dtype)
        cols = int(ub.extents[ud[-1]].value)
        rows = int(ub.extents[ud[0]].value) if len(ud) == 2 else 1
        ub_pitch = prod(shape[ud[0] + 1:]) if len(ud) == 2 else shape[-1]
        if rows > 1 and (ub_pitch * item) % 32:
            return None
        ustrides = [prod(shape[j + 1:]) for j in range(len(shape))]
        for j, st in enumerate(ub.starts):
            if is_const(st):
                if (int(st.value) * ustrides[j] * item) % 32:
                    return None
                start = int(st.value)
                ext = int(ub.extents[j].value) if is_const(ub.extents[j]) else 1
                if not (0 <= start and start + ext <= shape[j]):
                    return None
            elif (ustrides[j] * item) % 32:
                return None
        gshape = [self.px(d) for d in gbuf.shape]
        gstr = self.strides(gbuf)
        starts = [self.px(st) for st in gm.starts]
        col = gd[-1]
        rowd = gd[0] if len(gd) == 2 else None
        other = [f"({starts[d]}) >= 0 && ({starts[d]}) < {gshape[d]}" for d in range(len(gshape)) if d not in gd]
        return dict(rows=rows, cols=cols, ub_pitch=ub_pitch, gm_pitch=gstr[rowd] if rowd is not None else "0",
                    off=self.linear(gbuf, starts), row_start=starts[rowd] if rowd is not None else "0",
                    row_dim=gshape[rowd] if rowd is not None else "1", col_start=starts[col], col_dim=gshape[col],
                    other=" && ".join(other) if other else "true",
                    ub_off=self.linear(ubuf, [self.px(st) for st in ub.starts]))

    def copy_gm_ub(self, gm: N.Region, ub: N.Region, to_ub: bool) -> bool:
        geo = self.tile_geometry(gm, ub)
        if geo is None:
            return False
        gt, ut = gm.buffer.dtype, ub.buffer.dtype
        view = self.view(ub.buffer, geo["ub_off"])
        args = (f"{geo['rows']}, {geo['cols']}, {geo['ub_pitch']}, {geo['gm_pitch']}, {geo['row_start']}, "
                f"{geo['row_dim']}, {geo['col_start']}, {geo['col_dim']}, {geo['other']}")
        gname = f"{cname(gm.buffer.name)}Gm"
        if gt == ut:
            if to_ub:
                self.emit(f"TileGmToUb({view}, {gname}, {geo['off']}, {args});")
            else:
                self.emit(f"TileUbToGm({gname}, {geo['off']}, {view}, {args});")
            return True
        if gt not in VEC_FLOAT or ut not in VEC_FLOAT:
            return False
        gi = dtypes.itemsize(gt)
        if geo["rows"] > 1 and (geo["ub_pitch"] * gi) % 32:
            return False
        span = (geo["rows"] - 1) * geo["ub_pitch"] + geo["cols"]
        full = geo["cols"] == geo["ub_pitch"] or geo["rows"] == 1
        self.need_scratch(geo["rows"] * geo["ub_pitch"] * gi + 32)
        stage = f"ubBuf.GetWithOffset<{CTYPE[gt]}>({geo['rows'] * geo['ub_pitch'] + 32 // gi}, kScratch)"
        if to_ub:
            if not full:
                return False
            mode = "CAST_NONE" if dtypes.itemsize(ut) >= gi else "CAST_RINT"
            self.emit(f"TileGmToUb({stage}, {gname}, {geo['off']}, {args});")
            self.emit("PipeBarrier<PIPE_ALL>();")
            self.emit(f"Cast({view}, {stage}, RoundMode::{mode}, {span});")
        else:
            mode = "CAST_NONE" if gi >= dtypes.itemsize(ut) else "CAST_RINT"
            self.emit(f"Cast({stage}, {view}, RoundMode::{mode}, {span});")
            self.emit("PipeBarrier<PIPE_ALL>();")
            self.emit(f"TileUbToGm({gname}, {geo['off']}, {stage}, {args});")
        return True

    def copy_ub_ub(self, src: N.Region, dst: N.Region) -> bool:
        a, b = self.contiguous_span(src), self.contiguous_span(dst)
        if a is None or b is None or a[1] != b[1]:
            return False
        st, dt = src.buffer.dtype, dst.buffer.dtype
        count = a[1]
        sv, dv = self.view(src.buffer, a[0]), self.view(dst.buffer, b[0])
        if st == dt:
            if (count * dtypes.itemsize(st)) % 32:
                return False
            self.emit(f"DataCopy({dv}, {sv}, {count});")
            return True
        if st in VEC_FLOAT and dt in VEC_FLOAT:
            mode = "CAST_NONE" if dtypes.itemsize(dt) >= dtypes.itemsize(st) else "CAST_RINT"
            self.emit(f"Cast({dv}, {sv}, RoundMode::{mode}, {count});")
            return True
        return False

    def copy_scalar(self, src: N.Region, dst: N.Region) -> None:
        sd, dd = _nonunit(src), _nonunit(dst)
        sshape, dshape = self.shape_exprs(src.buffer), self.shape_exprs(dst.buffer)
        same = len(sd) == len(dd) and all(self.px(src.extents[i]) == self.px(dst.extents[j]) for i, j in zip(sd, dd))
        self.emit("PipeBarrier<PIPE_ALL>();  // element copy on the Scalar unit")
        loops = []
        if same:
            for i in sd:
                v = self.fresh("t")
                loops.append(v)
                self.emit(f"for (int32_t {v} = 0; {v} < {self.px(src.extents[i])}; ++{v}) {{")
                self.ind += 1
            sidx = [self.px(st) if d not in sd else f"{self.px(st)} + {loops[sd.index(d)]}"
                    for d, st in enumerate(src.starts)]
            didx = [self.px(st) if d not in dd else f"{self.px(st)} + {loops[dd.index(d)]}"
                    for d, st in enumerate(dst.starts)]
        else:
            total = " * ".join(f"({self.px(e)})" for e in src.extents) or "1"
            v = self.fresh("t")
            loops.append(v)
            self.emit(f"for (int32_t {v} = 0; {v} < {total}; ++{v}) {{")
            self.ind += 1
            sidx = self.unravel(v, src)
            didx = self.unravel(v, dst)
        sin = " && ".join(f"({i}) >= 0 && ({i}) < {d}" for i, d in zip(sidx, sshape)) or "true"
        din = " && ".join(f"({i}) >= 0 && ({i}) < {d}" for i, d in zip(didx, dshape)) or "true"
        sval = to_compute(f"{self.tensor(src.buffer)}.GetValue({self.linear(src.buffer, sidx)})", src.buffer.dtype)
        if src.buffer.name in self.plan.scalars:
            sval, sin = to_compute(cname(src.buffer.name), src.buffer.dtype), "true"
        cdt = COMPUTE[src.buffer.dtype]
        zero = literal(0, src.buffer.dtype)
        val = f"(({sin}) ? ({cdt})({sval}) : ({cdt})({zero}))"
        conv = self.convert(val, src.buffer.dtype, dst.buffer.dtype)
        self.emit(f"if ({din}) {{")
        self.ind += 1
        self.store(dst.buffer, didx, conv)
        self.ind -= 1
        self.emit("}")
        for _ in loops:
            self.ind -= 1
            self.emit("}")

    def unravel(self, v: str, r: N.Region) -> list[str]:
        exts = [f"({self.px(e)})" for e in r.extents]
        out = []
        for d in range(len(exts)):
            inner = " * ".join(exts[d + 1:]) or "1"
            out.append(f"{self.px(r.starts[d])} + ({v} / ({inner})) % {exts[d]}")
        return out

    def convert(self, val: str, src: str, dst: str) -> str:
        """A compute value of dtype src as a compute value headed for dtype dst (cast semantics)."""
        if src == dst:
            return val
        return self.px(N.Cast(dst, RawExpr(val, src)))

    # ------------------------------------------------------------------ reduce
    def _Reduce(self, s: N.Reduce) -> None:
        if not self.reduce_vector(s):
            self.reduce_scalar(s)
        self.emit("PipeBarrier<PIPE_ALL>();")

    def reduce_vector(self, s: N.Reduce) -> bool:
        src, dst = s.src, s.dst
        lb, db = self.plan.locals.get(src.buffer.name), self.plan.locals.get(dst.buffer.name)
        if lb is None or db is None or len(lb.shape) != 2 or s.dim != 1 or len(db.shape) != 1:
            return False
        if src.buffer.dtype not in ("float32", "float16") or dst.buffer.dtype != src.buffer.dtype:
            return False

        def whole(region: N.Region, shape) -> bool:
            return all(is_const(st, 0) for st in region.starts) and all(
                is_const(e, n) for e, n in zip(region.extents, shape))
        if not (whole(src, lb.shape) and whole(dst, db.shape)) or db.shape[0] != lb.shape[0]:
            return False
        rows, cols = lb.shape
        t = CTYPE[src.buffer.dtype]
        item = dtypes.itemsize(src.buffer.dtype)
        if (cols * item) % 32:
            return False
        self.need_scratch(3 * (cols * item + 32) + 64)
        op = {"max": "ReduceMax", "absmax": "ReduceMax", "min": "ReduceMin",
              "sum": "ReduceSum", "abssum": "ReduceSum"}[s.kind]
        work = f"ubBuf.GetWithOffset<{t}>({cols}, kScratch)"
        res = f"ubBuf.GetWithOffset<{t}>({32 // item}, kScratch + {(cols * item + 31) // 32 * 32})"
        absb = f"ubBuf.GetWithOffset<{t}>({cols}, kScratch + {2 * ((cols * item + 31) // 32 * 32)})"
        r = self.fresh("r")
        self.emit(f"for (int32_t {r} = 0; {r} < {rows}; ++{r}) {{"
                  f"  // T.reduce_{s.kind} along dim 1, one row per instruction")
        self.ind += 1
        srcv = f"{cname(src.buffer.name)}[{r} * {cols}]"
        if s.kind.startswith("abs"):
            self.emit(f"Abs({absb}, {srcv}, {cols});")
            srcv = absb
        self.emit(f"{op}({res}, {srcv}, {work}, {cols});")
        self.emit("PipeBarrier<PIPE_ALL>();")
        val = f"(float){res}.GetValue(0)"
        if not s.clear:
            val = self.combine(s.kind, f"(float){cname(dst.buffer.name)}.GetValue({r})", val)
        self.emit(f"{cname(dst.buffer.name)}.SetValue({r}, {to_storage(val, dst.buffer.dtype)});")
        self.ind -= 1
        self.emit("}")
        return True

    def combine(self, kind: str, a: str, b: str) -> str:
        if kind in ("max", "absmax"):
            return f"tilec_max({a}, {b})"
        if kind == "min":
            return f"tilec_min({a}, {b})"
        return f"({a} + {b})"

    def reduce_scalar(self, s: N.Reduce) -> None:
        src, dst = s.src, s.dst
        if len(dst.extents) != len(src.extents) - 1:
            raise TilecError("ascend target: reduce expects dst to have src's rank minus one", s.loc)
        cdt = COMPUTE[src.buffer.dtype]
        init = {"max": "-INFINITY", "absmax": "0", "min": "INFINITY", "sum": "0", "abssum": "0"}[s.kind]
        if not dtypes.is_float(src.buffer.dtype):
            init = {"max": f"std::numeric_limits<{cdt}>::lowest()",
                    "min": f"std::numeric_limits<{cdt}>::max()"}.get(s.kind, "0")
        self.emit("PipeBarrier<PIPE_ALL>();  // reduction on the Scalar unit")
        loops, sidx = [], []
        for d, (st, ex) in enumerate(zip(src.starts, src.extents)):
            if d == s.dim:
                sidx.append(None)
                continue
            v = self.fresh("i")
            loops.append(v)
            self.emit(f"for (int32_t {v} = 0; {v} < {self.px(ex)}; ++{v}) {{")
            self.ind += 1
            sidx.append(f"{self.px(st)} + {v}")
        acc, k = self.fresh("acc"), self.fresh("k")
        self.emit(f"{cdt} {acc} = {init};")
        self.emit(f"for (int32_t {k} = 0; {k} < {self.px(src.extents[s.dim])}; ++{k}) {{")
        self.ind += 1
        idx = [i if i is not None else f"{self.px(src.starts[s.dim])} + {k}" for i in sidx]
        val = to_compute(f"{self.tensor(src.buffer)}.GetValue({self.linear(src.buffer, idx)})", src.buffer.dtype)
        if s.kind.startswith("abs"):
            val = f"std::abs({val})"
        if dtypes.is_float(src.buffer.dtype) or s.kind.endswith("sum"):
            combined = self.combine(s.kind, acc, val)
        else:  # integer max/min: tilec_max / tilec_min
            combined = f"tilec_{s.kind[-3:]}<{cdt}>({acc}, {val})"
        self.emit(f"{acc} = {combined};")
        self.ind -= 1
        self.emit("}")
        didx = [f"{self.px(st)} + {v}" for st, v in zip(dst.starts, loops)]
        out = f"({COMPUTE[dst.buffer.dtype]})({acc})"
        if not s.clear:
            old = to_compute(f"{self.tensor(dst.buffer)}.GetValue({self.linear(dst.buffer, didx)})", dst.buffer.dtype)
            out = self.combine(s.kind, old, out)
        self.store(dst.buffer, didx, out)
        for _ in loops:
            self.ind -= 1
            self.emit("}")

    # ------------------------------------------------------------------ atomic, cumsum, gemm
    def _Atomic(self, s: N.Atomic) -> None:
        dst = s.dst
        if dst.buffer.scope != "global":
            if isinstance(s.value, N.Region):
                raise TilecError("ascend target: atomic from a region into a local buffer", s.loc)

            def update(idx: list[str]) -> None:
                old = to_compute(f"{self.tensor(dst.buffer)}.GetValue({self.linear(dst.buffer, idx)})",
                                 dst.buffer.dtype)
                self.store(dst.buffer, idx, self.combine(s.kind, old, self.px(s.value)))
            self.region_loop(dst, update, guard=True)
            return
        t = CTYPE[dst.buffer.dtype]
        item = dtypes.itemsize(dst.buffer.dtype)
        self.need_scratch(64)
        stage = f"ubBuf.GetWithOffset<{t}>({32 // item}, kScratch)"
        fn = {"add": "SetAtomicAdd", "max": "SetAtomicMax", "min": "SetAtomicMin"}[s.kind]
        self.emit(f"{fn}<{t}>();  // T.atomic_{s.kind}: MTE3 writes accumulate in GM")

        def one(idx, val):
            self.emit(f"{stage}.SetValue(0, {to_storage(val, dst.buffer.dtype)});")
            self.emit("PipeBarrier<PIPE_ALL>();")
            self.emit(f"DataCopyPad({cname(dst.buffer.name)}Gm[{self.linear(dst.buffer, idx)}], {stage}, "
                      f"DataCopyExtParams(1, {item}, 0, 0, 0));")
            self.emit("PipeBarrier<PIPE_ALL>();")
        if isinstance(s.value, N.Region):
            src = s.value
            exts = [self.px(e) for e in src.extents]
            loops = []
            for e in exts:
                v = self.fresh("i")
                loops.append(v)
                self.emit(f"for (int32_t {v} = 0; {v} < {e}; ++{v}) {{")
                self.ind += 1
            sidx = [f"{self.px(st)} + {v}" for st, v in zip(src.starts, loops)]
            flat = " + ".join(f"{v} * ({' * '.join(exts[i + 1:]) or '1'})" for i, v in enumerate(loops))
            didx = self.unravel(f"({flat})", dst)
            dshape = self.shape_exprs(dst.buffer)
            self.emit(f"if ({' && '.join(f'({i}) >= 0 && ({i}) < {d}' for i, d in zip(didx, dshape))}) {{")
            self.ind += 1
            val = to_compute(f"{self.tensor(src.buffer)}.GetValue({self.linear(src.buffer, sidx)})", src.buffer.dtype)
            one(didx, val)
            self.ind -= 1
            self.emit("}")
            for _ in loops:
                self.ind -= 1
                self.emit("}")
        else:
            self.region_loop(dst, lambda idx: one(idx, self.px(s.value)), guard=True)
        self.emit("SetAtomicNone();")

    def _Cumsum(self, s: N.Cumsum) -> None:
        src, dst = s.src, s.dst
        self.emit("PipeBarrier<PIPE_ALL>();  // T.cumsum on the Scalar unit")
        var_of: dict[int, str] = {}
        for d, ex in enumerate(src.extents):
            if d == s.dim:
                continue
            v = self.fresh("i")
            var_of[d] = v
            self.emit(f"for (int32_t {v} = 0; {v} < {self.px(ex)}; ++{v}) {{")
            self.ind += 1
        acc, k = self.fresh("acc"), self.fresh("k")
        cdt = COMPUTE[src.buffer.dtype]
        self.emit(f"{cdt} {acc} = 0;")
        n = self.px(src.extents[s.dim])
        self.emit(f"for (int32_t {k}_ = 0; {k}_ < {n}; ++{k}_) {{")
        self.ind += 1
        self.emit(f"int32_t {k} = {f'({n}) - 1 - {k}_' if s.reverse else f'{k}_'};")
        var_of[s.dim] = k
        sidx = [f"{self.px(st)} + {var_of[d]}" for d, st in enumerate(src.starts)]
        # dst has src's shape once unit dims are dropped: pair the non-unit dims in order
        sd = [d for d in range(len(src.extents)) if not is_const(src.extents[d], 1) or d == s.dim]
        dd = [d for d in range(len(dst.extents)) if not is_const(dst.extents[d], 1)]
        if len(dd) < len(sd):
            sd = [d for d in sd if not is_const(src.extents[d], 1)]
        pair = dict(zip(dd, sd))
        didx = [f"{self.px(st)} + {var_of[pair[d]]}" if d in pair else self.px(st) for d, st in enumerate(dst.starts)]
        val = to_compute(f"{self.tensor(src.buffer)}.GetValue({self.linear(src.buffer, sidx)})", src.buffer.dtype)
        self.emit(f"{acc} = {acc} + {val};")
        self.store(dst.buffer, didx, self.convert(acc, src.buffer.dtype, dst.buffer.dtype))
        self.ind -= 1
        self.emit("}")
        for _ in range(len(var_of) - 1):
            self.ind -= 1
            self.emit("}")

    def _Gemm(self, s: N.Gemm) -> None:
        self.cube.request(s, self)


class RawExpr(N.Expr):
    """An already-printed C++ compute expression, so ``ExprPrinter`` can wrap it in a Cast."""

    def __init__(self, text: str, dtype: str):
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "_dtype", dtype)

    @property
    def dtype(self) -> str:
        return self._dtype
