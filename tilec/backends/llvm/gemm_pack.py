"""One packed ``T.gemm`` call as it is emitted: packing of A and B, the tile loops, ragged edges.

``PackedGemm`` holds the state of one gemm (operands, sizes, mode, scratch buffers) that its helpers
share; ``lower_gemm.GemmLowering`` creates it for float gemms and calls ``emit``. Two modes:
- float32: B is packed into NR-wide k-major panels (converted from float16/bfloat16/float8; a
  transposed float32 B with 16x16 in-register transposes); float32 A is read in place through its row
  and k strides (only a ragged last MR panel is packed), other A dtypes are packed into MR panels.
- bf16 (AVX512-BF16 host, bfloat16/float8_e4m3 A and B, ``gemm_bf16.dot_operands``): B packed as
  bit pairs along k (``kp`` = K rounded up to even; 16-column row interleaves, or 16x16 transposes of
  32-bit pairs for a transposed B), a row-major bfloat16 A read in place as 32-bit pairs (others
  packed, float8 converted to bfloat16 exactly), K above ``KC`` processed in KC-wide chunks, for the
  ``vdpbf16ps`` kernel of gemm_bf16.py.
Full float32 C tiles are updated in place by the micro-kernel; ragged tiles and other C dtypes go
through a float32 scratch tile.
"""
from __future__ import annotations

from llvmlite import ir

from . import gemm_bf16
from .types import F32, I1, I16, I32, I64, PTR, VOID, array_alloca, convert, to_storage


KC = 256  # k values per chunk in bf16 mode (an even number)


class PackedGemm:
    def __init__(self, cg, A, B, C, M, N, K, ta: bool, tb: bool, mr: int, nr: int):
        self.cg, self.b = cg, cg.b
        self.A, self.B, self.C, self.M, self.N, self.K, self.ta, self.tb = A, B, C, M, N, K, ta, tb
        self.mr, self.nr = mr, nr
        b, i64 = self.b, cg._i64
        self.frees: list = []
        self.bf = gemm_bf16.dot_operands(A.dtype, B.dtype) and cg.bf16dot
        self.et, self.zero = (I16, ir.Constant(I16, 0)) if self.bf else (F32, ir.Constant(F32, 0.0))
        kc = A.rows_c if ta else A.cols_c
        self.kp = b.and_(b.add(K, i64(1)), i64(-2)) if self.bf else K
        kpc = (kc + (kc & 1) if self.bf else kc) if kc else None
        self.kclamp = self.bf and not (kc and kc % 2 == 0)  # odd/unknown K: the pad k reads a clamped index
        self.mp = b.sdiv(b.add(M, i64(mr - 1)), i64(mr))     # number of A panels
        # A read in place: float32 through its strides; bf16 pairs as 32-bit words of a row-major A
        self.direct_a = (A.dtype == "float32") if not self.bf else \
            (A.dtype == "bfloat16" and not ta and A.unit_cols and not self.kclamp)
        mc = C.rows_c
        panels_c = 1 if self.direct_a else (-(-mc // mr) if mc else None)
        ap_n = (ir.Constant(I64, panels_c * mr * kpc) if panels_c and kpc else
                b.mul(b.mul(i64(1) if self.direct_a else self.mp, i64(mr)), self.kp))
        # kc blocking (bf16 mode, even constant K): B is packed and multiplied KC values of k at a time, so
        # a B panel stays in L1 (KC x NR x 2 bytes = 32 KiB) and the C tile is updated once per chunk
        self.chunk = KC if self.bf and not self.kclamp and kpc and kpc > KC else None
        self.kpc = kpc
        self.kbase, self.kcnt = i64(0), self.kp    # the k range of the current chunk
        bp_n = ir.Constant(I64, (self.chunk or kpc) * nr) if kpc else b.mul(self.kp, i64(nr))
        self.ap, self.bp = self.scratch(ap_n, self.et), self.scratch(bp_n, self.et)
        self.ct = self.scratch(ir.Constant(I64, mr * nr), F32)
        self.z = i64(0)
        self.m_last, self.n_last, self.k_last = (b.sub(x, i64(1)) for x in (M, N, K))

    # -- small helpers -------------------------------------------------------------------------------
    def scratch(self, count, et: ir.Type) -> ir.Value:
        """A buffer of ``count`` elements of ``et``, 64-byte aligned (stack when constant and small)."""
        size = 4 if et == F32 else 2
        if isinstance(count, ir.Constant) and count.constant * size <= 512 * 1024:
            self.cg.stack_bytes += int(count.constant) * size
            return array_alloca(self.cg.alloca_b, et, int(count.constant), align=64)
        p = self.cg.heap_alloc(self.b.mul(count, self.cg._i64(size)))
        self.frees.append(p)
        return p

    def ksteps(self, body, whole: bool = False) -> None:
        """Loop over k in packing order (the current chunk, or all of K when ``whole``); ``body(k, kpos)``
        where kpos locates k inside a panel row (relative to the chunk)."""
        b, i64 = self.b, self.cg._i64
        if not self.bf:
            self.cg.loop(self.z, self.K, lambda k: body(k, k), "pk")
            return
        base, count = (self.z, self.kp) if whole else (self.kbase, self.kcnt)

        def pair(kh):
            for t in (0, 1):
                body(b.add(base, b.add(b.mul(kh, i64(2)), i64(t))), (kh, t))
        self.cg.loop(self.z, b.ashr(count, i64(1)), pair, "pkh")

    def off(self, kpos, width: int, lane) -> ir.Value:
        """Element offset of (k, lane) in a k-major panel ``width`` lanes wide."""
        b, i64 = self.b, self.cg._i64
        if not self.bf:
            return b.add(b.mul(kpos, i64(width)), lane)
        kh, t = kpos
        return b.add(b.add(b.mul(kh, i64(2 * width)), b.mul(lane, i64(2))), i64(t))

    def load(self, op, i, k, trans: bool) -> ir.Value:
        """op(A)[i, k] or op(B)[k, i]: a float32 value, or the raw bits in bf16 mode."""
        kk = self.cg._smin(k, self.k_last) if self.kclamp else k
        r, c = (i, kk) if op is self.A else (kk, i)
        if not self.bf:
            return self.cg._ld(op, r, c, trans)
        if op.dtype == "float8_e4m3":  # exact in bfloat16: the top half of its float32 value
            bits = self.b.bitcast(self.cg._ld(op, r, c, trans), I32)
            return self.b.trunc(self.b.lshr(bits, ir.Constant(I32, 16)), I16)
        return self.b.load(self.cg._at(op, r, c, trans), typ=I16)

    # -- A ---------------------------------------------------------------------------------------------
    def pack_a(self, p, base=None) -> None:
        b, i64, mr = self.b, self.cg._i64, self.mr
        base = b.mul(b.mul(p, self.kp), i64(mr)) if base is None else base
        rows = [b.add(b.mul(p, i64(mr)), i64(r)) for r in range(mr)]
        oks = [b.icmp_signed("<", i, self.M) for i in rows]
        clamped = [self.cg._smin(i, self.m_last) for i in rows]

        def body(k, kpos):
            for r in range(mr):
                ok = b.and_(oks[r], b.icmp_signed("<", k, self.K)) if self.kclamp else oks[r]
                v = b.select(ok, self.load(self.A, clamped[r], k, self.ta), self.zero)
                b.store(v, b.gep(self.ap, [b.add(base, self.off(kpos, mr, i64(r)))], inbounds=True,
                                 source_etype=self.et))
        self.ksteps(body, whole=True)

    def prepare_a(self) -> None:
        b, i64 = self.b, self.cg._i64
        if not self.direct_a:
            self.cg.loop(self.z, self.mp, self.pack_a, "pa")
            return
        ragged = b.icmp_signed("<", self.M, b.mul(self.mp, i64(self.mr)))
        self.cg.when(ragged, lambda: self.pack_a(b.sub(self.mp, i64(1)), base=self.z))
        cs = self.A.cs if not self.A.unit_cols else i64(1)
        if self.bf:  # i16 elements: a row's pair h is the word at 2h
            self.a_rs, self.a_ks = self.A.ld, i64(2)
        else:
            self.a_rs, self.a_ks = (cs, self.A.ld) if self.ta else (self.A.ld, cs)

    def a_args(self, p, rows_ok) -> list:
        """Micro-kernel arguments for A's panel p: (ptr, row stride, k stride) in elements of A's type
        (bf16 mode: i16 elements, the k stride steps one pair)."""
        b, i64, mr = self.b, self.cg._i64, self.mr
        prs, pks = (i64(2), i64(2 * mr)) if self.bf else (i64(1), i64(mr))  # a packed panel's strides
        koff = b.mul(self.kbase, i64(mr))  # the chunk's start inside a packed panel ([k/2][r][2] or [k][r])
        if self.direct_a:
            last = b.gep(self.ap, [koff], inbounds=True, source_etype=self.et)
            return [b.select(rows_ok, self.cg._at(self.A, b.mul(p, i64(mr)), self.kbase, self.ta), last),
                    b.select(rows_ok, self.a_rs, prs), b.select(rows_ok, self.a_ks, pks)]
        start = b.add(b.mul(b.mul(p, self.kp), i64(mr)), koff)
        panel = b.gep(self.ap, [start], inbounds=True, source_etype=self.et)
        return [panel, prs, pks]

    # -- B ---------------------------------------------------------------------------------------------
    def _pack_b_elem(self, jp, j, k, kpos, edge: bool) -> None:
        b, cg = self.b, self.cg
        col = b.add(jp, j)
        if edge:
            ok = b.icmp_signed("<", col, self.N)
            if self.kclamp:
                ok = b.and_(ok, b.icmp_signed("<", k, self.K))
            v = b.select(ok, self.load(self.B, cg._smin(col, self.n_last), k, self.tb), self.zero)
        else:
            v = self.load(self.B, col, k, self.tb)
            if self.kclamp:
                v = b.select(b.icmp_signed("<", k, self.K), v, self.zero)
        b.store(v, b.gep(self.bp, [self.off(kpos, self.nr, j)], inbounds=True, source_etype=self.et))

    def pack_b(self, jp) -> None:
        """B's panel at column jp; full panels take no clamps (contiguous, vectorizable)."""
        b, cg, z, nr = self.b, self.cg, self.z, self.nr
        elem = self._pack_b_elem

        def variant(edge: bool):
            fast = not edge and self.B.unit_cols and cg.vl == 16
            if fast and self.bf and not self.kclamp and self.B.dtype == "bfloat16":
                self.pack_bt_words(jp) if self.tb else self.pack_b_pairs(jp)
            elif fast and self.tb and not self.bf and self.B.dtype == "float32":
                self.pack_bt_words(jp)
            elif self.tb:  # B is stored [N, K]: read along k
                cg.loop(z, cg._i64(nr), lambda j: self.ksteps(lambda k, kpos: elem(jp, j, k, kpos, edge)), "pbj")
            else:
                self.ksteps(lambda k, kpos: cg.loop(z, cg._i64(nr), lambda j: elem(jp, j, k, kpos, edge), "pbj"))
        cg.when(b.icmp_signed("<=", b.add(jp, cg._i64(nr)), self.N), lambda: variant(False), lambda: variant(True))

    def pack_b_pairs(self, jp) -> None:
        """bf16 mode, B stored ``[K, N]``: Bp row h interleaves B's rows 2h and 2h+1, 16 columns a step
        (two 16 x i16 loads, one two-source shuffle, one 32 x i16 store)."""
        b, cg, i64, nr = self.b, self.cg, self.cg._i64, self.nr
        vt = ir.VectorType(I16, 16)
        mix = ir.Constant(ir.VectorType(I32, 32), [(c >> 1) + 16 * (c & 1) for c in range(32)])

        def row(h):
            k0 = b.add(self.kbase, b.mul(h, i64(2)))
            for j0 in range(0, nr, 16):
                col = b.add(jp, i64(j0))
                x = b.load(cg._at(self.B, k0, col, False), typ=vt, align=2)
                y = b.load(cg._at(self.B, b.add(k0, i64(1)), col, False), typ=vt, align=2)
                dst = b.gep(self.bp, [b.add(b.mul(h, i64(2 * nr)), i64(2 * j0))], inbounds=True, source_etype=I16)
                b.store(b.shuffle_vector(x, y, mix), dst, align=4)
        cg.loop(self.z, b.ashr(self.kcnt, i64(1)), row, "pbp")

    def pack_bt_words(self, jp) -> None:
        """Pack a full panel of a transposed B (stored ``[N, K]``) with 16x16 in-register transposes.

        The unit is a 32-bit word: a float32, or (bf16 mode) the pair of k values 2h, 2h+1, so Bp is
        ``Bp[h][j]`` words either way. Rows of the stored B are contiguous along k; the panel wants
        k-major rows of NR columns. Element-wise packing vectorizes into scatters (slow); here 16 rows
        x 16 words are loaded as 16 vectors, transposed by four stages of two-source shuffles (each
        swaps the off-diagonal d x d blocks, d = 8, 4, 2, 1) and stored as 16 contiguous vectors. A
        tail of fewer than 16 words runs element-wise.
        """
        b, cg, i64, nr = self.b, self.cg, self.cg._i64, self.nr
        et, scale = (I32, 2) if self.bf else (F32, 1)  # words; B elements per word
        vt, mt = ir.VectorType(et, 16), ir.VectorType(I32, 16)
        words = b.ashr(self.kcnt, i64(1)) if self.bf else self.K
        kb = b.sdiv(words, i64(16))

        def src(h, j):
            return cg._at(self.B, b.add(self.kbase, b.mul(h, i64(scale))), b.add(jp, j), True)

        def dst(h, j):
            return b.gep(self.bp, [b.add(b.mul(h, i64(nr)), j)], inbounds=True, source_etype=et)

        def block(k16):
            k0 = b.mul(k16, i64(16))
            for j0 in range(0, nr, 16):
                rows = [b.load(src(k0, i64(j0 + r)), typ=vt, align=2 if self.bf else 4) for r in range(16)]
                for d in (8, 4, 2, 1):
                    lo = ir.Constant(mt, [c if not c & d else 16 + c - d for c in range(16)])
                    hi = ir.Constant(mt, [c + d if not c & d else 16 + c for c in range(16)])
                    for i in (i for i in range(16) if not i & d):
                        x, y = rows[i], rows[i + d]
                        rows[i], rows[i + d] = b.shuffle_vector(x, y, lo), b.shuffle_vector(x, y, hi)
                for kk in range(16):
                    b.store(rows[kk], dst(b.add(k0, i64(kk)), i64(j0)), align=4)
        cg.loop(self.z, kb, block, "pbt")

        def tail(j):
            cg.loop(b.mul(kb, i64(16)), words,
                    lambda h: b.store(b.load(src(h, j), typ=et, align=2 if self.bf else 4), dst(h, j)), "pbtk")
        cg.loop(self.z, i64(nr), tail, "pbtj")

    # -- tiles -----------------------------------------------------------------------------------------
    def tile(self, uk, jp, p) -> None:
        b, cg, i64, C = self.b, self.cg, self.cg._i64, self.C
        i0 = b.mul(p, i64(self.mr))
        rows_ok = b.icmp_signed("<=", b.add(i0, i64(self.mr)), self.M)
        a_args = self.a_args(p, rows_ok)
        steps = b.ashr(self.kcnt, i64(1)) if self.bf else self.K
        full = b.and_(rows_ok, b.icmp_signed("<=", b.add(jp, i64(self.nr)), self.N))
        if C.dtype != "float32" or not C.unit_cols:
            full = ir.Constant(I1, 0)

        def direct():
            b.call(uk, a_args + [self.bp, cg._at(C, i0, jp, False), C.ld, steps])

        def edge():
            self.edge_tile(i0, jp, lambda: b.call(uk, a_args + [self.bp, self.ct, i64(self.nr), steps]))
        cg.when(full, direct, edge)

    def edge_tile(self, i0, j0, run) -> None:
        """Run the micro-kernel on a float32 copy of C's (clipped) tile and write the valid part back."""
        b, cg, C, ct, nr = self.b, self.cg, self.C, self.ct, self.nr

        def each(write: bool):
            def rr(r):
                def cc(c):
                    i, j = b.add(i0, r), b.add(j0, c)
                    ok = b.and_(b.icmp_signed("<", i, self.M), b.icmp_signed("<", j, self.N))
                    slot = b.gep(ct, [b.add(b.mul(r, cg._i64(nr)), c)], inbounds=True, source_etype=F32)
                    if write:
                        v = to_storage(b, convert(b, b.load(slot, typ=F32), "float32", C.dtype), C.dtype)
                        cg.when(ok, lambda: b.store(v, cg._at(C, i, j, False)))
                    else:
                        b.store(ir.Constant(F32, 0.0), slot)
                        cg.when(ok, lambda: b.store(convert(b, cg._ld(C, i, j, False), C.dtype, "float32"), slot))
                cg.loop(cg._i64(0), cg._i64(nr), cc, "ec")
            cg.loop(cg._i64(0), cg._i64(self.mr), rr, "er")
        each(False)
        run()
        each(True)

    def emit(self) -> None:
        b, cg, i64 = self.b, self.cg, self.cg._i64
        self.prepare_a()
        uk = gemm_bf16.declare(cg.module, self.mr, self.nr) if self.bf else cg._microkernel(self.mr, self.nr)

        def panel(jp0):
            jp = b.mul(jp0, i64(self.nr))
            self.pack_b(jp)
            cg.loop(self.z, self.mp, lambda p: self.tile(uk, jp, p), "gt")

        def panels():
            cg.loop(self.z, b.sdiv(b.add(self.N, i64(self.nr - 1)), i64(self.nr)), panel, "gp")

        def chunk(c):  # BLIS order: kc -> jr (NR panels of B) -> ir (MR panels of A) -> k
            self.kbase = b.mul(c, i64(self.chunk))
            self.kcnt = cg._smin(i64(self.chunk), b.sub(self.kp, self.kbase))
            panels()
        if self.chunk:
            cg.loop(self.z, i64(-(-self.kpc // self.chunk)), chunk, "gkc")
        else:
            panels()
        free = cg.module.globals.get("free") or ir.Function(cg.module, ir.FunctionType(VOID, [PTR]), "free")
        for p in self.frees:
            b.call(free, [p])
