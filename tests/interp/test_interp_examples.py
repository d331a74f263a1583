"""Every example kernel (examples/*.py) on the interpreter against its PyTorch reference().

Each example follows the convention of the brief: KERNEL(**params) builds the kernel, DEFAULTS and RAGGED
are the sizes, OUT_IDX the outputs, TOLERANCE the bound on ||out - ref|| / ||ref||, reference(*inputs,
**params) the torch reference, and an optional make_inputs(params, generator). Outputs are poisoned with
NaN before the run, and NaN never passes.
"""
from __future__ import annotations

import importlib.util
import pathlib
import time

import numpy as np
import pytest
import torch

from tilec import numerics
from tilec.interp import run
from tilec.ir import dtypes
from tilec.runtime.args import allocate, to_storage_numpy, torch_dtype
from tilec.ir import nodes as N

EXAMPLES = sorted(p for p in (pathlib.Path(__file__).parents[2] / "examples").glob("*.py")
                  if not p.name.startswith("_"))


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"tilec_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



def _dims(func: N.Func, params: dict) -> dict[str, int]:
    """Symbolic dimensions take the example parameter of the same name."""
    dims = {}
    for p in func.params:
        for e in p.shape:
            if isinstance(e, N.Var):
                dims[e.name] = int(params[e.name])
    return dims


def _shape(p: N.Buffer, dims: dict[str, int]) -> list[int]:
    return [dims[e.name] if isinstance(e, N.Var) else int(e.value) for e in p.shape]


def _random_inputs(func: N.Func, out_idx: list[int], dims: dict, g: torch.Generator) -> list[torch.Tensor]:
    inputs = []
    for k, p in enumerate(func.params):
        if k in out_idx:
            continue
        if not dtypes.is_float(p.dtype):
            pytest.fail(f"input '{p.name}' is {p.dtype}: the example needs make_inputs()")
        inputs.append(torch.randn(_shape(p, dims), generator=g).to(torch_dtype(p.dtype)))
    return inputs


def _storage(t: torch.Tensor, dtype: str) -> np.ndarray:
    return to_storage_numpy(t.detach().cpu().contiguous().to(torch_dtype(dtype)), dtype).copy()


def _poisoned(p: N.Buffer, dims: dict) -> np.ndarray:
    return allocate(p, dims, use_torch=False, device="cpu", poison=True)


def _check_example(path: pathlib.Path, which: str) -> None:
    mod = _load(path)
    params = dict(getattr(mod, which))
    kernel = mod.KERNEL(**params)
    func = getattr(kernel, "func", kernel)
    out_idx = list(mod.OUT_IDX)
    dims = _dims(func, params)
    g = torch.Generator().manual_seed(0)
    make = getattr(mod, "make_inputs", None)
    inputs = list(make(params, g)) if make else _random_inputs(func, out_idx, dims, g)
    args, it = [], iter(inputs)
    for k, p in enumerate(func.params):
        args.append(_poisoned(p, dims) if k in out_idx else _storage(next(it), p.dtype))
    t0 = time.time()
    run(func, args, dims)
    elapsed = time.time() - t0
    refs = mod.reference(*inputs, **params)
    refs = list(refs) if isinstance(refs, (tuple, list)) else [refs]
    assert len(refs) == len(out_idx), f"reference returned {len(refs)} outputs for OUT_IDX {out_idx}"
    for k, ref in zip(out_idx, refs):
        p = func.params[k]
        out = numerics.to_float32(args[k], p.dtype).astype(np.float64)
        ref = ref.detach().cpu().double().numpy().reshape(out.shape)
        assert not np.isnan(out).any(), f"{path.name}/{which}: NaN in output '{p.name}'"
        err = np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30)
        print(f"{path.stem} {which} {p.name}: rel err {err:.2e} ({elapsed:.2f}s)")
        assert err < mod.TOLERANCE, f"{path.name}/{which}: '{p.name}' rel err {err:.3e}"


@pytest.mark.parametrize("which", ["DEFAULTS", "RAGGED"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_on_interpreter(path, which):
    _check_example(path, which)


def test_examples_exist_once_the_folder_does():
    folder = pathlib.Path(__file__).parents[2] / "examples"
    if not folder.exists():
        pytest.skip("examples/ has not been written yet")
    assert EXAMPLES, "examples/ exists but holds no example"
