"""DeepSeek-V3.2 attention workloads of the GPU benchmark: sparse MLA and the lightning indexer + top-k.

Each ``bench_*`` builds its kernels from ``specs.KernelSpec``s (``*_specs``: exactly what it launches,
which ``--compile-only`` compiles), checks them against a PyTorch statement of the same math on the
device and times both. See ``deepseek.py`` for the sizes and the table.
"""
from __future__ import annotations

import torch

from tilec.models.deepseek_v32 import ref_ops, specs
from tilec.models.deepseek_v32.specs import KernelSpec

from ds_common import NEG_INF, Ctx, Dims, Sizes, best_config, passed, rel_err, run, sane, spec


# --- sparse MLA ----------------------------------------------------------------------------------

def sparse_mla_specs(d: Dims, s: Sizes) -> list[tuple[str, KernelSpec]]:
    """One spec per block_H (divisors of the head count); the batch / length dims are symbolic."""
    out = []
    for bh in dict.fromkeys(b for b in d.mla_block_H if b <= d.heads and d.heads % b == 0):
        out.append((f"block_H={bh}", spec(f"sparse_mla_h{d.heads}_d{d.d_qk}_v{d.d_v}_bh{bh}", specs.SPARSE,
                                          "sparse_mla_fwd_kernel",
                                          (d.heads, d.d_qk, d.d_v, float(d.scale), 64, bh, "bfloat16"), (3, 4))))
    return out


def torch_sparse_mla(q, kv, idx, scale: float, d_v: int, dtype=torch.bfloat16, chunk_bytes: int = 1 << 30):
    """Gather + einsum (FlashMLA's ref.py) in ``dtype`` with an fp32 softmax, chunked over queries so
    the gathered rows stay under ~1 GB: q [b,s,h,d], kv [b,n,d], idx [b,s,k] -> (out, lse [b,s,h])."""
    b, s_q, _, d = q.shape
    n, k = kv.shape[1], idx.shape[-1]
    chunk = max(1, chunk_bytes // max(1, b * k * d * 4))
    bi = torch.arange(b, device=q.device)[:, None, None]
    outs, lses = [], []
    for s0 in range(0, s_q, chunk):
        ii = idx[:, s0:s0 + chunk]
        valid = (ii >= 0) & (ii < n)
        g = kv[bi, ii.long().clamp(0, n - 1)].to(dtype)                       # [b, c, k, d]
        p = torch.einsum("bshd,bskd->bshk", q[:, s0:s0 + chunk].to(dtype), g).float() * scale
        p = p.masked_fill(~valid[:, :, None, :], NEG_INF)
        lse = torch.logsumexp(p, dim=-1)
        w = torch.exp(p - lse[..., None]).to(dtype)
        outs.append(torch.einsum("bshk,bskd->bshd", w, g[..., :d_v]).to(q.dtype))
        lses.append(lse)
    return torch.cat(outs, 1), torch.cat(lses, 1)


def random_indices(ctx: Ctx, b: int, s_q: int, n: int, k: int, seed: int) -> torch.Tensor:
    """Per query k distinct positions of [0, n) in increasing order (the top-k kernel's order), about
    1/8 of them replaced by -1 (invalid slots the kernel must skip)."""
    g = ctx.gen(seed)
    idx = torch.rand(b, s_q, n, generator=g, device=ctx.device).argsort(-1)[..., :k].sort(-1).values
    idx[torch.rand(idx.shape, generator=g, device=ctx.device) < 0.125] = -1
    return idx.to(torch.int32).contiguous()


def bench_sparse_mla(ctx: Ctx, d: Dims, s: Sizes, decode: bool) -> dict:
    b, s_q = (s.decode_batch, 1) if decode else (1, s.prefill_tokens)
    n, k, g = s.kv_len, min(d.topk, s.kv_len), ctx.gen(1)
    q = torch.randn(b, s_q, d.heads, d.d_qk, generator=g, device=ctx.device).bfloat16()
    kv = torch.randn(b, n, d.d_qk, generator=g, device=ctx.device).bfloat16()
    idx = random_indices(ctx, b, s_q, n, k, 2)
    ref, ref_lse = torch_sparse_mla(q, kv, idx, d.scale, d.d_v, torch.float32)
    sane(ref, "out")
    sane(ref_lse, "lse")
    torch_ms = ctx.time_ms(lambda: torch_sparse_mla(q, kv, idx, d.scale, d.d_v))
    row = dict(name=f"sparse MLA {'decode' if decode else 'prefill'}",
               sizes=f"b{b} s_q{s_q} s_kv{n} H{d.heads} D{d.d_qk}/{d.d_v} top-k {k}",
               torch_ms=torch_ms, tol=1e-2, flops=2.0 * b * s_q * d.heads * k * (d.d_qk + d.d_v))

    def attempt(kern) -> dict:
        out, lse = run(kern, q, kv, idx, poison=True)
        ctx.sync()
        err, lse_err = rel_err(out, ref), rel_err(lse, ref_lse)
        ok = passed(err, 1e-2) and passed(lse_err, 1e-4)
        return dict(rel_err=err, lse_err=lse_err, ok=ok, ms=ctx.time_ms(lambda: run(kern, q, kv, idx)) if ok else None)
    return best_config(ctx, row, sparse_mla_specs(d, s), attempt)


# --- lightning indexer + top-k -------------------------------------------------------------------

def indexer_specs(d: Dims, s: Sizes, decode: bool) -> list[tuple[str, KernelSpec]]:
    n = s.kv_len if decode else s.index_tokens
    return [("logits", specs.fp8_index(d.idx_heads, d.idx_dim, not decode, "cuda")),
            ("topk", specs.topk(d.topk, specs.topk_capacity(n)))]


def torch_indexer_logits(q, w, k, ks, causal: bool, chunk_bytes: int = 1 << 30) -> torch.Tensor:
    """``ref_ops.fp8_index`` (einsum in fp32, relu, weighted head sum), chunked over queries, plus the
    causal mask (key n > query m is -inf)."""
    b, m, h, _ = q.shape
    n = k.shape[1]
    chunk = max(1, chunk_bytes // max(1, b * h * n * 4))
    parts = [ref_ops.fp8_index(q[:, i:i + chunk], w[:, i:i + chunk], k, ks) for i in range(0, m, chunk)]
    logits = torch.cat(parts, 1)
    if causal:
        pos = torch.arange(n, device=q.device)
        logits = logits.masked_fill(pos[None, None, :] > torch.arange(m, device=q.device)[None, :, None], NEG_INF)
    return logits


def topk_mismatch(top: torch.Tensor, logits: torch.Tensor, k: int) -> float:
    """Fraction of rows whose selection is not a valid top-k of ``logits``: the multiset of selected
    scores must equal torch.topk's (ties may pick other positions), positions distinct, -1 only for
    -inf. Rows are [rows, n] / [rows, k]."""
    ref = ref_ops.topk_indices(logits, k)

    def vals(ix):
        v = logits.gather(1, ix.long().clamp(min=0))
        return v.masked_fill(ix < 0, NEG_INF).sort(-1).values
    bad = (vals(top) != vals(ref)).any(-1)
    st = top.sort(-1).values
    bad |= ((st[:, 1:] == st[:, :-1]) & (st[:, 1:] >= 0)).any(-1)
    bad |= ((top < -1) | (top >= logits.shape[1])).any(-1)
    return bad.float().mean().item()


def bench_indexer_topk(ctx: Ctx, d: Dims, s: Sizes, decode: bool) -> dict:
    b, m, n = (s.decode_batch, 1, s.kv_len) if decode else (1, s.index_tokens, s.index_tokens)
    k, g = d.topk, ctx.gen(3)
    assert n >= k, f"indexer: {n} keys cannot fill a top-{k}"
    h, dd = d.idx_heads, d.idx_dim
    q, qs = ref_ops.act_quant(torch.randn(b, m, h, dd, generator=g, device=ctx.device), 128, "ue8m0")
    kk, ks = ref_ops.act_quant(torch.randn(b, n, dd, generator=g, device=ctx.device), 128, "ue8m0")
    w = (qs[..., 0] * torch.rand(b, m, h, generator=g, device=ctx.device)).contiguous()
    ks = ks[..., 0].contiguous()
    (_, lspec), (_, tspec) = indexer_specs(d, s, decode)
    row = dict(name=f"indexer+top-k {'decode' if decode else 'prefill'}", tol=1e-4, config="",
               sizes=f"b{b} m{m} n{n} H{h} D{dd} top-k {k}{'' if decode else ' causal'}",
               flops=2.0 * b * m * n * h * dd * (1 if decode else 0.5))
    ref = torch_indexer_logits(q, w, kk, ks, not decode)
    sane(ref, "logits", finite=False)
    torch_fn = lambda: ref_ops.topk_indices(torch_indexer_logits(q, w, kk, ks, not decode), k)  # noqa: E731
    row["torch_ms"] = ctx.time_ms(torch_fn)
    lk, tk = ctx.kernel(lspec), ctx.kernel(tspec)
    logits = run(lk, q, w, kk, ks, poison=True)
    top = run(tk, logits.view(b * m, n), poison=True)
    ctx.sync()
    row["rel_err"] = rel_err(logits, ref)
    row["topk_bad_rows"] = topk_mismatch(top, logits.view(b * m, n), k)
    row["ok"] = passed(row["rel_err"], row["tol"]) and row["topk_bad_rows"] == 0
    if not row["ok"]:
        row["error"] = f"logits rel err {row['rel_err']:.2e}, top-k wrong in {row['topk_bad_rows']:.1%} of rows"
        return row
    flat = logits.view(b * m, n)
    row["parts"] = dict(logits_ms=ctx.time_ms(lambda: run(lk, q, w, kk, ks)),
                        topk_ms=ctx.time_ms(lambda: run(tk, flat)))
    row["tilec_ms"] = ctx.time_ms(lambda: run(tk, run(lk, q, w, kk, ks).view(b * m, n)))
    return row


# --- the model's absorbed decode attention (reference rounding points) ---------------------------

def mqa_decode_specs(d: Dims, s: Sizes) -> list[tuple[str, KernelSpec]]:
    """``attention_kernels.mqa_sparse_decode_kernel``, the model's default decode attention (the
    arguments ``specs.mqa_decode`` gives it; block_H from its own shared-memory rule)."""
    c, r = d.d_v, d.d_qk - d.d_v
    return [("model", spec(f"mqa_sparse_decode_h{d.heads}_c{c}_r{r}_k{d.topk}", specs.ATTENTION,
                           "mqa_sparse_decode_kernel", (d.heads, c, r, d.topk, float(d.scale)), (4,)))]


def torch_mqa_decode(qa, qp, kv, idx, scale: float):
    """``reference.MLA._decode``'s attention on the gathered rows, in bf16 like the reference:
    score = bf16(bf16(bf16(qa.c) + bf16(qp.pe)) * scale), softmax rounded to bf16, o = bf16(p @ c)."""
    b, _, c = qa.shape
    n = kv.shape[1]
    valid = (idx >= 0) & (idx < n)
    g = kv[torch.arange(b, device=kv.device)[:, None], idx.long().clamp(0, n - 1)]          # [b, k, c + r]
    scores = (torch.einsum("bhc,bkc->bhk", qa, g[..., :c]) + torch.einsum("bhr,bkr->bhk", qp, g[..., c:])) * scale
    scores = scores.masked_fill(~valid[:, None, :], NEG_INF)
    return torch.einsum("bhk,bkc->bhc", scores.softmax(dim=-1), g[..., :c])


def bench_mqa_decode(ctx: Ctx, d: Dims, s: Sizes) -> dict:
    b, n, k, g = s.decode_batch, s.kv_len, d.topk, ctx.gen(7)
    c, r = d.d_v, d.d_qk - d.d_v
    qa = torch.randn(b, d.heads, c, generator=g, device=ctx.device).bfloat16()
    qp = torch.randn(b, d.heads, r, generator=g, device=ctx.device).bfloat16()
    kv = torch.randn(b, n, c + r, generator=g, device=ctx.device).bfloat16()
    idx = random_indices(ctx, b, 1, n, k, 8)[:, 0].contiguous()
    ref = torch_mqa_decode(qa, qp, kv, idx, d.scale)
    sane(ref, "out")
    row = dict(name="MQA decode (model)", sizes=f"b{b} s_kv{n} H{d.heads} D{d.d_qk}/{c} top-k {k}",
               tol=1e-2, torch_ms=ctx.time_ms(lambda: torch_mqa_decode(qa, qp, kv, idx, d.scale)),
               flops=2.0 * b * d.heads * k * (d.d_qk + c))

    def attempt(kern) -> dict:
        out = run(kern, qa, qp, kv, idx, poison=True)
        ctx.sync()
        err = rel_err(out, ref)
        ok = passed(err, 1e-2)
        return dict(rel_err=err, ok=ok, ms=ctx.time_ms(lambda: run(kern, qa, qp, kv, idx)) if ok else None)
    return best_config(ctx, row, mqa_decode_specs(d, s), attempt)
