"""DeepSeek-V3.2's kernels written in the tilec language (issue 7; the math is docs/deepseek_kernels.md).

One module per kernel family; each holds kernel factories that return a ``T.prim_func`` (TileLang
style) and thin wrappers that compile a factory once per shape and target and call it on torch tensors.
The user guide is ``docs/deepseek_kernels.md``.

- ``quant``: FP8 block quantization (``act_quant``, 1x128 blocks, optional ue8m0 scales),
  ``weight_dequant`` (128x128 weight blocks), the block-scaled ``fp8_gemm`` and ``linear_bf16``, and
  DeepSeek's ``linear`` dispatch (§3.4, §4); also the ``scaled_slab_gemm`` macro every FP8 GEMM uses.
- ``norms``: RMSNorm (optionally with the fused residual add) and LayerNorm (§3.2).
- ``rope``: rotary embedding with the YaRN table as input, interleaved (MLA) or half-split (indexer)
  pairs (§3.3, §8 trap 1).
- ``hadamard``: the indexer's 128-point Hadamard transform, one GEMM against the Sylvester matrix.
- ``indexer``: lightning-indexer logits with ``fp8_index`` semantics and the causal mask (§3.6).
- ``topk``: a top-k selector written in the DSL: int32 positions, ``-1`` for ``-inf`` scores, lower
  index first on ties (§3.6, §8 trap 3).
- ``sparse_mla``: FlashMLA's sparse MLA forward: gathered latent rows, online softmax, out and lse (§3.7).
- ``mla_decode``: weight-absorbed MLA decode, sparse (per-token indices) and dense (first E rows).
- ``moe_gate``: the MoE gate: sigmoid scores, group limiting, top-k experts and their weights (§3.8).
- ``moe``: the rest of the MoE: the padded expert permutation, the grouped SwiGLU GEMMs (bf16 or
  FP8), the weighted combine with the shared expert, and the dense MLP; re-exports ``gate``.

The oracles are ``tilec.models.deepseek_v32.ref_ops`` and the helpers under ``tests/models/kernels/``.
``compiled`` below is the one memo every wrapper uses; ``resolve_target``, ``tile_family``,
``fp8_mma_dtype`` and ``dtype_name`` are the wrappers' shared choices. Tile sizes key on the target's
family (``tilec.targets.family``), so ``cuda-emu`` builds exactly the kernels ``cuda`` ships.
Nothing here is imported eagerly: ``import tilec`` and this package stay cheap; the frontend and the
targets load when a kernel is first built.
The sequence dimensions of the attention kernels are symbolic (``T.dynamic``), so a decode loop whose
cache grows reuses one compiled kernel (the top-k selector recompiles when the length doubles).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional

_CACHE: dict[Any, Any] = {}
_LOCK = threading.Lock()


def compiled(factory: Callable[..., Any], args: tuple, out_idx: list[int], target: str = "auto") -> Any:
    """``tilec.compile(factory(*args), out_idx, target)``, memoized on (factory, args, target)."""
    key = (factory.__module__, factory.__qualname__, args, target)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    import tilec
    kernel = tilec.compile(factory(*args), out_idx=out_idx, target=target)
    with _LOCK:
        return _CACHE.setdefault(key, kernel)


def resolve_target(target: str) -> str:
    """The concrete target name (``"auto"`` resolved), for wrappers whose tile sizes depend on it."""
    if target != "auto":
        return target
    from tilec.runtime.kernel import auto_target
    return auto_target()


def tile_family(target: str) -> str:
    """The family whose tile configuration ``target`` (``"auto"`` resolved) gets: ``"cuda"`` for
    ``cuda`` and ``cuda-emu``, else the target's own name (``tilec.targets.family``)."""
    from tilec.targets import family
    return family(resolve_target(target))


def fp8_mma_dtype(target: str) -> Optional[str]:
    """The dtype an FP8 kernel's GEMM operands are widened to on ``target``: bfloat16 on ascend (the
    910B's Cube has no FP8 instruction; every e4m3 value is exact in bf16), else None (keep float8)."""
    return "bfloat16" if tile_family(target) == "ascend" else None


def dtype_name(dtype: Any) -> str:
    """tilec's name of a torch dtype the wrappers accept for activations (bf16, fp16, fp32)."""
    import torch
    return {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[dtype]
