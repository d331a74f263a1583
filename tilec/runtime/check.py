"""Running a loaded kernel on random inputs and checking it against its torch reference.

Used by ``tilec run [--check]`` and ``make demo``. Inputs are torch tensors (CPU, or CUDA for the cuda
target): the example's ``make_inputs(params, generator)`` when it has one, else standard normals for
float parameters and small non-negative integers for integer ones, from a seeded generator. Without
torch (it is the optional ``tilec[torch]`` extra) the inputs are numpy arrays from a seeded numpy
generator, for the dtypes numpy holds natively; ``make_inputs``, bfloat16/float8 inputs and ``--check``
(the references are torch code) then stop with an error naming ``pip install tilec[torch]``. Outputs
are poisoned with NaN before the run, so an element the kernel forgets to write fails the check. The
error of each output is ``||out - ref|| / ||ref||`` in float64; NaN or a shape mismatch is infinite.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import TilecError, missing_extra
from ..numerics import relative_error
from ..ir import dtypes, nodes
from . import args as argmod
from .loader import LoadedKernel


@dataclass
class RunResult:
    """What one ``tilec run`` measured."""
    label: str
    target: str
    compile_s: float
    run_s: float
    errors: list[tuple[str, float]] = field(default_factory=list)   # (output name, relative error)
    tolerance: Optional[float] = None

    @property
    def max_error(self) -> Optional[float]:
        return max((e for _, e in self.errors), default=None)

    @property
    def passed(self) -> bool:
        worst = self.max_error
        return worst is None or (self.tolerance is not None and worst <= self.tolerance)


def input_shapes(loaded: LoadedKernel, input_idx: list[int]) -> list[tuple[int, ...]]:
    """Concrete shapes of the inputs: constants, or symbols sized by the file's params / --arg."""
    sizes = {k: v for k, v in loaded.params.items() if isinstance(v, int) and not isinstance(v, bool)}
    shapes = []
    for i in input_idx:
        p = loaded.func.params[i]
        shape = []
        for e in p.shape:
            v = argmod.eval_index(e, sizes)
            if v is None:
                missing = [s for s in argmod.symbols_of([p]) if s not in sizes]
                raise TilecError(f"parameter '{p.name}' has symbolic dimension(s) {', '.join(missing)}: "
                                 f"give the size with --arg {missing[0]}=N")
            shape.append(v)
        shapes.append(tuple(shape))
    return shapes


def random_inputs(loaded: LoadedKernel, input_idx: list[int], seed: int, device: str) -> list[Any]:
    """Inputs for one run (see the module docstring)."""
    try:
        import torch
    except ModuleNotFoundError:
        return _numpy_inputs(loaded, input_idx, seed)
    gen = torch.Generator().manual_seed(seed)
    if loaded.make_inputs is not None:
        made = loaded.make_inputs(dict(loaded.params), gen)
        made = list(made) if isinstance(made, (list, tuple)) else [made]
        return [t.contiguous().to(device) if isinstance(t, torch.Tensor) else t for t in made]
    out = []
    for i, shape in zip(input_idx, input_shapes(loaded, input_idx)):
        dtype = loaded.func.params[i].dtype
        if dtypes.is_float(dtype):
            t = torch.randn(shape, generator=gen, dtype=torch.float32).to(argmod.torch_dtype(dtype))
        elif dtype == "bool":
            t = torch.randint(0, 2, shape, generator=gen).bool()
        else:
            t = torch.randint(0, 16, shape, generator=gen).to(argmod.torch_dtype(dtype))
        out.append(t.to(device))
    return out


def _numpy_inputs(loaded: LoadedKernel, input_idx: list[int], seed: int) -> list[np.ndarray]:
    """``random_inputs`` without torch: numpy arrays from a seeded generator."""
    if loaded.make_inputs is not None:
        raise missing_extra("torch", f"'{loaded.path}': make_inputs()")
    rng = np.random.default_rng(seed)
    out = []
    for i, shape in zip(input_idx, input_shapes(loaded, input_idx)):
        p = loaded.func.params[i]
        storage = dtypes.storage_numpy(p.dtype)
        if dtypes.is_float(p.dtype):
            if storage.kind != "f":     # bfloat16 / float8 live in integer bit patterns here
                raise missing_extra("torch", f"random {p.dtype} input '{p.name}'")
            out.append(rng.standard_normal(shape, dtype=np.float32).astype(storage))
        elif p.dtype == "bool":
            out.append(rng.integers(0, 2, shape).astype(bool))
        else:
            out.append(rng.integers(0, 16, shape).astype(storage))
    return out


def call_reference(loaded: LoadedKernel, inputs: list[Any]) -> list[Any]:
    """Call the file's ``reference(*inputs, **params)`` (params it does not accept are left out)."""
    ref = loaded.reference
    if ref is None:
        raise TilecError(f"--check: '{loaded.path}' has no reference() to compare against")
    try:
        import torch  # noqa: F401  (the references and relative_error are torch code)
    except ModuleNotFoundError:
        raise missing_extra("torch", f"--check (the torch reference() of '{loaded.path}')") from None
    params = dict(loaded.params)
    sig = inspect.signature(ref)
    if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        params = {k: v for k, v in params.items() if k in sig.parameters}
    cpu = [x.detach().cpu().clone() if hasattr(x, "detach") else x for x in inputs]
    result = ref(*cpu, **params)
    return list(result) if isinstance(result, (list, tuple)) else [result]


def run_loaded(loaded: LoadedKernel, target: str, check: bool, seed: int,
               out_idx: Optional[list[int]] = None, options: Optional[dict[str, Any]] = None) -> RunResult:
    """Compile ``loaded`` for ``target``, run it once on random inputs, optionally check it."""
    from .kernel import compile
    n = len(loaded.func.params)
    if out_idx is None:
        out_idx = loaded.out_idx if loaded.out_idx is not None else [n - 1]
    start = time.perf_counter()
    kernel = compile(loaded.func, out_idx=out_idx, target=target, poison_outputs=True, **(options or {}))
    compile_s = time.perf_counter() - start
    device = "cuda" if kernel.target.array_kind == "torch-cuda" else "cpu"
    kernel.ensure_runnable()
    inputs = random_inputs(loaded, kernel.input_idx, seed, device)
    refs = call_reference(loaded, inputs) if check else None
    start = time.perf_counter()
    outs = kernel(*inputs)
    if device == "cuda":
        import torch
        torch.cuda.synchronize()
    run_s = time.perf_counter() - start
    result = RunResult(loaded.label, kernel.target.name, compile_s, run_s, tolerance=loaded.tolerance)
    if refs is None:
        return result
    outs = [outs] if len(kernel.out_idx) == 1 else list(outs or [])
    names = [loaded.func.params[i].name for i in kernel.out_idx]
    if len(refs) != len(outs):
        raise TilecError(f"reference() in '{loaded.path}' returned {len(refs)} value(s) but the kernel has "
                         f"{len(outs)} output(s) ({', '.join(names)})")
    result.errors = [(name, relative_error(o, r)) for name, o, r in zip(names, outs, refs)]
    if result.tolerance is None:
        result.tolerance = 1e-2 if any(_is_half(loaded.func.params[i]) for i in range(n)) else 1e-4
    return result


def _is_half(p: nodes.Buffer) -> bool:
    return p.dtype in ("float16", "bfloat16", "float8_e4m3")
