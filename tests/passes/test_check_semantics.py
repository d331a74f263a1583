"""The semantic checker pins a miscompile on the pass that made it; its comparison is dtype-aware and
never lets NaN pass for a number."""
from __future__ import annotations

import numpy as np
import pytest

from tilec.errors import InternalError
from tilec.ir import nodes as n
from tilec.ir import visitor as v
from tilec.ir.parser import parse_func
from tilec.passes import registry
from tilec.passes.check_semantics import (check_pipeline, compare_array, random_args, run_checked,
                                          run_interp)
from tilec.passes.manager import Pass

KERNEL = """
kernel scale(X: global float32[M, 16], Y: global float32[M, 16]) {
  launch (bx: (M + 7) // 8) threads=32 {
    t = alloc fragment float32[8, 16]
    copy X[bx * 8 +: 8, 0 +: 16] -> t
    for i in parallel(0, 8) {
      for j in parallel(0, 16) {
        t[i, j] = t[i, j] * 2.0 + 1.0
      }
    }
    copy t -> Y[bx * 8 +: 8, 0 +: 16]
  }
}
"""


def _bump(func: n.Func) -> n.Func:
    """A wrong pass: 2.0 becomes 2.5."""
    two = n.Const(2.0, "float32")
    return v.map_exprs(func, lambda e: n.Const(2.5, "float32") if e == two else None)


def test_names_the_first_pass_that_changes_results():
    func = parse_func(KERNEL)
    passes = registry.pipeline("simplify,fuse") + [Pass("bump", _bump)] + registry.pipeline("licm")
    result = check_pipeline(func, passes, {"M": 21})
    assert result.first_bad == "bump"
    assert result.passes_run == ["simplify", "fuse", "bump"]
    assert "relative error" in result.detail and "'Y'" in result.detail


def test_a_correct_pipeline_passes_exactly():
    func = parse_func(KERNEL)
    result = check_pipeline(func, registry.pipeline(registry.DEFAULT), {"M": 21}, exact=True, trials=3)
    assert result.ok and not result.inconclusive
    assert result.passes_run == list(registry.DEFAULT)


def test_run_checked_raises_with_a_repro(tmp_path):
    func = parse_func(KERNEL)
    with pytest.raises(InternalError) as info:
        run_checked(func, registry.pipeline("simplify") + [Pass("bump", _bump)], {"dims": {"M": 9}})
    assert info.value.pass_name == "bump"
    repro = parse_func(open(info.value.repro_path).read())
    assert repro == registry.get("simplify")(func)   # the bad pass's input
    ok = run_checked(func, registry.pipeline("simplify"), {"dims": {"M": 9}})
    assert ok == registry.get("simplify")(func)


def test_input_that_fails_is_inconclusive():
    func = parse_func(KERNEL.replace("copy X[bx * 8 +: 8, 0 +: 16] -> t", "t[0, 0] = X[bx * 8 + 99, 0]"))
    result = check_pipeline(func, registry.pipeline("simplify"), {"M": 8})
    assert result.inconclusive and result.first_bad is None


def test_random_args_and_interp_roundtrip():
    func = parse_func(KERNEL)
    args = random_args(func, {"M": 13}, seed=4)
    assert [a.shape for a in args] == [(13, 16), (13, 16)]
    out = run_interp(func, args, {"M": 13})
    np.testing.assert_allclose(out[1], args[0] * 2 + 1, rtol=1e-6)
    assert np.array_equal(random_args(func, {"M": 13}, seed=4)[0], args[0])


def test_compare_array_rules():
    ref = np.array([1.0, 2.0, np.nan], np.float32)
    assert compare_array(ref, ref.copy(), "float32", exact=True) is None
    assert "NaN" in compare_array(ref, np.array([1.0, np.nan, np.nan], np.float32), "float32")
    assert "NaN" in compare_array(ref, np.array([1.0, 2.0, 3.0], np.float32), "float32")
    close = np.array([1.0, np.nextafter(np.float32(2), np.float32(3)), np.nan], np.float32)
    assert compare_array(ref, close, "float32") is None
    assert compare_array(ref, close, "float32", exact=True) is not None
    assert compare_array(np.array([1, 2], np.int32), np.array([1, 3], np.int32), "int32") is not None
    zero, minus_zero = np.array([0.0], np.float32), np.array([-0.0], np.float32)
    assert compare_array(zero, minus_zero, "float32", exact=True) is None
