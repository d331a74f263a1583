"""The bfloat16 GEMM micro-kernel for hosts with AVX512-BF16, written as textual LLVM IR.

``vdpbf16ps`` multiplies pairs of bfloat16 and adds both products to a float32 lane: twice the work of a
float32 FMA per instruction. llvmlite.ir has no ``bfloat`` type, so this one function is emitted as
text and spliced into the module (``render``) in place of its llvmlite declaration. Operands are packed
as bfloat16 bit pairs along k: A panels ``Ap[k/2][r][2]``, B panels ``Bp[k/2][j][2]``, odd K padded
with zero. The instruction flushes bfloat16 subnormal inputs to zero (DAZ/FTZ, round to nearest even);
every other input gives the float32-accumulated product sum within float32 rounding of the FMA path.
"""
from __future__ import annotations

from llvmlite import ir

from .types import I64, PTR, VOID

_INTR = "llvm.x86.avx512bf16.dpbf16ps.512"
TILE = (4, 64)  # MR x NR of the micro-kernel: 16 <16 x float> accumulators
NARROW = {16: (16, 16), 32: (8, 32), 48: (4, 48)}  # NR -> tile for gemms narrower than 64 columns


def tile_for(n_const) -> tuple[int, int]:
    """(MR, NR) for a gemm whose C has ``n_const`` columns (None: not a constant): a narrow C (the MoE
    gate's 16 experts) gets a narrow tile, so no lanes are wasted and C tiles are updated in place."""
    return NARROW.get(-(-n_const // 16) * 16, TILE) if n_const else TILE


def available(features: str, vl: int) -> bool:
    return vl == 16 and "+avx512bf16" in features


def dot_operands(a_dtype: str, b_dtype: str) -> bool:
    """Whether a gemm with these input dtypes runs on ``vdpbf16ps``: bfloat16 and float8_e4m3 operands
    in any mix (float8_e4m3 converts to bfloat16 exactly while packing: 3 mantissa bits, exponents -9..8,
    its subnormals are normal bfloat16). float16 does not fit bfloat16 and keeps the float32 path."""
    ok = ("bfloat16", "float8_e4m3")
    return a_dtype in ok and b_dtype in ok


def declare(module: ir.Module, mr: int, nr: int) -> ir.Function:
    """Declare the micro-kernel in llvmlite and register its text body for ``render``."""
    name = f"tilec_ukernel_bf16_{mr}x{nr}"
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64, PTR, PTR, I64, I64]), name=name)
        defs = getattr(module, "tilec_text_defs", {})
        defs[name] = _kernel_text(name, mr, nr)
        module.tilec_text_defs = defs
    return fn


def render(module: ir.Module) -> str:
    """The module's text with textual function definitions in place of their declarations."""
    text = str(module)
    defs = getattr(module, "tilec_text_defs", {})
    if not defs:
        return text
    lines = [ln for ln in text.splitlines() if not (ln.startswith("declare") and any(f'@"{n}"' in ln for n in defs))]
    out = "\n".join(lines) + "\n"
    if any("dpbf16ps" in d for d in defs.values()):
        out += f"declare <16 x float> @{_INTR}(<16 x float>, <32 x bfloat>, <32 x bfloat>)\n"
    return out + "\n".join(defs.values())


def _kernel_text(name: str, mr: int, nr: int) -> str:
    """(a, a_rs, a_ks, bp, c, ldc, kh): C[mr, nr] += A . Bp over kh bfloat16 pairs.

    The pair (A[r, 2h], A[r, 2h+1]) is the 32-bit word at ``a + r*a_rs + h*a_ks`` (i16 elements): a
    packed panel (a_rs = 2, a_ks = 2*mr) or a row-major A read in place (a_rs = row stride, a_ks = 2).
    Bp is k-pair-major, ``Bp[h][j][2]``; C is float32 with row stride ldc. Per pair step: nr/16 vector
    loads of B, mr 32-bit broadcasts of A and mr*nr/16 ``vdpbf16ps``, accumulators in registers.
    """
    nv = nr // 16
    L = [f'define internal void @"{name}"(ptr noalias %ap, i64 %ars, i64 %aks, ptr noalias %bp, ptr noalias %c, '
         'i64 %ldc, i64 %kh) {', "entry:"]
    for r in range(mr):
        L.append(f"  %crow{r} = mul nsw i64 %ldc, {r}")
        L.append(f"  %arow{r} = mul nsw i64 %ars, {r}")
        L.append(f"  %apr{r} = getelementptr inbounds i16, ptr %ap, i64 %arow{r}")
        for v in range(nv):
            L.append(f"  %co{r}_{v} = add nsw i64 %crow{r}, {v * 16}")
            L.append(f"  %cp{r}_{v} = getelementptr inbounds float, ptr %c, i64 %co{r}_{v}")
            L.append(f"  %c{r}_{v} = load <16 x float>, ptr %cp{r}_{v}, align 4")
    L += ["  br label %head", "head:", "  %k = phi i64 [ 0, %entry ], [ %k1, %body ]"]
    for r in range(mr):
        for v in range(nv):
            L.append(f"  %acc{r}_{v} = phi <16 x float> [ %c{r}_{v}, %entry ], [ %n{r}_{v}, %body ]")
    L += ["  %more = icmp slt i64 %k, %kh", "  br i1 %more, label %body, label %done", "body:",
          f"  %bo = mul nsw i64 %k, {2 * nr}", "  %ao = mul nsw i64 %k, %aks"]
    for v in range(nv):
        L.append(f"  %bo{v} = add nsw i64 %bo, {32 * v}")
        L.append(f"  %bp{v} = getelementptr inbounds i16, ptr %bp, i64 %bo{v}")
        L.append(f"  %b{v} = load <32 x bfloat>, ptr %bp{v}, align 4")
    for r in range(mr):
        L.append(f"  %app{r} = getelementptr inbounds i16, ptr %apr{r}, i64 %ao")
        L.append(f"  %a{r} = load i32, ptr %app{r}, align 2")
        L.append(f"  %ai{r} = insertelement <16 x i32> poison, i32 %a{r}, i64 0")
        L.append(f"  %as{r} = shufflevector <16 x i32> %ai{r}, <16 x i32> poison, <16 x i32> zeroinitializer")
        L.append(f"  %ab{r} = bitcast <16 x i32> %as{r} to <32 x bfloat>")
        for v in range(nv):
            L.append(f"  %n{r}_{v} = call <16 x float> @{_INTR}(<16 x float> %acc{r}_{v}, <32 x bfloat> %ab{r}, "
                     f"<32 x bfloat> %b{v})")
    L += ["  %k1 = add nsw i64 %k, 1", "  br label %head", "done:"]
    for r in range(mr):
        for v in range(nv):
            L.append(f"  store <16 x float> %acc{r}_{v}, ptr %cp{r}_{v}, align 4")
    L += ["  ret void", "}", ""]
    return "\n".join(L)
