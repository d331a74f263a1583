"""The verifier accepts the valid kernels the project ships: every example (at its default and ragged
sizes, built through the frontend) and every .tir file of the IR tests (read by the parser)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tilec.ir.verifier import verify

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIR_FILES = sorted((ROOT / "tests").glob("**/*.tir"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"tilec_verify_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_verify(path: Path):
    module = _load(path)
    if not hasattr(module, "KERNEL"):
        pytest.skip(f"{path.name} has no KERNEL factory")
    sizes = [getattr(module, n) for n in ("DEFAULTS", "RAGGED") if hasattr(module, n)]
    for params in sizes or [{}]:
        verify(module.KERNEL(**params).func)


@pytest.mark.parametrize("path", TIR_FILES, ids=[p.stem for p in TIR_FILES])
def test_tir_files_verify(path: Path):
    from tilec.ir.parser import parse
    module = parse(path.read_text(), str(path))
    assert module.funcs
    for func in module.funcs:
        verify(func)


def test_there_is_something_to_check():
    assert EXAMPLES and TIR_FILES
