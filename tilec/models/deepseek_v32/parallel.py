"""Tensor and expert parallelism of the model over ``torch.distributed`` ranks (DeepSeek's scheme).

With ``world`` ranks, rank ``r`` holds:

- attention: heads ``[r * H/w, (r+1) * H/w)``: the rows of ``wq_b`` and ``wkv_b`` of those heads and the
  columns of ``wo``; ``wo``'s partial products are summed across ranks. ``wq_a``, ``wkv_a``, the norms,
  the indexer (its heads are cheap and top-k must see all of them) and the caches are replicated.
- dense MLP: rows ``[r * I/w, (r+1) * I/w)`` of ``w1``/``w3`` and those columns of ``w2`` (summed).
- MoE: the gate is replicated (every rank routes alike); routed experts ``[r * E/w, (r+1) * E/w)``
  whole; the shared expert on rank 0. A rank runs the padded grouped kernels over its experts only (a
  pair routed elsewhere gets no row: ``kernels.moe.permute_kernel``) and the partial sums are added.
- embedding and head: vocabulary rows ``[r * V/w, (r+1) * V/w)``; a token's row comes from the rank
  that holds it, the logits are gathered.

Every partial sum leaves its kernel in fp32 and is reduced in fp32 before the one rounding to bf16,
so a rank count changes only the fp32 summation order (the tokens stay those of one process; the
logits agree to fp32 rounding carried through bf16). ``Parallel`` is the rank's view; ``Parallel()``
(one process) makes every collective a no-op and the model runs exactly as without it.

``shard_plan(args, rank, world)`` names what each rank reads from the checkpoint (``checkpoint.py``
reads only those bytes, ``safetensors`` slices); ``check_parallel`` refuses a world size that does not
divide a sharded width, or that would cut a 128x128 FP8 scale block, naming the weight.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, Optional, Union

import torch

from .config import ConfigError, ModelArgs

BLOCK = 128
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class Parallel:
    """This process's place among ``world`` ranks (``group``: the ``torch.distributed`` group, None for
    the default one)."""
    rank: int = 0
    world: int = 1
    group: Any = None

    def span(self, n: int) -> tuple[int, int]:
        """This rank's part ``[lo, hi)`` of ``n`` (which ``check_parallel`` made divisible)."""
        per = n // self.world
        return self.rank * per, (self.rank + 1) * per

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``t`` (fp32, in place)."""
        if self.world > 1:
            torch.distributed.all_reduce(t, group=self.group)
        return t

    def all_gather(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's ``t`` concatenated along ``dim`` in rank order."""
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        torch.distributed.all_gather(parts, t.contiguous(), group=self.group)
        return torch.cat(parts, dim=dim)


SINGLE = Parallel()


def check_parallel(a: ModelArgs, world: int) -> None:
    """``ConfigError`` naming the first width ``world`` ranks cannot split."""
    if world < 1:
        raise ConfigError(f"world size {world}: must be >= 1")
    if world == 1:
        return
    parts = {"n_heads": a.n_heads, "inter_dim": a.inter_dim, "n_routed_experts": a.n_routed_experts,
             "vocab_size": a.vocab_size}
    for name, n in parts.items():
        if n % world:
            raise ConfigError(f"{name} = {n} is not a multiple of the world size {world} (tensor/expert "
                              f"parallelism gives every rank an equal part)")
    if a.dtype == "fp8":
        h = a.n_heads // world
        cuts = {"layers.*.attn.wq_b.weight rows": h * a.qk_head_dim,
                "layers.*.attn.wkv_b.weight rows": h * (a.qk_nope_head_dim + a.v_head_dim),
                "layers.*.attn.wo.weight columns": h * a.v_head_dim,
                "layers.*.ffn.w1/w3.weight rows, w2.weight columns": a.inter_dim // world}
        for name, n in cuts.items():
            if n % BLOCK:
                raise ConfigError(f"world size {world} cuts {name} into parts of {n}, which splits the 128x128 "
                                  f"FP8 scale blocks (weight_scale_inv); each part must be a multiple of {BLOCK}")


def local_args(a: ModelArgs, world: int) -> ModelArgs:
    """The widths one rank computes with: its heads, dense-MLP rows, experts and vocabulary rows. The
    gate keeps the full ``ModelArgs`` (every rank routes over every expert)."""
    if world == 1:
        return a
    return replace(a, n_heads=a.n_heads // world, inter_dim=a.inter_dim // world,
                   n_routed_experts=a.n_routed_experts // world, vocab_size=a.vocab_size // world)


# (pattern, dim) of the tensors split across ranks (vocabulary, heads, dense-MLP width); the rest are
# replicated
_SPLIT = (
    (r"(embed|head)\.weight", 0),
    (r"layers\.\d+\.attn\.(wq_b|wkv_b)\.(weight|scale)", 0),
    (r"layers\.\d+\.attn\.wo\.(weight|scale)", 1),
    (r"layers\.\d+\.ffn\.(w1|w3)\.(weight|scale)", 0),
    (r"layers\.\d+\.ffn\.w2\.(weight|scale)", 1),
)
_EXPERT = re.compile(r"layers\.\d+\.ffn\.experts\.(\d+)\.")
_SHARED = re.compile(r"layers\.\d+\.ffn\.shared_experts\.")

Slice = Optional[tuple[int, int, int]]     # (dim, start, stop) of the tensor, or None: the whole tensor


def shard_of(a: ModelArgs, par: Parallel, name: str, shape: tuple[int, ...]) -> Union[Slice, bool]:
    """What rank ``par.rank`` reads of parameter ``name`` (full ``shape``): False (not held), None (whole)
    or (dim, start, stop). A ``.scale`` tensor (128x128 blocks) is cut where its weight is."""
    if par.world == 1:
        return None
    m = _EXPERT.match(name)
    if m:
        lo, hi = par.span(a.n_routed_experts)
        return None if lo <= int(m.group(1)) < hi else False
    if _SHARED.match(name):
        return None if par.rank == 0 else False
    for pattern, dim in _SPLIT:
        if re.fullmatch(pattern, name):
            if name.endswith(".scale"):        # blocks of the weight's rows/columns (check_parallel: whole ones)
                lo, hi = par.span(shape[dim] * BLOCK)
                return dim, lo // BLOCK, -(-hi // BLOCK)
            lo, hi = par.span(shape[dim])
            return dim, lo, hi
    return None


# --- processes ---------------------------------------------------------------------------------------

def world_from_env() -> int:
    """The world size torchrun (or ``torch.distributed.run``) gave this process, 1 when run alone."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def pick_backend(backend: str) -> str:
    """gloo or nccl for ``--dist-backend`` (``TILEC_DIST_BACKEND``): ``auto`` is gloo, because the
    model's tensors live in CPU memory (the cpu target); NCCL moves only CUDA tensors."""
    backend = (backend or os.environ.get("TILEC_DIST_BACKEND") or "auto").lower()
    if backend not in BACKENDS:
        raise ConfigError(f"--dist-backend {backend!r}: one of {', '.join(BACKENDS)}")
    if backend == "nccl":
        raise ConfigError("--dist-backend nccl: the model runs on the cpu target, its tensors are in CPU memory, "
                          "and NCCL reduces only CUDA tensors; use gloo (the default)")
    return "gloo"


def share_cpus(local_ranks: int) -> None:
    """The ranks on one machine share its CPUs: each rank's kernel pool and torch's take their part, not
    all of them (unless ``TILEC_NUM_THREADS`` / ``OMP_NUM_THREADS`` say otherwise): OpenMP threads spin
    after each region, and a rank's spinning threads would take the CPUs its peer computes on."""
    if local_ranks <= 1:
        return
    part = max(1, len(os.sched_getaffinity(0)) // local_ranks)
    if not os.environ.get("TILEC_NUM_THREADS"):
        os.environ["TILEC_NUM_THREADS"] = str(part)
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(part)


def init_from_env(backend: str = "auto") -> Parallel:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) and return
    this rank's ``Parallel``; ``SINGLE`` when the process runs alone."""
    world = world_from_env()
    if world == 1:
        return SINGLE
    share_cpus(int(os.environ.get("LOCAL_WORLD_SIZE") or world))
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(pick_backend(backend))
    if dist.get_world_size() != world:
        raise ConfigError(f"WORLD_SIZE={world}, but the process group has {dist.get_world_size()} ranks")
    return Parallel(dist.get_rank(), world)
