"""Kernels written with ``T.prim_func`` (the TileLang dialect) on the interpreter, against torch/numpy:
GEMM with a symbolic dimension, RMSNorm and softmax on ragged rows, flash attention (causal and not),
a data-dependent gather inside T.Parallel, a scalar read from a tensor used as a tile index, atomics
inside T.Parallel, an alloc_var scan, and DeepSeek's fp8 act_quant with its reinterpret bit tricks.

No ``from __future__ import annotations`` in this file: with it the frontend does not find a T.dynamic
symbol of the factory's scope named in the annotations (reported to the frontend owner)."""

import time

import numpy as np
import pytest
import torch

import tilec.language as T
from tilec import numerics
from tilec.interp import run


def rel(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert not np.isnan(out).any(), "NaN in output"
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def matmul(N, K, block_M=64, block_N=64, block_K=32, dtype="float16", accum="float32"):
    M = T.dynamic("M")

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_s = T.alloc_shared((block_M, block_K), dtype)
            B_s = T.alloc_shared((block_K, block_N), dtype)
            C_f = T.alloc_fragment((block_M, block_N), accum)
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=2):
                T.copy(A[by * block_M, k * block_K], A_s)
                T.copy(B[k * block_K, bx * block_N], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * block_M, bx * block_N])
    return main


@pytest.mark.parametrize("M", [512, 77])
def test_gemm_symbolic_m(M):
    N, K = 96, 200
    f = matmul(N, K).func
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K)).astype(np.float16), rng.standard_normal((K, N)).astype(np.float16)
    c = np.full((M, N), np.nan, np.float16)
    run(f, [a, b, c], {"M": M})
    ref = torch.from_numpy(a).float() @ torch.from_numpy(b).float()
    assert rel(c, ref.numpy()) < 1e-3


def rmsnorm(M, N, blk_m=16):
    @T.prim_func
    def main(A: T.Tensor((M, N), "float"), B: T.Tensor((M, N), "float")):
        with T.Kernel(T.ceildiv(M, blk_m), threads=128) as bx:
            A_local = T.alloc_fragment((blk_m, N), "float")
            A_pow = T.alloc_fragment((blk_m, N), "float")
            A_powsum = T.alloc_fragment((blk_m,), "float")
            T.copy(A[bx * blk_m:(bx + 1) * blk_m, :], A_local)
            for i, j in T.Parallel(blk_m, N):
                A_pow[i, j] = A_local[i, j] * A_local[i, j]
            T.reduce_sum(A_pow, A_powsum, dim=1)
            for i in T.Parallel(blk_m):
                A_powsum[i] = T.rsqrt(A_powsum[i] / N + 1e-12)
            for i, j in T.Parallel(blk_m, N):
                A_local[i, j] *= A_powsum[i]
            T.copy(A_local, B[bx * blk_m:(bx + 1) * blk_m, :])
    return main


def test_rmsnorm_ragged():
    M, N = 1000, 1024
    x = np.random.default_rng(1).standard_normal((M, N)).astype(np.float32)
    y = np.full_like(x, np.nan)
    t0 = time.time()
    run(rmsnorm(M, N).func, [x, y], {})
    assert time.time() - t0 < 10
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(1, keepdims=True) + 1e-12)
    assert rel(y, ref) < 1e-6


def softmax(M, N, blk_m=8, dtype="bfloat16"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, blk_m), threads=128) as bx:
            s = T.alloc_fragment((blk_m, N), "float32")
            mx = T.alloc_fragment((blk_m,), "float32")
            sm = T.alloc_fragment((blk_m,), "float32")
            T.copy(X[bx * blk_m, 0], s)
            T.reduce_max(s, mx, dim=1)
            for i, j in T.Parallel(blk_m, N):
                s[i, j] = T.exp(s[i, j] - mx[i])
            T.reduce_sum(s, sm, dim=1)
            for i, j in T.Parallel(blk_m, N):
                s[i, j] = s[i, j] / sm[i]
            T.copy(s, Y[bx * blk_m, 0])
    return main


def test_softmax_bf16_ragged():
    M, N = 1003, 1024
    x = torch.randn(M, N, generator=torch.Generator().manual_seed(2)).bfloat16()
    xs = x.view(torch.int16).numpy().view(np.uint16).copy()
    y = np.full_like(xs, 0xFFFF)
    run(softmax(M, N).func, [xs, y], {})
    ref = torch.softmax(x.float(), 1)
    assert rel(numerics.to_float32(y, "bfloat16"), ref.numpy()) < 1e-2
    assert np.array_equal(y, ref.bfloat16().view(torch.int16).numpy().view(np.uint16)) or \
        rel(numerics.to_float32(y, "bfloat16"), ref.bfloat16().float().numpy()) < 1e-2


def flashattn(batch, heads, seq_len, dim, is_causal, block_M=64, block_N=64):
    scale = (1.0 / dim) ** 0.5 * 1.44269504
    shape = [batch, seq_len, heads, dim]
    dtype, accum = "float16", "float"

    @T.prim_func
    def main(Q: T.Tensor(shape, dtype), K: T.Tensor(shape, dtype), V: T.Tensor(shape, dtype),
             Output: T.Tensor(shape, dtype)):
        with T.Kernel(T.ceildiv(seq_len, block_M), heads, batch, threads=128) as (bx, by, bz):
            Q_shared = T.alloc_shared([block_M, dim], dtype)
            K_shared = T.alloc_shared([block_N, dim], dtype)
            V_shared = T.alloc_shared([block_N, dim], dtype)
            acc_s = T.alloc_fragment([block_M, block_N], accum)
            acc_s_cast = T.alloc_fragment([block_M, block_N], dtype)
            acc_o = T.alloc_fragment([block_M, dim], accum)
            scores_max = T.alloc_fragment([block_M], accum)
            scores_max_prev = T.alloc_fragment([block_M], accum)
            scores_scale = T.alloc_fragment([block_M], accum)
            scores_sum = T.alloc_fragment([block_M], accum)
            logsum = T.alloc_fragment([block_M], accum)
            T.copy(Q[bz, bx * block_M:(bx + 1) * block_M, by, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(logsum, 0)
            T.fill(scores_max, -T.infinity(accum))
            loop_range = T.ceildiv((bx + 1) * block_M, block_N) if is_causal else T.ceildiv(seq_len, block_N)
            for k in T.Pipelined(loop_range, num_stages=1):
                T.copy(K[bz, k * block_N:(k + 1) * block_N, by, :], K_shared)
                if is_causal:
                    for i, j in T.Parallel(block_M, block_N):
                        acc_s[i, j] = T.if_then_else(bx * block_M + i >= k * block_N + j, 0,
                                                     -T.infinity(acc_s.dtype))
                else:
                    T.clear(acc_s)
                T.gemm(Q_shared, K_shared, acc_s, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(V[bz, k * block_N:(k + 1) * block_N, by, :], V_shared)
                T.copy(scores_max, scores_max_prev)
                T.reduce_max(acc_s, scores_max, dim=1, clear=False)
                for i in T.Parallel(block_M):
                    scores_scale[i] = T.exp2(scores_max_prev[i] * scale - scores_max[i] * scale)
                for i, j in T.Parallel(block_M, dim):
                    acc_o[i, j] *= scores_scale[i]
                for i, j in T.Parallel(block_M, block_N):
                    acc_s[i, j] = T.exp2(acc_s[i, j] * scale - scores_max[i] * scale)
                T.copy(acc_s, acc_s_cast)
                T.gemm(acc_s_cast, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)
                T.reduce_sum(acc_s, scores_sum, dim=1)
                for i in T.Parallel(block_M):
                    logsum[i] = logsum[i] * scores_scale[i] + scores_sum[i]
            for i, j in T.Parallel(block_M, dim):
                acc_o[i, j] /= logsum[i]
            T.copy(acc_o, Output[bz, bx * block_M:(bx + 1) * block_M, by, :])
    return main


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention(causal):
    B, H, S, D = 1, 4, 512, 64
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(B, S, H, D, generator=g).half() for _ in range(3))
    out = np.full((B, S, H, D), np.nan, np.float16)
    t0 = time.time()
    run(flashattn(B, H, S, D, causal).func, [q.numpy(), k.numpy(), v.numpy(), out], {})
    assert time.time() - t0 < 20
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.float().transpose(1, 2), k.float().transpose(1, 2), v.float().transpose(1, 2),
        is_causal=causal).transpose(1, 2)
    assert rel(out, ref.numpy()) < 1e-2


def gather(S, S_kv, topk, D, dtype="bfloat16"):
    @T.prim_func
    def main(KV: T.Tensor((S_kv, D), dtype), Idx: T.Tensor((S, topk), "int32"),
             Rows: T.Tensor((S,), "int32"), Out: T.Tensor((S, topk, D), dtype),
             First: T.Tensor((S, D), dtype)):
        with T.Kernel(S, threads=128) as bx:
            kv_s = T.alloc_shared((topk, D), dtype)
            for i, d in T.Parallel(topk, D):
                kv_s[i, d] = KV[Idx[bx, i], d]
            T.copy(kv_s, Out[bx, 0:topk, 0:D])
            r = Rows[bx]
            T.copy(KV[r, 0:D], First[bx, 0:D])
    return main


def test_data_dependent_gather_and_scalar_index():
    S, S_kv, topk, D = 6, 40, 16, 32
    rng = np.random.default_rng(4)
    kv = numerics.from_float32(rng.standard_normal((S_kv, D)).astype(np.float32), "bfloat16")
    idx = rng.integers(0, S_kv, (S, topk)).astype(np.int32)
    rows = rng.integers(0, S_kv, S).astype(np.int32)
    out = np.full((S, topk, D), 0xFFFF, np.uint16)
    first = np.full((S, D), 0xFFFF, np.uint16)
    run(gather(S, S_kv, topk, D).func, [kv, idx, rows, out, first], {})
    assert np.array_equal(out, kv[idx]) and np.array_equal(first, kv[rows])


def histogram_and_scan(N, B, blk=64):
    @T.prim_func
    def main(X: T.Tensor((N,), "int32"), H: T.Tensor((B,), "int32"), S: T.Tensor((N,), "float32"),
             C: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, blk), threads=128) as bx:
            for i in T.Parallel(blk):
                if bx * blk + i < N:
                    T.atomic_add(H[X[bx * blk + i]], 1)
            acc = T.alloc_var("float32")
            acc = 0.0
            for i in T.serial(blk):
                if bx * blk + i < N:
                    acc = acc + S[bx * blk + i]
                    C[bx * blk + i] = acc
    return main


def test_atomics_in_parallel_and_alloc_var_scan():
    N, B = 1000, 16
    rng = np.random.default_rng(5)
    x = rng.integers(0, B, N).astype(np.int32)
    h = np.zeros(B, np.int32)
    s = rng.standard_normal(N).astype(np.float32)
    out = np.full(N, np.nan, np.float32)
    run(histogram_and_scan(N, B).func, [x, h, s, out], {})
    assert np.array_equal(h, np.bincount(x, minlength=B))
    ref = np.concatenate([np.cumsum(s[k:k + 64]) for k in range(0, N, 64)])
    assert rel(out, ref) < 1e-6


@T.macro
def fast_log2_ceil(x):
    bits_x = T.reinterpret("uint32", x)
    exp_x = (bits_x >> 23) & 0xFF
    man_bits = bits_x & ((1 << 23) - 1)
    return T.Cast("int32", exp_x - 127 + T.if_then_else(man_bits != 0, 1, 0))

@T.macro
def fast_pow2(x):
    bits_x = (x + 127) << 23
    return T.reinterpret("float32", bits_x)

def act_quant(N, round_scale, blk_m=32, group_size=128):
    M = T.symbolic("M")
    fp8_max_inv = 1 / 448.0
    @T.prim_func
    def main(X: T.Tensor[(M, N), "bfloat16"], Y: T.Tensor[(M, N), "float8_e4m3"],
             S: T.Tensor[(M, T.ceildiv(N, group_size)), "float32"]):
        with T.Kernel(T.ceildiv(M, blk_m), T.ceildiv(N, group_size), threads=128) as (pid_m, pid_n):
            x_shared = T.alloc_shared((blk_m, group_size), "bfloat16")
            x_local = T.alloc_fragment((blk_m, group_size), "bfloat16")
            amax_local = T.alloc_fragment((blk_m,), "float32")
            s_local = T.alloc_fragment((blk_m,), "float32")
            y_local = T.alloc_fragment((blk_m, group_size), "float8_e4m3")
            for _ in T.Pipelined(1, num_stages=2):
                T.copy(X[pid_m * blk_m, pid_n * group_size], x_shared)
                T.copy(x_shared, x_local)
                T.reduce_absmax(x_local, amax_local, dim=1)
                for i in T.Parallel(blk_m):
                    amax_local[i] = T.max(amax_local[i], 1e-4)
                    if round_scale:
                        s_local[i] = fast_pow2(fast_log2_ceil(amax_local[i] * fp8_max_inv))
                    else:
                        s_local[i] = amax_local[i] * fp8_max_inv
                for i, j in T.Parallel(blk_m, group_size):
                    y_local[i, j] = T.clamp(x_local[i, j] / s_local[i], -448.0, 448.0)
                for i in T.Parallel(blk_m):
                    if pid_m * blk_m + i < M:
                        S[pid_m * blk_m + i, pid_n] = s_local[i]
                T.copy(y_local, Y[pid_m * blk_m, pid_n * group_size])
    return main


@pytest.mark.parametrize("round_scale", [False, True])
def test_deepseek_act_quant_fp8_with_bit_tricks(round_scale):
    # DeepSeek-V3.2's act_quant (docs/deepseek_kernels.md): bf16 -> fp8 per 128-group, with the
    # reinterpret-based fast_log2_ceil / fast_pow2 when scales are rounded to powers of two.
    M, N_ = 70, 256
    x = torch.randn(M, N_, generator=torch.Generator().manual_seed(6)).bfloat16() * 3
    xs = x.view(torch.int16).numpy().view(np.uint16).copy()
    y, s = np.full((M, N_), 0x7F, np.uint8), np.full((M, 2), np.nan, np.float32)
    run(act_quant(N_, round_scale).func, [xs, y, s], {})
    xf = x.float().unflatten(-1, (-1, 128))
    s_ref = xf.abs().amax(-1).clamp_min(1e-4) / 448
    if round_scale:
        s_ref = torch.exp2(torch.ceil(torch.log2(s_ref)))
    y_ref = (xf / s_ref[..., None]).clamp(-448, 448).to(torch.float8_e4m3fn).flatten(-2)
    if round_scale:   # powers of two: every step is exact, so the bits agree
        assert np.array_equal(s, s_ref.numpy()) and np.array_equal(y, y_ref.view(torch.uint8).numpy())
    else:             # amax * (1/448) against amax / 448 may differ in the last bit
        assert rel(s, s_ref.numpy()) < 1e-6
        assert rel(numerics.to_float32(y, "float8_e4m3"), y_ref.float().numpy()) < 1e-2
