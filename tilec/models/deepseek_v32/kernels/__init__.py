"""DeepSeek-V3.2's kernels written in the tilec language (issue 7; the math is specs/deepseek_v32.md).

One module per kernel family; each holds kernel factories that return a ``T.prim_func`` (TileLang
style) and thin wrappers that compile a factory once per shape and target and call it on torch tensors:

- ``indexer``: lightning-indexer logits with ``fp8_index`` semantics and the causal mask (§3.6).
- ``topk``: a top-k selector written in the DSL: int32 positions, ``-1`` for ``-inf`` scores, lower
  index first on ties (§3.6, §8 trap 3).
- ``sparse_mla``: FlashMLA's sparse MLA forward: gathered latent rows, online softmax, out and lse (§3.7).
- ``mla_decode``: weight-absorbed MLA decode, sparse (per-token indices) and dense (first E rows).
- ``quant``, ``norms``, ``rope``, ``hadamard``, ``moe``: FP8 quantization and GEMMs, the layer
  primitives and the MoE (see each module).

The oracles are ``tilec.models.deepseek_v32.ref_ops`` and the helpers under ``tests/models/kernels/``.
``compiled`` below is the one memo every wrapper uses. Nothing here is imported eagerly: ``import
tilec`` and this package stay cheap; the frontend and the targets load when a kernel is first built.
The sequence dimensions of the attention kernels are symbolic (``T.dynamic``), so a decode loop whose
cache grows reuses one compiled kernel (the top-k selector recompiles when the length doubles).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

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
