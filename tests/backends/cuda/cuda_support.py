"""Shared helpers of the CUDA backend tests: compile once per (kernel, arch), in parallel, per session.

nvcc takes about a second per translation unit, so every test module asks these cached functions for
the cubins it inspects instead of compiling itself; the first caller compiles everything of its kind
on a pool of 2 threads. The cubins themselves also land in tilec's compile cache, so a rerun of the
suite compiles nothing. Helper modules are loaded by path under unique names, so a ``filecheck.py``
elsewhere in the tree cannot shadow ours.
"""
from __future__ import annotations

import functools
import importlib.util
import pathlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ARCHES = ("sm_80", "sm_90a")


_load_lock = threading.Lock()


def load(name: str, path: pathlib.Path):
    with _load_lock:  # compile jobs load examples from two threads
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
        return mod


filecheck = load("tilec_cuda_filecheck", HERE / "filecheck.py").filecheck
irkit = load("tilec_cuda_irkit", HERE / "cuda_irkit.py")


def have_nvcc() -> bool:
    try:
        from tilec.backends.cuda.build import nvcc_path
        nvcc_path()
        return True
    except Exception:
        return False


def parallel(jobs: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Run ``jobs`` on 2 threads; a job's exception is stored as its result."""
    def run(fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - reported by the test that looks at it
            return e
    with ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(run, fn) for k, fn in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


@functools.lru_cache(maxsize=None)
def sources(arch: str) -> dict[str, object]:
    from tilec.backends.cuda.codegen import generate
    out = {}
    for name, func in irkit.all_kernels().items():
        try:
            out[name] = generate(func, arch).text
        except Exception as e:  # noqa: BLE001
            out[name] = e
    return out


@functools.lru_cache(maxsize=None)
def cubins() -> dict[tuple[str, str], object]:
    """(kernel name, arch) -> cubin path (or the exception) for every hand-built kernel."""
    from tilec.backends.cuda.build import compile_source
    jobs = {}
    for arch in ARCHES:
        for name, text in sources(arch).items():
            if isinstance(text, Exception):
                jobs[(name, arch)] = functools.partial(_raise, text)
            else:
                jobs[(name, arch)] = functools.partial(compile_source, text, arch, "cubin")
    return parallel(jobs)


def _raise(e: Exception):
    raise e


def cuobjdump() -> Optional[str]:
    from tilec.backends.cuda.build import cuobjdump_path
    return cuobjdump_path()


def sass(cubin: pathlib.Path) -> str:
    tool = cuobjdump()
    assert tool is not None
    return subprocess.run([tool, "-sass", str(cubin)], capture_output=True, text=True, check=True).stdout


def examples() -> list[pathlib.Path]:
    return sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def load_example(path: pathlib.Path):
    return load(f"tilec_cuda_example_{path.stem}", path)


@functools.lru_cache(maxsize=None)
def example_cubins() -> dict[tuple[str, str, str], object]:
    """(example stem, "DEFAULTS"|"RAGGED", arch) -> cubin path or exception.

    DEFAULTS compile for every arch; RAGGED (same code paths plus tail predicates) for sm_90a only, and
    is generated for sm_80, to keep the suite's nvcc time down.
    """
    from tilec.backends.cuda.build import compile_source
    from tilec.backends.cuda.codegen import generate

    def job(path, which, arch):
        mod = load_example(path)
        func = mod.KERNEL(**getattr(mod, which))
        func = getattr(func, "func", func)
        text = generate(func, arch).text
        if which == "RAGGED" and arch != "sm_90a":
            return text
        return compile_source(text, arch, "cubin")

    jobs = {}
    for path in examples():
        for which in ("DEFAULTS", "RAGGED"):
            for arch in ARCHES:
                jobs[(path.stem, which, arch)] = functools.partial(job, path, which, arch)
    return parallel(jobs)
