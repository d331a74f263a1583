"""Running compiled CPU kernels: threads, and argument passing.

Every launch of a kernel is a native function ``launch(params, dims, counter)`` that threads call
concurrently; each call takes block numbers from the shared atomic ``counter`` until the grid is done,
so results never depend on how many threads run it. Two ways to fan a launch out:

- ``openmp`` (default): the kernel's native entry ``run(params, dims, nthreads, gomp_parallel)``
  (codegen_module.py) runs every launch in ONE ctypes call, each on an OpenMP team started with
  ``GOMP_parallel`` (libgomp, which PyTorch also uses: the process keeps one pool, not two). A launch
  then costs a few microseconds, against tens for a hand-off to Python threads; that is what a model
  making a hundred small kernel calls per token needs.
- ``python``: a persistent pool of Python threads (``_Pool``), used when no OpenMP runtime is found,
  in a forked child (GNU OpenMP does not survive fork), for blocks whose stack arrays are too big for
  an OpenMP worker's default stack, and when ``TILEC_CPU_POOL=python``.

Width: as many threads as the process may run on (``TILEC_NUM_THREADS`` overrides, read at every
call), never more than the launch has blocks. ctypes releases the GIL while native code runs. Nothing
here needs llvmlite: the ahead-of-time path loads a shared library with ctypes and uses this module.

Placement: each worker thread of either pool is pinned to a CPU of its own, never the caller's (see
``_Placement``); ``TILEC_CPU_BIND=0`` turns that off.
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
RUN_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p)
WORKER_STACK = 64 << 20  # block-local buffers live on the stack; give workers room
# An OpenMP worker's stack is the pthread default (8 MB here, the stack rlimit; at least 2 MB); the
# caller's share of a launch runs on the calling thread's stack. Blocks with bigger stack arrays go to
# the Python pool, whose workers have WORKER_STACK.
OPENMP_STACK_LIMIT = 1 << 20
OPENMP_LIBRARIES = ("libgomp.so.1", "libomp.so", "libomp.dylib", "libiomp5.so")


def _machine_threads() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_MACHINE_THREADS = _machine_threads()  # read once: os.cpu_count costs microseconds per call


def num_threads() -> int:
    env = os.environ.get("TILEC_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    return _MACHINE_THREADS


def _find_gomp_parallel() -> int:
    """Address of ``GOMP_parallel`` in the process's OpenMP runtime, or 0 when there is none.

    The runtime PyTorch loaded is found first (dlopen by soname returns the copy already in the process,
    so tilec and torch share one pool); else the system's; else the copy in torch's wheel, found
    without importing torch. LLVM's and Intel's runtimes export the same entry point."""
    import importlib.util
    candidates = list(OPENMP_LIBRARIES)
    spec = importlib.util.find_spec("torch")
    if spec is not None and spec.submodule_search_locations:
        lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
        candidates += [os.path.join(lib_dir, name) for name in OPENMP_LIBRARIES]
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            return ctypes.cast(lib.GOMP_parallel, ctypes.c_void_p).value or 0
        except (OSError, AttributeError):
            continue
    return 0


_gomp_parallel: Optional[int] = None   # found at the first kernel call; 0: none


def gomp_parallel() -> int:
    """``GOMP_parallel``'s address when the OpenMP path is on (see the module docstring), else 0."""
    global _gomp_parallel
    if os.environ.get("TILEC_CPU_POOL", "openmp") == "python":
        return 0
    if _gomp_parallel is None:
        _gomp_parallel = _find_gomp_parallel()
    return _gomp_parallel


# --- where worker threads run ---------------------------------------------------------------------
# On a virtual machine a vCPU that has been idle for more than ~20 ms can look busy to the guest's
# scheduler (its "preempted" hint), which then wakes a worker onto the waking thread's own CPU: the
# caller and its worker share one core for the whole launch, while the other core idles (measured
# here, 2 vCPUs: in 8-20 of 20 launches after a 20-300 ms pause, the worker started 2.5-4 ms late and
# a 2-thread GEMM 1024 took 9-12 ms instead of 4.6). A thread allowed on one CPU only is always woken
# there. So each worker is pinned to a CPU of its own, never the caller's current CPU; when the
# caller moves onto a worker's CPU, that worker alone moves (one system call), to the free CPU
# nearest the caller's. The caller itself is never pinned.


def place_workers(cpus: list[int], placed: dict, caller_cpu: int) -> dict:
    """The moves that keep every worker on a CPU of its own other than ``caller_cpu``.

    ``cpus``: the CPUs the process may use; ``placed``: worker -> its CPU, or None when not yet pinned.
    Returns worker -> new CPU for the workers that must move; {} when there are not enough CPUs (one
    for the caller plus one per worker), and then nothing is pinned."""
    if len(placed) >= len(cpus) or caller_cpu not in cpus:
        return {}
    taken = {c for c in placed.values() if c is not None and c != caller_cpu}
    nearest = sorted((c for c in cpus if c != caller_cpu and c not in taken),
                     key=lambda c: (c - caller_cpu) % (max(cpus) + 1))
    moves = {}
    for worker, cpu in placed.items():
        if cpu is None or cpu == caller_cpu:
            moves[worker] = nearest.pop(0)
    return moves


def _libc_sched_getcpu():
    try:
        fn = ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = []
    return fn


_sched_getcpu = _libc_sched_getcpu()
# OpenMP's own binding, when asked for, is the user's choice; tilec then leaves placement alone
_OPENMP_BINDING = any(os.environ.get(v) for v in ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY"))


def binding_enabled() -> bool:
    return (_sched_getcpu is not None and not _OPENMP_BINDING
            and os.environ.get("TILEC_CPU_BIND", "1").strip().lower() not in ("0", "no", "off", "false"))


class _Placement:
    """Where one caller's worker threads (native thread ids) are pinned. ``keep_off_caller`` runs before
    each launch with the workers that launch uses; it costs one ``sched_getcpu`` call when nothing
    has to move."""

    def __init__(self) -> None:
        self.placed: dict = {}   # worker -> the CPU it is pinned to
        self.last: tuple = ()    # (caller's CPU, workers) at the last check
        self.refused = False     # sched_setaffinity failed once: leave placement to the system
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            self.cpus = []

    def keep_off_caller(self, workers: tuple) -> None:
        if self.refused or not binding_enabled():
            self.release()
            return
        cpu = _sched_getcpu()
        if self.last == (cpu, workers):
            return
        self.last = (cpu, workers)
        team = {w: self.placed.get(w) for w in workers}
        for worker, target in place_workers(self.cpus, team, cpu).items():
            try:
                os.sched_setaffinity(worker, {target})
            except OSError:  # not permitted here (a sandbox), a CPU taken from the process, or the worker gone
                self.refused = True
                self.release()
                return
            self.placed[worker] = target

    def release(self) -> None:
        """Let pinned workers run anywhere again (binding turned off or refused)."""
        if not self.placed:
            return
        for worker in self.placed:
            try:
                os.sched_setaffinity(worker, self.cpus)
            except OSError:
                pass
        self.placed.clear()
        self.last = ()


TEAM_MEMBER_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
GOMP_PARALLEL_T = ctypes.CFUNCTYPE(None, TEAM_MEMBER_T, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)
# An OpenMP runtime keeps one pool of workers per calling thread, and a team of n threads is the caller
# plus the same n - 1 workers of that pool every time.
_caller = threading.local()


def openmp_workers(gomp: int, width: int) -> tuple:
    """Native ids of the workers in the calling thread's OpenMP team of ``width``: one empty parallel
    region whose members report themselves."""
    ids: list[int] = []
    member = TEAM_MEMBER_T(lambda _: ids.append(threading.get_native_id()))
    GOMP_PARALLEL_T(gomp)(member, None, width, 0)
    me = threading.get_native_id()
    return tuple(sorted(i for i in ids if i != me))


def place_openmp_team(gomp: int, width: int) -> None:
    """Pin the calling thread's OpenMP workers before a launch of ``width`` threads (see above)."""
    if width <= 1:
        return
    teams = getattr(_caller, "teams", None)
    if teams is None:
        if not binding_enabled():
            return
        teams = _caller.teams = {}
        _caller.placement = _Placement()
    workers = teams.get(width)
    if workers is None:
        workers = teams[width] = openmp_workers(gomp, width)
    _caller.placement.keep_off_caller(workers)


class _Pool:
    """Persistent workers, each with its own job queue; ``run`` fans one callable out to ``width`` threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: list[queue.SimpleQueue] = []
        self.native_ids: list[int] = []
        self.placement = _Placement()

    def _grow(self, n: int) -> None:
        old = threading.stack_size()
        threading.stack_size(WORKER_STACK)
        try:
            while len(self.workers) < n:
                q: queue.SimpleQueue = queue.SimpleQueue()
                t = threading.Thread(target=self._work, args=(q,), daemon=True, name=f"tilec-cpu-{len(self.workers)}")
                t.start()
                self.workers.append(q)
                self.native_ids.append(t.native_id)
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
            self.placement.keep_off_caller(tuple(self.native_ids[: width - 1]))
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
    # GNU OpenMP has the same flaw and no fix, so a child uses the Python pool only.
    global _pool, _gomp_parallel
    _pool = _Pool()
    _gomp_parallel = 0


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
        self.launches = [(LAUNCH_T(addresses[run]), NBLOCKS_T(addresses[count])) for run, count in meta["launches"]]
        self.stacks = meta.get("stack_bytes") or [0] * len(self.launches)
        # libraries built before the native entry existed have no "entry": they use the Python pool
        small = max(self.stacks, default=0) <= OPENMP_STACK_LIMIT
        self.entry = RUN_T(addresses[meta["entry"]]) if meta.get("entry") and small else None
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
        if self.entry is not None:
            gomp = gomp_parallel()
            if gomp:
                width = threads or num_threads()
                place_openmp_team(gomp, width)
                self.entry(ptrs, dvals, width, gomp)
                return
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


def entry_symbols(meta: dict) -> list[str]:
    """Every native symbol ``NativeKernel`` needs from a kernel's code (see ``KernelMeta``)."""
    syms = [s for pair in meta["launches"] for s in pair]
    return syms + ([meta["entry"]] if meta.get("entry") else [])
