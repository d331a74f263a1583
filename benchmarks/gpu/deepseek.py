"""The DeepSeek-V3.2 rows of the GPU benchmark (``bench.py`` calls this; ``run.sh`` is the entry point).

Each workload is one V3.2 kernel family at real per-layer sizes on the ``cuda`` target, checked
against a PyTorch statement of the same math on the GPU, then timed against that PyTorch code:

- sparse MLA (``kernels/sparse_mla.py``, FlashMLA semantics): H=128, d_qk 576 / d_v 512, top-k 2048,
  decode-style (a batch of single queries, each over its own 8K cache) and prefill (2K queries over an
  8K cache), vs a chunked gather + einsum / softmax;
- the model's own absorbed decode attention (``attention_kernels.mqa_sparse_decode_kernel``, the
  reference's bf16 rounding points) at the same decode sizes, vs the reference's bf16 einsums;
- lightning indexer + top-k (``indexer.py``, ``topk.py``): H=64, D=128, top-k 2048, causal prefill
  and decode, vs einsum + ``torch.topk``;
- MoE (``moe_gate.py``, ``moe.py`` over ``model_kernels.py``'s symbolic-token layout, the shared
  expert through ``linear_bf16`` + ``silu_glu``): dim 7168, inter 2048, 256 experts top-8 (8 groups,
  4 kept) + 1 shared expert, bf16 weights, vs the reference's per-expert loop;
- ``act_quant`` + ``fp8_gemm`` (``quant.py``): wq_a's shape (7168 -> 1536), vs ``ref_ops``.

Kernels are named by ``specs.KernelSpec`` (the model's own constructors where they fit the cuda
target); ``kernel_specs`` lists every one the run launches, so ``--compile-only`` compiles exactly
those. Where a workload has several tile configurations (``configs``), each is built, checked and timed;
one that fails to build or gives a wrong result is reported in the row and not counted. Correctness:
fresh random inputs, outputs NaN-poisoned, ||out-ref||/||ref|| with NaN never passing, and every
reference checked for sanity (finite, not constant) so a degenerate comparison cannot pass. Timing:
CUDA-event medians, repetitions sized to ``Ctx.budget_s`` per timed function. ``Ctx(device="cpu",
target="cpu")`` runs the same code on the CPU at small ``Dims`` (tests/benchmarks uses it).

Budget (an estimate, nothing has run on a GPU yet): about 10 s a workload on an H100, 1-2 minutes in
all with the concurrent prebuild; ``--quick`` halves the sizes and the timing budget. Modules: this
one (the workload table, the run, the table printout), ``ds_common.py`` (sizes, context, checks),
``ds_attention.py``, ``ds_ffn.py`` (the workloads), ``compile_check.py`` (building without running).
"""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
import tempfile
import time
import traceback
from functools import partial
from typing import Callable

import torch

import compile_check
from ds_attention import (bench_indexer_topk, bench_mqa_decode, bench_sparse_mla, indexer_specs, mqa_decode_specs,
                          sparse_mla_specs)
from ds_common import Ctx, Dims, Sizes, short
from ds_ffn import bench_fp8_linear, bench_moe, fp8_specs, moe_specs
from tilec.models.deepseek_v32.specs import KernelSpec

__all__ = ["Ctx", "Dims", "Sizes", "WORKLOADS", "kernel_specs", "prebuild", "run_all", "run_section",
           "format_table", "sizes"]


# --- the workload table --------------------------------------------------------------------------

WORKLOADS: dict[str, tuple[Callable, Callable]] = {     # key -> (specs(dims, sizes), bench(ctx, dims, sizes))
    "sparse_mla_decode": (sparse_mla_specs, partial(bench_sparse_mla, decode=True)),
    "sparse_mla_prefill": (sparse_mla_specs, partial(bench_sparse_mla, decode=False)),
    "mqa_decode_model": (mqa_decode_specs, bench_mqa_decode),
    "indexer_topk_prefill": (partial(indexer_specs, decode=False), partial(bench_indexer_topk, decode=False)),
    "indexer_topk_decode": (partial(indexer_specs, decode=True), partial(bench_indexer_topk, decode=True)),
    "moe": (moe_specs, bench_moe),
    "fp8_linear": (fp8_specs, bench_fp8_linear),
}


def kernel_specs(d: Dims, s: Sizes, only=None) -> list[tuple[str, KernelSpec]]:
    """(workload, spec) for every kernel the run launches, each spec once, in run order."""
    seen, out = set(), []
    for key, (specs_fn, _) in WORKLOADS.items():
        if only and key not in only:
            continue
        for _, sp in specs_fn(d, s):
            if sp.name not in seen:
                seen.add(sp.name)
                out.append((key, sp))
    return out


def prebuild(ctx: Ctx, d: Dims, s: Sizes, only=None, workers: int = 0) -> float:
    """Build every kernel of the run concurrently (``compile_check.prebuild``); a build error is
    remembered by ``ctx`` and reported by the row that needs the kernel. Returns the seconds it took."""
    return compile_check.prebuild([(sp.name, partial(ctx.kernel_or_error, sp)) for _, sp in kernel_specs(d, s, only)],
                                  workers)


def run_all(ctx: Ctx, d: Dims, s: Sizes, only=None, log=print) -> list[dict]:
    """Every workload in turn; one that raises becomes a failed row with its error. A failure that
    leaves the CUDA context unusable (a sticky error: illegal address, ...) stops the loop; the row
    says so and ``bench.py`` runs the remaining workloads in a fresh process."""
    rows = []
    for key, (_, fn) in WORKLOADS.items():
        if only and key not in only:
            continue
        t0 = time.time()
        try:
            row = fn(ctx, d, s)
        except Exception as e:  # noqa: BLE001 - one failing workload must not hide the others
            traceback.print_exc()
            row = dict(name=key, ok=False, rel_err=math.nan, error=short(e))
        row.update(key=key, seconds=round(time.time() - t0, 1))
        rows.append(row)
        log(f"  deepseek {key}: {row['seconds']} s, {'ok' if row['ok'] else 'FAIL ' + row.get('error', '')}")
        if not row["ok"] and not ctx.alive():
            row["error"] = row.get("error", "") + " [the CUDA context was lost after this workload]"
            row["context_lost"] = True
            break
        if ctx.device == "cuda":
            torch.cuda.empty_cache()
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'DeepSeek-V3.2 workload':<24}{'sizes':<46}{'torch ms':>10}{'tilec ms':>10}{'vs torch':>9}"
             f"{'rel err':>10}{'tol':>7}  result  config / parts"]
    for r in rows:
        t, tl = r.get("torch_ms"), r.get("tilec_ms")
        ratio = f"{t / tl:>8.0%} " if t and tl else f"{'-':>9}"
        parts = ", ".join(f"{k[:-3]} {v:.3f}" for k, v in (r.get("parts") or {}).items())
        tail = f"{r.get('config', '')} {parts}".strip() if r["ok"] else r.get("error", "")
        failed = [f"{k} FAILED ({v['error'][:90]})" for k, v in (r.get("configs") or {}).items()
                  if r["ok"] and v.get("error")]
        tail = "; ".join([tail] + failed)
        lines.append(f"{r['name']:<24}{r.get('sizes', ''):<46}{t if t else math.nan:>10.3f}"
                     f"{tl if tl else math.nan:>10.3f}{ratio}{r.get('rel_err', math.nan):>10.2e}"
                     f"{r.get('tol', math.nan):>7.0e}  {'ok  ' if r['ok'] else 'FAIL'}    {tail}")
    return "\n".join(lines)


def sizes(quick: bool) -> Sizes:
    return Sizes().halved() if quick else Sizes()


def run_section(keys, quick: bool, rows_json, bench_py) -> list[dict]:
    """The DeepSeek part of ``bench.py`` (budget: about 2 minutes on an H100, 1 with ``--quick``):
    build every kernel concurrently, run the workloads, print the table. Workloads left over when the
    CUDA context is lost (or was lost before) run in a child ``bench_py`` (``--rows-json``)."""
    keys = keys or list(WORKLOADS)
    ctx, dims = Ctx(budget_s=1.0 if quick else 2.0), Dims()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    if ctx.alive():
        prebuild(ctx, dims, sizes(quick), keys)
        rows = run_all(ctx, dims, sizes(quick), keys, log=log)
    rest = [k for k in keys if k not in {r["key"] for r in rows}]
    if rest:
        rows += run_child(bench_py, rest, quick, log)
    if not rows_json or not rest:
        print("\n" + format_table(rows))
    if rows_json:
        pathlib.Path(rows_json).write_text(json.dumps(rows, default=str))
    return rows


def run_child(bench_py, keys: list[str], quick: bool, log) -> list[dict]:
    """``keys`` in a fresh process (a fresh CUDA context); its rows come back through a JSON file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "rows.json"
        cmd = [sys.executable, str(bench_py), "--only", "deepseek", "--deepseek", *keys, "--rows-json", str(out)]
        log(f"  deepseek: running {', '.join(keys)} in a fresh process")
        subprocess.run(cmd + (["--quick"] if quick else []), check=False, stdout=2)  # fd 2: its tables go to stderr
        if out.exists():
            return json.loads(out.read_text())
    return [dict(key=k, name=k, ok=False, rel_err=math.nan, error="the child process wrote no result") for k in keys]
