"""Autotuning, TileLang's API: ``@tilec.autotune(configs=...)`` over ``@tilec.jit``, and ``AutoTuner``.

::

    @tilec.autotune(configs=[{"block_M": 32}, {"block_M": 64}], warmup=5, rep=20)
    @tilec.jit(out_idx=[-1], target="cpu")
    def matmul(M, N, K, block_M=64): ...

    kernel = matmul(256, 256, 256)      # tunes once, then returns the winner's JITKernel

    result = (AutoTuner.from_kernel(kernel=matmul_factory, configs=configs)
              .set_compile_args(out_idx=[-1], target="cpu")
              .set_profile_args(ref_prog=ref, supply_type=tilec.TensorSupplyType.Normal)
              .run(warmup=5, rep=20))   # an AutoTuneResult: .config, .latency, .kernel, .report()

How a run goes: every config is compiled, in parallel in a process pool (``TILEC_AUTOTUNE_JOBS``, default 2
workers; the workers fill the target's compile cache and the parent then loads each kernel from it); each
kernel is checked on fresh inputs (outputs poisoned) against ``ref_prog`` or, without one, against the
interpreter running the first config, before it may win; the survivors are timed with the profiler (wall
time on cpu and the ascend emulation, which has no cycle model; CUDA events on cuda). A config that fails
to compile, times out, crashes or gives wrong numbers is skipped with its reason. The result is stored on
disk (``<cache root>/autotune``, one JSON file per key, written under a file lock), keyed by the IR hash of
every config's kernel, the factory's arguments, the target, the device and the config space, so a
second run (in this or another process) compiles only the winner. ``result.cache_hit`` says which.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import TilecError
from ..profiler import Profiler, TensorSupplyType, _supply_type

CACHE_VERSION = 2


def progress_enabled(no_progress: bool = False) -> bool:
    """Progress bars show on a terminal, unless ``--no-progress`` or ``TILEC_NO_PROGRESS=1``."""
    if no_progress or os.environ.get("TILEC_NO_PROGRESS", "") not in ("", "0"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Any = None, total: Optional[int] = None, desc: str = "", enabled: bool = True) -> Any:
    """A tqdm bar on stderr (disabled when not a terminal)."""
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=False, file=sys.stderr)


def cache_folder() -> Path:
    from ..runtime.cache import cache_dir
    return cache_dir("autotune")


@dataclass
class Trial:
    """One config's outcome: its latency (ms) when it ran and checked, else why it was skipped."""
    config: dict[str, Any]
    latency: Optional[float] = None
    error: Optional[float] = None
    skipped: Optional[str] = None

    def as_json(self) -> dict[str, Any]:
        return {"config": self.config, "latency": self.latency, "error": self.error, "skipped": self.skipped}


@dataclass
class AutoTuneResult:
    """The winner (``config``, ``latency`` in ms, ``kernel``) and every trial; ``report()`` for people."""
    config: dict[str, Any]
    latency: float
    kernel: Any
    trials: list[Trial] = field(default_factory=list)
    ref_latency: Optional[float] = None
    cache_hit: bool = False
    tune_s: float = 0.0
    cache_path: Optional[str] = None

    def report(self, top: int = 5) -> str:
        ok = sorted((t for t in self.trials if t.latency is not None), key=lambda t: t.latency)
        bad = [t for t in self.trials if t.skipped]
        src = "from the cache" if self.cache_hit else f"in {self.tune_s:.1f} s"
        lines = [f"autotune: {len(ok)} of {len(self.trials)} configs ran and checked ({src}); "
                 f"winner {_cfg(self.config)} at {self.latency:.4f} ms"]
        for rank, t in enumerate(ok[:top], 1):
            rel = t.latency / self.latency if self.latency else float("nan")
            lines.append(f"  {rank:2d}. {t.latency:10.4f} ms  x{rel:5.2f}  {_cfg(t.config)}")
        if len(ok) > top:
            lines.append(f"  ... {len(ok) - top} more")
        for t in bad:
            lines.append(f"  skipped {_cfg(t.config)}: {t.skipped}")
        if self.ref_latency is not None:
            lines.append(f"  reference: {self.ref_latency:.4f} ms")
        return "\n".join(lines)


def _cfg(config: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in config.items()) + "}"


# The job the forked pool workers compile from (set just before the pool starts; fork copies it).
_JOB: Optional[tuple[Callable[..., Any], tuple, dict, dict]] = None


def _compile_worker(config: dict[str, Any]) -> Optional[str]:
    """In a pool worker: build ``config``'s kernel (filling the compile cache); None or the error text."""
    assert _JOB is not None
    factory, args, kwargs, compile_args = _JOB
    try:
        _build(factory, args, kwargs, config, compile_args)
    except Exception as e:  # noqa: BLE001 - any failure skips the config with its reason
        return f"compile failed: {type(e).__name__}: {_first_line(e)}"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _build(factory: Callable[..., Any], args: tuple, kwargs: dict, config: dict, compile_args: dict) -> Any:
    from ..runtime.kernel import compile
    func = factory(*args, **{**kwargs, **config})
    return compile(func, **compile_args)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=repr))


class AutoTuner:
    """TileLang's ``AutoTuner``: ``from_kernel(kernel, configs)``, ``set_compile_args``,
    ``set_profile_args``, ``run(warmup, rep, timeout)``; see the module docstring."""

    def __init__(self, fn: Callable[..., Any], configs: Any):
        from ..runtime.jit import JITFactory
        self.compile_args: dict[str, Any] = {"out_idx": None, "target": "auto"}
        if isinstance(fn, JITFactory):
            self.compile_args = {"out_idx": fn.out_idx, "target": fn.target, "pass_configs": fn.pass_configs,
                                 **fn.options}
            fn = fn.factory
        self.fn = fn
        self.configs = configs
        self.args: tuple = ()
        self.kwargs: dict[str, Any] = {}
        self.profile_args: dict[str, Any] = {"supply_type": TensorSupplyType.Auto, "ref_prog": None,
                                             "rtol": None, "atol": None, "skip_check": False,
                                             "max_mismatched_ratio": 0.01, "dims": None}
        self.jobs = int(os.environ.get("TILEC_AUTOTUNE_JOBS", "2"))
        self.verbose = progress_enabled()
        self.use_cache = True

    @classmethod
    def from_kernel(cls, kernel: Callable[..., Any], configs: Any) -> "AutoTuner":
        return cls(kernel, configs)

    def set_kernel_parameters(self, args: Sequence[Any] = (), kwargs: Optional[dict[str, Any]] = None
                              ) -> "AutoTuner":
        """The factory's fixed arguments (sizes); each config's entries are added as keywords."""
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        return self

    def set_compile_args(self, out_idx: Any = None, target: Any = "auto", execution_backend: Any = None,
                         target_host: Any = None, verbose: bool = False,
                         pass_configs: Optional[dict[str, Any]] = None, **options: Any) -> "AutoTuner":
        """``tilec.compile``'s arguments for every candidate (TileLang's execution_backend/target_host are
        accepted and unused: the target decides)."""
        self.compile_args = {"out_idx": out_idx, "target": target, "pass_configs": pass_configs, **options}
        return self

    def set_profile_args(self, supply_type: Any = TensorSupplyType.Auto, ref_prog: Optional[Callable] = None,
                         supply_prog: Optional[Callable] = None, rtol: Optional[float] = None,
                         atol: Optional[float] = None, max_mismatched_ratio: float = 0.01,
                         skip_check: bool = False, manual_check_prog: Optional[Callable] = None,
                         cache_input_tensors: bool = True, dims: Optional[dict[str, int]] = None) -> "AutoTuner":
        """How candidates are fed and checked: ``ref_prog(*inputs)`` (else the interpreter) within ``rtol``
        (a relative-error bound; default 1e-2 for 16/8-bit outputs, 1e-4 otherwise)."""
        self.profile_args = {"supply_type": _supply_type(supply_type), "ref_prog": ref_prog,
                             "supply_prog": supply_prog, "rtol": rtol, "atol": atol,
                             "max_mismatched_ratio": max_mismatched_ratio, "skip_check": skip_check,
                             "manual_check_prog": manual_check_prog, "dims": dims}
        return self

    # -- the config space and the cache key ------------------------------------------------------------
    def config_space(self) -> list[dict[str, Any]]:
        space = self.configs(*self.args, **self.kwargs) if callable(self.configs) else self.configs
        space = list(space or [])
        if not space:
            raise TilecError("autotune: the config space is empty (configs= gave no configs)")
        for c in space:
            if not isinstance(c, dict):
                raise TilecError(f"autotune: each config must be a dict of factory keywords, got {c!r}")
        return space

    def _target(self) -> Any:
        from ..runtime.kernel import resolve_target
        return resolve_target(self.compile_args.get("target", "auto"))

    def cache_key(self, space: list[dict[str, Any]], target: Any) -> str:
        """The IR hash of every config's kernel (a change that only one config's IR sees invalidates too),
        the arguments, target, device and the config space."""
        from ..ir.printer import print_func
        from ..runtime.kernel import as_func
        ir_hash = hashlib.sha256()
        for config in space:
            try:
                text = print_func(as_func(self.fn(*self.args, **{**self.kwargs, **config})), locs=False)
            except Exception as e:  # noqa: BLE001 - a config that cannot build is skipped later
                text = f"error: {type(e).__name__}: {e}"
            ir_hash.update(text.encode() + b"\0")
        p = self.profile_args
        parts = {
            "v": CACHE_VERSION, "ir": ir_hash.hexdigest(),
            "fn": f"{getattr(self.fn, '__module__', '')}.{getattr(self.fn, '__qualname__', repr(self.fn))}",
            "args": repr(self.args), "kwargs": repr(sorted(self.kwargs.items())),
            "compile": repr(sorted((k, repr(v)) for k, v in self.compile_args.items() if k != "target")),
            "target": target.name, "device": device_name(target), "space": repr(space),
            "check": repr((p["supply_type"], p["rtol"], p["skip_check"], p["ref_prog"] is None)),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    # -- running -----------------------------------------------------------------------------------------
    def run(self, warmup: float = 25, rep: float = 100, timeout: float = 30) -> AutoTuneResult:
        """Tune (or read the cache) and return the ``AutoTuneResult``; raise when no config survives."""
        start = time.perf_counter()
        space = self.config_space()
        target = self._target()
        compile_args = dict(self.compile_args, target=target.name)
        key = self.cache_key(space, target)
        path = cache_folder() / f"{key}.json"
        if self.use_cache:
            hit = self._from_cache(path, compile_args)
            if hit is not None:
                hit.tune_s = time.perf_counter() - start
                self._say(hit)
                return hit
        trials = [Trial(dict(c)) for c in space]
        self._compile_all(trials, compile_args, timeout)
        kernels = {}
        for i, t in enumerate(trials):
            if t.skipped is None:
                try:
                    kernels[i] = _build(self.fn, self.args, self.kwargs, t.config, compile_args)
                except Exception as e:  # noqa: BLE001
                    t.skipped = f"compile failed: {type(e).__name__}: {_first_line(e)}"
        ok = [i for i in kernels]
        if not ok:
            raise TilecError("autotune: every config was skipped:\n" + "\n".join(
                f"  {_cfg(t.config)}: {t.skipped}" for t in trials))
        checker = self._checker(kernels[ok[0]], compile_args)
        bar = progress(total=len(ok), desc="autotune", enabled=self.verbose)
        for i in ok:
            t = trials[i]
            try:
                prof = Profiler(kernels[i], self.profile_args["supply_type"], dims=self.profile_args["dims"])
                inputs = self._inputs(prof)
                if checker is not None:
                    why, t.error = checker(prof, inputs)
                    if why:
                        t.skipped = why
                if t.skipped is None:
                    t.latency = prof.do_bench(warmup=warmup, rep=rep, input_tensors=inputs)
            except Exception as e:  # noqa: BLE001 - a crash skips the config
                t.skipped = f"run failed: {type(e).__name__}: {_first_line(e)}"
            bar.update(1)
        bar.close()
        timed = [i for i in ok if trials[i].latency is not None]
        if not timed:
            raise TilecError("autotune: no config compiled and checked:\n" + "\n".join(
                f"  {_cfg(t.config)}: {t.skipped}" for t in trials))
        best = min(timed, key=lambda i: trials[i].latency)
        result = AutoTuneResult(trials[best].config, trials[best].latency, kernels[best], trials,
                                tune_s=time.perf_counter() - start, cache_path=str(path))
        self._store(path, result, target)
        self._say(result)
        return result

    def _say(self, result: AutoTuneResult) -> None:
        if self.verbose:
            print(result.report(), file=sys.stderr)

    def _inputs(self, prof: Profiler) -> list[Any]:
        given = _AUTOTUNE_INPUTS[-1] if _AUTOTUNE_INPUTS else None
        if given is not None:
            if len(given) == len(prof.kernel.params):  # all parameters given: drop the out_idx ones
                given = [given[i] for i in prof.kernel.input_idx]
            return list(given)
        supply = self.profile_args.get("supply_prog")
        if supply is not None:
            return list(supply(prof.kernel.params))
        return prof.make_inputs(seed=1234)

    def _compile_all(self, trials: list[Trial], compile_args: dict, timeout: float) -> None:
        """Compile every config in a forked process pool (serially when jobs <= 1 or fork is missing)."""
        global _JOB
        if self.jobs <= 1 or len(trials) < 2 or "fork" not in mp.get_all_start_methods():
            return  # the parent builds each config itself (and records its failure)
        _JOB = (self.fn, self.args, self.kwargs, compile_args)
        bar = progress(total=len(trials), desc="autotune compile", enabled=self.verbose)
        pool = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("fork"))
        try:
            futures = [pool.submit(_compile_worker, t.config) for t in trials]
            deadline = time.monotonic() + timeout * max(1, len(trials) / self.jobs)
            for t, fut in zip(trials, futures):
                try:
                    why = fut.result(timeout=max(0.1, min(timeout, deadline - time.monotonic())))
                except cf.TimeoutError:
                    why = f"compile timed out after {timeout:g} s"
                    fut.cancel()
                except Exception as e:  # noqa: BLE001 - a worker that died (segfault) skips its config
                    why = f"compile crashed: {type(e).__name__}: {_first_line(e)}"
                t.skipped = why
                bar.update(1)
        finally:
            bar.close()
            _JOB = None
            workers = list((getattr(pool, "_processes", None) or {}).values())
            stuck = any(t.skipped and "timed out" in t.skipped for t in trials)
            pool.shutdown(wait=not stuck, cancel_futures=True)
            for proc in workers:  # a worker stuck past its timeout is ended
                if stuck and proc.is_alive():
                    proc.kill()

    def _checker(self, first: Any, compile_args: dict) -> Optional[Callable[..., tuple[Optional[str], float]]]:
        p = self.profile_args
        if p["skip_check"]:
            return None
        from ..runtime.check import _is_half
        tol = p["rtol"] if p["rtol"] is not None else (
            1e-2 if any(_is_half(q) for q in first.params) else 1e-4)
        manual = p.get("manual_check_prog")
        ref_prog = p["ref_prog"]
        if ref_prog is None and manual is None:
            # the interpreter runs the first config once; every candidate computes the same function
            from ..runtime.kernel import compile
            oracle = compile(first.func, out_idx=first.out_idx, target="interp")
            memo: dict[str, Any] = {}

            def ref_prog(*inputs: Any) -> Any:
                if "out" not in memo:
                    memo["out"] = oracle(*[x.cpu() for x in inputs])
                return memo["out"]

        def check(prof: Profiler, inputs: list[Any]) -> tuple[Optional[str], float]:
            if manual is not None:
                outs = prof.run_outputs(inputs)
                try:
                    manual(inputs, outs if len(outs) != 1 else outs[0])
                except AssertionError as e:
                    return f"wrong numbers: {_first_line(e)}", float("inf")
                return None, 0.0
            errors = prof.compare(ref_prog, input_tensors=inputs)
            worst_name, worst = max(errors, key=lambda e: e[1])
            if not worst <= tol:
                return f"wrong numbers: output '{worst_name}' relative error {worst:.3e} > {tol:g}", worst
            return None, worst
        return check

    # -- the on-disk store -------------------------------------------------------------------------------
    def _from_cache(self, path: Path, compile_args: dict) -> Optional[AutoTuneResult]:
        from filelock import FileLock
        if not path.exists():
            return None
        with FileLock(str(path) + ".lock"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                return None  # a corrupt entry is retuned and rewritten
        if data.get("version") != CACHE_VERSION:
            return None
        trials = [Trial(**t) for t in data["trials"]]
        best = data["best"]
        config = trials[best].config
        try:
            kernel = _build(self.fn, self.args, self.kwargs, config, compile_args)
        except Exception:  # noqa: BLE001 - the winner no longer builds: tune again
            return None
        return AutoTuneResult(config, trials[best].latency, kernel, trials, cache_hit=True, cache_path=str(path))

    def _store(self, path: Path, result: AutoTuneResult, target: Any) -> None:
        from filelock import FileLock
        trials = [t.as_json() for t in result.trials]
        best = next(i for i, t in enumerate(result.trials) if t.config == result.config)
        data = {"version": CACHE_VERSION, "target": target.name, "device": device_name(target),
                "best": best, "trials": _jsonable(trials), "tune_s": result.tune_s}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with FileLock(str(path) + ".lock"):
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, path)


_AUTOTUNE_INPUTS: list[Optional[list[Any]]] = []


@contextlib.contextmanager
def set_autotune_inputs(*tensors: Any) -> Any:
    """TileLang's ``with set_autotune_inputs(A, B, C): kernel = matmul(M, N, K)``: tune on these tensors
    (the inputs, or every parameter with the ``out_idx`` ones left out) instead of generated ones."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    _AUTOTUNE_INPUTS.append(list(tensors))
    try:
        yield
    finally:
        _AUTOTUNE_INPUTS.pop()


def device_name(target: Any) -> str:
    """What the timings depend on besides the target: the GPU's name on cuda, the CPU elsewhere."""
    if target.name == "cuda":
        try:
            import torch
            if torch.cuda.is_available():
                return torch.cuda.get_device_name()
        except ImportError:
            pass
        return "cuda (no GPU)"
    return f"{platform.machine()} {platform.processor()} x{os.cpu_count()}"


class AutoTuneImpl:
    """What ``@autotune(...)`` returns: calling it tunes for those arguments once, then returns the
    winner's ``JITKernel`` (results memoized per argument list; ``.last_result`` holds the last one)."""

    def __init__(self, fn: Callable[..., Any], configs: Any, warmup: float, rep: float, timeout: float,
                 profile_args: dict[str, Any]):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.configs = configs
        self.warmup, self.rep, self.timeout = warmup, rep, timeout
        self.profile_args = profile_args
        self.results: dict[Any, AutoTuneResult] = {}
        self.last_result: Optional[AutoTuneResult] = None

    def tuner(self, *args: Any, **kwargs: Any) -> AutoTuner:
        tuner = AutoTuner.from_kernel(self.fn, self.configs).set_kernel_parameters(args, kwargs)
        tuner.set_profile_args(**self.profile_args)
        return tuner

    def tune(self, *args: Any, **kwargs: Any) -> AutoTuneResult:
        from ..runtime.jit import _freeze
        key = (_freeze(args), _freeze(kwargs))
        hit = self.results.get(key)
        if hit is None:
            hit = self.tuner(*args, **kwargs).run(warmup=self.warmup, rep=self.rep, timeout=self.timeout)
            self.results[key] = hit
        self.last_result = hit
        return hit

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.tune(*args, **kwargs).kernel


def autotune(func: Optional[Callable[..., Any]] = None, *, configs: Any = None, warmup: float = 25,
             rep: float = 100, timeout: float = 100, supply_type: Any = TensorSupplyType.Auto,
             ref_prog: Optional[Callable] = None, supply_prog: Optional[Callable] = None,
             rtol: Optional[float] = None, atol: Optional[float] = None, max_mismatched_ratio: float = 0.01,
             skip_check: bool = False, manual_check_prog: Optional[Callable] = None,
             cache_input_tensors: bool = True) -> Any:
    """TileLang's ``@autotune``: put it above ``@tilec.jit`` (or on a plain factory, compiled for "auto").

    ``configs`` is a list of dicts of factory keywords, or a function of the factory's arguments returning
    one. ``warmup``/``rep`` are the profiler's budgets in ms; ``timeout`` bounds each config's compile (s).
    """
    if configs is None:
        raise TilecError("autotune needs configs= (a list of dicts, or a function returning one)")
    profile_args = dict(supply_type=supply_type, ref_prog=ref_prog, supply_prog=supply_prog, rtol=rtol, atol=atol,
                        max_mismatched_ratio=max_mismatched_ratio, skip_check=skip_check,
                        manual_check_prog=manual_check_prog, cache_input_tensors=cache_input_tensors)

    def wrap(fn: Callable[..., Any]) -> AutoTuneImpl:
        return AutoTuneImpl(fn, configs, warmup, rep, timeout, profile_args)
    return wrap(func) if func is not None else wrap


__all__ = ["AutoTuner", "AutoTuneResult", "AutoTuneImpl", "Trial", "autotune", "set_autotune_inputs",
           "TensorSupplyType"]
