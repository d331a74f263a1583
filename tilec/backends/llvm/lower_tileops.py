"""Lowering of the element-wise tile ops (copy, fill, reduce, cumsum, atomic) to loops.

A mixin of ``FnCodegen``. ``T.copy`` maps the i-th element of the source region (row-major) to the
i-th element of the destination. When the two regions have the same shape once unit dimensions are
dropped (the usual case) the copy is a loop nest over the kept dimensions whose bounds are clipped to
the destination buffer (out-of-buffer destination elements are not written), and whose innermost loop
is split in three: zeros before the source's valid range, a straight converting copy, zeros after it
(out-of-buffer source elements read zero). The straight part has no per-element test, so it
vectorizes. Other shapes fall back to one flat loop that unravels the element number.
Reductions accumulate in float32 (float64 for float64) with the ``reassoc`` flag on the accumulating
add so the vectorizer may reorder the sum; max/min keep NaN propagation (``llvm.maximum``).
"""
from __future__ import annotations

from llvmlite import ir

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as n

from . import mathlib
from .types import F32, F64, I1, I64, compute_type, const_value, convert, storage_type, to_compute, to_storage


def _is_unit(e: n.Expr) -> bool:
    return isinstance(e, n.Const) and int(e.value) == 1


def _acc_dtype(dt: str) -> str:
    if dt == "float64":
        return "float64"
    if dtypes.is_float(dt):
        return "float32"
    return dt


class TileOpLowering:
    """Mixin: element-wise tile ops."""

    # -- helpers -------------------------------------------------------------------------------------
    def _i64(self, v: int) -> ir.Constant:
        return ir.Constant(I64, v)

    def _smax(self, a, c):
        return mathlib.call_intr(self.b, "smax", a, c)

    def _smin(self, a, c):
        return mathlib.call_intr(self.b, "smin", a, c)

    def _valid_range(self, start, ext, shape):
        """[lo, hi) of v in [0, ext) with 0 <= start + v < shape."""
        lo = self._smax(self._i64(0), self.b.sub(self._i64(0), start))
        hi = self._smin(ext, self.b.sub(shape, start))
        return lo, self._smax(lo, hi)

    def _in_buf(self, idx, shape) -> ir.Value:
        b = self.b
        return b.and_(b.icmp_signed(">=", idx, self._i64(0)), b.icmp_signed("<", idx, shape))

    def _load_elem(self, buf: n.Buffer, idx: list) -> ir.Value:
        return to_compute(self.b, self.b.load(self.elem_ptr(buf, idx), typ=storage_type(buf.dtype)), buf.dtype)

    def _store_elem(self, buf: n.Buffer, idx: list, v: ir.Value) -> None:
        self.b.store(to_storage(self.b, v, buf.dtype), self.elem_ptr(buf, idx))

    def _region(self, r: n.Region):
        return [self.index64(s) for s in r.starts], [self.index64(e) for e in r.extents]

    # -- copy ----------------------------------------------------------------------------------------
    def _s_Copy(self, s: n.Copy) -> None:
        if self.forward_plan and id(s) in self.forward_plan:
            self.when(self.forward_copy(s), lambda: self._copy(s))  # gemm_forward.py
        else:
            self._copy(s)

    def _copy(self, s: n.Copy) -> None:
        if s.src.buffer.dtype == s.dst.buffer.dtype:  # a bit copy keeps NaN payloads (as the interpreter)
            def raw(buf, idx, v):
                self.b.store(v, self.elem_ptr(buf, idx))
            self.copy_like(s.src, s.dst, raw, s.loc, raw=True)
        else:
            self.copy_like(s.src, s.dst, self._store_elem, s.loc)

    def copy_like(self, src: n.Region, dst: n.Region, action, loc, raw: bool = False) -> None:
        """Element i of ``src`` -> ``action(dst.buffer, dst_index, value)``: the value converted to the
        dst dtype in compute form, or the source's storage bits when ``raw``."""
        self._raw = raw
        skeep = [d for d, e in enumerate(src.extents) if not _is_unit(e)]
        dkeep = [d for d, e in enumerate(dst.extents) if not _is_unit(e)]
        if len(skeep) == len(dkeep) and all(src.extents[a] == dst.extents[c] for a, c in zip(skeep, dkeep)):
            self._copy_nest(src, dst, skeep, dkeep, action)
        else:
            self._copy_flat(src, dst, action)

    def _copy_nest(self, src, dst, skeep, dkeep, action) -> None:
        b = self.b
        sv, dv = self.view(src.buffer), self.view(dst.buffer)
        s0, sext = self._region(src)
        d0, dext = self._region(dst)
        conv = self._converter(src.buffer.dtype, dst.buffer.dtype)
        dfix = ir.Constant(I1, 1)
        for d in range(len(d0)):
            if d not in dkeep:
                dfix = b.and_(dfix, self._in_buf(d0[d], dv.shape[d]))
        sfix = ir.Constant(I1, 1)
        for d in range(len(s0)):
            if d not in skeep:
                sfix = b.and_(sfix, self._in_buf(s0[d], sv.shape[d]))
        sidx = list(s0)
        didx = list(d0)
        zero = self._zero(dst.buffer.dtype)

        def level(k: int, svalid):
            if k == len(skeep):  # every dimension is a unit dimension: one element
                val = self._guarded_load(src.buffer, sidx, svalid, conv, zero)
                action(dst.buffer, didx, val)
                return
            sd, dd = skeep[k], dkeep[k]
            dlo, dhi = self._valid_range(d0[dd], dext[dd], dv.shape[dd])
            slo, shi = self._valid_range(s0[sd], sext[sd], sv.shape[sd])
            if k < len(skeep) - 1:
                def outer(v):
                    sidx[sd] = b.add(s0[sd], v, flags=["nsw"])
                    didx[dd] = b.add(d0[dd], v, flags=["nsw"])
                    ok = b.and_(svalid, b.and_(b.icmp_signed(">=", v, slo), b.icmp_signed("<", v, shi)))
                    level(k + 1, ok)
                self.loop(dlo, dhi, outer, name="cp")
                return
            a = b.select(svalid, self._smin(self._smax(slo, dlo), dhi), dhi)
            c = b.select(svalid, self._smin(self._smax(shi, a), dhi), dhi)

            def put_zero(v):
                didx[dd] = b.add(d0[dd], v, flags=["nsw"])
                action(dst.buffer, didx, zero)

            def put(v):
                sidx[sd] = b.add(s0[sd], v, flags=["nsw"])
                didx[dd] = b.add(d0[dd], v, flags=["nsw"])
                action(dst.buffer, didx, conv(self._read(src.buffer, sidx)))
            self.loop(dlo, a, put_zero, name="cpz")
            self.loop(a, c, put, name="cpi")
            self.loop(c, dhi, put_zero, name="cpz")
        self.when(dfix, lambda: level(0, sfix))

    def _guarded_load(self, buf, idx, valid, conv, zero) -> ir.Value:
        b = self.b
        slot = self.entry_alloca(zero.type)
        b.store(zero, slot)
        self.when(valid, lambda: b.store(conv(self._read(buf, idx)), slot))
        return b.load(slot)

    def _zero(self, dt: str) -> ir.Value:
        return ir.Constant(storage_type(dt), 0.0 if dt == "float16" else 0) if self._raw else const_value(0, dt)

    def _read(self, buf: n.Buffer, idx: list) -> ir.Value:
        if self._raw:
            return self.b.load(self.elem_ptr(buf, idx), typ=storage_type(buf.dtype))
        return self._load_elem(buf, idx)

    def _converter(self, src_dt: str, dst_dt: str):
        if self._raw:
            return lambda v: v
        return lambda v: convert(self.b, v, src_dt, dst_dt)

    def _copy_flat(self, src, dst, action) -> None:
        b = self.b
        sv, dv = self.view(src.buffer), self.view(dst.buffer)
        s0, sext = self._region(src)
        d0, dext = self._region(dst)
        conv = self._converter(src.buffer.dtype, dst.buffer.dtype)
        total = self._i64(1)
        for e in sext:
            total = b.mul(total, e)
        zero = self._zero(dst.buffer.dtype)

        def unravel(f, starts, exts):
            idx = [None] * len(exts)
            for d in range(len(exts) - 1, -1, -1):
                idx[d] = b.add(starts[d], b.srem(f, exts[d]))
                f = b.sdiv(f, exts[d])
            return idx

        def body(f):
            si, di = unravel(f, s0, sext), unravel(f, d0, dext)
            sok = ir.Constant(I1, 1)
            for i, sh in zip(si, sv.shape):
                sok = b.and_(sok, self._in_buf(i, sh))
            dok = ir.Constant(I1, 1)
            for i, sh in zip(di, dv.shape):
                dok = b.and_(dok, self._in_buf(i, sh))

            def write():
                action(dst.buffer, di, self._guarded_load(src.buffer, si, sok, conv, zero))
            self.when(dok, write)
        self.loop(self._i64(0), total, body, name="cpf")

    # -- fill ----------------------------------------------------------------------------------------
    def _s_Fill(self, s: n.Fill) -> None:
        b = self.b
        dv = self.view(s.dst.buffer)
        val = convert(b, self.expr(s.value), s.value.dtype, s.dst.buffer.dtype)
        bits = to_storage(b, val, s.dst.buffer.dtype)
        d0, dext = self._region(s.dst)
        idx = list(d0)

        def level(k):
            if k == len(d0):
                b.store(bits, self.elem_ptr(s.dst.buffer, idx))
                return
            lo, hi = self._valid_range(d0[k], dext[k], dv.shape[k])

            def body(v):
                idx[k] = b.add(d0[k], v, flags=["nsw"])
                level(k + 1)
            self.loop(lo, hi, body, name="fill")
        level(0)

    # -- reduce --------------------------------------------------------------------------------------
    def _dst_map(self, src: n.Region, dst: n.Region, kept: list[int]):
        """Which dst dimension each kept src dimension writes (None: a dropped unit dimension)."""
        if len(dst.extents) == len(kept):
            return list(range(len(kept)))
        snu = [d for d in kept if not _is_unit(src.extents[d])]
        dnu = [d for d, e in enumerate(dst.extents) if not _is_unit(e)]
        if len(snu) != len(dnu):
            raise TilecError("cpu target: reduce/cumsum regions do not match", dst.loc)
        m = dict(zip(snu, dnu))
        return [m.get(d) for d in kept]

    def _combine(self, kind: str, acc, v, dt: str):
        b = self.b
        isf = dtypes.is_float(dt)
        if kind in ("absmax", "abssum"):
            v = mathlib.call_intr(b, "fabs", v) if isf else mathlib.int_intrinsic(b, "abs", [v], False)
        if kind in ("sum", "abssum"):
            return b.fadd(acc, v, flags=["reassoc"]) if isf else b.add(acc, v)
        op = "max" if kind in ("max", "absmax") else "min"
        if isf:
            return mathlib.call_intr(b, "maximum" if op == "max" else "minimum", acc, v)
        pre = "u" if dtypes.info(dt).kind == "uint" else "s"
        return mathlib.call_intr(b, pre + op, acc, v)

    def _identity(self, kind: str, dt: str):
        t = compute_type(dt)
        if kind in ("sum", "abssum"):
            return ir.Constant(t, 0.0 if dtypes.is_float(dt) else 0)
        if dtypes.is_float(dt):
            return ir.Constant(t, float("-inf") if kind in ("max", "absmax") else float("inf"))
        bits, uns = t.width, dtypes.info(dt).kind == "uint"
        if kind in ("max", "absmax"):
            return ir.Constant(t, 0 if uns else -(1 << (bits - 1)))
        return ir.Constant(t, (1 << bits) - 1 if uns else (1 << (bits - 1)) - 1)

    def _s_Reduce(self, s: n.Reduce) -> None:
        b = self.b
        src, dst = s.src, s.dst
        s0, sext = self._region(src)
        d0, _ = self._region(dst)
        kept = [d for d in range(len(s0)) if d != s.dim]
        dmap = self._dst_map(src, dst, kept)
        acc_dt = _acc_dtype(dst.buffer.dtype)
        sidx, didx = list(s0), list(d0)

        def inner():
            init = self._identity(s.kind, acc_dt)
            if not s.clear:
                old = self._load_elem(dst.buffer, didx)
                init = convert(b, old, dst.buffer.dtype, acc_dt)
            slot = self.entry_alloca(compute_type(acc_dt))
            b.store(init, slot)

            def red(v):
                sidx[s.dim] = b.add(s0[s.dim], v, flags=["nsw"])
                x = convert(b, self._load_elem(src.buffer, sidx), src.buffer.dtype, acc_dt)
                b.store(self._combine(s.kind, b.load(slot), x, acc_dt), slot)
            self.loop(self._i64(0), sext[s.dim], red, name="red")
            self._store_elem(dst.buffer, didx, convert(b, b.load(slot), acc_dt, dst.buffer.dtype))
        self._outer_nest(kept, dmap, s0, sext, sidx, d0, didx, inner)

    def _outer_nest(self, kept, dmap, s0, sext, sidx, d0, didx, inner) -> None:
        b = self.b

        def level(k):
            if k == len(kept):
                inner()
                return
            d = kept[k]

            def body(v):
                sidx[d] = b.add(s0[d], v, flags=["nsw"])
                if dmap[k] is not None:
                    didx[dmap[k]] = b.add(d0[dmap[k]], v, flags=["nsw"])
                level(k + 1)
            self.loop(self._i64(0), sext[d], body, name="ro")
        level(0)

    # -- cumsum --------------------------------------------------------------------------------------
    def _s_Cumsum(self, s: n.Cumsum) -> None:
        b = self.b
        src, dst = s.src, s.dst
        s0, sext = self._region(src)
        d0, _ = self._region(dst)
        kept = [d for d in range(len(s0)) if d != s.dim]
        if len(dst.extents) == len(s0):
            dmap, ddim = kept, s.dim
        else:
            raise TilecError("cpu target: cumsum needs src and dst of the same rank", s.loc)
        acc_dt = _acc_dtype(dst.buffer.dtype)
        sidx, didx = list(s0), list(d0)

        def inner():
            slot = self.entry_alloca(compute_type(acc_dt))
            b.store(self._identity("sum", acc_dt), slot)
            ext = sext[s.dim]

            def step(v):
                pos = b.sub(b.sub(ext, self._i64(1)), v) if s.reverse else v
                sidx[s.dim] = b.add(s0[s.dim], pos, flags=["nsw"])
                didx[ddim] = b.add(d0[ddim], pos, flags=["nsw"])
                x = convert(b, self._load_elem(src.buffer, sidx), src.buffer.dtype, acc_dt)
                acc = b.fadd(b.load(slot), x) if dtypes.is_float(acc_dt) else b.add(b.load(slot), x)
                b.store(acc, slot)
                self._store_elem(dst.buffer, didx, convert(b, acc, acc_dt, dst.buffer.dtype))
            self.loop(self._i64(0), ext, step, name="scan")
        self._outer_nest(kept, dmap, s0, sext, sidx, d0, didx, inner)

    # -- atomics -------------------------------------------------------------------------------------
    def _s_Atomic(self, s: n.Atomic) -> None:
        if isinstance(s.value, n.Region):
            self.copy_like(s.value, s.dst, lambda buf, idx, v: self.atomic_update(buf, idx, v, s.kind), s.loc)
            return
        b = self.b
        dv = self.view(s.dst.buffer)
        val = convert(b, self.expr(s.value), s.value.dtype, s.dst.buffer.dtype)
        d0, _ = self._region(s.dst)
        ok = ir.Constant(I1, 1)
        for i, sh in zip(d0, dv.shape):
            ok = b.and_(ok, self._in_buf(i, sh))
        self.when(ok, lambda: self.atomic_update(s.dst.buffer, d0, val, s.kind))

    def atomic_update(self, buf: n.Buffer, idx: list, v: ir.Value, kind: str) -> None:
        b = self.b
        dt = buf.dtype
        ptr = self.elem_ptr(buf, idx)
        if dtypes.is_int(dt):
            uns = dtypes.info(dt).kind == "uint"
            op = {"add": "add", "max": "umax" if uns else "max", "min": "umin" if uns else "min"}[kind]
            b.atomic_rmw(op, ptr, v, "monotonic")
            return
        if kind == "add" and dt in ("float32", "float64"):
            b.atomic_rmw("fadd", ptr, v, "monotonic")
            return
        self._cas_loop(ptr, v, dt, kind)

    def _cas_loop(self, ptr, v, dt: str, kind: str) -> None:
        """Compare-and-swap loop on the storage bits (narrow floats, float max/min with NaN semantics)."""
        b = self.b
        st = storage_type(dt)
        it = ir.IntType(st.width if isinstance(st, ir.IntType) else {F32: 32, F64: 64}.get(st, 16))
        old0 = b.load(ptr, typ=it)
        pre = b.block
        head = b.append_basic_block("cas")
        done = b.append_basic_block("cas.done")
        b.branch(head)
        b.position_at_end(head)
        old = b.phi(it)
        old.add_incoming(old0, pre)
        cur = to_compute(b, b.bitcast(old, st) if st != it else old, dt)
        new = self._combine("sum" if kind == "add" else kind, cur, v, dt) if kind != "add" else b.fadd(cur, v)
        bits = to_storage(b, new, dt)
        bits = b.bitcast(bits, it) if bits.type != it else bits
        pair = b.cmpxchg(ptr, old, bits, "monotonic", "monotonic")
        seen = b.extract_value(pair, 0)
        old.add_incoming(seen, b.block)
        b.cbranch(b.extract_value(pair, 1), done, head)
        b.position_at_end(done)
