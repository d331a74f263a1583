"""``tilec.compile`` and the ``JITKernel`` it returns: the user-facing end of the compiler.

``compile`` takes a kernel (a ``T.prim_func`` result or a ``nodes.Func``), verifies it, picks the target
(``"auto"``: cuda when torch sees a GPU and the cuda backend is installed, else cpu, else the
interpreter), and asks the target to build it. The ``JITKernel`` checks and converts each call's arrays
(``args.py``), allocates the ``out_idx`` outputs and runs the target's ``Executable``.

Return convention: outputs come back as torch tensors when any input was a torch tensor (bfloat16 as
``torch.bfloat16``, float8_e4m3 as ``torch.float8_e4m3fn``) and as numpy arrays otherwise (also for
DLPack-only inputs: numpy arrays speak DLPack, so the caller's library takes them back with its
``from_dlpack``). Numpy bfloat16/float8_e4m3 outputs are ``ml_dtypes.bfloat16`` /
``ml_dtypes.float8_e4m3fn`` arrays (values, not bits: ``.astype(np.float32)`` works); numpy inputs of
those types may be ml_dtypes arrays or their storage bits (uint16 / uint8), so one kernel's outputs
feed the next unchanged and ``out.view(np.uint16)`` gives the bits. One output is returned bare, several
as a list, none as ``None``.

Non-contiguous arguments (strided views, transposes) are copied to contiguous temporaries, with one
``TilecWarning`` per kernel; parameters the kernel writes are copied back into the caller's arrays after
the run. ``compile(..., strict=True)`` refuses them with a TilecError instead.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Optional, Sequence

from .. import targets as target_registry
from ..targets import as_func
from ..errors import TilecError, TilecWarning
from ..ir import nodes
from ..ir.verifier import verify
from . import args as argmod


# compile() options that the JITKernel uses and the target never sees.
RUNTIME_OPTIONS = frozenset({"poison_outputs", "strict"})


# The tile passes each target runs when ``compile`` is not told otherwise (``passes=None``). The
# interpreter is the oracle and interprets the kernel as written; cpu, ascend and cuda were each run
# through their test suites and the fuzzer with the passes on (docs/internals.md, "Passes").
TARGET_DEFAULT_PASSES: dict[str, str] = {"cpu": "default", "ascend": "default", "cuda": "default"}

# ``passes=`` values that turn the tile passes off.
NO_PASSES = ("", "none", "off")


def default_passes(target_name: str) -> str:
    """The pass list ``target_name`` runs by default ("" for none); ``TILEC_PASSES`` overrides it."""
    env = os.environ.get("TILEC_PASSES")
    if env is not None:
        return env
    return TARGET_DEFAULT_PASSES.get(target_name, "")


def pass_spec(options: dict[str, Any], target_name: str) -> str:
    """The passes to run as "default", "a,b,c" or "" from ``options["passes"]`` (None: the target's
    default; ``[]``, ``False``, "none": none) and ``pass_configs={"tilec.passes": ...}``."""
    spec = options.get("passes")
    configs = options.get("pass_configs") or {}
    if spec is None and configs.get("tilec.passes") is not None:
        spec = configs["tilec.passes"]
    if spec is None:
        spec = default_passes(target_name)
    if spec is False:
        return ""
    if spec is True:
        return "default"
    if not isinstance(spec, str):
        spec = ",".join(spec)
    return "" if spec.strip().lower() in NO_PASSES else spec


def run_tile_passes(func: nodes.Func, options: dict[str, Any], target_name: str = "") -> nodes.Func:
    """The target-independent passes chosen by ``pass_spec`` (for ``target_name``), if any.

    They run before the target's own lowering; ``check_semantics`` interprets before and after each
    pass and names the first one that changes the results.
    """
    spec = pass_spec(options, target_name)
    if not spec:
        if options.get("check_semantics"):
            raise TilecError(f"--check-semantics needs --passes (the passes to check): target "
                             f"'{target_name}' runs no tile passes by default")
        return func
    from ..passes import manager, registry
    passes = registry.pipeline(registry.DEFAULT if spec == "default" else spec)
    if options.get("check_semantics"):
        from ..passes.check_semantics import run_checked
        # run_checked runs the passes one at a time: check --print-after names against the whole list.
        unknown = manager._print_targets(options) - {p.name for p in passes}
        if unknown:
            raise TilecError(f"--print-after names unknown pass(es) {', '.join(sorted(unknown))}; this "
                             f"pipeline has: {', '.join(p.name for p in passes)}")
        return run_checked(func, passes, dict(options, print_after_lenient=True))
    return manager.run_pipeline(func, passes, options)


def _usable(name: str) -> bool:
    try:
        ok, _why = target_registry.get(name).available()
    except Exception:  # a backend that fails to load is simply not a candidate for "auto"
        return False
    return bool(ok)


def auto_target() -> str:
    """The best target on this machine: cuda with a visible GPU, else cpu, else interp."""
    registered = target_registry.names()
    if "cuda" in registered:
        try:
            import torch
            gpu = torch.cuda.is_available()
        except ImportError:
            gpu = False
        if gpu and _usable("cuda"):
            return "cuda"
    if "cpu" in registered and _usable("cpu"):
        return "cpu"
    return "interp"


def resolve_target(name: Any, require_available: bool = True) -> Any:
    """The target object for ``name`` (``"auto"`` allowed, or a target object).

    With ``require_available`` the target must be able to run here; building alone (a CUDA kernel on a
    machine with nvcc and no GPU) only needs the target to load.
    """
    if not isinstance(name, str):
        target = name  # a target object (tests, or a target not in the registry)
        ok, why = target.available()
        if require_available and not ok:
            raise TilecError(f"target '{target.name}' is not available here: {why}")
        return target
    if name == "auto":
        name = auto_target()
    try:
        target = target_registry.get(name)
    except TilecError:
        raise
    except Exception as e:
        raise TilecError(f"target '{name}' failed to load: {type(e).__name__}: {e}") from e
    ok, why = target.available()
    if require_available and not ok:
        raise TilecError(f"target '{name}' is not available here: {why}")
    return target


def normalize_out_idx(out_idx: Any, func: nodes.Func) -> list[int]:
    """``out_idx`` (None, an int or a list, negatives allowed) as checked indices, in the given order."""
    n = len(func.params)
    if out_idx is None:
        return []
    raw = [out_idx] if isinstance(out_idx, int) else list(out_idx)
    result: list[int] = []
    for i in raw:
        if not isinstance(i, int) or isinstance(i, bool):
            raise TilecError(f"out_idx entries must be integers, got {i!r}")
        if not -n <= i < n:
            raise TilecError(f"out_idx {i} is out of range: kernel '{func.name}' has {n} parameters")
        j = i % n
        if j in result:
            raise TilecError(f"out_idx names parameter '{func.params[j].name}' twice")
        result.append(j)
    return result


class JITKernel:
    """A compiled kernel: call it with the input arrays; it returns the ``out_idx`` outputs."""

    def __init__(self, func: nodes.Func, executable: Any, target: Any, out_idx: list[int],
                 options: dict[str, Any]):
        self.func = func
        self.executable = executable
        self.target = target
        self.out_idx = out_idx
        self.options = options
        self.params = func.params
        self.input_idx = [i for i in range(len(func.params)) if i not in out_idx]
        # Fill outputs with NaN before each run (the CLI's --check and the tests turn this on).
        self.poison_outputs = bool(options.get("poison_outputs", False))
        self._runnable = False  # target.available() is asked once, at the first call
        # Refuse non-contiguous arguments instead of copying them.
        self.strict = bool(options.get("strict", False))
        self._warned_copy = False
        self._written: Optional[set[str]] = None

    @property
    def target_name(self) -> str:
        return self.target.name

    def get_kernel_source(self) -> str:
        """The generated source (CUDA C++, LLVM IR, AscendC C++; the IR text for interp)."""
        return self.executable.source

    def __repr__(self) -> str:
        return f"JITKernel({self.func.name}, target={self.target.name}, out_idx={self.out_idx})"

    def get_profiler(self, tensor_supply_type: Any = "Auto", dims: Optional[dict[str, int]] = None,
                     seed: int = 0) -> Any:
        """A ``tilec.profiler.Profiler`` (TileLang's ``do_bench`` / ``assert_allclose``) for this kernel."""
        from ..profiler import Profiler
        return Profiler(self, tensor_supply_type, dims=dims, seed=seed)

    def ensure_runnable(self) -> None:
        """Raise a TilecError when the target cannot run here (asked once, at the first call)."""
        if not self._runnable:
            ok, why = self.target.available()
            if not ok:
                raise TilecError(f"kernel '{self.func.name}' was built for target '{self.target.name}', "
                                 f"which cannot run here: {why} (get_kernel_source() has the code)")
            self._runnable = True

    def __call__(self, *inputs: Any) -> Any:
        self.ensure_runnable()
        bound = self.bind(inputs)
        self.executable.run(bound.args, bound.dims)
        for original, temporary in bound.copy_back:
            if argmod.is_torch_tensor(original):
                original.copy_(temporary)
            else:
                original[...] = temporary
        if not bound.outputs:
            return None
        return bound.outputs[0] if len(bound.outputs) == 1 else list(bound.outputs)

    def bind(self, inputs: Sequence[Any]) -> argmod.BoundCall:
        """Check ``inputs``, bind dims, allocate outputs: everything but running the kernel."""
        if len(inputs) != len(self.input_idx):
            names = ", ".join(self.params[i].name for i in self.input_idx)
            outs = ", ".join(self.params[i].name for i in self.out_idx)
            note = f"; {outs} {'is' if len(self.out_idx) == 1 else 'are'} allocated (out_idx)" if outs else ""
            raise TilecError(f"kernel '{self.func.name}' takes {len(self.input_idx)} input(s) ({names}), "
                             f"got {len(inputs)}{note}")
        kind = self.target.array_kind
        use_torch = kind == "torch-cuda" or any(argmod.is_torch_tensor(x) for x in inputs)
        inputs, copy_back = self._prepare(inputs, kind)
        shapes = {i: argmod.check_array(self.params[i], x, kind) for i, x in zip(self.input_idx, inputs)}
        dims = argmod.bind_dims(self.params, shapes)
        device = next((x.device for x in inputs if argmod.is_torch_tensor(x)),
                      "cuda" if kind == "torch-cuda" else "cpu")
        arrays: dict[int, Any] = dict(zip(self.input_idx, inputs))
        outputs = []
        for i in self.out_idx:
            p = self.params[i]
            arrays[i] = argmod.allocate(p, dims, use_torch, device, self.poison_outputs)
            if not use_torch and p.dtype in argmod.ML_DTYPES:
                arrays[i] = arrays[i].view(argmod.ML_DTYPES[p.dtype])
            outputs.append(arrays[i])
        missing = [s for s in argmod.symbols_of(self.params) if s not in dims]
        if missing:
            raise TilecError(f"kernel '{self.func.name}': symbolic dimension(s) {', '.join(missing)} "
                             f"are not determined by any input's shape")
        run_args = []
        for i, p in enumerate(self.params):
            a = arrays[i]
            run_args.append(argmod.to_storage_numpy(a, p.dtype) if kind == "numpy" else a)
        return argmod.BoundCall(run_args, dims, outputs, use_torch, copy_back)

    def written_params(self) -> set[str]:
        """Names of the parameters the kernel writes (stores, tile-op destinations)."""
        if self._written is None:
            from ..passes.analysis import writes
            self._written = {b.name for b in writes(self.func.body)}
        return self._written

    def _prepare(self, inputs: Sequence[Any], kind: str) -> tuple[list[Any], list[tuple[Any, Any]]]:
        """DLPack objects as numpy arrays / torch tensors; non-contiguous arguments as contiguous copies
        (warned once per kernel, refused under ``strict``), with the (caller's, copy) pairs of the
        parameters the kernel writes, to copy back after the run."""
        out: list[Any] = []
        copy_back: list[tuple[Any, Any]] = []
        copied: list[str] = []
        for i, x in zip(self.input_idx, inputs):
            p = self.params[i]
            if not (isinstance(x, argmod.np.ndarray) or argmod.is_torch_tensor(x)) and argmod.is_dlpack(x):
                x = argmod.from_dlpack(p, x, kind)
            if (isinstance(x, argmod.np.ndarray) or argmod.is_torch_tensor(x)) and not argmod.is_contiguous(x):
                c = argmod.as_contiguous(p, x, self.strict)
                copied.append(p.name)
                if p.name in self.written_params():
                    copy_back.append((x, c))
                x = c
            out.append(x)
        if copied and not self._warned_copy:
            self._warned_copy = True
            warnings.warn(f"kernel '{self.func.name}': non-contiguous argument(s) {', '.join(copied)} copied to "
                          f"contiguous temporaries (and written back if the kernel writes them); pass "
                          f"contiguous arrays to avoid the copies, or compile with strict=True to refuse them",
                          TilecWarning, stacklevel=4)
        return out, copy_back


def compile(prim_func: Any, out_idx: Any = None, target: Any = "auto",  # noqa: A001 - TileLang's name
            pass_configs: Optional[dict[str, Any]] = None, **options: Any) -> JITKernel:
    """Verify ``prim_func`` and build it for ``target``; see the module docstring for the call convention.

    ``pass_configs`` takes TileLang's keys (e.g. ``{"tl.disable_tma_lower": True}``); they reach the
    target as ``options["pass_configs"]``. Other keyword ``options`` (``verify_each``, ``print_after_all``,
    ``print_after``) go to the target's pass pipeline unchanged.
    """
    func = as_func(prim_func)
    if pass_configs is not None and not isinstance(pass_configs, dict):
        raise TilecError(f"pass_configs must be a dict, got {type(pass_configs).__name__}")
    outs = normalize_out_idx(out_idx, func)
    verify(func)
    tgt = resolve_target(target, require_available=False)
    opts = dict(options)
    opts["pass_configs"] = dict(pass_configs or {})
    # Options the runtime itself consumes stay out of the target's (and so its compile cache key).
    func = run_tile_passes(func, opts, tgt.name)
    # The passes have run: the target sees their output, and "passes" stays out of its cache key.
    build_opts = {k: v for k, v in opts.items() if k not in RUNTIME_OPTIONS and k != "passes"}
    executable = tgt.build(func, build_opts)
    return JITKernel(func, executable, tgt, outs, opts)
