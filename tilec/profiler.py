"""``kernel.get_profiler()``: inputs, timing and checking of one compiled kernel, as in TileLang.

``profiler = kernel.get_profiler(tensor_supply_type=tilec.TensorSupplyType.Normal)`` makes inputs for the
kernel's parameters (constant shapes, or symbolic ones sized by ``dims=``); ``profiler.do_bench()`` times
the kernel (or any function of the same inputs, e.g. a torch reference) and returns milliseconds per call;
``profiler.assert_allclose(ref_prog)`` runs both on fresh inputs, outputs poisoned, and raises when they
differ. Timing: CUDA events on a GPU target, wall time (``perf_counter``) elsewhere; ``warmup`` and ``rep``
are budgets in milliseconds as in TileLang/Triton (``n_warmup``/``n_repeat`` give exact counts).
"""
from __future__ import annotations

import enum
import statistics
import time
from typing import Any, Callable, Optional, Sequence

from .errors import TilecError
from .ir import dtypes
from .numerics import relative_error
from .runtime import args as argmod


class TensorSupplyType(enum.Enum):
    """How ``get_profiler`` fills the inputs (TileLang's names)."""
    Integer = 1
    Uniform = 2
    Normal = 3
    Randn = 4
    Zero = 5
    One = 6
    Auto = 7


def _supply_type(value: Any) -> TensorSupplyType:
    if isinstance(value, TensorSupplyType):
        return value
    if isinstance(value, str):
        for t in TensorSupplyType:
            if t.name.lower() == value.lower():
                return t
    names = ", ".join(t.name for t in TensorSupplyType)
    raise TilecError(f"tensor_supply_type must be one of {names}, got {value!r}")


class Profiler:
    """Inputs, timing and checks for one ``JITKernel`` (see the module docstring)."""

    def __init__(self, kernel: Any, tensor_supply_type: Any = TensorSupplyType.Auto,
                 dims: Optional[dict[str, int]] = None, seed: int = 0):
        self.kernel = kernel
        self.supply_type = _supply_type(tensor_supply_type)
        self.dims = dict(dims or {})
        self.seed = seed
        self._calls = 0
        self.device = "cuda" if kernel.target.array_kind == "torch-cuda" else "cpu"

    def input_shapes(self) -> list[tuple[int, ...]]:
        shapes = []
        for i in self.kernel.input_idx:
            p = self.kernel.params[i]
            shape = []
            for e in p.shape:
                v = argmod.eval_index(e, self.dims)
                if v is None:
                    missing = [s for s in argmod.symbols_of([p]) if s not in self.dims]
                    raise TilecError(f"get_profiler: parameter '{p.name}' has symbolic dimension(s) "
                                     f"{', '.join(missing)}: give them with dims={{'{missing[0]}': N}}")
                shape.append(v)
            shapes.append(tuple(shape))
        return shapes

    def make_inputs(self, seed: Optional[int] = None) -> list[Any]:
        """Fresh inputs (a new seed per call unless ``seed`` is given)."""
        import torch
        if seed is None:
            seed = self.seed + self._calls
            self._calls += 1
        gen = torch.Generator().manual_seed(seed)
        kind = self.supply_type
        out = []
        for i, shape in zip(self.kernel.input_idx, self.input_shapes()):
            dtype = self.kernel.params[i].dtype
            if kind is TensorSupplyType.Zero:
                t = torch.zeros(shape)
            elif kind is TensorSupplyType.One:
                t = torch.ones(shape)
            elif dtype == "bool":
                t = torch.randint(0, 2, shape, generator=gen).bool()
            elif not dtypes.is_float(dtype):
                t = torch.randint(0, 16, shape, generator=gen)
            elif kind is TensorSupplyType.Integer:
                t = torch.randint(-2, 3, shape, generator=gen).float()
            elif kind is TensorSupplyType.Uniform:
                t = torch.rand(shape, generator=gen)
            else:  # Normal, Randn, Auto
                t = torch.randn(shape, generator=gen)
            out.append(t.to(argmod.torch_dtype(dtype)).to(self.device))
        return out

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()

    def do_bench(self, func: Optional[Callable[..., Any]] = None, warmup: float = 25, rep: float = 100,
                 n_warmup: int = 0, n_repeat: int = 0, input_tensors: Optional[Sequence[Any]] = None,
                 return_mode: str = "median") -> float:
        """Milliseconds per call of ``func`` (default: the kernel) on the profiler's inputs.

        ``warmup``/``rep`` are time budgets in ms; ``n_warmup``/``n_repeat`` (when > 0) exact counts.
        ``return_mode``: "median" (default), "mean" or "min".
        """
        if return_mode not in ("median", "mean", "min"):
            raise TilecError(f"do_bench: return_mode must be median, mean or min, got {return_mode!r}")
        fn = self.kernel if func is None else func
        if func is None:
            self.kernel.ensure_runnable()
        inputs = list(input_tensors) if input_tensors is not None else self.make_inputs()
        start = time.perf_counter()
        fn(*inputs)  # the first call also estimates the time per call
        self._sync()
        estimate_ms = max((time.perf_counter() - start) * 1e3, 1e-4)
        n_warmup = n_warmup if n_warmup > 0 else max(1, int(warmup / estimate_ms))
        n_repeat = n_repeat if n_repeat > 0 else max(1, min(int(rep / estimate_ms), 10000))
        for _ in range(n_warmup):
            fn(*inputs)
        self._sync()
        times = self._time_cuda(fn, inputs, n_repeat) if self.device == "cuda" else self._time_wall(fn, inputs,
                                                                                                     n_repeat)
        if return_mode == "mean":
            return statistics.fmean(times)
        if return_mode == "min":
            return min(times)
        return statistics.median(times)

    @staticmethod
    def _time_wall(fn: Callable[..., Any], inputs: list[Any], n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn(*inputs)
            times.append((time.perf_counter() - start) * 1e3)
        return times

    @staticmethod
    def _time_cuda(fn: Callable[..., Any], inputs: list[Any], n: int) -> list[float]:
        import torch
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        for begin, end in events:
            begin.record()
            fn(*inputs)
            end.record()
        torch.cuda.synchronize()
        return [b.elapsed_time(e) for b, e in events]

    def run_outputs(self, inputs: Sequence[Any]) -> list[Any]:
        """The kernel's outputs on ``inputs`` as a list, with outputs poisoned (NaN) before the run."""
        saved = self.kernel.poison_outputs
        self.kernel.poison_outputs = True
        try:
            outs = self.kernel(*inputs)
        finally:
            self.kernel.poison_outputs = saved
        if len(self.kernel.out_idx) == 1:
            return [outs]
        return list(outs or [])

    def compare(self, reference_program: Callable[..., Any], input_tensors: Optional[Sequence[Any]] = None
                ) -> list[tuple[str, float]]:
        """``(output name, relative error)`` per output of the kernel against ``reference_program``."""
        inputs = list(input_tensors) if input_tensors is not None else self.make_inputs()
        ref_inputs = [x.clone() if hasattr(x, "clone") else x for x in inputs]
        outs = self.run_outputs(inputs)
        refs = reference_program(*ref_inputs)
        refs = list(refs) if isinstance(refs, (list, tuple)) else [refs]
        names = [self.kernel.params[i].name for i in self.kernel.out_idx]
        if len(refs) != len(outs):
            raise TilecError(f"the reference returned {len(refs)} value(s); kernel '{self.kernel.func.name}' "
                             f"has {len(outs)} output(s) ({', '.join(names)})")
        return [(nm, relative_error(o, r)) for nm, o, r in zip(names, outs, refs)]

    def assert_allclose(self, reference_program: Callable[..., Any], input_tensors: Optional[Sequence[Any]] = None,
                        atol: float = 1e-2, rtol: float = 1e-2, max_mismatched_ratio: float = 0.01) -> None:
        """Raise ``AssertionError`` unless the kernel matches ``reference_program`` elementwise
        (``|out-ref| <= atol + rtol*|ref|`` on all but ``max_mismatched_ratio`` of the elements; NaN fails)."""
        import torch
        inputs = list(input_tensors) if input_tensors is not None else self.make_inputs()
        ref_inputs = [x.clone() if hasattr(x, "clone") else x for x in inputs]
        outs = self.run_outputs(inputs)
        refs = reference_program(*ref_inputs)
        refs = list(refs) if isinstance(refs, (list, tuple)) else [refs]
        names = [self.kernel.params[i].name for i in self.kernel.out_idx]
        if len(refs) != len(outs):
            raise AssertionError(f"the reference returned {len(refs)} value(s); the kernel has {len(outs)} "
                                 f"output(s) ({', '.join(names)})")
        for name, o, r in zip(names, outs, refs):
            o = torch.as_tensor(o).detach().cpu().double()
            r = torch.as_tensor(r).detach().cpu().double()
            if o.shape != r.shape:
                raise AssertionError(f"output '{name}': shape {tuple(o.shape)} != reference {tuple(r.shape)}")
            bad = ~((o - r).abs() <= atol + rtol * r.abs())  # NaN compares False, so it is counted bad
            ratio = bad.double().mean().item() if o.numel() else 0.0
            if ratio > max_mismatched_ratio:
                raise AssertionError(f"output '{name}': {int(bad.sum())} of {o.numel()} elements ({ratio:.2%}) "
                                     f"differ beyond atol={atol}, rtol={rtol} (allowed "
                                     f"{max_mismatched_ratio:.2%}); relative error {relative_error(o, r):.3e}")
