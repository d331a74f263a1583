"""Running compiled CPU kernels: the persistent worker pool, the ``par_for`` seam and argument passing.

Every launch of a kernel is a native function ``launch(params, dims, counter)`` that worker threads
call concurrently; each call takes block numbers from the shared atomic ``counter`` until the grid is
done. ``par_for`` is the single place that decides how many threads run it: the pool is created once
per process, as wide as the machine (``TILEC_NUM_THREADS`` overrides, read at every call), and its
threads call through ctypes, which releases the GIL while native code runs. Nothing here needs
llvmlite: the ahead-of-time path loads a shared library with ctypes and uses this module alone.
"""
from __future__ import annotations

import ctypes
import os
import queue
import threading
from typing import Callable, Optional

import numpy as np

LAUNCH_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
NBLOCKS_T = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
WORKER_STACK = 64 << 20  # block-local buffers live on the stack; give workers room


def num_threads() -> int:
    env = os.environ.get("TILEC_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


class _Pool:
    """Persistent workers, each with its own job queue; ``run`` fans one callable out to ``width`` threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: list[queue.SimpleQueue] = []

    def _grow(self, n: int) -> None:
        old = threading.stack_size()
        threading.stack_size(WORKER_STACK)
        try:
            while len(self.workers) < n:
                q: queue.SimpleQueue = queue.SimpleQueue()
                t = threading.Thread(target=self._work, args=(q,), daemon=True, name=f"tilec-cpu-{len(self.workers)}")
                t.start()
                self.workers.append(q)
        finally:
            threading.stack_size(old)

    @staticmethod
    def _work(q: queue.SimpleQueue) -> None:
        while True:
            fn, done = q.get()
            try:
                fn()
                done.put(None)
            except BaseException as e:  # pragma: no cover - native code does not raise
                done.put(e)

    def run_on_worker(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on one pool thread (big stack) and wait for it."""
        with self.lock:
            self._grow(1)
            done: queue.SimpleQueue = queue.SimpleQueue()
            self.workers[0].put((fn, done))
            err = done.get()
            if err is not None:
                raise err

    def run(self, fn: Callable[[], None], width: int) -> None:
        with self.lock:  # one fan-out at a time keeps workers from being oversubscribed
            self._grow(width - 1)
            done: queue.SimpleQueue = queue.SimpleQueue()
            for q in self.workers[: width - 1]:
                q.put((fn, done))
            err: Optional[BaseException] = None
            try:
                fn()
            except BaseException as e:  # pragma: no cover
                err = e
            for _ in range(width - 1):
                r = done.get()
                err = err or r
            if err is not None:
                raise err


_pool = _Pool()


def _new_pool_after_fork() -> None:
    # A forked child inherits the pool's queues but none of its threads (and maybe a held lock):
    # without a fresh pool its first multi-threaded kernel would wait forever for absent workers.
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_new_pool_after_fork)


MAIN_STACK_LIMIT = 2 << 20  # blocks with more static stack than this never run on the caller's thread


def par_for(fn: Callable[[], None], nblocks: int, threads: Optional[int] = None, stack_bytes: int = 0) -> None:
    """Run ``fn`` on min(threads, nblocks) threads at once; each call works until the grid is exhausted."""
    width = min(threads or num_threads(), max(nblocks, 1))
    if width <= 1 and stack_bytes > MAIN_STACK_LIMIT:
        _pool.run_on_worker(fn)
    elif width <= 1:
        fn()
    else:
        _pool.run(fn, width)


class NativeKernel:
    """The callable side of a compiled kernel: launch entry points plus the metadata to call them."""

    def __init__(self, meta: dict, addresses: dict[str, int], keepalive=None):
        self.meta = meta
        self.keepalive = keepalive  # the CDLL or the JIT module that owns the code
        self.launches = [(LAUNCH_T(addresses[l]), NBLOCKS_T(addresses[c])) for l, c in meta["launches"]]
        self.stacks = meta.get("stack_bytes") or [0] * len(self.launches)
        self._ptrs_t = ctypes.c_void_p * max(len(meta["params"]), 1)
        self._dims_t = ctypes.c_int32 * max(len(meta["dims"]), 1)

    def run(self, args: list, dims: dict[str, int], threads: Optional[int] = None) -> None:
        params = self.meta["params"]
        if len(args) != len(params):
            from tilec.errors import TilecError
            raise TilecError(f"kernel '{self.meta['name']}' takes {len(params)} arrays, got {len(args)}")
        pointers = []
        for i, a in enumerate(args):
            if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
                from tilec.errors import TilecError
                raise TilecError(f"cpu target: argument '{params[i][0]}' must be a C-contiguous numpy array")
            pointers.append(a.__array_interface__["data"][0])
        self.call(pointers, [int(self._dim(nm, dims, args)) for nm in self.meta["dims"]], threads)
        del args  # the arrays stay alive in the caller until here: the native code is done with them

    def call(self, pointers: list[int], dim_values: list[int], threads: Optional[int] = None) -> None:
        """Run every launch on raw data addresses, one per parameter in order, and the values of
        ``meta["dims"]`` in order. The caller keeps the buffers alive and has checked them (``run``
        does for numpy arrays; the model library does for torch tensors)."""
        ptrs = self._ptrs_t(*pointers)
        dvals = self._dims_t(*dim_values)
        p_params, p_dims = ctypes.addressof(ptrs), ctypes.addressof(dvals)
        for (launch, nblocks), stack in zip(self.launches, self.stacks):
            total = nblocks(p_dims)
            if total <= 0:
                continue
            counter = ctypes.c_int64(0)
            p_counter = ctypes.addressof(counter)
            par_for(lambda: launch(p_params, p_dims, p_counter), total, threads, stack)

    def _dim(self, name: str, dims: dict, args: list) -> int:
        if dims and name in dims:
            return dims[name]
        for (pname, _, _), shape, a in zip(self.meta["params"], self.meta.get("shapes", []), args):
            for d, s in enumerate(shape):
                if s == name:
                    return a.shape[d]
        from tilec.errors import TilecError
        raise TilecError(f"cpu target: no value for symbolic dimension '{name}'")
