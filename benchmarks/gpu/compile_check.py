"""Building the GPU benchmark's kernels without running them: the ``--compile-only`` report and the
concurrent prebuild.

``bench.py`` and ``deepseek.py`` describe every kernel a run launches as a job ``(name, build)``
where ``build()`` generates the kernel, compiles it with nvcc (into the cuda backend's on-disk cache)
and returns the generated CUDA source. ``report`` builds the jobs one at a time (one nvcc at a time:
CI machines are small) and prints one line per kernel; ``prebuild`` builds them concurrently before a
GPU run, so a fresh machine does not spend minutes compiling one kernel after the other.
"""
from __future__ import annotations

import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

Job = tuple[str, Callable[[], str]]


def gemm_kinds(source: str) -> str:
    """How the generated source multiplies: its T.gemm statements on tensor cores vs the FMA fallback
    (each statement is preceded by a comment with its IR text; the fallback says so in a comment)."""
    total = len(re.findall(r"^\s*// \S+:\d+:\d+\s+gemm ", source, re.M))
    fma = source.count("gemm on CUDA cores (FMA)")
    return f"gemms: {total - fma} tensor-core, {fma} FMA"


def resources(source: str, arch: str) -> str:
    """Registers and local memory of the compiled kernel (the most over its launches), from cuobjdump.

    ``stack`` is per-thread local memory: register spills or arrays indexed at run time, both slow.
    The build is a cache hit: the job has just compiled the same source for the same arch."""
    from tilec.backends.cuda.build import compile_source, resource_usage
    usage = resource_usage(compile_source(source, arch, "so"))
    if not usage:
        return "registers: ? (no cuobjdump)"
    regs = max(u.get("REG", 0) for u in usage.values())
    stack = max(u.get("STACK", 0) for u in usage.values())
    return f"registers {regs}, stack {stack} B" + ("  LOCAL MEMORY" if stack else "")


def report(jobs: list[Job], arch: str = "sm_90a") -> int:
    """Build every job in turn; one line each: name, seconds, ``ok`` with ``gemm_kinds`` and
    ``resources`` or ``ERROR`` with the first lines of the error. Returns 1 when any failed, else 0."""
    failed = 0
    print(f"compiling {len(jobs)} kernels for {arch}")
    for name, build in jobs:
        t0 = time.time()
        try:
            source = build()
            status = f"ok     {gemm_kinds(source)}; {resources(source, arch)}"
        except Exception as e:  # noqa: BLE001 - every kernel gets its line
            failed += 1
            status = "ERROR  " + " | ".join(ln.strip() for ln in f"{type(e).__name__}: {e}".splitlines()[:3])
        print(f"{name:<72} {time.time() - t0:6.1f} s  {status}", flush=True)
    print(f"{len(jobs) - failed} of {len(jobs)} kernels compiled")
    return 1 if failed else 0


def prebuild(jobs: list[Job], workers: int = 0) -> float:
    """Build the jobs concurrently (nvcc runs in child processes, so threads suffice); errors are
    ignored here: the phase that runs the kernel builds it again and reports them. Returns seconds."""
    def build(job: Job) -> None:
        try:
            job[1]()
        except Exception:  # noqa: BLE001 - reported by the phase that needs the kernel
            pass
    t0 = time.time()
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(build, jobs))
    secs = time.time() - t0
    print(f"  prebuilt {len(jobs)} kernels in {secs:.0f} s", file=sys.stderr, flush=True)
    return round(secs, 1)
