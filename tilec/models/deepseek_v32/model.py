"""DeepSeek-V3.2-Exp on tilec-compiled kernels: the model of ``reference.py``, layer by layer.

Every computation runs in a compiled kernel named by ``specs.py``: linears (bf16, or act_quant +
fp8_gemm), RMSNorm with the fused residual, LayerNorm, both RoPE layouts, the Hadamard transform, the
FP8 simulation of the latent, the lightning indexer (fp8_index, top-k), sparse attention, the per-head
absorption of ``wkv_b``, the MoE gate / permutation / grouped experts / combine, SwiGLU and the head.
Torch only glues: embedding lookup, views, slices, concatenation, cache writes and allocation.

Attention (``ATTENTION_MODES``): by default the reference's own modes at its rounding points, MHA mode
for prefill and the weight-absorbed MQA mode for decode (docs/model.md explains both), so the compiled model reproduces
``reference.py`` (the kernels are in ``attention_kernels.py``); ``"flashmla"`` runs both on the
FlashMLA-semantics sparse kernel over the latent.

Caches, allocated for the batch at the first call: ``kv_cache [B, S, c + r]`` bf16 holding the
FP8-simulated latent and the roped ``k_pe`` side by side (FlashMLA's layout, so the sparse kernels read
it without a copy), ``k_cache [B, S, 128]`` float8_e4m3 and ``k_scale [B, S]`` fp32 for the indexer.
Prefill needs ``start_pos == 0`` (as the reference); decode works at any position. Kernels come from
a provider: ``Library`` (the ahead-of-time library, ``library.py``) or ``JitKernels`` (compiled in
this process, for development and tests).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import torch

from . import specs
from .config import ModelArgs
from .parallel import SINGLE, Parallel, check_parallel, local_args
from .ref_ops import precompute_freqs_cis

BF16, F32, FP8 = torch.bfloat16, torch.float32, torch.float8_e4m3fn
# "reference": MHA-mode prefill and absorbed decode at the reference's bf16 rounding points (score,
# softmax), so tokens match reference.py; "flashmla": both on the FlashMLA-semantics sparse kernel
# (fp32 scores and online softmax: closer to exact math, further from the bf16 reference).
ATTENTION_MODES = ("reference", "flashmla")


class _Rows(NamedTuple):
    """Which cache rows a forward call's batch rows use, and where they sit (``Model.prefill_slot`` /
    ``decode_slots``). ``slots``: a slice of the cache batch (a view) or an index tensor (a gather);
    ``positions``: None when every row is at ``start_pos`` (``forward``), else each row's position
    (one token per row)."""
    slots: Union[slice, torch.Tensor] = slice(None)
    positions: Optional[torch.Tensor] = None


_ALL_ROWS = _Rows()


class JitKernels:
    """Kernels compiled in this process with ``tilec.compile`` (memoized by spec name)."""

    def __init__(self, target: str = "cpu"):
        self.target = target
        self.kernels: dict[str, Any] = {}

    def get(self, spec: specs.KernelSpec) -> Callable[..., Any]:
        hit = self.kernels.get(spec.name)
        if hit is None:
            import tilec

            from .library import build_spec
            hit = self.kernels[spec.name] = tilec.compile(build_spec(spec), out_idx=list(spec.out_idx),
                                                          target=self.target)
        return hit


class Model:
    """``Model(args, params, kernels)(tokens, start_pos)`` -> logits, like ``reference.Transformer``.

    ``params`` maps DeepSeek's tensor names to tensors (``reference.Transformer.state_dict()`` or a
    weights file read by ``weights.py``); they are used in place, not copied, except the stacked
    expert weights (whose entries in ``params`` are replaced by views of the stack) and the
    dequantized ``wkv_b``.

    ``par``: this process's rank of a tensor/expert-parallel model (``parallel.py``); ``params`` then
    holds the rank's shard (``checkpoint.load_params(..., par=par)``) and ``self.la`` its widths.
    """

    def __init__(self, args: ModelArgs, params: dict[str, torch.Tensor], kernels: Any, target: str = "cpu",
                 attention: str = "reference", par: Optional[Parallel] = None):
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, not '{attention}'")
        self.args, self.kernels, self.target, self.attn_mode = args, kernels, target, attention
        self.par = par or SINGLE
        check_parallel(args, self.par.world)
        self.la = local_args(args, self.par.world)
        self._fns: dict[tuple, Callable[..., Any]] = {}
        self.p = params
        self.rope = torch.view_as_real(precompute_freqs_cis(args)).contiguous()   # [S, r/2, 2] fp32
        self.wkv_b = [self._absorbed_wkv_b(i) for i in range(args.n_layers)]
        self.experts = [self._stack_experts(i) if i >= args.n_dense_layers else None
                        for i in range(args.n_layers)]
        self.batch = 0
        self._rows = _ALL_ROWS       # set by prefill_slot / decode_slots for the duration of a call
        # Optional hook ``decide(kind, layer, start_pos, value) -> value`` on the discrete choices
        # ("topk": int32 [B, S, k] positions; "route": (weights, expert ids)); the tests use it to
        # hold those choices to the reference's where a near-tie made them differ.
        self.decide: Optional[Callable[[str, int, int, Any], Any]] = None

    # --- kernels ---------------------------------------------------------------------------------
    def k(self, ctor: Callable[..., specs.KernelSpec], *a: Any) -> Callable[..., Any]:
        key = (ctor, a)
        fn = self._fns.get(key)
        if fn is None:
            fn = self._fns[key] = self.kernels.get(ctor(*a))
        return fn

    def linear(self, x: torch.Tensor, w: torch.Tensor, scale: Optional[torch.Tensor],
               out: str = specs.BF16) -> torch.Tensor:
        """DeepSeek's ``linear`` on x [..., K] (bf16, or ``out``; fp32 for fp32 weights)."""
        n, kk = w.shape
        x2 = x.reshape(-1, kk)
        if w.dtype == FP8:
            xq, xs = self.k(specs.act_quant, kk, self.args.scale_fmt is not None)(x2)
            y = self.k(specs.fp8_gemm, n, kk, self.target, out)(xq, xs, w, scale)
        elif w.dtype == F32:
            y = self.k(specs.linear, n, kk, specs.F32, specs.F32)(x2, w)
        else:
            y = self.k(specs.linear, n, kk, specs.BF16, out)(x2, w)
        return y.view(*x.shape[:-1], n)

    def lin(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x, self.p[prefix + ".weight"], self.p.get(prefix + ".scale"))

    def lin_sum(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        """A row-parallel linear (``wo``, the dense ``w2``): each rank's product over its slice of K in
        fp32, summed across ranks, rounded to bf16 once; ``lin`` in one process."""
        if self.par.world == 1:
            return self.lin(prefix, x)
        return self.sum_ranks(self.linear(x, self.p[prefix + ".weight"], self.p.get(prefix + ".scale"), specs.F32))

    def sum_ranks(self, y: torch.Tensor) -> torch.Tensor:
        """bf16(sum over ranks of the fp32 partial ``y``)."""
        n = y.size(-1)
        return self.k(specs.cast, n, specs.F32, specs.BF16)(self.par.all_reduce(y).reshape(-1, n)).view(y.shape)

    def rms(self, x: torch.Tensor, w: torch.Tensor, residual: Optional[torch.Tensor] = None):
        n = x.size(-1)
        if residual is None:
            return self.k(specs.rms_norm, n, False)(x.reshape(-1, n), w).view(x.shape)
        y, r = self.k(specs.rms_norm, n, True)(x.reshape(-1, n), residual.reshape(-1, n), w)
        return y.view(x.shape), r.view(x.shape)

    def act_quant(self, x: torch.Tensor):
        n = x.size(-1)
        y, s = self.k(specs.act_quant, n, self.args.scale_fmt is not None)(x.reshape(-1, n))
        return y.view(x.shape), s.view(*x.shape[:-1], n // 128)

    def rotary(self, x: torch.Tensor, freqs: torch.Tensor, off: int, interleaved: bool) -> torch.Tensor:
        """Rotate ``rope_dim`` dims from ``off`` of x [B, S, H, D]; the other dims pass through.
        ``freqs`` [S, r/2, 2] for every row alike, or [B, S, r/2, 2] per row (rows at their own
        positions: the rows become one sequence of B * S positions for the same kernel)."""
        b, s, h, d = x.shape
        fn = self.k(specs.rope, h, d, self.args.qk_rope_head_dim, off, interleaved)
        if freqs.dim() == 4:
            return fn(x.reshape(1, b * s, h, d), freqs.reshape(b * s, *freqs.shape[2:])).view(b, s, h, d)
        return fn(x, freqs)

    # --- weights prepared once ---------------------------------------------------------------------
    def _absorbed_wkv_b(self, i: int) -> torch.Tensor:
        a = self.args
        w, s = self.p[f"layers.{i}.attn.wkv_b.weight"], self.p.get(f"layers.{i}.attn.wkv_b.scale")
        if w.dtype == FP8:
            w = self.k(specs.weight_dequant, *w.shape)(w, s)
        return w.view(self.la.n_heads, a.qk_nope_head_dim + a.v_head_dim, a.kv_lora_rank)

    def _stack_experts(self, i: int) -> dict[str, torch.Tensor]:
        """Layer i's routed expert weights (and scales) stacked [E, ...] (this rank's experts); the entries
        of ``params`` become views of the stack (same values), so a caller that drops its own tensors
        holds one copy, not two."""
        a, pre = self.args, f"layers.{i}.ffn.experts."
        lo, hi = self.par.span(a.n_routed_experts)
        out = {}
        for w, s in (("w1", "s1"), ("w2", "s2"), ("w3", "s3")):
            for key, suffix in ((w, "weight"), (s, "scale")):
                if suffix == "scale" and a.dtype != "fp8":
                    continue
                names = [f"{pre}{e}.{w}.{suffix}" for e in range(lo, hi)]
                out[key] = torch.stack([self.p[n] for n in names])
                for e, n in enumerate(names):
                    self.p[n] = out[key][e]
        return out

    # --- caches ----------------------------------------------------------------------------------
    def reset(self, batch: int) -> None:
        a = self.args
        if batch > a.max_batch_size:
            raise ValueError(f"batch {batch} is over max_batch_size={a.max_batch_size}")
        s, c = a.max_seq_len, a.kv_lora_rank + a.qk_rope_head_dim
        self.kv_cache = [torch.zeros(batch, s, c, dtype=BF16) for _ in range(a.n_layers)]
        self.k_cache = [torch.zeros(batch, s, a.index_head_dim, dtype=FP8) for _ in range(a.n_layers)]
        self.k_scale = [torch.zeros(batch, s, dtype=F32) for _ in range(a.n_layers)]
        self.batch = batch

    def _cache_put(self, cache: torch.Tensor, start_pos: int, value: torch.Tensor, cols: slice = slice(None)):
        """Write ``value`` [B, S, ...] at the batch rows' positions (``start_pos`` on, or each row's own)."""
        r = self._rows
        tail = () if cols == slice(None) else (cols,)
        if r.positions is None:
            cache[(r.slots, slice(start_pos, start_pos + value.size(1))) + tail] = value
        else:       # row j at (slots[j], positions[j]): two index tensors, paired
            rows = r.slots if isinstance(r.slots, torch.Tensor) else torch.arange(r.slots.start, r.slots.stop)
            cache[(rows, r.positions) + tail] = value[:, 0]

    def _cache_rows(self, cache: torch.Tensor, end: Optional[int] = None) -> torch.Tensor:
        """The batch rows' part of a cache [B, end, ...] (a view for a slice of slots, else a gather)."""
        return cache[self._rows.slots, :end]

    def _mask_rows(self, scores: torch.Tensor) -> torch.Tensor:
        """Indexer scores [B, 1, end] of rows at their own positions: keys past a row's position (another
        row's, or a slot's previous request) get -inf, so top-k never picks them."""
        pos = self._rows.positions
        if pos is None:
            return scores
        late = torch.arange(scores.size(-1)) > pos.view(-1, 1)
        return scores.masked_fill(late.view(pos.numel(), 1, -1), float("-inf"))

    # --- layers ----------------------------------------------------------------------------------
    def indexer(self, i: int, x, qr, start_pos: int, freqs, prefill: bool) -> torch.Tensor:
        """Top-k positions int32 [B, S, index_topk] (-1 where fewer are valid)."""
        a, pre = self.args, f"layers.{i}.attn.indexer."
        bsz, seqlen, _ = x.shape
        end = start_pos + seqlen
        ih, idim = a.index_n_heads, a.index_head_dim
        q = self.rotary(self.lin(pre + "wq_b", qr).view(bsz, seqlen, ih, idim), freqs, 0, False)
        k = self.lin(pre + "wk", x)
        k = self.k(specs.layer_norm, idim)(k.view(-1, idim), self.p[pre + "k_norm.weight"],
                                           self.p[pre + "k_norm.bias"])
        k = self.rotary(k.view(bsz, seqlen, 1, idim), freqs, 0, False)
        had = self.k(specs.hadamard, idim)
        q8, qs = self.act_quant(had(q.view(-1, idim)).view(bsz, seqlen, ih, idim))
        k8, ks = self.act_quant(had(k.view(-1, idim)).view(bsz, seqlen, idim))
        self._cache_put(self.k_cache[i], start_pos, k8)
        self._cache_put(self.k_scale[i], start_pos, ks[..., 0])
        xf = self.k(specs.cast, a.dim, specs.BF16, specs.F32)(x.view(-1, a.dim))
        w = self.linear(xf, self.p[pre + "weights_proj.weight"], None)
        w = self.k(specs.index_weights, ih, ih ** -0.5, idim ** -0.5)(w, qs.reshape(-1, ih))
        kc = self._cache_rows(self.k_cache[i], end).contiguous()
        kscale = self._cache_rows(self.k_scale[i], end).contiguous()
        scores = self.k(specs.fp8_index, ih, idim, prefill, self.target)(
            q8, w.view(bsz, seqlen, ih), kc, kscale)
        scores = self._mask_rows(scores)
        top = self.k(specs.topk, a.index_topk, specs.topk_capacity(end))(scores.view(bsz * seqlen, end))
        top = top.view(bsz, seqlen, a.index_topk)
        return self.decide("topk", i, start_pos, top) if self.decide is not None else top

    def attention(self, i: int, x, start_pos: int, freqs, prefill: bool) -> torch.Tensor:
        a, pre = self.args, f"layers.{i}.attn."
        bsz, seqlen, _ = x.shape
        h, c, r, nope, v = self.la.n_heads, a.kv_lora_rank, a.qk_rope_head_dim, a.qk_nope_head_dim, a.v_head_dim
        qr = self.rms(self.lin(pre + "wq_a", x), self.p[pre + "q_norm.weight"])
        q = self.rotary(self.lin(pre + "wq_b", qr).view(bsz, seqlen, h, a.qk_head_dim), freqs, nope, True)
        kv = self.rotary(self.lin(pre + "wkv_a", x).view(bsz, seqlen, 1, c + r), freqs, c, True)
        latent = self.rms(kv[..., :c].contiguous().view(-1, c), self.p[pre + "kv_norm.weight"])
        latent = self.k(specs.act_dequant, c)(*self.act_quant(latent))        # the FP8 KV-cache simulation
        self._cache_put(self.kv_cache[i], start_pos, latent.view(bsz, seqlen, c), slice(None, c))
        self._cache_put(self.kv_cache[i], start_pos, kv.view(bsz, seqlen, c + r)[..., c:], slice(c, None))
        cache = self._cache_rows(self.kv_cache[i])
        top = self.indexer(i, x, qr, start_pos, freqs, prefill)
        if self.attn_mode == "flashmla":
            o = self._attn_flashmla(i, q, top)
        elif prefill:
            kvb = self.lin(pre + "wkv_b", latent.view(bsz, seqlen, c)).view(bsz, seqlen, h, nope + v)
            o = self.k(specs.mha_prefill, self.la)(q, kvb, cache, top)
        else:
            o_lat = self.k(specs.mqa_decode, self.la)(self._absorb_q(i, q), q[:, 0, :, nope:].contiguous(), cache,
                                                top.view(bsz, -1))
            o = self._apply_w_uv(i, o_lat)
        return self.lin_sum(pre + "wo", o.view(bsz, seqlen, h * v))

    def _absorb_q(self, i: int, q: torch.Tensor) -> torch.Tensor:
        """``q_nope @ W_UK[h]`` per head: q [B, S, H, qk_head_dim] -> [B * S, H, kv_lora_rank]."""
        a = self.args
        h, c, nope, v = self.la.n_heads, a.kv_lora_rank, a.qk_nope_head_dim, a.v_head_dim
        return self.k(specs.head_gemm, h, a.qk_head_dim, 0, nope, c, nope + v, c, 0, False)(
            q.view(-1, h, a.qk_head_dim), self.wkv_b[i])

    def _apply_w_uv(self, i: int, o_lat: torch.Tensor) -> torch.Tensor:
        """``o_lat @ W_UV[h]^T`` per head: [B * S, H, kv_lora_rank] -> [B * S, H, v_head_dim]."""
        a = self.args
        h, c, nope, v = self.la.n_heads, a.kv_lora_rank, a.qk_nope_head_dim, a.v_head_dim
        return self.k(specs.head_gemm, h, c, 0, c, v, nope + v, c, nope, True)(o_lat.view(-1, h, c), self.wkv_b[i])

    def _attn_flashmla(self, i: int, q: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        """Absorbed MQA attention on the FlashMLA-semantics sparse kernel (fp32 scores and softmax)."""
        a = self.args
        bsz, seqlen, h, _ = q.shape
        c, r, nope = a.kv_lora_rank, a.qk_rope_head_dim, a.qk_nope_head_dim
        q_full = torch.cat([self._absorb_q(i, q).view(bsz, seqlen, h, c), q[..., nope:]], dim=-1)
        o_lat, _ = self.k(specs.sparse_mla, h, c + r, c, a.softmax_scale)(q_full, self._cache_rows(self.kv_cache[i]),
                                                                         top)
        return self._apply_w_uv(i, o_lat)

    def mlp(self, pre: str, x: torch.Tensor, split: bool = False) -> torch.Tensor:
        """SwiGLU: w2(bf16(silu(w1 x) * w3 x)); ``split``: the dense MLP, whose hidden width is split
        across ranks (``w2`` row-parallel)."""
        a1, a3 = self.lin(pre + "w1", x), self.lin(pre + "w3", x)
        n = a1.size(-1)
        hmid = self.k(specs.silu_glu, n)(a1.reshape(-1, n), a3.reshape(-1, n))
        return (self.lin_sum if split else self.lin)(pre + "w2", hmid).view(x.shape)

    def moe(self, i: int, x: torch.Tensor) -> torch.Tensor:
        a, pre, ex = self.args, f"layers.{i}.ffn.", self.experts[i]
        x2 = x.reshape(-1, a.dim)
        w, idx = self.k(specs.moe_gate, a)(x2, self.p[pre + "gate.weight"], self.p[pre + "gate.bias"])
        if self.decide is not None:
            w, idx = self.decide("route", i, 0, (w, idx))
        if self.par.world > 1:
            return self._moe_ranks(i, x2, w, idx).view(x.shape)
        if specs.moe_fused(a, self.target):   # route, experts, shared expert and combine in one kernel
            layer = self.k(specs.moe_layer, a, self.target)
            names = ("w1", "w3", "w2")
            if a.dtype != "fp8":
                sh = [self.p[f"{pre}shared_experts.{n}.weight"] for n in names] \
                    if a.n_shared_experts else [torch.zeros(1, 1, dtype=torch.bfloat16)] * 3
                out = layer(x2, w.contiguous(), idx.contiguous(), ex["w1"], ex["w3"], ex["w2"], *sh)[-1]
                return out.view(x.shape)
            # FP8: every weight followed by its block scales
            sh = [t for n in names for t in (self.p[f"{pre}shared_experts.{n}.weight"],
                                             self.p[f"{pre}shared_experts.{n}.scale"])] \
                if a.n_shared_experts else [torch.zeros(1, 1, dtype=FP8), torch.ones(1, 1)] * 3
            out = layer(x2, w.contiguous(), idx.contiguous(), ex["w1"], ex["s1"], ex["w3"], ex["s3"], ex["w2"],
                        ex["s2"], *sh)[-1]
            return out.view(x.shape)
        yp, pos = self._expert_rows(a, x2, idx.contiguous(), ex)
        shared = self.mlp(pre + "shared_experts.", x2)
        return self.k(specs.moe_combine, a)(yp, pos, w, shared).view(x.shape)

    def _expert_rows(self, a: ModelArgs, x2: torch.Tensor, idx: torch.Tensor, ex: dict) -> tuple:
        """(Yp, Pos): the padded layout's expert outputs (permute, grouped up and down GEMMs) for the
        experts of ``a`` (this rank's under expert parallelism). One build serves every token count: the
        layout's tile count is an expression of it."""
        _, tok, tile_e, pos = self.k(specs.moe_permute, a)(idx)
        if a.dtype == "fp8":
            xq, xs = self.act_quant(x2)
            hmid = self.k(specs.moe_up, a, self.target)(xq, xs, tok, tile_e, ex["w1"], ex["s1"], ex["w3"], ex["s3"])
            hq, hs = self.act_quant(hmid)
            yp = self.k(specs.moe_down, a, self.target)(hq, hs, tile_e, ex["w2"], ex["s2"])
        else:
            hmid = self.k(specs.moe_up, a, self.target)(x2, tok, tile_e, ex["w1"], ex["w3"])
            yp = self.k(specs.moe_down, a, self.target)(hmid, tile_e, ex["w2"])
        return yp, pos

    def _moe_ranks(self, i: int, x2: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Expert parallelism: this rank's experts over the tokens routed to them (the padded kernels;
        pairs routed to other ranks get expert -1, no row and no term), the shared expert on rank 0,
        the fp32 partial sums added across ranks and rounded once."""
        a, la, pre = self.args, self.la, f"layers.{i}.ffn."
        lo, hi = self.par.span(a.n_routed_experts)
        local = torch.where((idx >= lo) & (idx < hi), idx - lo, -1).to(torch.int32).contiguous()
        yp, pos = self._expert_rows(la, x2, local, self.experts[i])
        if self.par.rank == 0 and a.n_shared_experts:
            shared = self.mlp(pre + "shared_experts.", x2)
        else:
            shared = torch.zeros_like(x2)
        return self.sum_ranks(self.k(specs.moe_combine, la, specs.F32)(yp, pos, w.contiguous(), shared))

    def block(self, i: int, hid, residual, start_pos: int, freqs, prefill: bool):
        pre = f"layers.{i}."
        if residual is None:
            x, residual = self.rms(hid, self.p[pre + "attn_norm.weight"]), hid
        else:
            x, residual = self.rms(hid, self.p[pre + "attn_norm.weight"], residual)
        hid = self.attention(i, x, start_pos, freqs, prefill)
        x, residual = self.rms(hid, self.p[pre + "ffn_norm.weight"], residual)
        out = self.mlp(pre + "ffn.", x, split=True) if i < self.args.n_dense_layers else self.moe(i, x)
        return out, residual

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, start_pos: int = 0, all_logits: bool = False) -> torch.Tensor:
        """Logits fp32 [B, vocab] for the last position, or [B, S, vocab] with ``all_logits``."""
        a = self.args
        bsz, seqlen = tokens.shape
        prefill = seqlen > 1
        if prefill and start_pos != 0:
            raise ValueError("prefill (more than one token) must start at position 0, as in the reference")
        if start_pos + seqlen > a.max_seq_len:
            raise ValueError(f"positions up to {start_pos + seqlen} exceed max_seq_len={a.max_seq_len}")
        if start_pos == 0 or bsz != self.batch:
            if start_pos != 0:
                raise ValueError(f"decode with batch {bsz}, but the caches hold batch {self.batch}")
            self.reset(bsz)
        return self._layers(tokens, start_pos, self.rope[start_pos:start_pos + seqlen], prefill, all_logits)

    def _layers(self, tokens: torch.Tensor, start_pos: int, freqs: torch.Tensor, prefill: bool,
                all_logits: bool = False) -> torch.Tensor:
        a = self.args
        bsz = tokens.size(0)
        hid, residual = self.embed(tokens), None
        for i in range(a.n_layers):
            hid, residual = self.block(i, hid, residual, start_pos, freqs, prefill)
        hid, _ = self.rms(hid, self.p["norm.weight"], residual)
        if not all_logits:
            hid = hid[:, -1:].contiguous()
        hf = self.k(specs.cast, a.dim, specs.BF16, specs.F32)(hid.view(-1, a.dim))
        logits = self.par.all_gather(self.linear(hf, self.p["head.weight"], None), -1)   # vocab split
        logits = logits.view(bsz, -1, a.vocab_size)
        return logits if all_logits else logits[:, 0]

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The embedding rows of ``tokens``; with the vocabulary split, each rank supplies the rows it holds
        (zeros elsewhere) and the sum is exact."""
        w = self.p["embed.weight"]
        if self.par.world == 1:
            return w[tokens]
        lo, hi = self.par.span(self.args.vocab_size)
        held = (tokens >= lo) & (tokens < hi)
        rows = w[(tokens - lo).clamp(0, hi - lo - 1)].masked_fill(~held.unsqueeze(-1), 0)
        return self.par.all_reduce(rows.float()).to(BF16)

    __call__ = forward

    # --- one cache slot at a time (continuous batching: ``serve.py``) ----------------------------------
    def _check_slots(self, slots: list[int]) -> None:
        if self.batch == 0:
            raise ValueError("no caches: call reset(batch) before prefill_slot / decode_slots")
        bad = [s for s in slots if not 0 <= s < self.batch]
        if bad:
            raise ValueError(f"cache slot {bad[0]} is not in 0..{self.batch - 1}")

    @torch.inference_mode()
    def prefill_slot(self, tokens: torch.Tensor, slot: int, all_logits: bool = False) -> torch.Tensor:
        """Prefill one sequence (``tokens`` [S] or [1, S], positions 0..S-1) into cache row ``slot`` of
        the caches ``reset`` allocated, leaving the other rows alone: logits fp32 [vocab] (or [S, vocab]).
        The same kernels on the same values as ``forward(tokens[None], 0)`` on a fresh batch of one."""
        tokens = tokens.view(1, -1)
        seqlen = tokens.size(1)
        if seqlen > self.args.max_seq_len:
            raise ValueError(f"positions up to {seqlen} exceed max_seq_len={self.args.max_seq_len}")
        self._check_slots([slot])
        self._rows = _Rows(slice(slot, slot + 1))
        try:
            return self._layers(tokens, 0, self.rope[:seqlen], seqlen > 1, all_logits)[0]
        finally:
            self._rows = _ALL_ROWS

    @torch.inference_mode()
    def decode_slots(self, tokens: torch.Tensor, positions: torch.Tensor, slots: list[int]) -> torch.Tensor:
        """One decode step of rows at different positions: row j feeds ``tokens[j]`` at position
        ``positions[j]`` of cache row ``slots[j]`` (each slot prefilled to that position): logits fp32
        [len(slots), vocab]. A row sees only its own cache up to its own position (the indexer masks the
        rest), so each row's logits are those of ``forward`` running that sequence alone."""
        tokens, positions = tokens.view(-1, 1), positions.to(torch.long).view(-1)
        if not len(slots) == tokens.size(0) == positions.numel():
            raise ValueError(f"{tokens.size(0)} tokens, {positions.numel()} positions, {len(slots)} slots")
        if len(set(slots)) != len(slots):
            raise ValueError(f"a slot appears twice in {slots}")
        self._check_slots(slots)
        last = int(positions.max())
        if int(positions.min()) < 0 or last >= self.args.max_seq_len:
            raise ValueError(f"positions {positions.tolist()} outside 0..{self.args.max_seq_len - 1}")
        lo = min(slots)
        rows = slice(lo, lo + len(slots)) if list(slots) == list(range(lo, lo + len(slots))) \
            else torch.tensor(slots, dtype=torch.long)
        self._rows = _Rows(rows, positions)
        try:
            return self._layers(tokens, last, self.rope[positions].unsqueeze(1), False)
        finally:
            self._rows = _ALL_ROWS


def from_reference(ref: Any, kernels: Any, target: str = "cpu", attention: str = "reference") -> Model:
    """A compiled model sharing the parameters of a ``reference.Transformer``."""
    return Model(ref.args, dict(ref.state_dict()), kernels, target, attention)
