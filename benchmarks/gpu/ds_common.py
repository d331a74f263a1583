"""What the DeepSeek-V3.2 GPU workloads share: sizes, the run context, checks and configuration picking.

``Dims`` are the model widths the kernels are built for (V3.2's by default), ``Sizes`` the run-time
token counts; ``Ctx`` builds ``specs.KernelSpec``s for its target (memoized, errors remembered) and
times functions (CUDA events on a GPU). ``sane`` refuses degenerate references, ``rel_err`` is
||out-ref||/||ref|| where NaN (or a misplaced inf) never passes, ``pick`` keeps the fastest correct
configuration. ``deepseek.py`` lists the workloads; ``ds_attention.py`` and ``ds_ffn.py`` hold them.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from tilec.models.deepseek_v32.config import CONFIG_671B
from tilec.models.deepseek_v32.specs import KernelSpec

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Dims:
    """Model widths (compile-time): DeepSeek-V3.2's per-layer sizes by default."""
    heads: int = 128
    d_qk: int = 576
    d_v: int = 512
    topk: int = 2048
    scale: float = CONFIG_671B.softmax_scale
    mla_block_H: tuple = (64, 32, 16)      # 64: kernels.sparse_mla.default_block_H(128, "cuda")
    idx_heads: int = 64
    idx_dim: int = 128
    dim: int = 7168
    inter: int = 2048
    experts: int = 256
    active: int = 8
    groups: int = 8
    top_groups: int = 4
    route_scale: float = 2.5
    moe_block_M: tuple = (64, 16)          # 64: moe.pick_block_M at thousands of tokens; 16: the model's
    lin_n: int = 1536                      # wq_a: dim -> q_lora_rank


@dataclass(frozen=True)
class Sizes:
    """Run-time token counts (every kernel's token / cache dims are symbolic)."""
    decode_batch: int = 128
    kv_len: int = 8192
    prefill_tokens: int = 2048
    index_tokens: int = 4096
    moe_tokens: int = 4096
    linear_tokens: int = 4096

    def halved(self) -> "Sizes":
        return Sizes(*[max(1, v // 2) for v in vars(self).values()])


@dataclass
class Ctx:
    device: str = "cuda"
    target: str = "cuda"
    arch: str = ""                 # "sm_90a" for --compile-only; "" = the GPU present
    budget_s: float = 3.0          # time spent timing one function (repetitions follow)
    max_reps: int = 20
    built: dict = field(default_factory=dict)

    def kernel(self, spec: KernelSpec) -> Any:
        """``tilec.compile`` of ``spec`` for this target (memoized; a build error is re-raised)."""
        k = self.kernel_or_error(spec)
        if isinstance(k, Exception):
            raise k
        return k

    def kernel_or_error(self, spec: KernelSpec) -> Any:
        if self.built.get(spec.name) is None:
            import tilec
            try:
                opts = {"arch": self.arch} if self.arch and self.target == "cuda" else {}
                self.built[spec.name] = tilec.compile(spec.build(), out_idx=list(spec.out_idx),
                                                      target=self.target, **opts)
            except Exception as e:  # noqa: BLE001 - remembered and reported per row
                self.built[spec.name] = e
        return self.built[spec.name]

    def gen(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def alive(self) -> bool:
        """Whether the device still runs work (a sticky CUDA error poisons the whole context)."""
        if self.device != "cuda":
            return True
        try:
            ok = torch.ones(1, device="cuda").add_(1).item() == 2.0
            torch.cuda.synchronize()
            return ok
        except Exception:  # noqa: BLE001 - any failure means: unusable
            return False

    def stamp(self) -> Any:
        """A point in time on the device's stream (a recorded CUDA event) or the host clock."""
        if self.device != "cuda":
            return time.perf_counter()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def elapsed_ms(self, a: Any, b: Any) -> float:
        """Milliseconds between two stamps (after ``sync``)."""
        return a.elapsed_time(b) if self.device == "cuda" else (b - a) * 1e3

    def time_ms(self, fn: Callable[[], Any]) -> float:
        """Median milliseconds of ``fn()`` (CUDA events on a GPU); one warm-up call sizes the repetitions."""
        def once() -> float:
            a = self.stamp()
            fn()
            b = self.stamp()
            self.sync()
            return self.elapsed_ms(a, b)
        first = once()
        reps = max(3, min(self.max_reps, int(self.budget_s * 1e3 / max(first, 1e-3))))
        return statistics.median(once() for _ in range(reps))


def spec(name: str, module: str, factory: str, args: tuple, out_idx: tuple) -> KernelSpec:
    return KernelSpec(name, module, factory, tuple(args), (), tuple(out_idx))


def run(kernel: Any, *inputs: torch.Tensor, poison: bool = False) -> Any:
    """Call a JITKernel; with ``poison`` its outputs are filled with NaN (ints: max) before the launch."""
    kernel.poison_outputs = poison
    return kernel(*inputs)


# --- checks --------------------------------------------------------------------------------------

def sane(ref: torch.Tensor, what: str, finite: bool = True) -> None:
    """Refuse a reference that cannot tell a right result from a wrong one (NaN, inf, constant)."""
    r = ref.detach().double()
    if finite and not torch.isfinite(r).all():
        raise AssertionError(f"reference {what} is not finite")
    fin = r[torch.isfinite(r)]
    if fin.numel() < 2 or bool((fin == fin.flatten()[0]).all()):
        raise AssertionError(f"reference {what} is constant ({fin.flatten()[:1].tolist()})")


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out-ref||/||ref|| in float64 over ref's finite entries; NaN (never passes) when out has a NaN,
    another shape, or differs where ref is infinite (a masked -inf must be -inf, nothing else)."""
    o, r = out.detach().double(), ref.detach().double()
    if o.shape != r.shape or torch.isnan(o).any():
        return float("nan")
    fin = torch.isfinite(r)
    if not torch.equal(o[~fin], r[~fin]):
        return float("nan")
    den = r[fin].norm().item()
    return (o[fin] - r[fin]).norm().item() / (den if den > 0 else 1.0)


def passed(err: float, tol: float) -> bool:
    return err == err and err < tol


def pick(row: dict, tried: dict) -> dict:
    """Fill ``row`` from the fastest passing entry of ``tried`` (label -> result); report the rest."""
    good = {lab: r for lab, r in tried.items() if r.get("ok")}
    row["configs"] = tried
    if good:
        lab = min(good, key=lambda key: good[key]["ms"])
        row.update(ok=True, config=lab, tilec_ms=good[lab]["ms"], rel_err=good[lab]["rel_err"],
                   parts=good[lab].get("parts", {}))
    else:
        row.update(ok=False, rel_err=min((r.get("rel_err", math.inf) for r in tried.values()), default=math.nan),
                   error="; ".join(f"{lab}: {r.get('error') or wrong(r)}" for lab, r in tried.items()))
    return row


def wrong(r: dict) -> str:
    """A wrong result's errors: every ``*err*`` / ``*diff*`` entry of an attempt."""
    errs = ", ".join(f"{k} {v:.2e}" for k, v in r.items() if ("err" in k or "diff" in k) and isinstance(v, float))
    return f"wrong result ({errs})"


def best_config(ctx: Ctx, row: dict, configs: list[tuple[str, KernelSpec]], attempt: Callable) -> dict:
    """Build each configuration and ``attempt`` it (check, then time when right); fill ``row`` by ``pick``."""
    tried = {}
    for label, sp in configs:
        try:
            tried[label] = attempt(ctx.kernel(sp))
        except Exception as e:  # noqa: BLE001 - a configuration that fails is reported, not fatal
            tried[label] = dict(ok=False, error=short(e))
    return pick(row, tried)


def short(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]
