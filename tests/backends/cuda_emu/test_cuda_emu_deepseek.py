"""Every DeepSeek-V3.2 kernel the ``cuda`` target ships, executed on ``cuda-emu`` and checked launch by launch
against the interpreter, at a regular and a ragged size, on the mma.sync path (sm_80) and with wgmma (sm_90a).

The wrappers (``tilec.models.deepseek_v32.kernels``) pick their tiles by target family, so on ``cuda-emu``
they build exactly the kernels of the ``cuda`` target (``test_cuda_emu_builds_the_cuda_kernels``). Here
their compile helper is replaced by one that builds each kernel twice, for cuda-emu (with the flavour's
options, outputs NaN-poisoned) and for the interpreter, runs both on the same inputs and returns the
emulator's outputs: every launch of a multi-kernel wrapper (the FP8 MoE: gate, permute, act_quant, up,
act_quant, down, combine) is compared with the interpreter running the same kernel. Outputs must have the
same non-finite pattern (masks, +inf lse), integers must be equal, floats agree within their dtype's
tolerance (||out-ref||/||ref||: 1e-5 float32, 1e-2 16- and 8-bit). Elements a kernel leaves unwritten
(the padding rows of the FP8 MoE's padded layout) keep their NaN poison and must be the same on both; the
wrapper's result, checked against the torch oracle (``ref_ops`` / the reference modules), has no NaN.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "models", "kernels"))

import lnm_helpers as H  # noqa: E402
from attention_helpers import (causal_mask, dense_decode_ref, indexer_inputs, random_indices,  # noqa: E402
                               relerr, sparse_mla_ref)

import tilec  # noqa: E402
from tilec.models.deepseek_v32 import kernels as K  # noqa: E402
from tilec.models.deepseek_v32 import ref_ops  # noqa: E402
from tilec.models.deepseek_v32.config import CONFIG_TINY  # noqa: E402
from tilec.models.deepseek_v32.kernels import (hadamard, indexer, mla_decode, moe, moe_gate, norms,  # noqa: E402
                                               quant, rope, sparse_mla, topk)

FLAVOURS = {"mma": {}, "wgmma": {"tilec.cuda.arch": "sm_90a", "tilec.cuda.wgmma": True}}
WRAPPER_MODULES = (hadamard, indexer, mla_decode, moe, moe_gate, norms, quant, rope, sparse_mla, topk)
BF16 = torch.bfloat16
SCALE = CONFIG_TINY.softmax_scale
D_QK, D_V = CONFIG_TINY.kv_lora_rank + CONFIG_TINY.qk_rope_head_dim, CONFIG_TINY.kv_lora_rank  # 144, 128
TOL = {torch.float32: 1e-5}


@dataclass
class Checked:
    """One kernel built for cuda-emu and for the interpreter; each call runs both and records the errors."""
    name: str
    emu: object
    oracle: object
    log: list = field(default_factory=list)

    def __call__(self, *inputs):
        out = self.emu(*inputs)
        want = self.oracle(*inputs)
        outs, wants = (out, want) if isinstance(out, list) else ([out], [want])
        for k, (o, w) in enumerate(zip(outs, wants)):
            if o.dtype.is_floating_point:
                a, b = o.float(), w.float()
                nan = torch.isnan(b)      # poison left where the kernel writes nothing (padding rows)
                same = torch.equal(torch.isnan(a), nan) and not nan.all()
                err = relerr(a[~nan], b[~nan]) if same else float("inf")
                bound = TOL.get(o.dtype, 1e-2)
            else:
                err, bound = (0.0 if torch.equal(o, w) else float("inf")), 0.0
            self.log.append((f"{self.name}[{k}]", err, bound))
        return out


_BUILT: dict = {}


@pytest.fixture(params=sorted(FLAVOURS))
def launches(request, monkeypatch):
    """Route every wrapper's compile helper through ``Checked``; yields the list of (launch, err, bound)."""
    flavour, log = request.param, []

    def compiled(factory, args, out_idx, target="auto"):
        assert target == "cuda-emu", target
        key = (factory.__module__, factory.__qualname__, args, flavour)
        if key not in _BUILT:
            emu = tilec.compile(factory(*args), out_idx=out_idx, target="cuda-emu",
                                pass_configs=FLAVOURS[flavour], poison_outputs=True)
            oracle = tilec.compile(factory(*args), out_idx=out_idx, target="interp", poison_outputs=True)
            _BUILT[key] = (emu, oracle)
        emu, oracle = _BUILT[key]
        return Checked(factory.__name__, emu, oracle, log)
    for mod in WRAPPER_MODULES:
        if hasattr(mod, "compiled"):
            monkeypatch.setattr(mod, "compiled", compiled)
    yield log
    assert log, "no kernel ran"
    bad = [f"{n}: {e:.3e} (bound {b:g})" for n, e, b in log if not e <= b]
    assert not bad, f"cuda-emu ({flavour}) differs from the interpreter: " + "; ".join(bad)


EMU = "cuda-emu"
SIZES = ["regular", "ragged"]


def test_cuda_emu_builds_the_cuda_kernels(monkeypatch):
    """The wrappers choose the same factory arguments (tiles, GEMM dtype, one-kernel or padded MoE) for
    cuda-emu as for cuda: the tile choice keys on ``tilec.targets.family``."""
    from tilec import targets
    assert targets.family("cuda-emu") == "cuda" and targets.family("cuda") == "cuda"
    assert targets.family("cpu") == "cpu" and targets.family("interp") == "interp"
    calls: dict = {}

    class Built(Exception):
        pass

    def compiled(factory, args, out_idx, target="auto"):
        calls.setdefault(target, []).append((factory.__qualname__, args, tuple(out_idx)))
        raise Built
    for mod in WRAPPER_MODULES:
        if hasattr(mod, "compiled"):
            monkeypatch.setattr(mod, "compiled", compiled)
    q, w, k, ks = indexer_inputs(1, 4, 300, 64, 128, H.gen(0))
    m = H.make_moe(H.TINY_FP8, seed=1)
    x = torch.randn(5, 256, generator=H.gen(1)).to(BF16)
    qa = torch.randn(2, 128, D_QK).to(BF16)
    uses = [lambda t: indexer.fp8_index(q, w, k, ks, causal_offset=296, target=t),
            lambda t: sparse_mla.sparse_mla_fwd(qa, qa[:, 0], torch.zeros(2, 8, dtype=torch.int32), 0.1, D_V,
                                                target=t),
            lambda t: mla_decode.dense_mla_decode(qa[None], qa[None, :, 0], torch.tensor([2]), 0.1, D_V, target=t),
            lambda t: moe.moe(x, H.moe_params(m), H.TINY_FP8, target=t),
            lambda t: moe.moe(x, H.moe_params(H.make_moe(H.TINY, seed=1)), H.TINY, target=t)]
    for use in uses:
        for t in ("cuda", EMU, "cpu"):
            with pytest.raises(Built):
                use(t)
    assert calls["cuda"] == calls[EMU]
    assert calls["cuda"] != calls["cpu"]          # the family choice is real: cpu tiles differ


def _idx_inputs(size):
    b, m, n, h, off = (1, 32, 256, 4, 224) if size == "regular" else (2, 19, 150, 4, 131)
    q, w, k, ks = indexer_inputs(b, m, n, h, 128, H.gen(5))
    return q, w, k, ks, off, ref_ops.fp8_index(q, w, k, ks) + causal_mask(m, n, off)


@pytest.mark.parametrize("size", SIZES)
def test_indexer(size, launches):
    q, w, k, ks, off, ref = _idx_inputs(size)
    out = indexer.fp8_index(q, w, k, ks, causal_offset=off, target=EMU)
    assert relerr(out, ref) < 1e-5


@pytest.mark.parametrize("size", SIZES)
def test_topk(size, launches):
    rows, n = (8, 64) if size == "regular" else (7, 45)
    x = torch.randn(rows, n, generator=H.gen(6))
    x[0, 5:] = float("-inf")
    x[1, ::3] = float("-inf")
    out = topk.topk_indices(x, 16, target=EMU)
    ref = ref_ops.topk_indices(x, 16)
    assert torch.equal(out.sort(-1).values, ref.to(torch.int32).sort(-1).values)


def _sparse_inputs(s_q, s_kv, h, k, seed, b=None):
    g = H.gen(seed)
    lead = (b,) if b else ()
    q = torch.randn(*lead, s_q, h, D_QK, generator=g).to(BF16)
    kv = torch.randn(*lead, s_kv, D_QK, generator=g).to(BF16)
    idx = (torch.stack([random_indices(s_q, k, s_kv, g) for _ in range(b)]) if b
           else random_indices(s_q, k, s_kv, g))
    return q, kv, idx


@pytest.mark.parametrize("size", SIZES)
def test_sparse_mla_prefill(size, launches):
    s_q, s_kv, h, k = (8, 128, 4, 64) if size == "regular" else (9, 40, 4, 20)
    q, kv, idx = _sparse_inputs(s_q, s_kv, h, k, seed=7)
    idx[2] = -1                                          # nothing valid: out 0, lse +inf
    out, lse = sparse_mla.sparse_mla_fwd(q, kv, idx, SCALE, D_V, target=EMU)
    ref_o, ref_l = sparse_mla_ref(q, kv, idx, SCALE, D_V)
    assert relerr(out, ref_o) < 1e-2 and relerr(lse, ref_l) < 1e-5


@pytest.mark.parametrize("size", SIZES)
def test_mla_decode(size, launches):
    b, s_q, s_max, h, k = (2, 1, 128, 4, 64) if size == "regular" else (2, 2, 50, 4, 16)
    q, kv, idx = _sparse_inputs(s_q, s_max, h, k, seed=8, b=b)
    refs = [sparse_mla_ref(q[i], kv[i], idx[i], SCALE, D_V) for i in range(b)]
    out, lse = mla_decode.sparse_mla_decode(q, kv, idx, SCALE, D_V, target=EMU)
    assert relerr(out, torch.stack([r[0] for r in refs])) < 1e-2
    assert relerr(lse, torch.stack([r[1].t() for r in refs])) < 1e-5
    seqlens = torch.tensor([s_max, 37 if size == "ragged" else 64], dtype=torch.int32)
    out, lse = mla_decode.dense_mla_decode(q, kv, seqlens, SCALE, D_V, causal=True, target=EMU)
    ref_o, ref_l = dense_decode_ref(q, kv, seqlens, SCALE, D_V, True)
    assert relerr(out, ref_o) < 1e-2 and relerr(lse, ref_l) < 1e-5


def _tokens(size, dim=256, seed=9):
    return torch.randn(32 if size == "regular" else 37, dim, generator=H.gen(seed)).to(BF16)


@pytest.mark.parametrize("size", SIZES)
def test_moe_gate(size, launches):
    m = H.make_moe(H.TINY, seed=3)
    x = _tokens(size)
    w, idx = moe.gate(x, m.gate.weight, m.gate.bias, H.TINY, target=EMU)
    wr, ir = m.gate(x)
    assert torch.equal(idx.long(), ir) and H.relerr(w, wr) < 1e-5


@pytest.mark.parametrize("variant", ["bf16", "fp8"])
@pytest.mark.parametrize("size", SIZES)
def test_moe_layer(size, variant, launches):
    args = H.TINY if variant == "bf16" else H.TINY_FP8
    m = H.make_moe(args, seed=3)
    x = _tokens(size, seed=10)
    out = moe.moe(x, H.moe_params(m), args, target=EMU)
    assert H.relerr(out, m(x)) < 1e-2


@pytest.mark.parametrize("size", SIZES)
def test_act_quant_and_fp8_gemm(size, launches):
    n = 512 if size == "regular" else 576
    x = (torch.randn(32 if size == "regular" else 37, 256, generator=H.gen(11)) * 3).to(BF16)
    xq, xs = quant.act_quant(x, 128, "ue8m0", target=EMU)
    xqr, xsr = ref_ops.act_quant(x, 128, "ue8m0")
    assert torch.equal(xs, xsr) and torch.equal(xq.view(torch.uint8), xqr.view(torch.uint8))
    w, ws = ref_ops.weight_quant(torch.randn(n, 256, generator=H.gen(12)) * 256 ** -0.5)
    out = quant.fp8_gemm(xq, xs, w, ws, target=EMU)
    assert H.relerr(out, ref_ops.fp8_gemm(xqr, xsr, w, ws)) < 1e-2


def test_tile_family_helper():
    assert K.tile_family("cuda-emu") == "cuda" and K.fp8_mma_dtype("cuda-emu") is None
    assert K.fp8_mma_dtype("ascend") == "bfloat16"


@pytest.mark.parametrize("size", SIZES)
def test_moe_grouped_gemms_at_64_row_tiles_take_wgmma(size, launches, request):
    """The padded MoE's grouped SwiGLU up and down GEMMs at 64-row tiles (the tile the cuda family takes
    at prefill sizes) against the interpreter launch by launch and against torch; with the wgmma flavour
    the generated source must run them on wgmma.m64n64k16, not fall back to mma.sync."""
    m = H.make_moe(H.TINY, seed=5)
    x = _tokens(size, seed=12)
    out = moe.moe_padded(x, H.moe_params(m), H.TINY, target=EMU, block_M=64)
    assert H.relerr(out, m(x)) < 1e-2
    flavour = request.node.callspec.params["launches"]
    grouped = {q: emu for (_, q, args, fl), (emu, _) in _BUILT.items()
               if fl == flavour and q in ("moe_up_kernel", "moe_down_kernel") and 64 in args}
    assert set(grouped) == {"moe_up_kernel", "moe_down_kernel"}
    for name, emu in grouped.items():
        src = emu.get_kernel_source()
        assert ("wgmma.m64n64k16 bf16" in src) == (flavour == "wgmma"), name
