"""Where CPU kernel worker threads run: each worker on a CPU of its own, never the caller's, so a worker
woken after an idle spell is not queued behind its caller on one core (runtime.py, "where worker
threads run"). ``place_workers`` is the decision; the other tests check real threads' affinity."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tilec.backends.llvm import runtime
from tilec.backends.llvm.target import CpuTarget


@pytest.mark.parametrize("cpus, placed, caller, moves", [
    ([0, 1], {101: None}, 1, {101: 0}),                       # first launch: the other CPU
    ([0, 1], {101: 0}, 1, {}),                                # nothing to do
    ([0, 1], {101: 0}, 0, {101: 1}),                          # the caller moved onto the worker's CPU
    ([0, 1, 2, 3], {1: None, 2: None, 3: None}, 2, {1: 3, 2: 0, 3: 1}),  # nearest after the caller, wrapping
    ([0, 1, 2, 3], {1: 3, 2: 0, 3: 1}, 0, {2: 2}),            # only the displaced worker moves, to the freed CPU
    ([4, 6, 9], {7: None}, 6, {7: 9}),                        # an affinity mask with holes
    ([0, 1], {1: None, 2: None}, 0, {}),                      # more threads than CPUs: leave them be
    ([0, 1], {1: None}, 5, {}),                               # the caller runs outside the process's mask
])
def test_place_workers(cpus, placed, caller, moves):
    assert runtime.place_workers(cpus, placed, caller) == moves


def test_place_workers_never_shares_a_cpu():
    cpus = list(range(8))
    placed: dict = dict.fromkeys(range(100, 105))
    for caller in [3, 3, 0, 7, 1, 4, 4, 2, 6, 5]:
        placed.update(runtime.place_workers(cpus, placed, caller))
        used = list(placed.values())
        assert caller not in used and len(set(used)) == len(used) and set(used) <= set(cpus)


two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not runtime.binding_enabled(),
                              reason="needs 2 CPUs and tilec's thread binding on")


def _square_kernel():
    import tilec.language as T

    @T.prim_func
    def square(A: T.Tensor((256,), "float32"), B: T.Tensor((256,), "float32")):
        with T.Kernel(8, threads=32) as bx:
            for i in T.Parallel(32):
                B[bx * 32 + i] = A[bx * 32 + i] * A[bx * 32 + i]
    return CpuTarget().build(square.func, {})


def _check_run(exe):
    a = np.random.default_rng(5).standard_normal(256).astype(np.float32)
    b = np.full_like(a, np.nan)
    exe.run([a, b], {})
    np.testing.assert_array_equal(b, a * a)


def _pinned_apart(workers: list[int], caller_cpu: int) -> None:
    masks = [os.sched_getaffinity(w) for w in workers]
    assert all(len(m) == 1 for m in masks), masks
    cpus = [next(iter(m)) for m in masks]
    assert len(set(cpus)) == len(cpus) and caller_cpu not in cpus, (cpus, caller_cpu)


@two_cpus
@pytest.mark.skipif(runtime.gomp_parallel() == 0, reason="no OpenMP runtime in this process")
def test_openmp_workers_are_pinned_off_the_caller_and_released(monkeypatch):
    monkeypatch.setenv("TILEC_CPU_POOL", "openmp")
    monkeypatch.setenv("TILEC_NUM_THREADS", "2")
    exe = _square_kernel()
    _check_run(exe)
    placement = runtime._caller.placement
    workers = runtime.openmp_workers(runtime.gomp_parallel(), 2)
    assert workers == runtime._caller.teams[2] and len(workers) == 1
    _pinned_apart(workers, placement.last[0])

    monkeypatch.setenv("TILEC_CPU_BIND", "0")
    _check_run(exe)
    everywhere = os.sched_getaffinity(0)
    assert all(os.sched_getaffinity(w) == everywhere for w in workers)

    monkeypatch.setenv("TILEC_CPU_BIND", "1")
    _check_run(exe)
    _pinned_apart(workers, placement.last[0])


@two_cpus
def test_python_pool_workers_are_pinned_off_the_caller(monkeypatch):
    monkeypatch.setenv("TILEC_CPU_POOL", "python")
    exe = _square_kernel()
    for threads in ("3", "2"):  # a wider fan-out first: the pool then has more workers than a 2-wide one uses
        monkeypatch.setenv("TILEC_NUM_THREADS", threads)
        _check_run(exe)
    placement = runtime._pool.placement
    assert len(runtime._pool.native_ids) >= 2
    _pinned_apart(runtime._pool.native_ids[:1], placement.last[0])


def test_placement_gives_up_where_pinning_is_refused(monkeypatch):
    """A sandbox that refuses sched_setaffinity costs one failed call, not one per launch."""
    calls = []

    def refuse(pid, cpus):
        calls.append(pid)
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(runtime.os, "sched_setaffinity", refuse)
    monkeypatch.setattr(runtime, "_sched_getcpu", lambda: calls and 1 or 0)   # the caller keeps moving
    monkeypatch.setattr(runtime, "binding_enabled", lambda: True)
    placement = runtime._Placement()
    placement.cpus = [0, 1]
    workers = (4242,)
    for _ in range(5):
        placement.keep_off_caller(workers)
    assert calls == [4242] and placement.placed == {}
