"""The Cube path for ``T.gemm``: AIV-side requests and the AIC-side matmul service of a mixed kernel.

On 910B the Cube core (AIC) and the Vector cores exchange data only through GM, so a kernel with a gemm
runs as KERNEL_TYPE_MIX_AIC_1_1: the AIV executes the tile program; at each gemm it writes op(A) as
[Mp, Kp] and op(B)^T as [Np, Kp] (zero padded to the fractal sizes) into its GM workspace, names the gemm
in a control word and raises cross-core flag 0. The AIC serves requests in a loop: GM -> L1 with Nd2Nz,
L1 -> L0A (Zz) / L0B (Zn) with LoadData, Mmad into L0C (K in chunks that fit L0), Fixpipe L0C -> GM
workspace as float, then flag 1. The AIV adds the product into C. Request 0 stops the service.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tilec.errors import TilecError
from tilec.ir import dtypes, nodes as N

from .cexpr import CTYPE, cname, to_compute, to_storage
from .cexpr import is_const

L0AB, L0C, L1 = 64 * 1024, 128 * 1024, 512 * 1024 - 256
FLUSH = 255   # request number: Fixpipe the resident accumulator to the workspace
OK_TYPES = {("float16", "float16"), ("bfloat16", "bfloat16"), ("float32", "float32"), ("int8", "int8")}


def _ceil(x: int, m: int) -> int:
    return (x + m - 1) // m * m


@dataclass
class GemmInfo:
    gid: int
    M: int
    N: int
    K: int
    Mp: int
    Np: int
    Kp: int
    Kc: int
    at: str
    acc: str    # C++ type of the L0C accumulator / workspace result
    a_src: Optional[tuple[str, str]] = None   # (GM tensor, row pitch) when A comes straight from GM
    b_src: Optional[tuple[str, str]] = None   # likewise for B
    b_kn: bool = False                        # B is a [K, N] tile (L0B load transposes fractals)

    @property
    def c0(self) -> int:
        return 32 // dtypes.itemsize(self.at)


def _dims2(r: N.Region, what: str, loc) -> tuple[int, int]:
    ext = [e for e in r.extents if not is_const(e, 1)]
    if len(ext) == 1:
        ext = [N.Const(1)] + ext
    if len(ext) != 2 or not all(is_const(e) for e in ext):
        raise TilecError(f"ascend target: gemm operand {what} must be a 2-D tile of constant size", loc)
    return int(ext[0].value), int(ext[1].value)


class Cube:
    def __init__(self) -> None:
        self.gemms: list[GemmInfo] = []
        self.ws_a = self.ws_b = self.ws_c = 0
        self.l1_a = self.l1_b = 0
        self.resident = None          # the LocalBuf of a resident L0C accumulator, if any
        self.flush_shape = None
        self.sources: dict[str, tuple[str, str]] = {}   # direct operand -> (GM tensor, row pitch)

    def record_tile(self, low, c: N.Copy) -> None:
        """A copy into a direct operand: remember which GM tile it names (the AIC will load it)."""
        src, name = c.src, cname(c.dst.buffer.name)
        gbuf = src.buffer
        nu = [d for d, x in enumerate(src.extents) if not is_const(x, 1)]
        starts = [low.px(x) for x in src.starts]
        shape = [low.px(d) for d in gbuf.shape]
        strides = low.strides(gbuf)
        other = [f"({starts[d]}) >= 0 && ({starts[d]}) < {shape[d]}" for d in range(len(shape)) if d not in nu]
        valid = " && ".join(other) if other else "true"
        r, k = nu
        self.sources[c.dst.buffer.name] = (f"{cname(gbuf.name)}Gm", strides[r])
        low.emit(f"// {c.dst.buffer.name} is loaded by the Cube core straight from GM (Nd2Nz): record the tile")
        low.emit(f"{name}Off = {low.linear(gbuf, starts)};")
        low.emit(f"{name}Rows = ({valid}) ? tilec_clip({starts[r]}, {shape[r]}, {low.px(src.extents[r])}) : 0;")
        low.emit(f"{name}Cols = tilec_clip({starts[k]}, {shape[k]}, {low.px(src.extents[k])});")

    def send_tile(self, low, name: str, slot: int, what: str) -> None:
        n = cname(name)
        low.emit(f"ctrlGm.SetValue({slot}, {n}Off);  // {what}: GM offset, valid rows, valid columns")
        low.emit(f"ctrlGm.SetValue({slot + 1}, {n}Rows);")
        low.emit(f"ctrlGm.SetValue({slot + 2}, {n}Cols);")

    def ws_layout(self) -> tuple[int, int, int, int]:
        a = 64
        b = a + _ceil(self.ws_a, 64)
        c = b + _ceil(self.ws_b, 64)
        return a, b, c, c + _ceil(self.ws_c, 64)

    def l1_num(self) -> int:
        """Depth of the L1 operand queues: double buffer when two of each fit in L1."""
        return 2 if 2 * (_ceil(self.l1_a, 512) + _ceil(self.l1_b, 512)) <= L1 else 1

    # ------------------------------------------------------------------ AIV side
    def request(self, s: N.Gemm, low) -> None:
        at, bt = s.a.buffer.dtype, s.b.buffer.dtype
        if (at, bt) not in OK_TYPES:
            raise TilecError(f"ascend target: gemm on {at} x {bt} has no Cube instruction (Mmad takes half, bfloat16, "
                             "float or int8 pairs)", s.loc)
        a0, a1 = _dims2(s.a, "A", s.loc)
        b0, b1 = _dims2(s.b, "B", s.loc)
        M, K = (a1, a0) if s.trans_a else (a0, a1)
        K2, Nn = (b1, b0) if s.trans_b else (b0, b1)
        if K != K2:
            raise TilecError(f"ascend target: gemm K mismatch ({K} vs {K2})", s.loc)
        item = dtypes.itemsize(at)
        c0 = 32 // item
        Mp, Np, Kp = _ceil(M, 16), _ceil(Nn, 16), _ceil(K, c0)
        kc = min(L0AB // (Mp * item), L0AB // (Np * item)) // c0 * c0
        if kc < c0 or Mp * Np * 4 > L0C or (Mp + Np) * Kp * item > L1:
            raise TilecError(f"ascend target: gemm tile {M}x{Nn}x{K} does not fit the Cube's L1/L0 buffers", s.loc)
        acc = "int32_t" if at == "int8" else "float"
        g = GemmInfo(len(self.gemms) + 1, M, Nn, K, Mp, Np, Kp, min(kc, Kp), at, acc)
        plan = low.plan
        a_direct = plan.locals.get(s.a.buffer.name) is not None and plan.locals[s.a.buffer.name].direct
        b_direct = plan.locals.get(s.b.buffer.name) is not None and plan.locals[s.b.buffer.name].direct
        if a_direct:
            g.a_src = self.sources[s.a.buffer.name]
        if b_direct:
            g.b_src = self.sources[s.b.buffer.name]
            g.b_kn = not s.trans_b
        self.gemms.append(g)
        self.ws_a = max(self.ws_a, Mp * Kp * item)
        self.ws_b = max(self.ws_b, Np * Kp * item)
        self.ws_c = max(self.ws_c, Mp * Np * 4)
        self.l1_a, self.l1_b = max(self.l1_a, Mp * Kp * item), max(self.l1_b, Np * Kp * item)
        low.need_scratch(max(Mp * Kp * item, Np * Kp * item, Mp * Np * 4) + 64)
        t = CTYPE[at]
        e = low.emit
        e(f"// T.gemm #{g.gid} on the Cube core: C[{M}x{Nn}] += A[{M}x{K}] * B[{K}x{Nn}]")
        if a_direct:
            self.send_tile(low, s.a.buffer.name, 1, "A")
        else:
            self.stage(low, s.a, g.Mp, g.Kp, M, K, s.trans_a, t, "kWsA", "op(A)")
        if b_direct:
            self.send_tile(low, s.b.buffer.name, 4, "B")
        else:
            self.stage(low, s.b, g.Np, g.Kp, Nn, K, not s.trans_b, t, "kWsB", "op(B)^T")
        clb = plan.locals.get(s.c.buffer.name)
        if clb is not None and clb.resident:
            self.resident = clb
            cn = cname(s.c.buffer.name)
            e(f"ctrlGm.SetValue(7, {cn}Fresh);  // accumulate in L0C; initialise it after a clear")
            self.call(low, g.gid)
            e(f"{cn}Fresh = 0;")
            e(f"{cn}Dirty = 1;")
            return
        self.call(low, g.gid)
        res = f"ubBuf.GetWithOffset<{acc}>({Mp * Np}, kScratch)"
        e(f"wsC{acc[0]}.SetGlobalBuffer((__gm__ {acc}*)(wsBase + kWsC), {Mp * Np});")
        e(f"DataCopy({res}, wsC{acc[0]}, {Mp * Np});")
        e("PipeBarrier<PIPE_ALL>();")
        self.accumulate(low, s, g, res)

    def call(self, low, req: int) -> None:
        e = low.emit
        e(f"ctrlGm.SetValue(0, {req});")
        e("DataCacheCleanAndInvalid<int64_t, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(ctrlGm);")
        e("CrossCoreSetFlag<2, PIPE_MTE3>(0);")
        e("CrossCoreWaitFlag(1);")

    def flush(self, low, lb) -> None:
        """Before the Vector core reads the resident accumulator: bring L0C out through Fixpipe."""
        e, cn = low.emit, cname(lb.buf.name)
        M, Nn = lb.shape
        Mp, Np = _ceil(M, 16), _ceil(Nn, 16)
        acc = CTYPE[lb.buf.dtype]
        self.flush_shape = (Mp, Np, acc)
        self.ws_c = max(self.ws_c, Mp * Np * 4)
        e(f"if ({cn}Fresh) {{  // cleared and no gemm since")
        e(f"    Duplicate({cn}, ({acc})0, {M * Nn});")
        e(f"}} else if ({cn}Dirty) {{  // fetch the L0C accumulator")
        low.ind += 1
        self.call(low, FLUSH)
        wsn = f"wsC{acc[0]}"
        e(f"{wsn}.SetGlobalBuffer((__gm__ {acc}*)(wsBase + kWsC), {Mp * Np});")
        if Nn == Np:
            e(f"DataCopy({cn}, {wsn}, {M * Nn});")
        else:
            e(f"for (int32_t r = 0; r < {M}; ++r)")
            e(f"    for (int32_t c = 0; c < {Nn}; ++c) {cn}.SetValue(r * {Nn} + c, {wsn}.GetValue(r * {Np} + c));")
        e(f"{cn}Dirty = 0;")
        low.ind -= 1
        e("}")
        e("PipeBarrier<PIPE_ALL>();")

    def stage(self, low, r: N.Region, rows: int, cols: int, vr: int, vc: int, transpose: bool, t: str, ws: str,
              what: str) -> None:
        """Write the operand as a zero-padded [rows, cols] ND matrix into the workspace at ``ws``."""
        e = low.emit
        lb = low.plan.locals.get(r.buffer.name)
        whole = lb is not None and all(is_const(st, 0) for st in r.starts) and \
            [d for d in lb.shape if d != 1] == [rows, cols] and not transpose and \
            r.buffer.dtype == CTYPE_INV.get(t, r.buffer.dtype)
        gname = f"ws{ws[3]}"
        e(f"{gname}_{t.replace('_t', '')}.SetGlobalBuffer((__gm__ {t}*)(wsBase + {ws}), {rows * cols});")
        if whole:
            e(f"DataCopy({gname}_{t.replace('_t', '')}, {cname(r.buffer.name)}, {rows * cols});"
              f"  // {what}, already in ND layout")
            e("PipeBarrier<PIPE_ALL>();")
            return
        stage = f"ubBuf.GetWithOffset<{t}>({rows * cols}, kScratch)"
        zero = f"{stage}.ReinterpretCast<int16_t>()" if t == "int8_t" else stage
        # An int8 tile is cleared through its int16 view (`zero`): half as many elements.
        zero_val, zero_count = ("(int16_t)0", rows * cols // 2) if t == "int8_t" else (f"({t})0", rows * cols)
        e(f"Duplicate({zero}, {zero_val}, {zero_count});")
        e(f"PipeBarrier<PIPE_ALL>();  // {what} -> [{rows}, {cols}] ND on the Scalar unit")
        nu = [d for d, x in enumerate(r.extents) if not is_const(x, 1)]
        if len(nu) == 1:
            nu = [None] + nu
        i, j = low.fresh("i"), low.fresh("j")
        # (i, j) walk the operand as stored; the workspace row is the stored column when transposing.
        n0 = vc if transpose else vr
        n1 = vr if transpose else vc
        e(f"for (int32_t {i} = 0; {i} < {n0}; ++{i}) {{")
        e(f"    for (int32_t {j} = 0; {j} < {n1}; ++{j}) {{")
        idx = []
        for d, st in enumerate(r.starts):
            s0 = low.px(st)
            if d == nu[0]:
                idx.append(f"{s0} + {i}")
            elif d == nu[1]:
                idx.append(f"{s0} + {j}")
            else:
                idx.append(s0)
        src = f"{low.tensor(r.buffer)}.GetValue({low.linear(r.buffer, idx)})"
        dst = f"{j} * {cols} + {i}" if transpose else f"{i} * {cols} + {j}"
        e(f"        {stage}.SetValue({dst}, {src});")
        e("    }")
        e("}")
        e("PipeBarrier<PIPE_ALL>();")
        e(f"DataCopy({gname}_{t.replace('_t', '')}, {stage}, {rows * cols});")
        e("PipeBarrier<PIPE_ALL>();")

    def accumulate(self, low, s: N.Gemm, g: GemmInfo, res: str) -> None:
        e = low.emit
        c = s.c
        lb = low.plan.locals.get(c.buffer.name)
        whole = lb is not None and all(is_const(st, 0) for st in c.starts) and list(lb.shape) == [g.M, g.N]
        if whole and c.buffer.dtype == "float32" and g.acc == "float" and g.N == g.Np:
            name = cname(c.buffer.name)
            if s.clear_accum:
                e(f"DataCopy({name}, {res}, {g.M * g.N});")
            else:
                e(f"Add({name}, {name}, {res}, {g.M * g.N});")
            e("PipeBarrier<PIPE_ALL>();")
            return
        i, j = low.fresh("i"), low.fresh("j")
        e(f"for (int32_t {i} = 0; {i} < {g.M}; ++{i}) {{")
        e(f"    for (int32_t {j} = 0; {j} < {g.N}; ++{j}) {{")
        nu = [d for d, x in enumerate(c.extents) if not is_const(x, 1)]
        if len(nu) == 1:
            nu = [None] + nu
        idx = [f"{low.px(st)} + {i}" if d == nu[0] else f"{low.px(st)} + {j}" if d == nu[1] else low.px(st)
               for d, st in enumerate(c.starts)]
        lin = low.linear(c.buffer, idx)
        prod_v = f"({'float' if g.acc == 'float' else 'int32_t'}){res}.GetValue({i} * {g.Np} + {j})"
        old = to_compute(f"{low.tensor(c.buffer)}.GetValue({lin})", c.buffer.dtype)
        val = prod_v if s.clear_accum else f"{old} + {prod_v}"
        e(f"        {low.tensor(c.buffer)}.SetValue({lin}, {to_storage(val, c.buffer.dtype)});")
        e("    }")
        e("}")
        e("PipeBarrier<PIPE_ALL>();")

    # ------------------------------------------------------------------ AIC side
    def service(self) -> list[str]:
        acc = self.flush_shape[2] if self.flush_shape else "float"
        out = ["__aicore__ inline void CubeService() {  // AIC: serve the AIV's gemm requests until request 0"]
        if self.resident is not None:
            out += [f"    cRes = outQueueCO1.AllocTensor<{acc}>();  // the accumulator stays in L0C across requests"]
        out += ["    while (true) {",
               "        CrossCoreWaitFlag(0);",
               ("        DataCacheCleanAndInvalid<int64_t, CacheLine::SINGLE_CACHE_LINE,"
                " DcciDst::CACHELINE_OUT>(ctrlGm);"),
               "        int64_t req = ctrlGm.GetValue(0);",
               "        if (req == 0) break;",
               "        switch (req) {"]
        out += [f"            case {g.gid}: CubeGemm{g.gid}(); break;" for g in self.gemms]
        if self.flush_shape:
            out += [f"            case {FLUSH}: CubeFlush(); break;"]
        out += ["            default: break;", "        }", "        CrossCoreSetFlag<2, PIPE_FIX>(1);", "    }"]
        if self.resident is not None:
            out += ["    outQueueCO1.FreeTensor(cRes);"]
        out += ["}",
                "__aicore__ inline void StopCube() {  // AIV: request 0 ends the AIC's service loop",
                "    ctrlGm.SetValue(0, 0);",
                "    DataCacheCleanAndInvalid<int64_t, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(ctrlGm);",
                "    CrossCoreSetFlag<2, PIPE_S>(0);", "}"]
        for g in self.gemms:
            out += self.gemm_method(g)
        if self.flush_shape:
            Mp, Np, acc = self.flush_shape
            out += [("__aicore__ inline void CubeFlush() {"
                     "  // CopyOut: Fixpipe the L0C accumulator (NZ) -> GM workspace (ND)"),
                    f"    GlobalTensor<{acc}> wsC;",
                    f"    wsC.SetGlobalBuffer((__gm__ {acc}*)(wsBase + kWsC), {Mp * Np});",
                    "    SetFlag<HardEvent::M_FIX>(EVENT_ID0);", "    WaitFlag<HardEvent::M_FIX>(EVENT_ID0);",
                    "    FixpipeParamsV220 fp;",
                    (f"    fp.nSize = {Np}; fp.mSize = {Mp}; fp.srcStride = {Mp}; fp.dstStride = {Np};"
                     " fp.quantPre = QuantMode_t::NoQuant;"),
                    f"    Fixpipe<{acc}, {acc}, CFG_ROW_MAJOR>(wsC, cRes, fp);",
                    "    SetFlag<HardEvent::FIX_M>(EVENT_ID0);", "    WaitFlag<HardEvent::FIX_M>(EVENT_ID0);", "}"]
        return out

    def gemm_method(self, g: GemmInfo) -> list[str]:
        t, c0, acc = CTYPE[g.at], g.c0, g.acc
        L = [f"__aicore__ inline void CubeGemm{g.gid}() {{  // [{g.Mp}x{g.Kp}] x [{g.Kp}x{g.Np}] -> {acc}",
             f"    GlobalTensor<{acc}> wsC;",
             f"    wsC.SetGlobalBuffer((__gm__ {acc}*)(wsBase + kWsC), {g.Mp * g.Np});",
             "    // CopyIn: GM (ND) -> L1 (NZ) with Nd2Nz; ragged tiles are cleared first"]
        L += self.copy_in(g, "a1", "inQueueA1", g.a_src, 1, g.Mp, g.Kp, "kWsA", g.Mp)
        if g.b_kn:
            L += self.copy_in(g, "b1", "inQueueB1", g.b_src, 4, g.Kp, g.Np, "kWsB", g.Kp)
        else:
            L += self.copy_in(g, "b1", "inQueueB1", g.b_src, 4, g.Np, g.Kp, "kWsB", g.Np)
        res = self.resident is not None
        L += [f"    a1 = inQueueA1.DeQue<{t}>();",
              f"    b1 = inQueueB1.DeQue<{t}>();",
              "    bool init = ctrlGm.GetValue(7) != 0;  // first gemm after a clear" if res else
              f"    LocalTensor<{acc}> c1 = outQueueCO1.AllocTensor<{acc}>();",
              f"    for (uint32_t kc = 0; kc < {g.Kp}; kc += {g.Kc}) {{  // K in chunks that fit L0A/L0B",
              f"        uint32_t kl = {g.Kp} - kc < {g.Kc} ? {g.Kp} - kc : {g.Kc};",
              "        // SplitA / SplitB: L1 -> L0A (Zz) and L0B (Zn) with LoadData",
              f"        LocalTensor<{t}> a2 = inQueueA2.AllocTensor<{t}>();",
              f"        LocalTensor<{t}> b2 = inQueueB2.AllocTensor<{t}>();",
              f"        for (uint32_t i = 0; i < {g.Mp // 16}; ++i)",
              (f"            LoadData(a2[i * kl * 16], a1[i * {16 * c0} + kc * {g.Mp}],"
               f" LoadData2DParams(0, kl / {c0}, {g.Mp // 16}, 0, 0, false, 0));")]
        if g.b_kn:
            L += ["        for (uint32_t i = 0; i < kl / 16; ++i)  // [K, N] tile: transpose each 16x16 fractal",
                  (f"            LoadData(b2[i * {g.Np * 16}], b1[(kc / 16 + i) * 256],"
                   f" LoadData2DParams(0, {g.Np // 16}, {g.Kp // 16}, 0, 0, true, 0));")]
        else:
            L += [f"        for (uint32_t j = 0; j < kl / {c0}; ++j)  // op(B)^T in NZ is op(B) in Zn",
                  (f"            LoadData(b2[j * {g.Np * c0}], b1[(kc / {c0} + j) * {g.Np * c0}],"
                   f" LoadData2DParams(0, {g.Np // 16}, 1, 0, 0, false, 0));")]
        L += ["        inQueueA2.EnQue(a2);", "        inQueueB2.EnQue(b2);",
              f"        a2 = inQueueA2.DeQue<{t}>();", f"        b2 = inQueueB2.DeQue<{t}>();",
              "        // Compute: Mmad into L0C, initialised by the first chunk",
              "        MmadParams mp;",
              (f"        mp.m = {g.Mp}; mp.n = {g.Np}; mp.k = kl;"
               f" mp.cmatrixInitVal = {'init && ' if res else ''}(kc == 0);"),
              f"        Mmad({'cRes' if res else 'c1'}, a2, b2, mp);",
              "        inQueueA2.FreeTensor(a2);", "        inQueueB2.FreeTensor(b2);", "    }",
              "    inQueueA1.FreeTensor(a1);", "    inQueueB1.FreeTensor(b1);"]
        if res:
            return L + ["}"]
        L += ["    outQueueCO1.EnQue(c1);", f"    c1 = outQueueCO1.DeQue<{acc}>();",
              "    // CopyOut: Fixpipe L0C (NZ) -> GM workspace (ND) for the Vector core",
              "    FixpipeParamsV220 fp;",
              (f"    fp.nSize = {g.Np}; fp.mSize = {g.Mp}; fp.srcStride = {g.Mp}; fp.dstStride = {g.Np};"
               " fp.quantPre = QuantMode_t::NoQuant;"),
              f"    Fixpipe<{acc}, {acc}, CFG_ROW_MAJOR>(wsC, c1, fp);",
              "    outQueueCO1.FreeTensor(c1);", "}"]
        return L

    def copy_in(self, g: GemmInfo, var: str, q: str, src, slot: int, rows: int, cols: int, ws: str,
                c0_stride: int) -> list[str]:
        t, item = CTYPE[g.at], dtypes.itemsize(g.at)
        L = [f"    LocalTensor<{t}> {var} = {q}.AllocTensor<{t}>();", "    {", "        Nd2NzParams nd;"]
        if src is None:
            L += [f"        GlobalTensor<{t}> ws;",
                  f"        ws.SetGlobalBuffer((__gm__ {t}*)(wsBase + {ws}), {rows * cols});",
                  (f"        nd.ndNum = 1; nd.nValue = {rows}; nd.dValue = {cols}; nd.srcNdMatrixStride = 0;"
                   f" nd.srcDValue = {cols};"),
                  f"        nd.dstNzC0Stride = {c0_stride}; nd.dstNzNStride = 1; nd.dstNzMatrixStride = 0;",
                  f"        DataCopy({var}, ws, nd);"]
        else:
            gm, pitch = src
            L += [(f"        int64_t off = ctrlGm.GetValue({slot}), vr = ctrlGm.GetValue({slot + 1}),"
                   f" vc = ctrlGm.GetValue({slot + 2});"),
                  f"        if (vr < {rows} || vc < {cols})",
                  (f"            InitConstValue({var},"
                   f" InitConstValueParams<{t}>(1, {rows * cols * item // 32}, 0, ({t})0));"),
                  "        if (vr > 0 && vc > 0) {",
                  (f"            nd.ndNum = 1; nd.nValue = vr; nd.dValue = vc; nd.srcNdMatrixStride = 0;"
                   f" nd.srcDValue = {pitch};"),
                  f"            nd.dstNzC0Stride = {c0_stride}; nd.dstNzNStride = 1; nd.dstNzMatrixStride = 0;",
                  f"            DataCopy({var}, {gm}[off], nd);",
                  "        }"]
        L += ["    }", f"    {q}.EnQue({var});"]
        return L


CTYPE_INV = {v: k for k, v in CTYPE.items() if k not in ("bool", "float8_e4m3")}
