"""DeepSeek-V3.2 kernels on the CPU: tilec (target cpu) against plain PyTorch, in one process.

    python benchmarks/deepseek_cpu.py [--json PATH] [--rounds N] [--only NAME ...]

Workloads (issue 7): sparse MLA prefill (T512 H16 D576/512 top-k 128) against gather + einsum, the
lightning indexer + top-k (T512 H16 D128 top-k 128, causal prefill) against einsum + ``torch.topk``, and
the MoE layer (N512 dim512 inter256 E16 top-4 + a shared expert, bf16 and FP8 weights) against
``reference.MoE``'s per-expert loop. Every workload is one function returning a row and one entry in
``WORKLOADS`` (name -> (function, peer the target is measured against, wanted ratio)). A row with
``tol`` counts as met only when its relative error ``err`` is at most ``tol``. Timing alternates
tilec and its peers round by round and reports medians, so a noisy machine slows all of them alike;
ratio = peer time / tilec time (> 1: tilec is faster). Inputs are the same torch tensors for both.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Callable

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tilec.models.deepseek_v32 import ref_ops  # noqa: E402
from tilec.models.deepseek_v32.kernels import indexer, sparse_mla, topk  # noqa: E402


def timed(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each callable over interleaved rounds, after one warm-up call each."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def relerr(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    fin = torch.isfinite(ref)
    return float((out[fin] - ref[fin]).norm() / ref[fin].norm())


# --- sparse MLA ---------------------------------------------------------------------------------------

def torch_sparse_mla(q, kv, indices, sm_scale: float, d_v: int, dtype=torch.float32):
    """Gather + einsum (FlashMLA's ref.py), computed in ``dtype``."""
    s_kv = kv.shape[0]
    valid = (indices >= 0) & (indices < s_kv)
    kvg = kv[indices.long().clamp(0, s_kv - 1)].to(dtype)                 # [s_q, topk, 576]
    p = torch.einsum("shd,std->sht", q.to(dtype), kvg).float() * sm_scale
    p = p.masked_fill(~valid[:, None, :], float("-inf"))
    lse = torch.logsumexp(p, dim=-1)
    w = torch.exp(p - lse[..., None]).to(dtype)
    return torch.einsum("sht,std->shd", w, kvg[..., :d_v]).to(q.dtype), lse


def bench_sparse_mla(rounds: int, t=512, h=16, d_qk=576, d_v=512, k=128) -> dict:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(t, h, d_qk, generator=g).bfloat16()
    kv = torch.randn(t, d_qk, generator=g).bfloat16()
    # causal prefill: token s may use positions 0..s; the top-k picks up to k of them, -1 past that
    scores = torch.randn(t, t, generator=g) + torch.full((t, t), float("-inf")).triu(1)
    idx = ref_ops.topk_indices(scores, k)
    scale = 0.1352338
    tl = lambda: sparse_mla.sparse_mla_fwd(q, kv, idx, scale, d_v, target="cpu")  # noqa: E731
    out, _ = tl()
    ref, _ = torch_sparse_mla(q, kv, idx, scale, d_v)
    times = timed({"tilec": tl, "torch": lambda: torch_sparse_mla(q, kv, idx, scale, d_v),
                   "torch_bf16": lambda: torch_sparse_mla(q, kv, idx, scale, d_v, torch.bfloat16)}, rounds)
    return dict(case=f"sparse MLA T{t} H{h} D{d_qk}/{d_v} top-k {k}", err=relerr(out, ref),
                flops=2 * t * h * k * (d_qk + d_v), **times)


# --- indexer + top-k ----------------------------------------------------------------------------------

def torch_indexer_topk(q, w, kk, ks, k: int):
    logits = ref_ops.fp8_index(q, w, kk, ks)
    t = logits.shape[1]
    logits = logits + torch.full((t, logits.shape[2]), float("-inf")).triu(1)
    return ref_ops.topk_indices(logits, k)


def tilec_indexer_topk(q, w, kk, ks, k: int):
    logits = indexer.fp8_index(q, w, kk, ks, causal_offset=0, target="cpu")
    return topk.topk_indices(logits, k, target="cpu")


def bench_indexer_topk(rounds: int, t=512, h=16, d=128, k=128) -> dict:
    g = torch.Generator().manual_seed(0)
    q, qs = ref_ops.act_quant(torch.randn(1, t, h, d, generator=g), 128, "ue8m0")
    kk, ks = ref_ops.act_quant(torch.randn(1, t, d, generator=g), 128, "ue8m0")
    w, ks = qs[..., 0] * torch.rand(1, t, h, generator=g), ks[..., 0]
    out = tilec_indexer_topk(q, w, kk, ks, k)
    ref = torch_indexer_topk(q, w, kk, ks, k)
    # err: the fraction of rows whose selected sets differ (exact ties may legitimately differ)
    differ = (out.sort(-1).values != ref.sort(-1).values).any(-1).float().mean().item()
    qf, kf = q.float(), kk.float()
    times = timed({"tilec": lambda: tilec_indexer_topk(q, w, kk, ks, k),
                   "torch": lambda: torch_indexer_topk(q, w, kk, ks, k),
                   "tilec_indexer": lambda: indexer.fp8_index(q, w, kk, ks, causal_offset=0, target="cpu"),
                   "torch_indexer": lambda: ref_ops.fp8_index(q, w, kk, ks),
                   # the same with q and k already fp32 (the e4m3 -> fp32 conversion not timed)
                   "torch_f32_inputs": lambda: torch_indexer_topk(qf, w, kf, ks, k)}, rounds)
    return dict(case=f"indexer+top-k T{t} H{h} D{d} top-k {k}", err=differ,
                flops=2 * t * t * h * d, **times)


# --- MoE ----------------------------------------------------------------------------------------------

def bench_moe(rounds: int, t=512, dim=512, inter=256, e=16, k=4, dtype: str = "bf16") -> dict:
    """The MoE layer (gate, routed SwiGLU experts, shared expert, combine; 4 groups / top-2) against
    ``reference.MoE.forward``, whose routed part is the per-expert PyTorch loop. ``dtype="fp8"``: e4m3
    weights with 128x128 ue8m0 block scales (both sides quantize activations with ``act_quant``)."""
    from dataclasses import replace

    from tilec.models.deepseek_v32 import ref_ops as ops
    from tilec.models.deepseek_v32.config import CONFIG_TINY
    from tilec.models.deepseek_v32.kernels import moe
    from tilec.models.deepseek_v32.reference import MoE
    args = replace(CONFIG_TINY, dim=dim, moe_inter_dim=inter, n_routed_experts=e, n_activated_experts=k, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    layer = MoE(args)
    for lin in [m for m in layer.modules() if hasattr(m, "scale")]:
        w = torch.randn(lin.weight.shape, generator=g) * lin.weight.shape[1] ** -0.5
        if lin.scale is not None:
            q, sc = ops.weight_quant(w, 128, "ue8m0")
            lin.weight.copy_(q)
            lin.scale.copy_(sc)
        else:
            lin.weight.copy_(w.bfloat16())
    layer.gate.weight.copy_((torch.randn(e, dim, generator=g) * dim ** -0.5).bfloat16())
    layer.gate.bias.copy_(torch.randn(e, generator=g) * 0.05)
    ex, sh = list(layer.experts), layer.shared_experts
    names = ("w1", "w2", "w3")
    p = dict(gate_w=layer.gate.weight, gate_b=layer.gate.bias,
             **{w: torch.stack([getattr(x, w).weight for x in ex]).contiguous() for w in names},
             shared={w: getattr(sh, w).weight for w in names})
    if dtype == "fp8":
        p.update({f"s{w[1]}": torch.stack([getattr(x, w).scale for x in ex]).contiguous() for w in names})
        p["shared"].update({f"s{w[1]}": getattr(sh, w).scale for w in names})
    x = torch.randn(t, dim, generator=g).bfloat16()
    tl = lambda: moe.moe(x, p, args, target="cpu")  # noqa: E731
    out, ref = tl(), layer(x)
    times = timed({"tilec": tl, "torch": lambda: layer(x)}, rounds)
    # process CPU seconds (all threads) of the same calls: on a loaded machine wall time mostly
    # measures how torch's spinning worker threads fare against the other processes
    cpu: dict[str, list[float]] = {"tilec_cpu_s": [], "torch_cpu_s": []}
    for _ in range(rounds):
        for key, f in (("tilec_cpu_s", tl), ("torch_cpu_s", lambda: layer(x))):
            c0 = time.process_time()
            f()
            cpu[key].append(time.process_time() - c0)
    times.update({key: float(np.median(v)) for key, v in cpu.items()})
    flops = 2 * 3 * dim * inter * t * (k + args.n_shared_experts) + 2 * t * dim * e
    # tol: the bf16 output against reference.MoE (the same rounding points; only fp32 summation order
    # differs); a row whose error exceeds it does not count as met, whatever its speed
    return dict(case=f"MoE N{t} dim{dim} inter{inter} E{e} top-{k} {dtype}", err=relerr(out, ref), tol=1e-2,
                flops=flops, **times)


WORKLOADS: dict[str, tuple[Callable[[int], dict], str, float]] = {
    "sparse_mla": (bench_sparse_mla, "torch", 3.0),
    "indexer_topk": (bench_indexer_topk, "torch", 1.5),
    "moe": (bench_moe, "torch", 1.5),
    "moe_fp8": (lambda rounds: bench_moe(rounds, dtype="fp8"), "torch", 1.5),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--only", nargs="*", choices=sorted(WORKLOADS), help="run these workloads only")
    args = ap.parse_args(argv)
    rows, ok = [], True
    print(f"tilec vs torch {torch.__version__} ({torch.get_num_threads()} threads); medians of {args.rounds} rounds")
    print(f"{'case':42s} {'tilec ms':>9s} {'peer':>11s} {'peer ms':>9s} {'ratio':>6s} {'target':>7s} "
          f"{'GFLOP/s':>8s} {'err':>8s}  other timings (ms)")
    for name in args.only or WORKLOADS:
        fn, peer, want = WORKLOADS[name]
        row = fn(args.rounds)
        row.update(name=name, peer=peer, ratio=row[peer] / row["tilec"], target=want)
        row["met"] = bool(row["ratio"] >= want and ("tol" not in row or row["err"] <= row["tol"]))  # NaN fails
        ok &= row["met"]
        rows.append(row)
        skip = ("tilec", peer, "ratio", "target", "err", "tol", "flops")
        extra = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in row.items() if isinstance(v, float) and k not in skip)
        gf = row["flops"] / row["tilec"] / 1e9 if row.get("flops") else 0.0
        print(f"{row['case']:42s} {row['tilec'] * 1e3:9.2f} {peer:>11s} {row[peer] * 1e3:9.2f} {row['ratio']:6.2f} "
              f"{want:7.1f} {gf:8.1f} {row['err']:8.1e}  {extra}")
    print("targets:", ", ".join(f"{r['name']}: {'met' if r['met'] else 'MISSED'}" for r in rows))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(torch_threads=torch.get_num_threads(), rows=rows), indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
