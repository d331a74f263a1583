"""The tile passes run by default: ``tilec.compile`` applies ``registry.DEFAULT`` for cpu, ascend and cuda,
none for the interpreter (the oracle runs the kernel as written), and ``passes=[]`` / ``passes="none"`` /
``pass_configs={"tilec.passes": "none"}`` / ``TILEC_PASSES=none`` / ``--passes none`` turn them off."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tilec
from tilec.cli import main as cli_main
from tilec.ir.printer import print_func
from tilec.passes import registry
from tilec.passes.manager import run_pipeline
from tilec.runtime.kernel import TARGET_DEFAULT_PASSES, pass_spec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import softmax as sm  # noqa: E402


def _kernel():
    # Ragged-free sizes: the tail mask folds to `x = x`, which simplify deletes, so the passes change the IR.
    return sm.softmax(8, 64, block_M=4, block_N=64)


def _text(func) -> str:
    return print_func(func, locs=False)


def test_each_target_has_its_default():
    assert TARGET_DEFAULT_PASSES == {"cpu": "default", "ascend": "default", "cuda": "default"}
    assert pass_spec({}, "cpu") == "default" and pass_spec({}, "interp") == ""
    for off in ([], (), "", "none", "off", False):
        assert pass_spec({"passes": off}, "cpu") == "", off
    assert pass_spec({"passes": ["simplify", "fuse"]}, "interp") == "simplify,fuse"
    assert pass_spec({"passes": True}, "interp") == "default"
    assert pass_spec({"pass_configs": {"tilec.passes": "none"}}, "cpu") == ""
    assert pass_spec({"passes": "simplify", "pass_configs": {"tilec.passes": "none"}}, "cpu") == "simplify"


def test_environment_overrides_the_target_default(monkeypatch):
    monkeypatch.setenv("TILEC_PASSES", "none")
    assert pass_spec({}, "cpu") == ""
    monkeypatch.setenv("TILEC_PASSES", "simplify")
    assert pass_spec({}, "interp") == "simplify"


def test_compile_runs_the_default_passes_on_cpu_and_not_on_interp(monkeypatch):
    monkeypatch.delenv("TILEC_PASSES", raising=False)
    raw = _kernel().func
    optimized = run_pipeline(raw, registry.pipeline(registry.DEFAULT), {})
    assert _text(optimized) != _text(raw)
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    ref = tilec.compile(_kernel(), out_idx=[1], target="interp")
    assert _text(ref.func) == _text(raw)
    on = tilec.compile(_kernel(), out_idx=[1], target="cpu")
    assert _text(on.func) == _text(optimized)
    for off in (dict(passes=[]), dict(passes="none"), dict(pass_configs={"tilec.passes": "none"})):
        k = tilec.compile(_kernel(), out_idx=[1], target="cpu", **off)
        assert _text(k.func) == _text(raw), off
        np.testing.assert_allclose(k(x), ref(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(on(x), ref(x), rtol=1e-6, atol=1e-7)


def test_cli_passes_none_and_check_semantics_of_the_default(capsys, monkeypatch):
    monkeypatch.delenv("TILEC_PASSES", raising=False)
    path = str(ROOT / "examples" / "softmax.py")
    args = ["ir", path, "--arg", "M=8", "--arg", "N=64", "--arg", "block_M=4", "--arg", "block_N=64",
            "--target", "cpu"]
    assert cli_main(args + ["--print-after", "simplify"]) == 0
    assert "IR after pass 'simplify'" in capsys.readouterr().err
    assert cli_main(args + ["--passes", "none", "--print-after-all"]) == 0
    assert "ran no pass pipeline" in capsys.readouterr().err
    assert cli_main(args + ["--check-semantics"]) == 0   # checks the cpu target's default passes
    capsys.readouterr()


@pytest.mark.parametrize("target", ["ascend", "cuda"])
def test_device_targets_build_the_passes_output(target, monkeypatch):
    """ascend and cuda receive the optimized kernel too (cuda only compiles here without a GPU)."""
    from tilec.runtime.kernel import resolve_target
    monkeypatch.delenv("TILEC_PASSES", raising=False)
    try:
        tgt = resolve_target(target, require_available=False)
    except tilec.TilecError as e:
        pytest.skip(str(e))
    seen = []
    monkeypatch.setattr(type(tgt), "build", lambda self, func, options: seen.append(func) or object())
    tilec.compile(_kernel(), out_idx=[1], target=target)
    assert _text(seen[0]) == _text(run_pipeline(_kernel().func, registry.pipeline(registry.DEFAULT), {}))
