"""Every example kernel (examples/*.py) on the cuda-emu target, at DEFAULTS and RAGGED sizes, on the default
mma.sync path (sm_80) and with wgmma (sm_90a).

The generated CUDA runs on the CPU through tilec's CUDA emulator; its outputs are compared with the
interpreter's (same inputs) and with the example's torch reference (its TOLERANCE). Outputs are poisoned
before each run, and NaN never passes.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest
import torch

from tilec import numerics
from tilec.backends.cuda.emu.target import CudaEmuTarget
from tilec.interp import run as interp_run
from tilec.ir import nodes as N
from tilec.runtime.args import allocate, to_storage_numpy, torch_dtype

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
FLAVOURS = {"mma": {}, "wgmma": {"arch": "sm_90a", "wgmma": True}}


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"tilec_emu_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _func(path: pathlib.Path, which: str):
    mod = _load(path)
    params = dict(getattr(mod, which))
    return mod, params, mod.KERNEL(**params).func


@pytest.fixture(scope="module", autouse=True)
def prebuilt():
    """Build every example's library in parallel g++ processes first (builds are cached by content)."""
    from concurrent.futures import ThreadPoolExecutor
    jobs = [(_func(p, w)[2], o) for p in EXAMPLES for w in ("DEFAULTS", "RAGGED") for o in FLAVOURS.values()]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(lambda j: CudaEmuTarget().build(*j), jobs))


def check_example(path: pathlib.Path, which: str, options: dict) -> None:
    mod, params, func = _func(path, which)
    out_idx = list(mod.OUT_IDX)
    dims = {e.name: int(params[e.name]) for p in func.params for e in p.shape if isinstance(e, N.Var)}
    g = torch.Generator().manual_seed(0)
    make = getattr(mod, "make_inputs", None)
    if make:
        inputs = list(make(params, g))
    else:
        shape = [[dims[e.name] if isinstance(e, N.Var) else int(e.value) for e in p.shape] for p in func.params]
        inputs = [torch.randn(shape[k], generator=g).to(torch_dtype(p.dtype))
                  for k, p in enumerate(func.params) if k not in out_idx]
    args, it = [], iter(inputs)
    for k, p in enumerate(func.params):
        if k in out_idx:
            args.append(allocate(p, dims, use_torch=False, device="cpu", poison=True))
        else:
            args.append(to_storage_numpy(next(it).contiguous().to(torch_dtype(p.dtype)), p.dtype).copy())
    oracle = [a.copy() for a in args]
    interp_run(func, oracle, dims)
    CudaEmuTarget().build(func, options).run(args, dims)
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
        bound = 1e-5 if p.dtype == "float32" else 1e-2
        assert e_interp < bound, f"{path.stem}/{which}: '{p.name}' differs from the interpreter: {e_interp:.3e}"
        assert e_ref < mod.TOLERANCE, f"{path.stem}/{which}: '{p.name}' rel err vs reference {e_ref:.3e}"


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("which", ["DEFAULTS", "RAGGED"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_on_cuda_emu(path: pathlib.Path, which: str, flavour: str) -> None:
    check_example(path, which, FLAVOURS[flavour])
