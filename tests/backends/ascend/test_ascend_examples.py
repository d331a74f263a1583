"""Every example kernel (examples/*.py) on the ascend target, at DEFAULTS and RAGGED sizes.

The generated AscendC runs on the CPU through tilec's emulation; its outputs are compared with the
interpreter's (the oracle, same inputs, tight bound) and with the example's torch reference (its
TOLERANCE). Outputs are poisoned before each run, and NaN never passes.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import time

import numpy as np
import pytest
import torch

from tilec.backends.ascend.target import AscendTarget
from tilec import numerics
from tilec.interp import run as interp_run
from tilec.runtime.args import allocate, to_storage_numpy, torch_dtype
from tilec.ir import nodes as N

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"tilec_ascend_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



def _shape(p: N.Buffer, dims: dict) -> list[int]:
    return [dims[e.name] if isinstance(e, N.Var) else int(e.value) for e in p.shape]


def _storage(t: torch.Tensor, dtype: str) -> np.ndarray:
    return to_storage_numpy(t.detach().cpu().contiguous().to(torch_dtype(dtype)), dtype).copy()


def _poisoned(p: N.Buffer, dims: dict) -> np.ndarray:
    return allocate(p, dims, use_torch=False, device="cpu", poison=True)


def _func(path: pathlib.Path, which: str):
    mod = _load(path)
    params = dict(getattr(mod, which))
    return mod, params, getattr(mod.KERNEL(**params), "func")


@pytest.fixture(scope="module", autouse=True)
def prebuilt():
    """Compile every example's AscendC in parallel g++ processes first (builds are cached by content)."""
    from concurrent.futures import ThreadPoolExecutor
    funcs = [_func(p, w)[2] for p in EXAMPLES for w in ("DEFAULTS", "RAGGED")]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(lambda f: AscendTarget().build(f, {}), funcs))


def check_example(path: pathlib.Path, which: str) -> None:
    mod, params, func = _func(path, which)
    out_idx = list(mod.OUT_IDX)
    dims = {e.name: int(params[e.name]) for p in func.params for e in p.shape if isinstance(e, N.Var)}
    g = torch.Generator().manual_seed(0)
    make = getattr(mod, "make_inputs", None)
    if make:
        inputs = list(make(params, g))
    else:
        inputs = [torch.randn(_shape(p, dims), generator=g).to(torch_dtype(p.dtype))
                  for k, p in enumerate(func.params) if k not in out_idx]
    args, it = [], iter(inputs)
    for k, p in enumerate(func.params):
        args.append(_poisoned(p, dims) if k in out_idx else _storage(next(it), p.dtype))
    oracle = [a.copy() for a in args]
    interp_run(func, oracle, dims)
    exe = AscendTarget().build(func, {})
    t0 = time.time()
    exe.run(args, dims)
    elapsed = time.time() - t0
    refs = mod.reference(*inputs, **params)
    refs = list(refs) if isinstance(refs, (tuple, list)) else [refs]
    for k, ref in zip(out_idx, refs):
        p = func.params[k]
        out = numerics.to_float32(args[k], p.dtype).astype(np.float64)
        want = numerics.to_float32(oracle[k], p.dtype).astype(np.float64)
        ref = ref.detach().cpu().double().numpy().reshape(out.shape)
        assert not np.isnan(out).any(), f"{path.stem}/{which}: NaN in output '{p.name}'"
        e_interp = np.linalg.norm(out - want) / max(np.linalg.norm(want), 1e-30)
        e_ref = np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30)
        print(f"{path.stem} {which} {p.name}: vs interp {e_interp:.2e}, vs reference {e_ref:.2e} ({elapsed:.2f}s)")
        bound = 1e-5 if p.dtype == "float32" else 1e-3
        assert e_interp < bound, f"{path.stem}/{which}: '{p.name}' differs from the interpreter: {e_interp:.3e}"
        assert e_ref < mod.TOLERANCE, f"{path.stem}/{which}: '{p.name}' rel err vs reference {e_ref:.3e}"


@pytest.mark.parametrize("which", ["DEFAULTS", "RAGGED"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_on_ascend(path: pathlib.Path, which: str) -> None:
    check_example(path, which)
