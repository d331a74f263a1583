"""DeepSeek-V3.2 feed-forward workloads of the GPU benchmark: the MoE layer and act_quant + fp8_gemm.

The MoE runs the model's own kernel sequence (``model.Model.moe``: gate, permutation, grouped up /
down GEMMs over the padded layout, shared expert, combine) against the reference's per-expert loop;
the FP8 linear is DeepSeek's ``linear`` with FP8 weights against ``ref_ops``. See ``deepseek.py``.
"""
from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Callable

import torch
import torch.nn.functional as F

from tilec.models.deepseek_v32 import ref_ops, specs
from tilec.models.deepseek_v32.config import CONFIG_671B
from tilec.models.deepseek_v32.specs import KernelSpec

from ds_common import NEG_INF, Ctx, Dims, Sizes, passed, pick, rel_err, run, sane, short, spec


# --- MoE -----------------------------------------------------------------------------------------

def moe_specs(d: Dims, s: Sizes) -> list[tuple[str, KernelSpec]]:
    """The model's MoE kernels (symbolic token count) for each block_M; the gate and the shared
    expert (two linears and silu_glu, as ``model.Model.mlp``) do not depend on block_M."""
    a = replace(CONFIG_671B, dtype="bf16", dim=d.dim, moe_inter_dim=d.inter, n_routed_experts=d.experts,
                n_activated_experts=d.active, n_expert_groups=d.groups, n_limited_groups=d.top_groups,
                route_scale=d.route_scale)
    out = [("gate", specs.moe_gate(a)), ("shared_w13", specs.linear(d.inter, d.dim)),
           ("silu_glu", specs.silu_glu(d.inter)), ("shared_w2", specs.linear(d.dim, d.inter))]
    tag = f"d{d.dim}_i{d.inter}_e{d.experts}_k{d.active}"
    for bm in d.moe_block_M:
        args = (d.dim, d.inter, d.experts, d.active, False, None, bm)
        out += [(f"permute/bm{bm}", spec(f"moe_permute_k{d.active}_e{d.experts}_bm{bm}", specs.MOE, "permute_kernel",
                                      ("$T", d.active, d.experts, bm), (1, 2, 3, 4))),
                (f"up/bm{bm}", spec(f"moe_up_{tag}_bm{bm}_bf16", specs.GLUE, "moe_up_layout_kernel", args, (5,))),
                (f"down/bm{bm}", spec(f"moe_down_{tag}_bm{bm}_bf16", specs.GLUE, "moe_down_layout_kernel", args, (3,))),
                (f"combine/bm{bm}", spec(f"moe_combine_k{d.active}_d{d.dim}_e{d.experts}_bm{bm}", specs.GLUE,
                                      "moe_combine_layout_kernel", (d.active, d.dim, d.experts, bm), (4,)))]
    return out


def torch_gate(x, wg, bias, d: Dims):
    """``reference.Gate.forward`` (sigmoid, group-limited top-k, unbiased weights), device-agnostic."""
    scores = (x.float() @ wg.float().t()).sigmoid()
    original, scores = scores, scores + bias
    if d.groups > 1:
        sc = scores.view(x.size(0), d.groups, -1)
        keep = sc.topk(2, dim=-1)[0].sum(dim=-1).topk(d.top_groups, dim=-1)[1]
        drop = torch.ones(x.size(0), d.groups, dtype=torch.bool, device=x.device).scatter_(1, keep, False)
        scores = sc.masked_fill(drop.unsqueeze(-1), NEG_INF).flatten(1)
    indices = scores.topk(d.active, dim=-1)[1]
    weights = original.gather(1, indices)
    return weights / weights.sum(dim=-1, keepdim=True) * d.route_scale, indices


def torch_moe(x, p: dict, d: Dims):
    """``reference.MoE.forward`` with bf16 weights: the per-expert loop plus the shared expert."""
    weights, indices = torch_gate(x, p["gate_w"], p["gate_b"], d)
    y = torch.zeros_like(x, dtype=torch.float32)
    for e in torch.unique(indices).tolist():
        rows, slot = torch.where(indices == e)
        xe = x[rows]
        h = ref_ops.silu_glu(F.linear(xe, p["w1"][e]), F.linear(xe, p["w3"][e]))
        y[rows] += F.linear(h, p["w2"][e]) * weights[rows, slot, None]
    sh = F.linear(ref_ops.silu_glu(F.linear(x, p["s1"]), F.linear(x, p["s3"])), p["s2"])
    return (y + sh).to(x.dtype)


def moe_params(ctx: Ctx, d: Dims) -> dict:
    g = ctx.gen(4)

    def w(*shape, fan_in):
        return torch.empty(shape, dtype=torch.bfloat16, device=ctx.device).normal_(0, fan_in ** -0.5, generator=g)
    return dict(gate_w=w(d.experts, d.dim, fan_in=d.dim),
                gate_b=torch.randn(d.experts, generator=g, device=ctx.device) * 0.05,
                w1=w(d.experts, d.inter, d.dim, fan_in=d.dim), w3=w(d.experts, d.inter, d.dim, fan_in=d.dim),
                w2=w(d.experts, d.dim, d.inter, fan_in=d.inter), s1=w(d.inter, d.dim, fan_in=d.dim),
                s3=w(d.inter, d.dim, fan_in=d.dim), s2=w(d.dim, d.inter, fan_in=d.inter))


def tilec_moe(k: dict, bm: int, x, p: dict, poison: bool = False, mark: Callable = lambda name: None):
    """The model's MoE step on the kernels ``k`` (label -> JITKernel) with block_M ``bm``:
    gate, permute, grouped up / down, shared expert, combine. Returns (out, weights, experts)."""
    w, idx = run(k["gate"], x, p["gate_w"], p["gate_b"], poison=poison)
    mark("gate")
    _, tok, tile_e, pos = run(k[f"permute/bm{bm}"], idx, poison=poison)
    mark("permute")
    h = run(k[f"up/bm{bm}"], x, tok, tile_e, p["w1"], p["w3"], poison=poison)
    mark("up")
    yp = run(k[f"down/bm{bm}"], h, tile_e, p["w2"], poison=poison)
    mark("down")
    a1, a3 = run(k["shared_w13"], x, p["s1"], poison=poison), run(k["shared_w13"], x, p["s3"], poison=poison)
    sh = run(k["shared_w2"], run(k["silu_glu"], a1, a3, poison=poison), p["s2"], poison=poison)
    mark("shared")
    out = run(k[f"combine/bm{bm}"], yp, pos, w, sh, poison=poison)
    mark("combine")
    return out, w, idx


def moe_parts(ctx: Ctx, k: dict, bm: int, x, p: dict) -> dict:
    """Median milliseconds of each MoE step over 3 pipeline runs (time stamps between the launches)."""
    laps: dict[str, list[float]] = {}
    for _ in range(3):
        stamps = [("start", ctx.stamp())]
        tilec_moe(k, bm, x, p, mark=lambda name: stamps.append((name, ctx.stamp())))
        ctx.sync()
        for (_, a), (name, b) in zip(stamps, stamps[1:]):
            laps.setdefault(f"{name}_ms", []).append(ctx.elapsed_ms(a, b))
    return {n: statistics.median(v) for n, v in laps.items()}


def bench_moe(ctx: Ctx, d: Dims, s: Sizes) -> dict:
    t = s.moe_tokens
    p = moe_params(ctx, d)
    x = torch.randn(t, d.dim, generator=ctx.gen(5), device=ctx.device).bfloat16()
    ref = torch_moe(x, p, d)
    ref_w, ref_idx = torch_gate(x, p["gate_w"], p["gate_b"], d)
    sane(ref, "out")
    row = dict(name="MoE (bf16 experts)", tol=1e-2,
               sizes=f"T{t} dim{d.dim} inter{d.inter} E{d.experts} top-{d.active} +1 shared",
               torch_ms=ctx.time_ms(lambda: torch_moe(x, p, d)),
               flops=2.0 * 3 * d.dim * d.inter * t * (d.active + 1))
    labels = moe_specs(d, s)

    def attempt_bm(bm):
        k = {lab: ctx.kernel(sp) for lab, sp in labels if "/bm" not in lab or lab.endswith(f"/bm{bm}")}
        out, w, idx = tilec_moe(k, bm, x, p, poison=True)
        ctx.sync()
        same = (idx.long().sort(-1).values == ref_idx.sort(-1).values).all(-1)
        r = dict(rel_err=rel_err(out, ref), routing_diff=1.0 - same.float().mean().item(),
                 gate_w_err=rel_err(w, ref_w))
        r["ok"] = passed(r["rel_err"], 1e-2) and r["routing_diff"] < 0.01
        if r["ok"]:
            r["ms"] = ctx.time_ms(lambda: tilec_moe(k, bm, x, p))
            r["parts"] = moe_parts(ctx, k, bm, x, p)
        return r
    tried = {}
    for bm in d.moe_block_M:
        try:
            tried[f"block_M={bm}"] = attempt_bm(bm)
        except Exception as e:  # noqa: BLE001
            tried[f"block_M={bm}"] = dict(ok=False, error=short(e))
    return pick(row, tried)


# --- act_quant + fp8_gemm ------------------------------------------------------------------------

def fp8_specs(d: Dims, s: Sizes) -> list[tuple[str, KernelSpec]]:
    return [("act_quant", specs.act_quant(d.dim, True)), ("fp8_gemm", specs.fp8_gemm(d.lin_n, d.dim, "cuda"))]


def bench_fp8_linear(ctx: Ctx, d: Dims, s: Sizes) -> dict:
    """DeepSeek's ``linear`` with FP8 weights (ue8m0 scales): act_quant then the block-scaled GEMM."""
    t, g = s.linear_tokens, ctx.gen(6)
    x = torch.randn(t, d.dim, generator=g, device=ctx.device).bfloat16()
    w, ws = ref_ops.weight_quant(torch.randn(d.lin_n, d.dim, generator=g, device=ctx.device) * d.dim ** -0.5)
    (_, aspec), (_, gspec) = fp8_specs(d, s)

    def torch_fn():
        xq, xs = ref_ops.act_quant(x, 128, "ue8m0")
        return ref_ops.fp8_gemm(xq, xs, w, ws), xq, xs
    ref, ref_q, ref_s = torch_fn()
    sane(ref, "y")
    row = dict(name="act_quant+fp8_gemm", tol=1e-2, config="", flops=2.0 * t * d.lin_n * d.dim,
               sizes=f"M{t} K{d.dim} N{d.lin_n} ue8m0", torch_ms=ctx.time_ms(torch_fn))
    ak, gk = ctx.kernel(aspec), ctx.kernel(gspec)
    xq, xs = run(ak, x, poison=True)
    y = run(gk, xq, xs, w, ws, poison=True)
    ctx.sync()
    row["quant_err"] = rel_err(ref_ops.act_dequant(xq, xs, dtype=torch.float32),
                               ref_ops.act_dequant(ref_q, ref_s, dtype=torch.float32))
    row["quant_mismatch"] = (xq.view(torch.uint8) != ref_q.view(torch.uint8)).float().mean().item()
    # reported, not required: torch's exp2(ceil(log2(s))) can round a scale just above a power of two
    # down, where the kernel's exponent-bit rule (DeepSeek's) rounds up; the values agree either way
    row["scale_mismatch"] = (xs != ref_s).float().mean().item()
    row["rel_err"] = rel_err(y, ref)
    row["ok"] = passed(row["rel_err"], 1e-2) and passed(row["quant_err"], 1e-3)
    if not row["ok"]:
        row["error"] = f"y rel err {row['rel_err']:.2e}, act_quant rel err {row['quant_err']:.2e}"
        return row
    row["parts"] = dict(act_quant_ms=ctx.time_ms(lambda: run(ak, x)),
                        fp8_gemm_ms=ctx.time_ms(lambda: run(gk, xq, xs, w, ws)))
    row["tilec_ms"] = ctx.time_ms(lambda: run(gk, *run(ak, x), w, ws))
    return row
