"""CPU benchmark of tilec's ``cpu`` target against numpy and PyTorch, in one process.

    python benchmarks/cpu.py [--json PATH] [--plot PNG] [--rounds N] [--threads N] [--quick] [--only NAME]

Cases (issue 3): GEMM fp32 512/1024/2048 (numpy, torch), GEMM bf16 inputs with fp32 accumulation 1024
(torch bf16 matmul; numpy on pre-converted fp32), flash attention forward B1 H8 S1024 D64 causal and
not (torch scaled_dot_product_attention, given its native BHSD layout), softmax 4096x4096 and RMSNorm
4096x4096 (torch; for RMSNorm the faster of F.rms_norm and the written-out expression). Kernels come
from examples/ (block sizes picked for the CPU) except the bf16-in/fp32-out GEMM (``matmul_bf16_f32``
below), because examples/gemm.py writes C in its input dtype. Timing alternates tilec and its peers
round by round and reports medians, so a noisy machine slows all of them alike. The table gives
ratio = peer time / tilec time (> 1: tilec is faster).

"tilec" is what ``tilec.compile`` builds: the kernel after the default tile passes (simplify, fuse,
licm, memory_plan, predicate; tilec.passes.registry.DEFAULT). "no-pass" is the same kernel built with
``passes=[]``, timed in the same rounds; "passes x" = no-pass time / tilec time (> 1: the passes help).
The same pair is also timed by process CPU time (all threads), which a loaded machine disturbs less.
``--threads N`` runs every library on N threads (set before numpy/torch load their thread pools).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time


def _early_threads() -> None:
    """Apply --threads before numpy (OpenBLAS) and torch start their pools."""
    if "--threads" in sys.argv:
        n = sys.argv[sys.argv.index("--threads") + 1]
        for var in ("TILEC_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n


_early_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

from tilec.backends.llvm.runtime import num_threads  # noqa: E402
from tilec.backends.llvm.target import CpuTarget  # noqa: E402
from tilec.passes.registry import DEFAULT as DEFAULT_PASSES  # noqa: E402
from tilec.runtime.kernel import run_tile_passes  # noqa: E402


def _builds(func) -> tuple:
    """(executable after the cpu target's default tile passes, executable without them, whether the
    passes changed the kernel's IR at all)."""
    from tilec.ir.printer import print_func
    optimized = run_tile_passes(func, {}, "cpu")
    changed = print_func(optimized, locs=False) != print_func(func, locs=False)
    return CpuTarget().build(optimized, {}), CpuTarget().build(func, {}), changed


def matmul_bf16_f32(M, N, K, block_M=256, block_N=256, block_K=128):
    """bfloat16 A and B, float32 accumulator and output (examples/gemm.py writes C in its input dtype).

    The T.gemm runs on the vdpbf16ps micro-kernel on AVX512-BF16 hosts. 256x256 tiles re-read A and B
    least (block sizes from 128 to 512 measured within a few percent of each other)."""
    import tilec.language as T

    @T.prim_func
    def main(A: T.Tensor((M, K), "bfloat16"), B: T.Tensor((K, N), "bfloat16"), C: T.Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_s = T.alloc_shared((block_M, block_K), "bfloat16")
            B_s = T.alloc_shared((block_K, block_N), "bfloat16")
            C_f = T.alloc_fragment((block_M, block_N), "float32")
            T.clear(C_f)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=2):
                T.copy(A[by * block_M, k * block_K], A_s)
                T.copy(B[k * block_K, bx * block_N], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * block_M, bx * block_N])
    return main


def _example(name: str):
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# OpenBLAS and OpenMP worker threads spin for up to ~0.1 s after a call; whoever runs next would share
# the cores with them. Each timed call therefore starts after a pause long enough for them to park.
SETTLE_S = 0.15


def _timed(fns: dict, rounds: int, clock=time.perf_counter) -> dict:
    """Median seconds of each callable, measured in interleaved rounds after one warm-up call each.

    Each round starts one callable later (round r runs them from the r-th on, cyclically), so no
    callable always follows the same one: what ran just before a call can change its time."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            f = fns[k]
            time.sleep(SETTLE_S)
            t0 = clock()
            f()
            times[k].append(clock() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _timed_ab(fns: dict, rounds: int) -> dict:
    """``_timed`` of every callable, plus the process CPU seconds of "tilec" and "nopass" (the passes'
    before/after) in rounds of their own: on a loaded machine wall time also measures the scheduler."""
    t = _timed(fns, rounds)
    cpu = _timed({k: fns[k] for k in ("tilec", "nopass")}, rounds, clock=time.process_time)
    return dict(t, passes_cpu_s=cpu["tilec"], nopass_cpu_s=cpu["nopass"])


def openblas_core() -> str:
    """The kernel family numpy's OpenBLAS picked for this CPU (e.g. "Haswell" = AVX2, "SkylakeX" =
    AVX-512), or "unknown": OpenBLAS's speed depends on it, and it can pick AVX2 kernels on a CPU it
    does not recognise (OPENBLAS_CORETYPE overrides)."""
    import ctypes
    import glob
    libdir = pathlib.Path(np.__file__).parent.parent / "numpy.libs"
    for lib in sorted(glob.glob(str(libdir / "*openblas*"))):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename64_",
                    "openblas_get_corename"):
            fn = getattr(handle, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "unknown"


def _relerr(out: np.ndarray, ref: np.ndarray) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def bench_gemm(n: int, rounds: int) -> dict:
    gemm = _example("gemm")
    func = gemm.gemm(n, n, n, block_M=256, block_N=256, block_K=128, dtype="float32").func
    exe, raw, changed = _builds(func)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    c, c0 = np.full((n, n), np.nan, np.float32), np.full((n, n), np.nan, np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    t = _timed_ab({"tilec": lambda: exe.run([a, b, c], {}), "nopass": lambda: raw.run([a, b, c0], {}),
                "numpy": lambda: a @ b, "torch": lambda: torch.matmul(ta, tb)}, rounds)
    ref = a.astype(np.float64) @ b
    return dict(case=f"gemm fp32 {n}", flops=2 * n ** 3, err=_relerr(c, ref),
                ir_changed=changed, err_nopass=_relerr(c0, ref), **t)


def bench_gemm_bf16(n: int, rounds: int) -> dict:
    exe, raw, changed = _builds(matmul_bf16_f32(n, n, n).func)
    g = torch.Generator().manual_seed(0)
    ta, tb = torch.randn(n, n, generator=g).bfloat16(), torch.randn(n, n, generator=g).bfloat16()
    a = ta.view(torch.int16).numpy().view(np.uint16)
    b = tb.view(torch.int16).numpy().view(np.uint16)
    fa, fb = ta.float().numpy(), tb.float().numpy()
    c, c0 = np.full((n, n), np.nan, np.float32), np.full((n, n), np.nan, np.float32)
    fns = {"tilec": lambda: exe.run([a, b, c], {}), "nopass": lambda: raw.run([a, b, c0], {}),
           "numpy": lambda: fa @ fb, "torch": lambda: torch.matmul(ta, tb)}
    t = _timed_ab(fns, rounds)
    # process CPU seconds of the same calls: on a loaded machine wall time also measures the scheduler
    cpu = _timed({k: fns[k] for k in ("tilec", "torch")}, rounds, clock=time.process_time)
    ref = fa.astype(np.float64) @ fb
    return dict(case=f"gemm bf16->fp32 {n}", flops=2 * n ** 3, err=_relerr(c, ref),
                ir_changed=changed, err_nopass=_relerr(c0, ref),
                tilec_cpu_s=cpu["tilec"], torch_cpu_s=cpu["torch"], **t)


def bench_attention(causal: bool, rounds: int, b=1, h=8, s=1024, d=64) -> dict:
    fa = _example("flash_attention")
    exe, raw, changed = _builds(fa.flash_attention(b, h, s, d, causal, block_M=128, block_N=128, dtype="float32").func)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, s, d, generator=g) for _ in range(3))      # BHSD for torch
    qs, ks, vs = (x.transpose(1, 2).contiguous().numpy() for x in (q, k, v))  # BSHD for the example
    o, o0 = np.full(qs.shape, np.nan, np.float32), np.full(qs.shape, np.nan, np.float32)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    t = _timed_ab({"tilec": lambda: exe.run([qs, ks, vs, o], {}), "nopass": lambda: raw.run([qs, ks, vs, o0], {}),
                "torch": lambda: sdpa(q, k, v, is_causal=causal)}, rounds)
    ref = sdpa(q, k, v, is_causal=causal).transpose(1, 2).numpy()
    flops = 4 * b * h * s * s * d // (2 if causal else 1)
    return dict(case=f"attention fwd B{b} H{h} S{s} D{d}{' causal' if causal else ''}", flops=flops,
                err=_relerr(o, ref), ir_changed=changed, err_nopass=_relerr(o0, ref), **t)


def bench_softmax(rounds: int, m=4096, n=4096) -> dict:
    sm = _example("softmax")
    exe, raw, changed = _builds(sm.softmax(m, n, block_M=4, block_N=4096).func)
    x = np.random.default_rng(0).standard_normal((m, n), np.float32)
    y, y0 = np.full_like(x, np.nan), np.full_like(x, np.nan)
    tx = torch.from_numpy(x)
    t = _timed_ab({"tilec": lambda: exe.run([x, y], {}), "nopass": lambda: raw.run([x, y0], {}),
                "torch": lambda: torch.softmax(tx, -1)}, rounds)
    ref = torch.softmax(tx.double(), -1).numpy()
    return dict(case=f"softmax {m}x{n}", flops=0, err=_relerr(y, ref),
                ir_changed=changed, err_nopass=_relerr(y0, ref), **t)


def bench_rmsnorm(rounds: int, m=4096, n=4096) -> dict:
    rn = _example("rmsnorm")
    exe, raw, changed = _builds(rn.rmsnorm(m, n, block_M=4, block_N=4096, dtype="float32").func)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((m, n), np.float32), rng.standard_normal(n, np.float32)
    y, y0 = np.full_like(x, np.nan), np.full_like(x, np.nan)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    t = _timed_ab({"tilec": lambda: exe.run([x, w, y], {}), "nopass": lambda: raw.run([x, w, y0], {}),
                "torch_rms_norm": lambda: torch.nn.functional.rms_norm(tx, (n,), tw, 1e-6),
                "torch_expr": lambda: tx * torch.rsqrt(tx.pow(2).mean(-1, keepdim=True) + 1e-6) * tw}, rounds)
    t["torch"] = min(t.pop("torch_rms_norm"), t.pop("torch_expr"))
    xd = tx.double()
    ref = (xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6) * tw.double()).numpy()
    return dict(case=f"rmsnorm {m}x{n}", flops=0, err=_relerr(y, ref),
                ir_changed=changed, err_nopass=_relerr(y0, ref), **t)


TARGETS = {"gemm fp32 1024": ("numpy", 0.8), "attention": ("torch", 1.0), "softmax": ("torch", 1.0),
           "rmsnorm": ("torch", 1.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--plot", metavar="PNG", help="save tilec vs numpy/torch per case (pip install tilec[plot])")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="skip the 2048 GEMM")
    ap.add_argument("--threads", type=int, help="threads for tilec, numpy and torch alike")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only the cases whose name contains NAME (repeatable): gemm, attention, softmax...")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = args.rounds
    cases = [("gemm fp32 512", lambda: bench_gemm(512, r)), ("gemm fp32 1024", lambda: bench_gemm(1024, r))]
    if not args.quick:
        cases.append(("gemm fp32 2048", lambda: bench_gemm(2048, max(3, r // 2))))
    cases += [("gemm bf16", lambda: bench_gemm_bf16(1024, r)), ("attention", lambda: bench_attention(False, r)),
              ("attention causal", lambda: bench_attention(True, r)), ("softmax", lambda: bench_softmax(r)),
              ("rmsnorm", lambda: bench_rmsnorm(r))]
    rows = [run() for name, run in cases if not args.only or any(o in name for o in args.only)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    blas = openblas_core()
    print(f"tilec cpu benchmark: {num_threads()} threads, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), numpy {np.__version__} (OpenBLAS {blas} kernels); "
          f"medians of {r} rounds; "
          f"load average {load:.1f}")
    print("tilec: with the default tile passes (what tilec.compile builds); no-pass: the same kernel, passes=[]")
    print(f"{'case':38s} {'tilec ms':>9s} {'no-pass ms':>10s} {'passes x':>8s} {'numpy ms':>9s} {'torch ms':>9s}"
          f" {'np/tilec':>8s} {'torch/tilec':>11s} {'GFLOP/s':>8s} {'rel err':>8s} {'no-pass err':>11s}")
    ok = True
    for row in rows:
        tl = row["tilec"]
        row["ratio_numpy"] = row["numpy"] / tl if "numpy" in row else None
        row["ratio_torch"] = row["torch"] / tl
        row["ratio_nopass"] = row["nopass"] / tl   # > 1: the passes made the kernel faster
        gf = f"{row['flops'] / tl / 1e9:8.1f}" if row["flops"] else f"{'':8s}"
        np_ms = f"{row['numpy'] * 1e3:9.2f}" if "numpy" in row else f"{'-':>9s}"
        np_r = f"{row['ratio_numpy']:8.2f}" if row["ratio_numpy"] else f"{'-':>8s}"
        print(f"{row['case']:38s} {tl * 1e3:9.2f} {row['nopass'] * 1e3:10.2f} {row['ratio_nopass']:8.2f} {np_ms} "
              f"{row['torch'] * 1e3:9.2f} {np_r} {row['ratio_torch']:11.2f} {gf} {row['err']:8.1e} "
              f"{row['err_nopass']:11.1e}{'' if row['ir_changed'] else '  (passes left the IR unchanged)'}")
        for prefix, (peer, want) in TARGETS.items():
            if row["case"].startswith(prefix):
                row["target"] = f"{peer} ratio >= {want}"
                row["met"] = bool(row[f"ratio_{peer}"] >= want)
                ok &= row["met"]
    print("passes' effect by process CPU time (all threads; less sensitive to other load than wall time):")
    for row in rows:
        row["ratio_nopass_cpu"] = row["nopass_cpu_s"] / row["passes_cpu_s"]
        print(f"  {row['case']:38s} passes {row['passes_cpu_s'] * 1e3:9.2f} ms, no passes "
              f"{row['nopass_cpu_s'] * 1e3:9.2f} ms, passes x {row['ratio_nopass_cpu']:.2f}")
    for row in rows:
        if "tilec_cpu_s" in row:
            print(f"{row['case']} by process CPU time: tilec {row['tilec_cpu_s'] * 1e3:.2f} ms, torch "
                  f"{row['torch_cpu_s'] * 1e3:.2f} ms, torch/tilec {row['torch_cpu_s'] / row['tilec_cpu_s']:.2f}")
    print("targets:", ", ".join(f"{row['case']}: {'met' if row['met'] else 'MISSED'}" for row in rows if "met" in row))
    if args.json:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        pathlib.Path(args.json).write_text(json.dumps(dict(threads=num_threads(), torch_threads=torch.get_num_threads(),
                                                           load_average=load, passes=list(DEFAULT_PASSES),
                                                           openblas_core=blas,
                                                           rows=rows), indent=2))
    if args.plot:
        from tilec.autotuner.plot import save_figure
        cases = [dict(case=row["case"], times={k: row[k] * 1e3 for k in ("tilec", "numpy", "torch") if k in row})
                 for row in rows]
        save_figure(args.plot, cases=cases, title=f"tilec cpu vs numpy/torch ({num_threads()} threads)")
        print(f"wrote {args.plot}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
