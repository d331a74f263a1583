"""Which compiled kernels the DeepSeek-V3.2 model calls, named: the contract between model and library.

A ``KernelSpec`` is a kernel factory (module and name), its arguments and its ``out_idx``. Arguments
are JSON values; a string ``"$B"`` stands for the symbolic dimension ``T.dynamic("B")``, so batch,
token and cache lengths stay run-time values and one build serves prefill and decode. The model
(``model.py``) asks for kernels only through the constructors below, and ``kernel_specs(args)`` lists
every spec a configuration uses, which is what ``library.build_library`` compiles. A spec's ``name``
is unique for its factory and arguments.

The MoE kernels are built once, over the symbolic token count ``T``: the gate and one kernel for the
rest (``moe_layer``: route, expert GEMMs, shared expert, combine, and for FP8 weights the act_quant
launches of x and H; its row buffers are ``T * K + T`` long); with FP8 weights on other targets than
cpu, the gate, permutation, grouped up/down GEMMs and combine. For the latter the padded expert
layout's data-dependent tile count is bounded by
``NT = ceildiv(T * K, block_M) + min(E, T * K)`` (``kernels.moe.max_tiles``), an expression of ``T``,
so its buffers (``Tok[NT * block_M]``, ``TileE[NT]``, ``H``, ``Y``) are sized per call; the down
GEMM has no ``T``-shaped parameter and takes ``NT`` as its own symbol, bound by ``TileE``. What stays
compile-time is ``block_M`` (rows per tile: alloc shapes must be constants), one value for prefill
and decode (``moe_block_M``: tuned for decode; measured once on ``tiny``, a 512-token prefill spends 8%
more in the grouped GEMMs than with 64-row tiles, a 128-token one is no slower). The only other size
specialization is the top-k kernel's row capacity (``topk``: its tiles hold a whole score row).

``mma`` arguments pick the GEMM operand dtype of the FP8 kernels: float8 on cpu, bfloat16 on ascend
(no FP8 matrix unit; every e4m3 value is exact in bf16, so the results agree).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from .config import ModelArgs

_K = "tilec.models.deepseek_v32.kernels."
QUANT, NORMS, ROPE, HADAMARD = _K + "quant", _K + "norms", _K + "rope", _K + "hadamard"
INDEXER, TOPK, SPARSE, MOE = _K + "indexer", _K + "topk", _K + "sparse_mla", _K + "moe"
GLUE = "tilec.models.deepseek_v32.model_kernels"
ATTENTION = "tilec.models.deepseek_v32.attention_kernels"
BF16, F32, FP8 = "bfloat16", "float32", "float8_e4m3"


@dataclass(frozen=True)
class KernelSpec:
    name: str
    module: str
    factory_name: str
    args: tuple
    kwargs: tuple = ()            # sorted (key, value) pairs
    out_idx: tuple = field(default=())

    @property
    def factory(self) -> str:
        return f"{self.module}:{self.factory_name}"

    def to_json(self) -> dict:
        return {"factory": self.factory, "args": [list(self.args), dict(self.kwargs)],
                "out_idx": list(self.out_idx)}

    def build(self) -> Any:
        """Call the factory (imports the frontend): the ``T.prim_func`` kernel."""
        import tilec.language as T

        def conv(v: Any) -> Any:
            return T.dynamic(v[1:]) if isinstance(v, str) and v.startswith("$") else v
        fn = getattr(importlib.import_module(self.module), self.factory_name)
        return fn(*[conv(a) for a in self.args], **{k: conv(v) for k, v in self.kwargs})


def _spec(name: str, module: str, factory: str, args: tuple, out_idx: tuple, **kwargs: Any) -> KernelSpec:
    return KernelSpec(name, module, factory, tuple(args), tuple(sorted(kwargs.items())), tuple(out_idx))


def _mma(target: str) -> str:
    return BF16 if target == "ascend" else FP8


# --- constructors (one per kernel use in model.py) ---------------------------------------------------

def linear(n: int, k: int, dtype: str = BF16, out: str = BF16) -> KernelSpec:
    return _spec(f"linear_{dtype}_{out}_{n}x{k}", QUANT, "linear_bf16_kernel", (n, k), (2,),
                 dtype=dtype, out_dtype=out)


def act_quant(n: int, round_scale: bool) -> KernelSpec:
    return _spec(f"act_quant_{n}{'_ue8m0' if round_scale else ''}", QUANT, "act_quant_kernel",
                 (n, round_scale, 32, BF16), (1, 2))


def fp8_gemm(n: int, k: int, target: str = "cpu", out: str = BF16) -> KernelSpec:
    mma = _mma(target)
    suffix = "" if out == BF16 else f"_{out}"
    return _spec(f"fp8_gemm_{n}x{k}_{mma}{suffix}", QUANT, "fp8_gemm_kernel", (n, k, 32, 128, 4, out, mma), (4,))


def weight_dequant(n: int, k: int) -> KernelSpec:
    return _spec(f"weight_dequant_{n}x{k}", QUANT, "weight_dequant_kernel", (n, k), (2,))


def rms_norm(n: int, residual: bool) -> KernelSpec:
    return _spec(f"rms_norm_{n}{'_residual' if residual else ''}", NORMS, "rms_norm_kernel",
                 (n, residual, 1e-6), (3, 4) if residual else (2,))


def layer_norm(n: int) -> KernelSpec:
    return _spec(f"layer_norm_{n}", NORMS, "layer_norm_kernel", (n, 1e-6), (3,))


def rope(h: int, d: int, rope_dim: int, off: int, interleaved: bool) -> KernelSpec:
    tag = "interleaved" if interleaved else "half"
    return _spec(f"rope_h{h}_d{d}_r{rope_dim}_at{off}_{tag}", ROPE, "rope_kernel",
                 (h, d, rope_dim, off, interleaved), (2,))


def hadamard(n: int) -> KernelSpec:
    return _spec(f"hadamard_{n}", HADAMARD, "hadamard_kernel", (n,), (1,))


def fp8_index(h: int, d: int, causal: bool, target: str = "cpu") -> KernelSpec:
    mma = _mma(target)
    return _spec(f"fp8_index_h{h}_d{d}{'_causal' if causal else ''}_{mma}", INDEXER, "fp8_index_kernel",
                 (h, d, 0 if causal else None), (4,), mma_dtype=mma)


def topk_capacity(n: int) -> int:
    """The score-row capacity of the top-k kernel used for rows of n (``kernels.topk.capacity``:
    the next power of two, at least 64)."""
    return max(64, 1 << max(n - 1, 0).bit_length())


def topk(k: int, n_cap: int) -> KernelSpec:
    return _spec(f"topk_{k}_cap{n_cap}", TOPK, "topk_kernel", (k, n_cap), (1,))


def sparse_mla(h: int, d_qk: int, d_v: int, scale: float) -> KernelSpec:
    return _spec(f"sparse_mla_h{h}_d{d_qk}_v{d_v}", SPARSE, "sparse_mla_fwd_kernel",
                 (h, d_qk, d_v, float(scale)), (3, 4))


def moe_gate(a: ModelArgs) -> KernelSpec:
    return _spec(f"moe_gate_d{a.dim}_e{a.n_routed_experts}_k{a.n_activated_experts}", MOE + "_gate", "gate_kernel",
                 (a.dim, a.n_routed_experts, a.n_activated_experts, a.n_expert_groups, a.n_limited_groups,
                  float(a.route_scale)), (3, 4))


def moe_block_M(a: ModelArgs) -> int:
    """Rows per tile of the padded expert layout, shared by the permutation, the grouped GEMMs and
    the combine: ``kernels.moe.pick_block_M`` at a decode step of ``max_batch_size`` tokens (decode is
    the latency-bound phase; the module docstring says what it costs prefill). The rule is restated,
    not imported: ``kernels.moe`` imports the frontend, which loading a library must not."""
    avg = a.max_batch_size * a.n_activated_experts / a.n_routed_experts
    return 16 if avg <= 16 else (32 if avg <= 32 else 64)


def moe_permute(a: ModelArgs) -> KernelSpec:
    bm = moe_block_M(a)
    return _spec(f"moe_permute_k{a.n_activated_experts}_e{a.n_routed_experts}_bm{bm}", MOE, "permute_kernel",
                 ("$T", a.n_activated_experts, a.n_routed_experts, bm), (1, 2, 3, 4))


def _moe_experts(a: ModelArgs, target: str, which: str, out_idx: int) -> KernelSpec:
    """The grouped expert GEMM ``which`` ("up": w1/w3 + SiLU-GLU, "down": w2) over the padded layout
    of a symbolic token count; FP8 weights multiply in bf16 on ascend (see ``_mma``), natively elsewhere."""
    fp8 = a.dtype == "fp8"
    mma = BF16 if (fp8 and target == "ascend") else None
    bm = moe_block_M(a)
    return _spec(f"moe_{which}_d{a.dim}_i{a.moe_inter_dim}_e{a.n_routed_experts}_k{a.n_activated_experts}_bm{bm}"
                 f"_{'fp8' if fp8 else 'bf16'}_{mma or 'native'}",
                 GLUE, f"moe_{which}_layout_kernel", (a.dim, a.moe_inter_dim, a.n_routed_experts,
                                                     a.n_activated_experts, fp8, mma, bm), (out_idx,))


def moe_up(a: ModelArgs, target: str = "cpu") -> KernelSpec:
    return _moe_experts(a, target, "up", 8 if a.dtype == "fp8" else 5)


def moe_down(a: ModelArgs, target: str = "cpu") -> KernelSpec:
    return _moe_experts(a, target, "down", 5 if a.dtype == "fp8" else 3)


def moe_combine(a: ModelArgs, out: str = BF16) -> KernelSpec:
    bm = moe_block_M(a)
    suffix = "" if out == BF16 else f"_{out}"
    return _spec(f"moe_combine_k{a.n_activated_experts}_d{a.dim}_e{a.n_routed_experts}_bm{bm}{suffix}", GLUE,
                 "moe_combine_layout_kernel", (a.n_activated_experts, a.dim, a.n_routed_experts, bm)
                 + (() if out == BF16 else (out,)), (4,))


# where the FP8 MoE layer is one kernel; the GPU and Ascend tile configurations of its FP8 version (the
# Cube's bf16 widening, shared-memory budgets) are not written yet, so there FP8 keeps the padded kernels
FP8_LAYER_TARGETS = ("cpu", "interp")


def moe_fused(a: ModelArgs, target: str = "cpu") -> bool:
    """Whether the MoE runs as one kernel (``moe_layer``): at most one shared expert (its width is then
    the routed experts'), and bf16 weights, or FP8 ones on ``FP8_LAYER_TARGETS`` (elsewhere FP8 keeps
    the padded layout's kernels)."""
    return a.n_shared_experts <= 1 and (a.dtype != "fp8" or target in FP8_LAYER_TARGETS)


def moe_layer(a: ModelArgs, target: str = "cpu") -> KernelSpec:
    """The MoE after the gate as one kernel (``kernels.moe_layer.moe_kernel``: route, up, down and
    combine, the shared expert as more segments of the same launches; with FP8 weights also the
    act_quant launches of x and H) over a symbolic token count; its tiles depend on the target
    (``moe_tiles``)."""
    shared = a.n_shared_experts == 1
    fp8 = a.dtype == "fp8"
    dims = (a.dim, a.moe_inter_dim, a.n_routed_experts, a.n_activated_experts, shared)
    name = (f"moe_layer_d{a.dim}_i{a.moe_inter_dim}_e{a.n_routed_experts}_k{a.n_activated_experts}"
            f"{'_shared' if shared else ''}_{'cpu' if target == 'cpu' else 'tiled'}")
    tiling = "cpu" if target == "cpu" else "tiled"
    if fp8:
        rnd = a.scale_fmt is not None
        return _spec(f"{name}_fp8{'_ue8m0' if rnd else ''}", MOE + "_layer", "moe_kernel", dims,
                     tuple(range(15, 25)), target=tiling, fp8=True, round_scale=rnd)
    return _spec(name, MOE + "_layer", "moe_kernel", dims, (9, 10, 11, 12, 13, 14), target=tiling)


def act_dequant(n: int) -> KernelSpec:
    return _spec(f"act_dequant_{n}", GLUE, "act_dequant_kernel", (n,), (2,))


def head_gemm(h: int, xk: int, x_off: int, k: int, n: int, wr: int, wc: int, w_off: int,
              transpose_b: bool) -> KernelSpec:
    return _spec(f"head_gemm_h{h}_x{xk}at{x_off}_k{k}_n{n}_w{wr}x{wc}at{w_off}{'_t' if transpose_b else ''}",
                 GLUE, "head_gemm_kernel", (h, xk, x_off, k, n, wr, wc, w_off, transpose_b), (2,))


def mha_prefill(a: ModelArgs) -> KernelSpec:
    return _spec(f"mha_sparse_prefill_h{a.n_heads}_d{a.qk_nope_head_dim}_v{a.v_head_dim}_r{a.qk_rope_head_dim}"
                 f"_k{a.index_topk}", ATTENTION, "mha_sparse_prefill_kernel",
                 (a.n_heads, a.qk_nope_head_dim, a.v_head_dim, a.qk_rope_head_dim, a.index_topk,
                  float(a.softmax_scale)), (4,))


def mqa_decode(a: ModelArgs) -> KernelSpec:
    return _spec(f"mqa_sparse_decode_h{a.n_heads}_c{a.kv_lora_rank}_r{a.qk_rope_head_dim}_k{a.index_topk}", ATTENTION,
                 "mqa_sparse_decode_kernel", (a.n_heads, a.kv_lora_rank, a.qk_rope_head_dim, a.index_topk,
                                              float(a.softmax_scale)), (4,))


def index_weights(h: int, c1: float, c2: float) -> KernelSpec:
    return _spec(f"index_weights_h{h}", GLUE, "index_weights_kernel", (h, float(c1), float(c2)), (2,))


def silu_glu(n: int) -> KernelSpec:
    return _spec(f"silu_glu_{n}", GLUE, "silu_glu_kernel", (n,), (2,))


def cast(n: int, src: str, dst: str) -> KernelSpec:
    return _spec(f"cast_{src}_{dst}_{n}", GLUE, "cast_kernel", (n, src, dst), (1,))


# --- everything a configuration needs ----------------------------------------------------------------

def linear_specs(n: int, k: int, a: ModelArgs, target: str, out: str = BF16) -> list[KernelSpec]:
    if a.dtype == "fp8":
        return [act_quant(k, a.scale_fmt is not None), fp8_gemm(n, k, target, out)]
    return [linear(n, k, BF16, out)]


def kernel_specs(a: ModelArgs, target: str = "cpu", world: int = 1) -> list[KernelSpec]:
    """Every kernel ``model.Model`` calls for configuration ``a``, each once, in a stable order; with
    ``world`` > 1 those of one rank of a tensor/expert-parallel model (``parallel.py``: its widths, fp32
    partial sums, the padded MoE kernels over its experts)."""
    from .parallel import local_args
    la = local_args(a, world)
    h, c, r, nope, v = la.n_heads, a.kv_lora_rank, a.qk_rope_head_dim, a.qk_nope_head_dim, a.v_head_dim
    ih, idim = a.index_n_heads, a.index_head_dim
    rnd = a.scale_fmt is not None
    partial = BF16 if world == 1 else F32          # row-parallel products are summed across ranks in fp32
    out: list[KernelSpec] = []
    lins = [(a.q_lora_rank, a.dim, BF16), (h * a.qk_head_dim, a.q_lora_rank, BF16), (c + r, a.dim, BF16),
            (a.dim, h * v, partial), (h * (nope + v), c, BF16),
            (ih * idim, a.q_lora_rank, BF16), (idim, a.dim, BF16)]
    if a.n_dense_layers > 0:
        lins += [(la.inter_dim, a.dim, BF16), (a.dim, la.inter_dim, partial)]
    if a.n_layers > a.n_dense_layers:
        lins += [(a.n_shared_experts * a.moe_inter_dim, a.dim, BF16),
                 (a.dim, a.n_shared_experts * a.moe_inter_dim, BF16)]
    for n, k, o in lins:
        out += linear_specs(n, k, a, target, o)
    out += [linear(ih, a.dim, F32, F32), linear(la.vocab_size, a.dim, F32, F32), cast(a.dim, BF16, F32)]
    if world > 1:
        out += [cast(a.dim, F32, BF16)]
    out += [rms_norm(a.dim, False), rms_norm(a.dim, True), rms_norm(a.q_lora_rank, False),
            rms_norm(c, False), layer_norm(idim)]
    out += [rope(h, a.qk_head_dim, r, nope, True), rope(1, c + r, r, c, True), rope(ih, idim, r, 0, False),
            rope(1, idim, r, 0, False), hadamard(idim)]
    out += [act_quant(c, rnd), act_dequant(c), act_quant(idim, rnd), index_weights(ih, ih ** -0.5, idim ** -0.5),
            fp8_index(ih, idim, True, target), fp8_index(ih, idim, False, target),
            sparse_mla(h, c + r, c, a.softmax_scale), mha_prefill(la), mqa_decode(la)]
    cap = 64
    while cap <= topk_capacity(a.max_seq_len):     # one top-k kernel per row-capacity bucket
        out.append(topk(a.index_topk, cap))
        cap *= 2
    wr = nope + v
    out += [head_gemm(h, a.qk_head_dim, 0, nope, c, wr, c, 0, False), head_gemm(h, c, 0, c, v, wr, c, nope, True)]
    if a.dtype == "fp8":
        out += [weight_dequant(h * wr, c)]
    out += [silu_glu(la.inter_dim), silu_glu(a.n_shared_experts * a.moe_inter_dim)]
    if a.n_layers > a.n_dense_layers:
        out += [moe_gate(a)]             # every rank routes over every expert
        if world == 1 and moe_fused(a, target):
            out += [moe_layer(a, target)]
        else:
            if a.dtype == "fp8":
                out += [act_quant(a.moe_inter_dim, rnd)]
            out += [moe_permute(la), moe_up(la, target), moe_down(la, target), moe_combine(la, partial)]
    seen, unique = set(), []
    for s in out:
        if s.name not in seen:
            seen.add(s.name)
            unique.append(s)
    return unique
