"""Semantic checking of a pipeline: interpret before and after every pass and name the first that differs.

This is ``--check-semantics``: the interpreter defines what a kernel means, so running it on the same
random inputs before and after each pass pins a miscompile on one pass, with a one-pass, one-file
reproduction. The helpers here (random arguments in storage dtype, dtype-aware comparison) are shared by
the pass tests and the fuzzer.

- ``random_args(func, dims, seed)``: one storage-dtype array per parameter (normal floats, small ints).
- ``compare(func, ref, out, exact)``: None when the outputs agree, else a message naming the parameter
  and the error. ``exact`` asks for equal values (every target-independent pass is exact on the
  interpreter; only the sign of a zero may differ); otherwise floats compare by
  ``||out - ref|| / ||ref||`` under ``tolerance(dtype)``. NaN positions must match; a NaN where the
  other side has a number never passes.
- ``check_pipeline(func, passes, ...)``: a ``SemanticCheck`` with ``first_bad`` (a pass name or None).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from .. import numerics
from ..errors import TilecError
from ..ir import dtypes
from ..ir import nodes as n
from .manager import Pass, run_pipeline

DEFAULT_DIM = 37     # a symbolic dimension's value when none is given: ragged against every tile size
TOLERANCE = {"float32": 1e-5, "float64": 1e-9, "float16": 1e-2, "bfloat16": 2e-2, "float8_e4m3": 1.5e-1}


def tolerance(dtype: str) -> float:
    """Relative error allowed between two correct implementations writing a ``dtype`` output."""
    return TOLERANCE.get(dtype, 0.0)


def symbolic_dims(func: n.Func) -> list[str]:
    names: dict[str, None] = {}
    for p in func.params:
        for d in p.shape:
            if isinstance(d, n.Var):
                names[d.name] = None
    return list(names)


def default_dims(func: n.Func, dims: Optional[Mapping[str, int]] = None) -> dict[str, int]:
    out = {name: DEFAULT_DIM for name in symbolic_dims(func)}
    out.update(dims or {})
    return out


def _shape(buf: n.Buffer, dims: Mapping[str, int]) -> tuple[int, ...]:
    from ..interp.expr import Frame, scalar_int
    frame = Frame(env={k: np.int32(x) for k, x in dims.items()})
    return tuple(scalar_int(d, frame) for d in buf.shape)


def random_array(shape: tuple[int, ...], dtype: str, rng: np.random.Generator, scale: float = 1.0,
                 int_range: tuple[int, int] = (-8, 8)) -> np.ndarray:
    info = dtypes.info(dtype)
    if info.kind == "float":
        return numerics.from_float32(rng.standard_normal(shape).astype(np.float32) * scale, dtype)
    if info.kind == "bool":
        return rng.random(shape) < 0.5
    lo, hi = int_range if info.kind == "int" else (0, int_range[1])
    return rng.integers(lo, hi, size=shape).astype(info.numpy)


def random_args(func: n.Func, dims: Optional[Mapping[str, int]] = None, seed: int = 0,
                scale: float = 1.0) -> list[np.ndarray]:
    """One random storage-dtype array per parameter (outputs too: kernels may read what they update)."""
    rng = np.random.default_rng(seed)
    dims = default_dims(func, dims)
    return [random_array(_shape(p, dims), p.dtype, rng, scale) for p in func.params]


def run_interp(func: n.Func, args: Sequence[np.ndarray], dims: Mapping[str, int]) -> list[np.ndarray]:
    """Interpret ``func`` on copies of ``args``; the arrays after the run."""
    from ..interp import run
    copies = [np.array(a, copy=True) for a in args]
    run(func, copies, dict(dims))
    return copies


def as_float64(storage: np.ndarray, dtype: str) -> np.ndarray:
    if dtypes.is_float(dtype) and dtype != "float64":
        return numerics.to_float32(storage, dtype).astype(np.float64)
    return np.asarray(storage).astype(np.float64)


def compare_array(ref: np.ndarray, out: np.ndarray, dtype: str, exact: bool = False) -> Optional[str]:
    """None when ``out`` agrees with ``ref`` (storage arrays of ``dtype``), else what differs."""
    if ref.shape != out.shape:
        return f"shape {list(out.shape)} instead of {list(ref.shape)}"
    a, b = as_float64(ref, dtype), as_float64(out, dtype)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        k = np.argwhere(nan_a != nan_b)[0]
        return f"NaN mismatch at {k.tolist()}: reference {a[tuple(k)]}, got {b[tuple(k)]}"
    a, b = np.where(nan_a, 0, a), np.where(nan_b, 0, b)
    if exact or not dtypes.is_float(dtype):
        # equal values (NaN positions already match; -0.0 equals 0.0: max/min may pick either zero)
        if np.array_equal(a, b):
            return None
        k = tuple(np.argwhere(a != b)[0])
        return f"values differ at {list(map(int, k))}: reference {a[k]}, got {b[k]}"
    if np.isinf(a).any() or np.isinf(b).any():
        if (np.isinf(a) != np.isinf(b)).any() or (a[np.isinf(a)] != b[np.isinf(a)]).any():
            return "infinities differ"
        a, b = np.where(np.isinf(a), 0, a), np.where(np.isinf(b), 0, b)
    denom = np.linalg.norm(a)
    err = np.linalg.norm(a - b) / (denom if denom > 0 else 1.0)
    if err > tolerance(dtype):
        k = np.unravel_index(np.argmax(np.abs(a - b)), a.shape)
        return (f"relative error {err:.3g} over {tolerance(dtype):g} (worst at {list(map(int, k))}: "
                f"reference {a[k]}, got {b[k]})")
    return None


def compare(func: n.Func, ref: Sequence[np.ndarray], out: Sequence[np.ndarray], exact: bool = False,
            only: Optional[Iterable[int]] = None) -> Optional[str]:
    """None when every parameter (or those in ``only``) agrees, else the first difference."""
    for k, p in enumerate(func.params):
        if only is not None and k not in set(only):
            continue
        why = compare_array(ref[k], out[k], p.dtype, exact)
        if why is not None:
            return f"parameter '{p.name}' ({p.dtype}): {why}"
    return None


@dataclass
class SemanticCheck:
    """The outcome of ``check_pipeline``: the first pass whose output differs, if any."""
    func: n.Func                        # the pipeline's output (up to and including the bad pass)
    first_bad: Optional[str] = None
    detail: str = ""
    passes_run: list[str] = field(default_factory=list)
    inconclusive: str = ""              # why nothing could be checked (the input program itself fails)

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def _outcome(func: n.Func, args: Sequence[np.ndarray], dims: Mapping[str, int]) -> Any:
    try:
        return run_interp(func, args, dims)
    except TilecError as e:
        return e


def check_pipeline(func: n.Func, passes: Iterable[Pass], dims: Optional[Mapping[str, int]] = None,
                   seed: int = 0, trials: int = 1, options: Optional[dict] = None,
                   exact: bool = False) -> SemanticCheck:
    """Run ``passes`` one at a time, interpreting before and after each on the same random inputs."""
    dims = default_dims(func, dims)
    inputs = [random_args(func, dims, seed + t) for t in range(trials)]
    before = [_outcome(func, a, dims) for a in inputs]
    if any(isinstance(b, TilecError) for b in before):
        err = next(b for b in before if isinstance(b, TilecError))
        return SemanticCheck(func, inconclusive=f"the input kernel fails in the interpreter: {err}")
    result = SemanticCheck(func)
    for p in passes:
        func = run_pipeline(func, [p], dict(options or {}))
        result.func = func
        result.passes_run.append(p.name)
        for args, ref in zip(inputs, before):
            got = _outcome(func, args, dims)
            why = (f"the interpreter fails after the pass: {got}" if isinstance(got, TilecError)
                   else compare(func, ref, got, exact))
            if why is not None:
                result.first_bad, result.detail = p.name, why
                return result
    return result


def run_checked(func: n.Func, passes: Iterable[Pass], options: Optional[dict] = None) -> n.Func:
    """``run_pipeline`` with the semantic check: the pipeline's output, or an ``InternalError`` naming the
    first pass that changed the interpreter's results (its input IR saved for a one-pass repro).

    Options read: ``dims`` (symbolic sizes), ``seed``, ``exact``; the rest go to ``run_pipeline``. This is
    what ``--check-semantics`` (pipeline option ``check_semantics``) runs.
    """
    from ..errors import InternalError
    from .manager import write_repro
    options = dict(options or {})
    options.pop("check_semantics", None)
    dims, seed, exact = options.pop("dims", None), options.pop("seed", 0), options.pop("exact", False)
    passes = list(passes)
    result = check_pipeline(func, passes, dims, seed, options=options, exact=exact)
    if result.inconclusive:
        raise TilecError(f"--check-semantics: {result.inconclusive}")
    if result.first_bad is not None:
        k = result.passes_run.index(result.first_bad)
        before = run_pipeline(func, passes[:k], options) if k else func
        raise InternalError(f"--check-semantics: the pass changed the interpreter's results: {result.detail}",
                            result.first_bad, write_repro(before, result.first_bad))
    return result.func
