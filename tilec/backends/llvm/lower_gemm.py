"""``T.gemm`` on the CPU: packing plus a register-blocked vector micro-kernel (docs/backends/cpu.md).

``C[M,N] += op(A)[M,K] @ op(B)[K,N]``. gemm_pack.py packs B one NR-column panel at a time
(``Bp[k][j]``) and A into MR-row panels (``Ap[p][k][r]``) unless A is float32 (read in place); packing
converts float16/bfloat16/float8 to float32, absorbs transposes and zero-pads ragged edges. The
micro-kernel keeps the MR x NR accumulator tile in MR*NR/VL vector
registers (``<VL x float>``, VL = 16 with AVX-512) and per k step does NR/VL vector loads of B, MR
broadcasts of A and MR*NR/VL ``llvm.fma`` calls. Full float32 C tiles are updated in place; edge
tiles and non-float32 C go through a float32 scratch tile. Integer and float64 gemms use plain loops.
"""
from __future__ import annotations

from llvmlite import ir

from tilec.errors import TilecError
from tilec.ir import dtypes
from tilec.ir import nodes as n

from . import gemm_bf16, mathlib
from .gemm_pack import PackedGemm
from .types import F32, I1, I32, I64, PTR, VOID, compute_type, convert, storage_type, to_compute, to_storage

MR = 4


def tile_shape(vl: int) -> tuple[int, int]:
    """(MR, NR) of the micro-kernel for a vector of ``vl`` floats."""
    return MR, (4 * vl if vl >= 16 else 2 * vl)


class _Operand:
    """A gemm operand squeezed to 2-D: element (i, j) is at base + i*ld + j (row-major, unit columns)."""

    def __init__(self, cg, r: n.Region, what: str):
        # The interpreter's rule: drop unit dimensions, leading ones first, until two are left.
        dims = list(range(len(r.extents)))
        unit = [d for d in dims if isinstance(r.extents[d], n.Const) and int(r.extents[d].value) == 1]
        while len(dims) > 2 and unit:
            dims.remove(unit.pop(0))
        if len(dims) != 2:
            raise TilecError(f"cpu target: gemm operand {what} ('{r.buffer.name}') is not a matrix", r.loc)
        view = cg.view(r.buffer)
        self.dtype = r.buffer.dtype
        self.base = cg.elem_ptr(r.buffer, [cg.index64(s) for s in r.starts])
        self.ld, self.cs = view.strides[dims[0]], view.strides[dims[1]]
        self.unit_cols = dims[1] == len(r.extents) - 1
        self.rows, self.cols = cg.index64(r.extents[dims[0]]), cg.index64(r.extents[dims[1]])
        ce = [int(r.extents[d].value) if isinstance(r.extents[d], n.Const) else None for d in dims]
        self.rows_c, self.cols_c = ce


class GemmLowering:
    """Mixin: ``_s_Gemm``, and the gemm side of copy forwarding (gemm_forward.py)."""

    def forward_copy(self, s: n.Copy) -> ir.Value:
        """A forwarded copy: records where its source is; returns the i1 'source region is NOT entirely
        inside its buffer', under which the copy itself must run (out-of-buffer elements read zero)."""
        b = self.b
        view = self.view(s.src.buffer)
        inb = ir.Constant(I1, 1)
        for st, ex, sh in zip(s.src.starts, s.src.extents, view.shape):
            st, ex = self.index64(st), self.index64(ex)
            inb = b.and_(inb, b.and_(b.icmp_signed(">=", st, self._i64(0)),
                                     b.icmp_signed("<=", b.add(st, ex), sh)))
        self.forwarded[s.dst.buffer.name] = (_Operand(self, s.src, "copy source"), inb)
        return b.not_(inb)

    def _operand(self, r: n.Region, what: str) -> "_Operand":
        """The gemm operand ``r``; a forwarded tile reads its copy's source while that lies in bounds."""
        op = _Operand(self, r, what)
        fwd = self.forwarded.get(r.buffer.name)
        if fwd is not None:
            src, inb = fwd
            op.base = self.b.select(inb, src.base, op.base)
            op.ld = self.b.select(inb, src.ld, op.ld)
        return op

    def _s_Gemm(self, s: n.Gemm) -> None:
        A, B, C = self._operand(s.a, "A"), self._operand(s.b, "B"), _Operand(self, s.c, "C")
        M, N = C.rows, C.cols
        K = A.rows if s.trans_a else A.cols
        if s.clear_accum:
            self._gemm_clear(C, M, N)
        fast = all(dtypes.is_float(o.dtype) and o.dtype != "float64" for o in (A, B, C))
        if fast:
            self._gemm_packed(A, B, C, M, N, K, s.trans_a, s.trans_b)
        else:
            self._gemm_naive(A, B, C, M, N, K, s.trans_a, s.trans_b)

    def _at(self, op: _Operand, i, j, trans: bool) -> ir.Value:
        """Pointer to op(X)[i, j]."""
        b = self.b
        r, c = (j, i) if trans else (i, j)
        if not op.unit_cols:
            c = b.mul(c, op.cs, flags=["nsw"])
        off = b.add(b.mul(r, op.ld, flags=["nsw"]), c, flags=["nsw"])
        return b.gep(op.base, [off], inbounds=True, source_etype=storage_type(op.dtype))

    def _ld(self, op, i, j, trans):
        return to_compute(self.b, self.b.load(self._at(op, i, j, trans), typ=storage_type(op.dtype)), op.dtype)

    def _gemm_clear(self, C: _Operand, M, N) -> None:
        zero = to_storage(self.b, ir.Constant(compute_type(C.dtype), 0 if dtypes.is_int(C.dtype) else 0.0), C.dtype)
        z = self._i64(0)
        self.loop(z, M, lambda i: self.loop(z, N, lambda j: self.b.store(zero, self._at(C, i, j, False)), "gcj"), "gci")

    def _gemm_naive(self, A, B, C, M, N, K, ta, tb) -> None:
        b = self.b
        acc_dt = C.dtype if not dtypes.is_float(C.dtype) else ("float64" if C.dtype == "float64" else "float32")
        z = self._i64(0)

        def row(i):
            def col(j):
                slot = self.entry_alloca(compute_type(acc_dt))
                b.store(convert(b, self._ld(C, i, j, False), C.dtype, acc_dt), slot)

                def kk(k):
                    x = convert(b, self._ld(A, i, k, ta), A.dtype, acc_dt)
                    y = convert(b, self._ld(B, k, j, tb), B.dtype, acc_dt)
                    if dtypes.is_float(acc_dt):
                        b.store(b.fadd(b.load(slot), b.fmul(x, y)), slot)
                    else:
                        b.store(b.add(b.load(slot), b.mul(x, y)), slot)
                self.loop(z, K, kk, "gk")
                b.store(to_storage(b, convert(b, b.load(slot), acc_dt, C.dtype), C.dtype), self._at(C, i, j, False))
            self.loop(z, N, col, "gj")
        self.loop(z, M, row, "gi")

    def _gemm_packed(self, A, B, C, M, N, K, ta, tb) -> None:
        bf = gemm_bf16.dot_operands(A.dtype, B.dtype) and self.bf16dot
        mr, nr = gemm_bf16.tile_for(C.cols_c) if bf else tile_shape(self.vl)
        PackedGemm(self, A, B, C, M, N, K, ta, tb, mr, nr).emit()

    def _microkernel(self, mr: int, nr: int) -> ir.Function:
        name = f"tilec_ukernel_{mr}x{nr}"
        fn = self.module.globals.get(name)
        if fn is not None:
            return fn
        vl = self.vl
        vt = ir.VectorType(F32, vl)
        # (a, a_rs, a_ks, bp, c, ldc, K): A(r, k) = a[r*a_rs + k*a_ks]; Bp packed k-major NR wide.
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR, I64, I64, PTR, PTR, I64, I64]), name=name)
        fn.linkage = "internal"
        for i in (0, 3, 4):
            fn.args[i].add_attribute("noalias")
        ap, a_rs, a_ks, bp, cp, ldc, K = fn.args
        entry = fn.append_basic_block("entry")
        b = ir.IRBuilder(entry)
        nv = nr // vl
        fma = mathlib.intrinsic(self.module, f"llvm.fma.v{vl}f32", vt, [vt, vt, vt])
        slots = [[b.alloca(vt) for _ in range(nv)] for _ in range(mr)]
        crow = [b.gep(cp, [b.mul(ldc, ir.Constant(I64, r))], inbounds=True, source_etype=F32) for r in range(mr)]
        cptr = [[b.gep(crow[r], [ir.Constant(I64, v * vl)], inbounds=True, source_etype=F32) for v in range(nv)]
                for r in range(mr)]
        for r in range(mr):
            for v in range(nv):
                b.store(b.load(cptr[r][v], typ=vt, align=4), slots[r][v])
        arows = [b.gep(ap, [b.mul(a_rs, ir.Constant(I64, r), flags=["nsw"])], inbounds=True, source_etype=F32)
                 for r in range(mr)]
        head, body, done = (fn.append_basic_block(x) for x in ("k.head", "k.body", "k.done"))
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(I64)
        k.add_incoming(ir.Constant(I64, 0), entry)
        b.cbranch(b.icmp_signed("<", k, K), body, done)
        b.position_at_end(body)
        brow = b.gep(bp, [b.mul(k, ir.Constant(I64, nr), flags=["nsw"])], inbounds=True, source_etype=F32)
        bv = [b.load(b.gep(brow, [ir.Constant(I64, v * vl)], inbounds=True, source_etype=F32), typ=vt, align=4)
              for v in range(nv)]
        acol = b.mul(k, a_ks, flags=["nsw"])
        mask = ir.Constant(ir.VectorType(I32, vl), [0] * vl)
        for r in range(mr):
            a = b.load(b.gep(arows[r], [acol], inbounds=True, source_etype=F32), typ=F32)
            av = b.shuffle_vector(b.insert_element(ir.Constant(vt, ir.Undefined), a, ir.Constant(I32, 0)),
                                  ir.Constant(vt, ir.Undefined), mask)
            for v in range(nv):
                b.store(b.call(fma, [av, bv[v], b.load(slots[r][v])]), slots[r][v])
        k.add_incoming(b.add(k, ir.Constant(I64, 1), flags=["nsw"]), body)
        b.branch(head)
        b.position_at_end(done)
        for r in range(mr):
            for v in range(nv):
                b.store(b.load(slots[r][v]), cptr[r][v], align=4)
        b.ret_void()
        return fn
