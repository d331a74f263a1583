"""``tilec bench FILE... --target T [--plot out.png] [--autotune] [--json PATH]``.

Each file gives its cases: its ``DEFAULTS`` (with ``--arg`` overrides) and, without ``--arg``, its
``RAGGED`` sizes when it has them. Per case the kernel is compiled for the target, checked once against
the file's ``reference()`` (outputs poisoned; the relative error is printed) and timed with the profiler
(``do_bench``: wall time on cpu, ascend and cuda-emu, CUDA events on cuda), beside the reference itself
("torch", the peer) on the same inputs. ``--autotune`` also tunes the file's ``configs(**params)`` space
(the convention the examples follow) and reports the winner and runner-ups. A tqdm bar shows progress.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import TilecError
from . import AutoTuner, progress


def _cases(path: str, kernel: Optional[str], arg_items: list[str]) -> list[tuple[str, Any]]:
    from ..runtime.loader import load
    first = load(path, kernel, arg_items)
    cases = [("default", first)]
    ragged = getattr(first.module, "RAGGED", None) if first.module is not None else None
    if ragged and not arg_items and first.factory:
        cases.append(("ragged", load(path, kernel, [f"{k}={v!r}" for k, v in ragged.items()])))
    return cases


def bench_case(loaded: Any, target: str, warmup: float, rep: float, seed: int = 0) -> dict[str, Any]:
    from ..profiler import Profiler
    from ..runtime.check import _is_half, call_reference, random_inputs
    from ..runtime.kernel import compile
    n = len(loaded.func.params)
    out_idx = loaded.out_idx if loaded.out_idx is not None else [n - 1]
    kernel = compile(loaded.func, out_idx=out_idx, target=target)
    kernel.ensure_runnable()
    device = "cuda" if kernel.target.array_kind == "torch-cuda" else "cpu"
    inputs = random_inputs(loaded, kernel.input_idx, seed, device)
    prof = Profiler(kernel)
    row: dict[str, Any] = {"target": kernel.target.name, "times": {}}
    if loaded.reference is not None:
        errors = prof.compare(lambda *xs: call_reference(loaded, list(xs)), input_tensors=inputs)
        tol = loaded.tolerance if loaded.tolerance is not None else (
            1e-2 if any(_is_half(p) for p in loaded.func.params) else 1e-4)
        row["error"] = max(e for _, e in errors)
        row["tolerance"] = tol
        row["ok"] = bool(row["error"] <= tol)
    row["times"]["tilec"] = prof.do_bench(warmup=warmup, rep=rep, input_tensors=inputs)
    if loaded.reference is not None:
        cpu = [x.cpu() if hasattr(x, "cpu") else x for x in inputs]
        row["times"]["torch"] = prof.do_bench(lambda *xs: call_reference(loaded, list(xs)), warmup=warmup,
                                              rep=rep, input_tensors=cpu)
    return row


def tune_file(loaded: Any, target: str, warmup: float, rep: float) -> Optional[Any]:
    """Autotune the file's ``configs(**params)`` space (None when the file has none)."""
    module = loaded.module
    configs = getattr(module, "configs", None) if module is not None else None
    if configs is None or not loaded.factory:
        return None
    factory = getattr(module, loaded.factory)
    n = len(loaded.func.params)
    out_idx = loaded.out_idx if loaded.out_idx is not None else [n - 1]
    tuner = AutoTuner.from_kernel(factory, configs).set_kernel_parameters((), dict(loaded.params))
    tuner.set_compile_args(out_idx=out_idx, target=target)
    if loaded.reference is not None:
        from ..runtime.check import call_reference
        tuner.set_profile_args(ref_prog=lambda *xs: call_reference(loaded, list(xs)), rtol=loaded.tolerance)
    return tuner.run(warmup=warmup, rep=rep)


def run_bench(files: Sequence[str], target: str = "auto", kernel: Optional[str] = None,
              arg_items: Optional[list[str]] = None, warmup: float = 25, rep: float = 100,
              autotune: bool = False, plot: Optional[str] = None, json_path: Optional[str] = None,
              bar: bool = False, out: Any = None) -> int:
    import sys
    out = out or sys.stdout
    if plot:
        from .plot import require_matplotlib
        require_matplotlib()  # fail before the work, not after it
    todo = [(path, name, loaded) for path in files for name, loaded in _cases(path, kernel, list(arg_items or []))]
    rows: list[dict[str, Any]] = []
    landscapes = []
    status = 0
    pbar = progress(total=len(todo), desc="bench", enabled=bar)
    for path, name, loaded in todo:
        sizes = ",".join(f"{k}={v}" for k, v in loaded.params.items() if isinstance(v, int))
        row = {"file": path, "case": f"{Path(path).stem} {name}" + (f" ({sizes})" if sizes else ""),
               **bench_case(loaded, target, warmup, rep)}
        if autotune and name == "default":
            result = tune_file(loaded, target, warmup, rep)
            if result is not None:
                print(result.report(), file=out)
                row["autotune"] = {"config": result.config, "latency": result.latency,
                                   "cache_hit": result.cache_hit, "trials": [t.as_json() for t in result.trials]}
                landscapes.append((f"autotune {Path(path).stem} on {row['target']}", result.trials, result.config))
                row["times"]["tilec (tuned)"] = result.latency
        rows.append(row)
        pbar.update(1)
        t = row["times"]
        peer = f", torch {t['torch']:.4f} ms, torch/tilec {t['torch'] / t['tilec']:.2f}" if "torch" in t else ""
        err = ""
        if "error" in row:
            err = f", rel.err {row['error']:.2e} {'ok' if row['ok'] else 'FAILED'}"
            if not row["ok"]:
                status = 1
        print(f"{row['case']} on {row['target']}: tilec {t['tilec']:.4f} ms{peer}{err}", file=out, flush=True)
    pbar.close()
    if json_path:
        Path(json_path).write_text(json.dumps({"rows": rows}, indent=1, default=repr))
    if plot:
        from .plot import save_figure
        save_figure(plot, cases=rows, landscapes=landscapes, title=f"tilec bench on {rows[0]['target']}")
        print(f"wrote {plot}", file=out)
    if not rows:
        raise TilecError("tilec bench: no case to run")
    return status
