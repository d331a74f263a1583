"""Every example (examples/*.py) on the cpu target: against its torch reference() at DEFAULTS and RAGGED
sizes, and against the interpreter at RAGGED sizes for float32, float16 and bfloat16 data and, where the
factory takes a ``dtype``, float8_e4m3 storage. Outputs are poisoned with NaN; NaN never passes."""
from __future__ import annotations

import importlib.util
import inspect
import pathlib

import numpy as np
import pytest
import torch

from tilec.backends.llvm.target import CpuTarget
from cpu_harness import poison, rel_err
from tilec import numerics
from tilec.interp import run as interp_run
from tilec.ir import dtypes
from tilec.ir import nodes as N

ROOT = pathlib.Path(__file__).parents[3]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
TORCH = {"float8_e4m3": torch.float8_e4m3fn, "bfloat16": torch.bfloat16, "float16": torch.float16,
         "float32": torch.float32}
# float8 storage rounds every stored value to 3 mantissa bits: a different summation order flips roundings.
INTERP_TOL = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2, "float8_e4m3": 6e-2}


def _load(path):
    spec = importlib.util.spec_from_file_location(f"tilec_cpu_example_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _dims(func: N.Func, params: dict) -> dict:
    return {e.name: int(params[e.name]) for p in func.params for e in p.shape if isinstance(e, N.Var)}


def _shape(p: N.Buffer, dims: dict) -> list[int]:
    return [dims[e.name] if isinstance(e, N.Var) else int(e.value) for e in p.shape]


def _storage(t: torch.Tensor, dtype: str) -> np.ndarray:
    t = t.contiguous().to(TORCH.get(dtype, t.dtype))
    if dtype == "bfloat16":
        return t.view(torch.int16).numpy().view(np.uint16).copy()
    if dtype == "float8_e4m3":
        return t.view(torch.uint8).numpy().copy()
    return t.numpy().copy()


def _inputs(mod, func, params, dims):
    g = torch.Generator().manual_seed(0)
    make = getattr(mod, "make_inputs", None)
    if make:
        return list(make(params, g))
    ins = []
    for k, p in enumerate(func.params):
        if k not in mod.OUT_IDX:
            if not dtypes.is_float(p.dtype):
                pytest.skip(f"{p.name} is {p.dtype} and the example has no make_inputs()")
            ins.append(torch.randn(_shape(p, dims), generator=g).to(TORCH.get(p.dtype, torch.float32)))
    return ins


def _args(mod, func, inputs, dims):
    it = iter(inputs)
    args = []
    for k, p in enumerate(func.params):
        if k in mod.OUT_IDX:
            a = np.zeros(_shape(p, dims), dtypes.storage_numpy(p.dtype))
            args.append(poison(a, p.dtype))
        else:
            args.append(_storage(next(it), p.dtype))
    return args


def _build(mod, params):
    kernel = mod.KERNEL(**params)
    return getattr(kernel, "func", kernel)


@pytest.mark.parametrize("which", ["DEFAULTS", "RAGGED"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_vs_reference(path, which):
    mod = _load(path)
    params = dict(getattr(mod, which))
    func = _build(mod, params)
    dims = _dims(func, params)
    inputs = _inputs(mod, func, params, dims)
    args = _args(mod, func, inputs, dims)
    CpuTarget().build(func, {}).run(args, dims)
    refs = mod.reference(*inputs, **params)
    refs = list(refs) if isinstance(refs, (tuple, list)) else [refs]
    for k, ref in zip(mod.OUT_IDX, refs):
        p = func.params[k]
        out = numerics.to_float32(args[k], p.dtype).astype(np.float64)
        r = ref.detach().double().numpy().reshape(out.shape)
        assert not np.isnan(out).any(), f"NaN in {p.name}"
        err = np.linalg.norm(out - r) / max(np.linalg.norm(r), 1e-30)
        assert err < mod.TOLERANCE, f"{path.stem}/{which}: {p.name} rel err {err:.3e}"


def _dtype_variants(mod) -> list[str]:
    sig = inspect.signature(mod.KERNEL)
    if "dtype" not in sig.parameters:
        return []
    return ["float32", "float16", "bfloat16", "float8_e4m3"]


CASES = [(p, dt, w) for p in EXAMPLES for dt in (_dtype_variants(_load(p)) or ["default"])
         for w in ("DEFAULTS", "RAGGED")]


@pytest.mark.parametrize("path,dtype,which", CASES, ids=[f"{p.stem}-{d}-{w}" for p, d, w in CASES])
def test_example_vs_interpreter(path, dtype, which):
    mod = _load(path)
    params = dict(getattr(mod, which))
    if dtype != "default":
        params["dtype"] = dtype
    func = _build(mod, params)
    dims = _dims(func, params)
    inputs = _inputs(mod, func, params, dims)
    ref = _args(mod, func, inputs, dims)
    got = [a.copy() for a in ref]
    interp_run(func, ref, dims)
    CpuTarget().build(func, {}).run(got, dims)
    for k in mod.OUT_IDX:
        p = func.params[k]
        tol = INTERP_TOL.get(p.dtype, 1e-5)
        err = rel_err(got[k], ref[k], p.dtype)
        print(f"{path.stem}[{dtype}, {which}] {p.name}: rel err vs interpreter {err:.2e}")
        assert err <= tol, f"{path.stem}[{dtype}]: {p.name} rel err vs interpreter {err:.3e} > {tol}"
