"""How compiled CPU kernels are run: the OpenMP path (one native call per kernel, teams started with
GOMP_parallel) and the Python thread pool give bit-identical results at every width; a forked child
falls back to the Python pool instead of hanging in GNU OpenMP; kernels whose metadata predates the
native entry still run."""
from __future__ import annotations

import multiprocessing
import pathlib
import sys

import numpy as np
import pytest

from tilec.backends.llvm import runtime
from tilec.backends.llvm.target import CpuTarget

sys.path.insert(0, str(pathlib.Path(__file__).parents[3] / "examples"))

needs_openmp = pytest.mark.skipif(runtime.gomp_parallel() == 0, reason="no OpenMP runtime in this process")


def _attention(seq: int = 200):
    import flash_attention
    func = flash_attention.flash_attention(1, 3, seq, 64, True, dtype="float32").func
    rng = np.random.default_rng(31)
    return func, [rng.standard_normal((1, seq, 3, 64)).astype(np.float32) for _ in range(3)]


def _run(exe, qkv) -> np.ndarray:
    o = np.full_like(qkv[0], np.nan)
    exe.run([*qkv, o], {})
    assert not np.isnan(o).any()
    return o


@needs_openmp
def test_native_entry_is_used_and_matches_the_python_pool(monkeypatch):
    func, qkv = _attention()
    exe = CpuTarget().build(func, {})
    assert exe.kernel.entry is not None, "the kernel should have a native run entry"
    outs = {}
    for pool in ("openmp", "python"):
        monkeypatch.setenv("TILEC_CPU_POOL", pool)
        for threads in (1, 2, 3):
            monkeypatch.setenv("TILEC_NUM_THREADS", str(threads))
            outs[pool, threads] = _run(exe, qkv)
    first = outs["openmp", 1]
    assert all(np.array_equal(first, o) for o in outs.values())


def test_metadata_without_native_entry_still_runs():
    """A library built before the native entry existed (no ``entry`` in its metadata) uses the pool."""
    func, qkv = _attention(64)
    exe = CpuTarget().build(func, {})
    import ctypes
    meta = {k: v for k, v in exe.kernel.meta.items() if k != "entry"}
    lib = exe.kernel.keepalive
    addrs = {sym: ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value for sym in runtime.entry_symbols(meta)}
    old = runtime.NativeKernel(meta, addrs, keepalive=exe.kernel.keepalive)
    assert old.entry is None
    o = np.full_like(qkv[0], np.nan)
    old.run([*qkv, o], {}, threads=2)
    assert np.array_equal(o, _run(exe, qkv))


def _child(conn, qkv):
    from tilec.backends.llvm.target import CpuTarget
    func, _ = _attention()
    o = np.full_like(qkv[0], np.nan)
    CpuTarget().build(func, {"num_threads": 2}).run([*qkv, o], {})
    conn.send((runtime.gomp_parallel(), o))


@needs_openmp
def test_forked_child_after_openmp_runs_on_the_python_pool():
    """GNU OpenMP hangs in a forked child whose parent ran a parallel region; the child must not use it."""
    func, qkv = _attention()
    want = _run(CpuTarget().build(func, {"num_threads": 2}), qkv)      # the parent's OpenMP team exists now
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, qkv))
    proc.start()
    try:
        assert recv.poll(60), "the forked child hung running a kernel"
        gomp, got = recv.recv()
        assert gomp == 0 and np.array_equal(got, want)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()


def test_jit_build_loads_cached_objects(monkeypatch, tmp_path):
    """The JIT path keeps object files in the disk cache: a second build neither generates nor optimizes
    LLVM IR, and a corrupt object is rebuilt."""
    from tilec.backends.llvm import cache, target
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    func, qkv = _attention(64)
    want = _run(CpuTarget().build(func, {"cpu_build": "jit"}), qkv)
    objects = list((cache.cache_dir().parent / "cpu-jit-object").glob("*.o"))
    assert len(objects) == 1

    def no_codegen(*a, **k):
        raise AssertionError("a cached JIT build must not generate LLVM IR")
    with monkeypatch.context() as m:
        m.setattr(target, "generate_llvm_ir", no_codegen)
        assert np.array_equal(_run(CpuTarget().build(func, {"cpu_build": "jit"}), qkv), want)
    objects[0].write_bytes(objects[0].read_bytes()[:100])         # truncated: a miss, rebuilt
    exe = CpuTarget().build(func, {"cpu_build": "jit"})
    assert np.array_equal(_run(exe, qkv), want)
    assert exe.source.startswith("; ModuleID") or "define" in exe.source


def test_cached_jit_object_in_a_fresh_process(tmp_path):
    """A new process whose first LLVM work is loading a cached object (no IR generated, so nothing else
    has set up the engine yet) gets a working kernel."""
    import os
    import subprocess
    import textwrap
    root = pathlib.Path(__file__).parents[3]
    code = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(root / 'examples')!r})
        import flash_attention
        from tilec.backends.llvm.target import CpuTarget
        func = flash_attention.flash_attention(1, 2, 64, 64, True, dtype="float32").func
        qkv = [np.random.default_rng(i).standard_normal((1, 64, 2, 64)).astype(np.float32) for i in range(3)]
        o = np.full_like(qkv[0], np.nan)
        CpuTarget().build(func, {{"cpu_build": "jit"}}).run([*qkv, o], {{}})
        print("sum", float(o.sum()))
    """)
    env = dict(os.environ, PYTHONPATH=str(root), TILEC_CACHE_DIR=str(tmp_path))
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]                    # the first fills the object cache, the second only loads
    for r in outs:
        assert r.returncode == 0, r.stderr
    assert outs[0].stdout == outs[1].stdout and "nan" not in outs[0].stdout
