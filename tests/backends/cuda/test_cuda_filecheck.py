"""FileCheck tests: the shape of the generated CUDA for the hand-built kernels (cuda_irkit.py).

These pin what a reader of ``get_kernel_source()`` sees: named buffers, source locations in comments,
register layouts, the cp.async ring with its waits and barriers, ldmatrix + mma.sync for gemm,
shuffles for reductions, thread-0 guards for block-level side effects, the host launcher's checks.
The matcher itself is tested in test_cuda_filecheck_matcher.py.
"""
from __future__ import annotations

import pytest

import cuda_support as cs
from tilec.backends.cuda.codegen import generate

irkit = cs.irkit


def src(name: str, arch: str = "sm_90a") -> str:
    text = cs.sources(arch)[name]
    if isinstance(text, Exception):
        raise text
    return text


def test_gemm_pipeline_and_tensor_cores():
    signature = ("__global__ void __launch_bounds__(128) gemm_kernel("
                 "const half* __restrict__ A, const half* __restrict__ B, half* __restrict__ C)")
    cs.filecheck(src("gemm_f16"), """
    CHECK: for sm_90a from kernel 'gemm'
    CHECK-LABEL: """ + signature + """
    CHECK: half* A_s = reinterpret_cast<half*>(smem + 0);  // shared float16[128x32], 3 stages, swizzled
    CHECK-NEXT: half* B_s = reinterpret_cast<half*>(smem + 24576);  // shared float16[32x128], 3 stages, swizzled
    CHECK: // block rasterization in panels of 8 rows (L2 reuse); a permutation of the grid
    CHECK: const int by = _first + _in % _rows;
    CHECK-NEXT: const int bx = _in / _rows;
    CHECK: float C_f[128];  // irkit.py:9:5  fragment C_f: registers, mma accumulator layout, 2x2 warps
    CHECK: // irkit.py:11:5  for k in pipelined
    CHECK-NEXT: // software pipeline: 3 stage(s), cp.async ring over A_s, B_s
    CHECK: for (int _s_1 = 0; _s_1 < 2; ++_s_1) {
    CHECK: tilec::cp_async16(&A_s[_s_1 * 4096 + tilec::swz<32, 8, 4>(_d0, _d1)]
    CHECK: tilec::cp_async_commit();
    CHECK: for (int _it_1 = 0; _it_1 < _hi_1 - _lo_1; ++_it_1) {
    CHECK-NEXT: tilec::cp_async_wait<1>();
    CHECK-NEXT: __syncthreads();
    CHECK-NEXT: if (_lo_1 + _it_1 + 2 < _hi_1) {
    CHECK: stage ((_it_1 + 2) % 3)
    CHECK: tilec::cp_async_commit();
    CHECK-NOT: __syncthreads();
    CHECK: // irkit.py:14:5  gemm A_s, B_s -> C_f
    CHECK-NEXT: // tensor cores: mma.sync m16n8k16 f16, 2x2 warps, warp tile 64x64, 4x8 mma tiles per k step
    CHECK: tilec::ldmatrix_x4(_a[_mt], tilec::smem_u32(&A_s[(_it_1 % 3) * 4096
    CHECK: tilec::ldmatrix_x4_trans(_t, tilec::smem_u32(&B_s[(_it_1 % 3) * 4096
    CHECK: tilec::mma_f16(&C_f[(_mt * 8 + _nt) * 4], _a[_mt], _b[_nt]);
    CHECK: tilec::cp_async_wait<0>();
    CHECK-NEXT: __syncthreads();
    CHECK: // irkit.py:15:5  copy C_f -> C
    CHECK: const int _i = tilec::mma_row<64, 2, 8, false>(_r, _warp, _lane);
    CHECK: C[{{.*}}] = __float2half_rn(C_f[_r]);
    CHECK-LABEL: extern "C" int tilec_launch_gemm(
    CHECK-NOT: cudaFuncSetAttribute
    CHECK: gemm_kernel<<<
    CHECK-NEXT: TILEC_CHECK(cudaGetLastError(), "launch of gemm_kernel (irkit.py:6:5)");
    """)


def test_flash_attention_registers_shuffles_and_smem_attribute():
    cs.filecheck(src("fa_causal"), """
    CHECK-LABEL: flash_attention_kernel(
    CHECK: float acc_s[32];  // irkit.py:10:5  fragment acc_s: registers, mma accumulator layout, 4x1 warps
    CHECK-NEXT: half acc_s_cast[32];
    CHECK: float scores_max[2];  // irkit.py:10:5  fragment scores_max: registers, rows of an mma layout
    CHECK: const int _hi_1 = tilec::floordiv((((bx + 1) * 64) + 63), 64);
    CHECK: // irkit.py:22:5  for i in parallel(0, 64)
    CHECK-NEXT: #pragma unroll
    CHECK-NEXT: for (int _r = 0; _r < 32; ++_r) {
    CHECK-NEXT: const int i = tilec::mma_row<16, 1, 8, false>(_r, _warp, _lane);
    CHECK-NEXT: const int j = tilec::mma_col<64, 1, 8, false>(_r, _warp, _lane);
    CHECK-NEXT: acc_s[_r] = ((((bx * 64) + i) >= ((k * 64) + j)) ? 0.0f : (-CUDART_INF_F));
    CHECK: tilec::ldmatrix_x4(_t, tilec::smem_u32(&K_shared[
    CHECK: // irkit.py:26:5  reduce max acc_s -> scores_max dim=1 noclear
    CHECK: _acc = tilec::fmax_nan(_acc, __shfl_xor_sync(0xffffffffu, _acc, 1));
    CHECK-NEXT: _acc = tilec::fmax_nan(_acc, __shfl_xor_sync(0xffffffffu, _acc, 2));
    CHECK: scores_max[_q] = tilec::fmax_nan(scores_max[_q], _part[_q]);
    CHECK: acc_s[_r] = exp2f(((acc_s[_r] * {{[0-9.]+}}f) - (scores_max[((_r >> 2) / 8) * 2 + ((_r >> 1) & 1)]
    CHECK: // irkit.py:34:5  gemm acc_s_cast, V_shared -> acc_o
    CHECK: _a[_mt][0] = tilec::pack_f16x2(acc_s_cast[(_mt * 8 + 2 * _kk + 0) * 4 + 0]
    CHECK: tilec::ldmatrix_x4_trans(_t, tilec::smem_u32(&V_shared[
    CHECK-LABEL: extern "C" int tilec_launch_flash_attention(
    CHECK-NOT: cudaFuncSetAttribute
    CHECK: return 0;
    """)
    # D=128: 96 KB of shared memory, above the 48 KB default
    cs.filecheck(src("fa"), """
    CHECK-LABEL: extern "C" int tilec_launch_flash_attention(
    CHECK: TILEC_CHECK(cudaFuncSetAttribute(flash_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 98304),
    CHECK-NEXT: "flash_attention_kernel: raising dynamic shared memory to 98304 bytes");
    """)


def test_barriers_guards_and_multiple_launches():
    cs.filecheck(src("tileops_misc"), """
    CHECK-LABEL: tileops_misc_kernel0(
    CHECK: // irkit.py:2:5  hint use_swizzle(10,) (no effect in this backend)
    CHECK: // irkit.py:3:5  copy S -> S_s
    CHECK-NOT: __syncthreads();
    CHECK: // irkit.py:4:5  fill row, 1.0
    CHECK: // irkit.py:5:5  reduce max S_s -> row dim=1
    CHECK-NEXT: __syncthreads();
    CHECK: for (int _o = _warp; _o < 64; _o += 4) {
    CHECK: _acc = tilec::fmax_nan(_acc, __shfl_xor_sync(0xffffffffu, _acc, 16));
    CHECK: if (_lane == 0) row[_d0] = _acc;
    CHECK: // irkit.py:9:5  cumsum S_s -> F dim=1
    CHECK: // irkit.py:11:5  cumsum S_s -> F dim=0 reverse
    CHECK: const int _t = 64 - 1 - _l;
    CHECK: // irkit.py:13:5  atomic add Af[0 +: 1] <- 1.0
    CHECK-NEXT: if (_tid == 0) {
    CHECK-NEXT: tilec::atomic_add(&Af[0], 1.0f);
    CHECK: tilec::atomic_max(&Ah[1], tilec::round_f16(
    CHECK: tilec::atomic_min(&Ai[2], (-j));
    CHECK: while ((cnt < 3)) {
    CHECK: if (_tid == 0) {
    CHECK-NEXT: I[0] = cnt;
    CHECK-LABEL: tileops_misc_kernel1(
    CHECK: Cs[((long long)(by) * 96 + j)] = (T2[
    CHECK-LABEL: extern "C" int tilec_launch_tileops_misc(
    CHECK: tileops_misc_kernel0<<<
    CHECK: tileops_misc_kernel1<<<
    """)


def test_symbolic_dims_are_kernel_arguments_and_tails_are_predicated():
    cs.filecheck(src("gemm_ragged_M"), """
    CHECK-LABEL: gemm_kernel(const half* __restrict__ A, const half* __restrict__ B, half* __restrict__ C, int M)
    CHECK: (unsigned)(_s0) < (unsigned)(M) && (unsigned)(_s1) < (unsigned)(1000) ? (const void*)(&A[
    CHECK: if ((unsigned)(((by * 64) + _i)) < (unsigned)(M) && (unsigned)(((bx * 64) + _j)) < (unsigned)(1000)) C[
    CHECK-LABEL: extern "C" int tilec_launch_gemm(
    CHECK: const int M = static_cast<int>(dims[0]);
    CHECK: _gy = tilec::floordiv((static_cast<long long>(M) + 63), 64)
    """)


def test_fma_fallback_and_shared_accumulator():
    cs.filecheck(src("gemm_fp32"), """
    CHECK: float C_f[32];  // irkit.py:9:5  fragment C_f: registers, rows over warps, columns over lanes
    CHECK: // gemm on CUDA cores (FMA): float32 x float32 -> float32
    CHECK: for (int _r = 0; _r < 32; ++_r) {
    CHECK-NEXT: const int _i = _warp * 16 + _r / 2;
    CHECK-NEXT: const int _j = (_r % 2) * 32 + _lane;
    CHECK: for (int _k = 0; _k < 16; ++_k) {
    CHECK-NOT: mma_f16
    CHECK-LABEL: extern "C"
    """)
    cs.filecheck(src("gemm_shared_acc"), """
    CHECK: // fragment float32[48x48]
    CHECK: // gemm on CUDA cores (FMA): float16 x float16 -> float32
    """)


def test_lane_layout_keeps_softmax_in_registers():
    cs.filecheck(src("row_softmax"), """
    CHECK-LABEL: row_softmax_kernel(
    CHECK-NOT: __syncthreads
    CHECK-NOT: smem +
    CHECK: float x[32];  // irkit.py:2:5  fragment x: registers, rows over warps, columns over lanes
    CHECK-NEXT: float mx[4];  // irkit.py:2:5  fragment mx: registers, rows over warps, replicated over lanes
    CHECK: const int _i = _warp * 4 + _r / 8;
    CHECK-NEXT: const int _j = (_r % 8) * 32 + _lane;
    CHECK-NEXT: x[_r] = {{.*}}__half2float(X[
    CHECK: // irkit.py:4:5  reduce max x -> mx dim=1
    CHECK: _acc = tilec::fmax_nan(_acc, x[_q * 8 + _c]);
    CHECK: _acc = tilec::fmax_nan(_acc, __shfl_xor_sync(0xffffffffu, _acc, 16));
    CHECK: mx[_q] = _acc;
    CHECK: x[_r] = exp2f((x[_r] - mx[_r / 8]));
    CHECK: x[_r] = (x[_r] / sm[_r / 8]);
    CHECK: Y[{{.*}}] = __float2half_rn(x[_r]);
    CHECK-LABEL: extern "C"
    """)


def test_odd_n_tiles_use_ldmatrix_x2_and_one_stage_waits_inside():
    cs.filecheck(src("gemm_odd_nt"), """
    CHECK: // software pipeline: 1 stage(s)
    CHECK: for (int _it_1 = 0;
    CHECK-NEXT: __syncthreads();
    CHECK: tilec::cp_async_commit();
    CHECK-NEXT: tilec::cp_async_wait<0>();
    CHECK-NEXT: __syncthreads();
    CHECK: tilec::ldmatrix_x2_trans(_b[_nt],
    """)


def test_transposed_operands():
    cs.filecheck(src("gemm_trans_a"), """
    CHECK: tilec::ldmatrix_x4_trans(_a[_mt],
    CHECK: tilec::mma_bf16(
    """)
    cs.filecheck(src("gemm_bf16_nt"), """
    CHECK: gemm_kernel(const __nv_bfloat16* __restrict__ A
    CHECK: 4 stage(s)
    CHECK: tilec::ldmatrix_x4(_t,
    CHECK: tilec::mma_bf16(
    """)


@pytest.mark.parametrize("dtype,load,store", [
    ("float16", "__half2float(X[idx])", "Y[idx] = __float2half_rn("),
    ("bfloat16", "__bfloat162float(X[idx])", "Y[idx] = tilec::f32_to_bf16("),
    ("float8_e4m3", "static_cast<float>(X[idx])", "Y[idx] = tilec::f32_to_e4m3("),
    ("float32", "X[idx]", "Y[idx] = ((isnan(X[idx])"),
])
def test_dtypes_compute_in_float_and_round_on_store(dtype, load, store):
    cs.filecheck(src(f"elementwise_{dtype}"), f"""
    CHECK: for (int _p = _tid; _p < 256; _p += 128) {{
    CHECK: if ((idx < n)) {{
    CHECK: {store}
    CHECK-SAME-LINE-IS-NOT-A-DIRECTIVE
    CHECK: tilec::floormod(a, 5)
    CHECK: tilec::round_bf16({load})
    CHECK-LABEL: tilec_launch_elementwise_{dtype}(
    CHECK: const int n = static_cast<int>(dims[0]);
    """.replace("CHECK-SAME-LINE-IS-NOT-A-DIRECTIVE", ""))


def test_generation_is_deterministic():
    a = generate(irkit.flash_attention(causal=True), "sm_80").text
    b = generate(irkit.flash_attention(causal=True), "sm_80").text
    assert a == b
    assert "for sm_80" in a


def test_linked_accumulators_share_a_warp_grid():
    """Attention with 32 query rows on 4 warps: P cannot be a register operand (that needs 16 rows a
    warp with whole rows), so both GEMMs get ordinary grids; S [32x64] takes the grid of the wider O
    [32x128] (1x4), so the softmax's row state fits both and S stays in registers on tensor cores
    (with independent choices S took 2x2, lost its register layout and its GEMM ran on CUDA cores)."""
    import pathlib
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).parents[3] / "examples"))
    import flash_attention
    func = flash_attention.flash_attention(1, 2, 256, 128, False, block_M=32, block_N=64, threads=128).func
    cs.filecheck(generate(func, "sm_90a").text, """
    CHECK: float acc_s[16];  // {{.*}}fragment acc_s: registers, mma accumulator layout, 1x4 warps
    CHECK: float acc_o[32];  // {{.*}}fragment acc_o: registers, mma accumulator layout, 1x4 warps
    CHECK: // tensor cores: mma.sync m16n8k16 f16, 1x4 warps, warp tile 32x16
    CHECK-NOT: CUDA cores (FMA)
    CHECK: // tensor cores: mma.sync m16n8k16 f16, 1x4 warps, warp tile 32x32
    CHECK-NOT: CUDA cores (FMA)
    CHECK-LABEL: extern "C"
    """)
