"""The default pass pipeline on every example kernel (examples/*.py at its RAGGED sizes): it must verify
after each pass and leave the interpreter's results unchanged, and it must change something (the
examples are the kernels the passes exist for)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tilec.passes import registry
from tilec.passes.check_semantics import check_pipeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def _load(path: Path):
    name = f"_tilec_passes_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_default_pipeline_keeps_example_semantics(path: Path):
    example = _load(path)
    func = example.KERNEL(**getattr(example, "RAGGED", example.DEFAULTS)).func
    result = check_pipeline(func, registry.pipeline(registry.DEFAULT), None, seed=1,
                            options={"verify_each": True}, exact=True)
    assert not result.inconclusive, result.inconclusive
    assert result.ok, f"pass '{result.first_bad}': {result.detail}"
    assert result.func != func
