"""The GPU benchmark behind benchmarks/gpu/run.sh (see there for what it measures).

Correctness first: each example is built for the cuda target at DEFAULTS and RAGGED sizes, run on fresh
random inputs with NaN-poisoned outputs, and compared with its torch reference by ||out-ref||/||ref||
(NaN never passes; a reference that is not finite or is constant fails the row). Then timings: CUDA
events around each call, median of several runs after warm-up, tilec's kernel (best of a few tile
configurations) against torch on the same inputs. Last, the DeepSeek-V3.2 kernels at real sizes
(``deepseek.py``), each checked and timed against its PyTorch equivalent. ``--compile-only`` generates
and compiles (nvcc, sm_90a) every kernel the full run launches, one line per kernel, without a GPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import pathlib
import statistics
import sys
import time
import traceback
from typing import Optional

import torch

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

from tilec.backends.cuda import CudaTarget  # noqa: E402
from tilec.backends.cuda.launcher import torch_dtype  # noqa: E402
from tilec.ir import dtypes  # noqa: E402
from tilec.ir import nodes as N  # noqa: E402

import compile_check  # noqa: E402 - benchmarks/gpu/compile_check.py
import deepseek  # noqa: E402 - benchmarks/gpu/deepseek.py: the DeepSeek-V3.2 workloads
from ds_common import sane  # noqa: E402

TARGET = CudaTarget()


def build(func: N.Func, options: dict):
    """What ``tilec.compile(..., target="cuda")`` builds: the default tile passes, then the cuda target."""
    from tilec.runtime.kernel import run_tile_passes
    return TARGET.build(run_tile_passes(func, options, "cuda"), options)


def load_example(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"tilec_gpu_bench_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def func_of(prim) -> N.Func:
    return getattr(prim, "func", prim)


def shape_of(p: N.Buffer, params: dict) -> list[int]:
    out = []
    for e in p.shape:
        if isinstance(e, N.Const):
            out.append(int(e.value))
        elif isinstance(e, N.Var) and e.name in params:
            out.append(int(params[e.name]))
        else:
            raise ValueError(f"cannot size parameter {p.name}: dim {e} (give the example a make_inputs)")
    return out


def random_tensor(shape, dtype: str, gen: torch.Generator) -> torch.Tensor:
    if dtypes.is_float(dtype):
        return torch.randn(shape, generator=gen).to(torch_dtype(dtype))
    if dtype == "bool":
        return torch.randint(0, 2, shape, generator=gen).bool()
    return torch.randint(0, 8, shape, generator=gen).to(torch_dtype(dtype))


def poisoned(shape, dtype: str) -> torch.Tensor:
    t = torch.empty(shape, dtype=torch_dtype(dtype), device="cuda")
    if dtypes.is_float(dtype):
        t.fill_(float("nan"))
    else:
        t.fill_(-77 if dtypes.info(dtype).kind == "int" else 77)
    return t


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    o, r = out.detach().double().cpu(), ref.detach().double().cpu()
    if torch.isnan(o).any():
        return float("nan")
    den = r.norm().item()
    return (o - r).norm().item() / (den if den > 0 else 1.0)


def check_example(path: pathlib.Path, which: str) -> dict:
    mod = load_example(path)
    params = dict(getattr(mod, which))
    func = func_of(mod.KERNEL(**params))
    out_idx = list(mod.OUT_IDX)
    gen = torch.Generator().manual_seed(1234)
    if hasattr(mod, "make_inputs"):
        inputs = list(mod.make_inputs(params, gen))
    else:
        inputs = [random_tensor(shape_of(p, params), p.dtype, gen)
                  for i, p in enumerate(func.params) if i not in out_idx]
    t0 = time.time()
    exe = build(func, {})
    build_s = time.time() - t0
    args, it = [], iter(inputs)
    for i, p in enumerate(func.params):
        if i in out_idx:
            args.append(None)
        else:
            args.append(next(it).to(torch_dtype(p.dtype)).contiguous().cuda())
    dims = {}
    for p, a in zip(func.params, args):
        if a is not None:
            for e, n in zip(p.shape, a.shape):
                if isinstance(e, N.Var):
                    dims[e.name] = int(n)
    merged = {**{k: v for k, v in params.items() if isinstance(v, int)}, **dims}
    for i in out_idx:
        args[i] = poisoned(shape_of(func.params[i], merged), func.params[i].dtype)
    exe.run(args, dims)
    torch.cuda.synchronize()
    ref = mod.reference(*inputs, **params)
    refs = list(ref) if isinstance(ref, (tuple, list)) else [ref]
    for r in refs:
        sane(r, f"of {path.stem}")
    errs = [rel_err(args[i], r) for i, r in zip(out_idx, refs)]
    err = max(errs) if not any(math.isnan(e) for e in errs) else float("nan")
    tol = getattr(mod, "TOLERANCE", 1e-2)
    return dict(example=path.stem, sizes=which, rel_err=err, tol=tol, ok=(err == err and err < tol),
                build_s=round(build_s, 2))


def cuda_time(fn, warmup: int = 3, reps: int = 20) -> float:
    """Median milliseconds of ``fn()`` by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def bench_gemm(n: int, configs: list[dict], reps: int) -> dict:
    gemm = load_example(ROOT / "examples" / "gemm.py")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).bfloat16().cuda()
    b = torch.randn(n, n, generator=gen).bfloat16().cuda()
    ref = torch.matmul(a, b)
    sane(ref, "torch.matmul")
    t_torch = cuda_time(lambda: torch.matmul(a, b), reps=reps)
    best = None
    for cfg, options in configs:
        try:
            exe = build(func_of(gemm.KERNEL(n, n, n, dtype="bfloat16", **cfg)), options)
        except Exception as e:  # noqa: BLE001 - a config that does not build is reported, not fatal
            print(f"  gemm {n}: config {cfg} failed to build: {e}", file=sys.stderr)
            continue
        c = torch.full((n, n), float("nan"), dtype=torch.bfloat16, device="cuda")
        exe.run([a, b, c], {})
        torch.cuda.synchronize()
        err = rel_err(c, ref)
        t = cuda_time(lambda: exe.run([a, b, c], {}), reps=reps)
        print(f"  gemm {n}: {cfg} {options}: {t:.3f} ms, rel err {err:.2e}", file=sys.stderr)
        if not err < 1e-2:  # a wrong kernel is reported, never timed as the best
            continue
        if best is None or t < best["tilec_ms"]:
            best = dict(tilec_ms=t, config={**cfg, **options}, rel_err=err)
    flops = 2.0 * n ** 3
    out = dict(name=f"gemm bf16 {n}^3", torch_ms=t_torch, torch_tflops=flops / t_torch / 1e9)
    if best:
        out.update(best, tilec_tflops=flops / best["tilec_ms"] / 1e9, ratio=t_torch / best["tilec_ms"])
    return out


def bench_attention(causal: bool, configs: list[dict], reps: int, B=4, H=32, S=4096, D=128) -> dict:
    import torch.nn.functional as F
    fa = load_example(ROOT / "examples" / "flash_attention.py")
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, S, H, D, generator=gen).half().cuda() for _ in range(3))
    qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))   # SDPA wants [B, H, S, D]
    ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal).transpose(1, 2)
    sane(ref, "SDPA")
    t_torch = cuda_time(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal), reps=reps)
    best = None
    for cfg in configs:
        try:
            exe = build(func_of(fa.KERNEL(B, H, S, D, is_causal=causal, **cfg)), {})
        except Exception as e:  # noqa: BLE001
            print(f"  attention: config {cfg} failed to build: {e}", file=sys.stderr)
            continue
        o = torch.full_like(q, float("nan"))
        exe.run([q, k, v, o], {})
        torch.cuda.synchronize()
        err = rel_err(o, ref)
        t = cuda_time(lambda: exe.run([q, k, v, o], {}), reps=reps)
        print(f"  attention causal={causal}: {cfg}: {t:.3f} ms, rel err {err:.2e}", file=sys.stderr)
        if not err < 1e-2:
            continue
        if best is None or t < best["tilec_ms"]:
            best = dict(tilec_ms=t, config=cfg, rel_err=err)
    flops = 4.0 * B * H * S * S * D * (0.5 if causal else 1.0)
    out = dict(name=f"attention fwd B{B} H{H} S{S} D{D}{' causal' if causal else ''}", torch_ms=t_torch,
               torch_tflops=flops / t_torch / 1e9)
    if best:
        out.update(best, tilec_tflops=flops / best["tilec_ms"] / 1e9, ratio=t_torch / best["tilec_ms"])
    return out


# (kernel parameters, build options): mma.sync configurations, then wgmma ones (sm_90a only; a
# configuration whose result is wrong is reported on stderr and not counted).
GEMM_CONFIGS = [(dict(block_M=128, block_N=128, block_K=32, num_stages=3, threads=128), {}),
                (dict(block_M=128, block_N=256, block_K=32, num_stages=3, threads=256), {}),
                (dict(block_M=128, block_N=128, block_K=64, num_stages=3, threads=256), {}),
                (dict(block_M=128, block_N=256, block_K=64, num_stages=3, threads=256), {"wgmma": True}),
                (dict(block_M=128, block_N=128, block_K=64, num_stages=4, threads=128), {"wgmma": True}),
                (dict(block_M=128, block_N=256, block_K=32, num_stages=4, threads=256), {"wgmma": True})]
ATTN_CONFIGS = [dict(block_M=128, block_N=64, num_stages=2, threads=256),
                dict(block_M=128, block_N=64, num_stages=2, threads=128),
                dict(block_M=64, block_N=64, num_stages=2, threads=128)]


def compile_jobs(opts, parts=None, arch: str = "sm_90a") -> list[tuple[str, object]]:
    """(name, build) for every kernel the run would launch with these options; build() returns the
    generated CUDA source. Examples and the GEMM / attention configurations go through the target
    directly (as the run does), the DeepSeek kernels through ``tilec.compile`` (their tile passes)."""
    jobs, parts = [], opts.parts if parts is None else parts

    def direct(func, options):
        return lambda: build(func, {"arch": arch, **options}).source
    if "examples" in parts:
        for p in example_paths():
            mod = load_example(p)
            jobs += [(f"{p.stem} {w}", direct(func_of(mod.KERNEL(**getattr(mod, w))), {}))
                     for w in ("DEFAULTS", "RAGGED")]
    if "timings" in parts:
        gemm = load_example(ROOT / "examples" / "gemm.py")
        fa = load_example(ROOT / "examples" / "flash_attention.py")
        gcfg, acfg = configs(opts.quick)
        jobs += [(f"gemm {n} {brief(c, o)}", direct(func_of(gemm.KERNEL(n, n, n, dtype="bfloat16", **c)), o))
                 for n in (4096, 8192) for c, o in gcfg]
        jobs += [(f"attention causal={z} {brief(c)}",
                  direct(func_of(fa.KERNEL(4, 32, 4096, 128, is_causal=z, **c)), {}))
                 for z in (False, True) for c in acfg]
    if "deepseek" in parts:
        ctx = deepseek.Ctx(arch=arch)
        jobs += [(f"deepseek {wl}: {sp.name}", lambda sp=sp: ctx.kernel(sp).get_kernel_source())
                 for wl, sp in deepseek.kernel_specs(deepseek.Dims(), deepseek.sizes(opts.quick), opts.deepseek)]
    return jobs


def compile_only(opts) -> int:
    """Generate and compile (nvcc, sm_90a) every kernel the run would launch; no GPU needed."""
    return compile_check.report(compile_jobs(opts))


def brief(cfg: dict, options: Optional[dict] = None) -> str:
    """A tile configuration in a few characters: block_M=128 -> M128, num_stages=3 -> s3, threads -> t."""
    short = {"block_M": "M", "block_N": "N", "block_K": "K", "num_stages": "s", "threads": "t"}
    return " ".join([f"{short.get(k, k)}{v}" for k, v in cfg.items()] + [k for k, v in (options or {}).items() if v])


def example_paths() -> list[pathlib.Path]:
    return [p for p in sorted((ROOT / "examples").glob("*.py")) if not p.name.startswith("_")]


def configs(quick: bool):
    return (GEMM_CONFIGS[:1], ATTN_CONFIGS[:1]) if quick else (GEMM_CONFIGS, ATTN_CONFIGS)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="one configuration each, fewer repetitions, DeepSeek sizes and time budgets halved")
    ap.add_argument("--only", dest="parts", nargs="+", choices=PARTS, default=list(PARTS),
                    help="run these parts only (default: all)")
    ap.add_argument("--skip-examples", action="store_true", help="the same as leaving 'examples' out of --only")
    ap.add_argument("--deepseek", nargs="+", choices=sorted(deepseek.WORKLOADS), default=None,
                    help="DeepSeek workloads to run (default: all)")
    ap.add_argument("--compile-only", "--build-only", dest="compile_only", action="store_true",
                    help="only generate and compile (sm_90a) every kernel the run launches; no GPU needed")
    ap.add_argument("--rows-json", help=argparse.SUPPRESS)   # run_child: where a child writes its DeepSeek rows
    opts = ap.parse_args(argv)
    if opts.skip_examples and "examples" in opts.parts:
        opts.parts.remove("examples")
    return opts


PARTS = ("examples", "timings", "deepseek")


def run_examples() -> list[dict]:
    rows = []
    for path in example_paths():
        for which in ("DEFAULTS", "RAGGED"):
            try:
                rows.append(check_example(path, which))
            except Exception as e:  # noqa: BLE001 - one failing example must not hide the others
                traceback.print_exc()
                rows.append(dict(example=path.stem, sizes=which, rel_err=float("nan"), ok=False,
                                 error=f"{type(e).__name__}: {e}"[:300]))
    print(f"\n{'example':<22}{'sizes':<10}{'rel err':>12}{'tol':>10}  result")
    for r in rows:
        print(f"{r['example']:<22}{r['sizes']:<10}{r['rel_err']:>12.3e}{r.get('tol', 0):>10.0e}  "
              f"{'ok' if r['ok'] else 'FAIL ' + r.get('error', '')}")
    return rows


def run_timings(quick: bool) -> list[dict]:
    reps = 5 if quick else 20
    gcfg, acfg = configs(quick)
    timings = []
    jobs = [(f"gemm bf16 {n}^3", lambda n=n: bench_gemm(n, gcfg, reps)) for n in (4096, 8192)]
    jobs += [(f"attention causal={c}", lambda c=c: bench_attention(c, acfg, reps)) for c in (False, True)]
    for name, job in jobs:
        try:
            timings.append(job())
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            timings.append(dict(name=name, error=f"{type(e).__name__}: {e}"[:300]))
    print(f"\n{'benchmark':<40}{'torch ms':>10}{'TFLOP/s':>9}{'tilec ms':>10}{'TFLOP/s':>9}{'vs torch':>9}"
          f"{'rel err':>10}  config")
    for t in timings:
        if "tilec_ms" in t:
            print(f"{t['name']:<40}{t['torch_ms']:>10.3f}{t['torch_tflops']:>9.1f}{t['tilec_ms']:>10.3f}"
                  f"{t['tilec_tflops']:>9.1f}{t['ratio']:>8.0%} {t['rel_err']:>10.2e}  {t['config']}")
        else:
            print(f"{t.get('name', '?'):<40} {t.get('error', 'no tilec configuration built')}")
    return timings


def run_deepseek(opts) -> list[dict]:
    return deepseek.run_section(opts.deepseek, opts.quick, opts.rows_json, HERE / "bench.py")


def main(argv=None) -> int:
    opts = parse_args(argv)
    if opts.compile_only:
        return compile_only(opts)
    if not torch.cuda.is_available():
        why = "torch.cuda is not available; this script needs an NVIDIA GPU"
        print(f"benchmarks/gpu: {why} (--compile-only checks the kernels without one)", file=sys.stderr)
        if opts.rows_json:   # a child of run_section: its parent reports the reason in each row
            rows = [dict(key=k, name=k, ok=False, error=why) for k in opts.deepseek or deepseek.WORKLOADS]
            pathlib.Path(opts.rows_json).write_text(json.dumps(rows))
        return 2
    dev = torch.cuda.get_device_name()
    print(f"device: {dev} (capability {torch.cuda.get_device_capability()}), torch {torch.__version__}")
    t_start = time.time()
    result = dict(device=dev, torch=torch.__version__, quick=opts.quick)
    # the examples' and timings' kernels, concurrently (run_section prebuilds the DeepSeek ones)
    from tilec.backends.cuda.build import default_arch
    parts = [p for p in opts.parts if p != "deepseek"]
    result["prebuild_seconds"] = compile_check.prebuild(compile_jobs(opts, parts, default_arch()))
    phases = [("examples", run_examples), ("timings", lambda: run_timings(opts.quick)),
              ("deepseek", lambda: run_deepseek(opts))]
    for part, fn in phases:
        if part in opts.parts:
            t0 = time.time()
            result[part] = fn()
            result[f"{part}_seconds"] = round(time.time() - t0, 1)
    total = time.time() - t_start
    print(f"\ntotal {total:.0f} s on {dev} (" + ", ".join(f"{p} {result[p + '_seconds']:.0f} s" for p in PARTS
                                                     if p in result) + ")")
    result["seconds"] = total
    if os.environ.get("OUT"):
        path = pathlib.Path(os.environ["OUT"]) / "gpu_bench.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {path}")
    ok = all(r["ok"] for r in result.get("examples", []) + result.get("deepseek", []))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
