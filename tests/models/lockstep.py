"""Lock-step comparison of the compiled DeepSeek-V3.2 model with ``reference.py`` (test helper).

The model's discrete choices (the indexer's top-k positions, the MoE's expert selection) are chaotic:
on the random ``tiny`` weights a 0.5% perturbation of one attention output changes the reference's
own logits by ~14% (measured), because near-tied top-k and routing choices flip. Two bf16
implementations that differ only in summation order therefore cannot agree token for token. The
lock-step run records the reference's choices and, on the rows where the compiled model's choice
differs, hands the compiled model the reference's; every other value is the compiled model's own.
The flips are counted, so a test can bound them; with them held, the remaining logit error is the
kernels' rounding only.
"""
from __future__ import annotations

import contextlib

import torch

from tilec.models.deepseek_v32 import reference as R


class Lockstep:
    def __init__(self, ref: R.Transformer, model):
        self.ref, self.model = ref, model
        self.queue: list[tuple[str, object]] = []
        self.rows = {"topk": [0, 0], "route": [0, 0]}     # [rows that differed, rows compared]
        for layer in ref.layers:
            self._wrap(layer.attn.indexer, "topk")
            if isinstance(layer.ffn, R.MoE):
                self._wrap(layer.ffn.gate, "route")
        model.decide = self.decide

    def _wrap(self, module, kind: str) -> None:
        forward = module.forward

        def recorded(*args, **kwargs):
            out = forward(*args, **kwargs)
            self.queue.append((kind, out))
            return out
        module.forward = recorded

    def decide(self, kind: str, layer: int, start_pos: int, value):
        got_kind, ref_value = self.queue.pop(0)
        assert got_kind == kind, f"lock-step out of order: the model asks for {kind}, the reference gave {got_kind}"
        if kind == "topk":
            return self._topk(value, ref_value, start_pos)
        return self._route(value, ref_value)

    def _topk(self, top: torch.Tensor, ref_top: torch.Tensor, start_pos: int) -> torch.Tensor:
        bsz, seqlen, k = top.shape
        pos = start_pos + torch.arange(seqlen).view(1, seqlen, 1)
        ref_valid = torch.where(ref_top <= pos, ref_top, torch.full_like(ref_top, -1))   # causal re-mask
        out = top.clone()
        for b in range(bsz):
            for s in range(seqlen):
                want = sorted(t for t in ref_valid[b, s].tolist() if t >= 0)
                have = sorted(t for t in top[b, s].tolist() if t >= 0)
                self.rows["topk"][1] += 1
                if want != have:
                    self.rows["topk"][0] += 1
                    out[b, s] = torch.tensor(want + [-1] * (k - len(want)), dtype=top.dtype)
        return out

    def _route(self, value, ref_value):
        w, idx = value
        rw, ridx = ref_value
        w, idx = w.clone(), idx.clone()
        for t in range(idx.size(0)):
            self.rows["route"][1] += 1
            if sorted(idx[t].tolist()) != sorted(ridx[t].tolist()):
                self.rows["route"][0] += 1
                w[t], idx[t] = rw[t].float(), ridx[t].to(idx.dtype)
        return w, idx


@contextlib.contextmanager
def stable_reference_topk():
    """Make the reference indexer's ``topk`` order exact ties by position (lower first), as the
    compiled top-k does; ``torch.topk`` orders them arbitrarily. Used by the layer-level tests."""
    original = R.Indexer.forward

    def forward(self, *args, **kwargs):
        topk = torch.Tensor.topk

        def stable(t, k, dim=-1, *rest, **kw):
            values, order = torch.sort(t, dim=dim, descending=True, stable=True)
            return values.narrow(dim, 0, k), order.narrow(dim, 0, k)
        torch.Tensor.topk = stable
        try:
            return original(self, *args, **kwargs)
        finally:
            torch.Tensor.topk = topk
    R.Indexer.forward = forward
    try:
        yield
    finally:
        R.Indexer.forward = original
