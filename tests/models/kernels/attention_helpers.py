"""Shared pieces of the attention-kernel tests: inputs, the FlashMLA-semantics oracles, error norms.

The indexer and top-k oracles are ``ref_ops.fp8_index`` / ``ref_ops.topk_indices``; sparse and dense
MLA follow FlashMLA's ``tests/ref.py`` (docs/deepseek_kernels.md §3.7) in fp32: gather, mask invalid
entries to -inf, natural-log lse, ``out = exp(P - lse) @ kv[:, :d_v]``, out 0 / lse +inf for a row with
nothing valid. ``relerr`` is ||out - ref|| / ||ref|| over the finite entries after checking that both
have the same non-finite pattern, so a NaN never passes.
"""
from __future__ import annotations

import torch

from kernel_common import cuda_build, have_nvcc  # noqa: F401 - re-exported for the tests

from tilec.models.deepseek_v32 import ref_ops

TARGETS_HOST = ("interp", "cpu")


def relerr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative error over finite entries; inf where the non-finite patterns differ or out has NaN."""
    out, ref = out.double(), ref.double()
    if torch.isnan(out).any() or not torch.equal(torch.isfinite(out), torch.isfinite(ref)):
        return float("inf")
    if not torch.equal(out[~torch.isfinite(out)], ref[~torch.isfinite(ref)]):
        return float("inf")
    fin = torch.isfinite(ref)
    denom = ref[fin].norm().item()
    return (out[fin] - ref[fin]).norm().item() / (denom if denom > 0 else 1.0)


def indexer_inputs(b: int, m: int, n: int, h: int, d: int, gen: torch.Generator):
    """FP8 q, k quantized like the model (1x128 blocks, ue8m0), a positive per-head weight with the q
    scale folded in, and the k scale."""
    q, qs = ref_ops.act_quant(torch.randn(b, m, h, d, generator=gen), 128, "ue8m0")
    k, ks = ref_ops.act_quant(torch.randn(b, n, d, generator=gen), 128, "ue8m0")
    w = qs[..., 0] * torch.rand(b, m, h, generator=gen) * h ** -0.5
    return q, w, k, ks[..., 0]


def causal_mask(m: int, n: int, offset: int) -> torch.Tensor:
    """Additive mask: -inf where n > m + offset."""
    return torch.full((m, n), float("-inf")).triu(1 + offset)


def same_index_sets(out: torch.Tensor, ref: torch.Tensor) -> bool:
    """Row-wise equality of index sets (the order within a row carries no meaning)."""
    a = out.reshape(-1, out.shape[-1]).sort(-1).values
    b = ref.reshape(-1, ref.shape[-1]).to(torch.int32).sort(-1).values
    return torch.equal(a, b)


def topk_lower_index_ref(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The selector's exact contract, ties included: a stable descending sort keeps the lower position
    first among equal scores; -inf picks become -1 (ref_ops.topk_indices breaks ties arbitrarily)."""
    vals, idx = scores.sort(dim=-1, descending=True, stable=True)
    vals, idx = vals[..., :k], idx[..., :k]
    idx = torch.where(torch.isneginf(vals), -1, idx).to(torch.int32)
    pad = k - idx.shape[-1]
    return torch.nn.functional.pad(idx, (0, pad), value=-1) if pad > 0 else idx


def sparse_mla_ref(q, kv, indices, sm_scale: float, d_v: int):
    """FlashMLA ref: q [s_q,h,d], kv [s_kv,d], indices [s_q,topk] -> (out bf16 [s_q,h,d_v], lse fp32)."""
    s_kv = kv.shape[0]
    valid = (indices >= 0) & (indices < s_kv)
    kvg = kv.float()[indices.long().clamp(0, s_kv - 1)]                    # [s_q, topk, d]
    p = torch.einsum("shd,std->sht", q.float(), kvg) * sm_scale
    p = p.masked_fill(~valid[:, None, :], float("-inf"))
    lse = torch.logsumexp(p, dim=-1)
    none = ~valid.any(-1)                                                 # [s_q]
    w = torch.exp(p - lse[..., None]).nan_to_num(0.0)
    out = torch.einsum("sht,std->shd", w, kvg[..., :d_v])
    out[none] = 0.0
    lse[none] = float("inf")
    return out.to(q.dtype), lse


def dense_decode_ref(q, kv, seqlens, sm_scale: float, d_v: int, causal: bool = False):
    """Dense MLA decode: q [b,s_q,h,d], kv [b,s_max,d], first seqlens[b] rows -> (out, lse [b,h,s_q])."""
    b, s_q = q.shape[:2]
    outs, lses = [], []
    for i in range(b):
        e = int(seqlens[i])
        t = torch.arange(kv.shape[1])
        pos = e - s_q + torch.arange(s_q)[:, None]
        ok = (t[None, :] < e) & ((t[None, :] <= pos) if causal else True)
        idx = torch.where(ok, t[None, :], -1).expand(s_q, -1).to(torch.int32)
        o, l = sparse_mla_ref(q[i], kv[i], idx, sm_scale, d_v)
        outs.append(o)
        lses.append(l.t())
    return torch.stack(outs), torch.stack(lses)


def random_indices(s_q: int, topk: int, s_kv: int, gen: torch.Generator, invalid_frac: float = 0.25):
    """Distinct positions per row, some replaced by -1 or by out-of-range values (both invalid)."""
    idx = torch.stack([torch.randperm(s_kv, generator=gen)[:topk] for _ in range(s_q)]).to(torch.int32)
    drop = torch.rand(s_q, topk, generator=gen) < invalid_frac
    big = torch.rand(s_q, topk, generator=gen) < 0.5
    idx = torch.where(drop & big, torch.full_like(idx, s_kv + 3), idx)
    return torch.where(drop & ~big, torch.full_like(idx, -1), idx)


_KERNELS: dict = {}


def run_kernel(factory, args: tuple, out_idx: list, target: str, *inputs):
    """Compile ``factory(*args)`` for ``target`` with NaN-poisoned outputs (memoized) and run it."""
    import tilec
    key = (factory.__qualname__, args, target)
    if key not in _KERNELS:
        _KERNELS[key] = tilec.compile(factory(*args), out_idx=out_idx, target=target, poison_outputs=True)
    return _KERNELS[key](*inputs)
