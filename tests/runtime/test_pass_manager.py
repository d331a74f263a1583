"""The pass manager: ordering, print-after, timing, verify-after-each and crash reproduction."""
from __future__ import annotations

import dataclasses
import io
import os

import pytest

from tilec import InternalError, TilecError
from tilec.ir import nodes as N
from tilec.passes import Pass, make_pass, run_pipeline

from .conftest import elementwise_add


def renamer(suffix: str) -> Pass:
    return Pass(f"add_{suffix}", lambda f: dataclasses.replace(f, name=f.name + "_" + suffix))


def test_passes_run_in_order():
    out = run_pipeline(elementwise_add(), [renamer("a"), renamer("b")], {})
    assert out.name == "add_a_b"


def test_print_after_all_and_print_after(monkeypatch):
    stream = io.StringIO()
    run_pipeline(elementwise_add(), [renamer("a"), renamer("b")], {"print_after_all": True}, stream)
    text = stream.getvalue()
    assert text.index("IR after pass 'add_a'") < text.index("kernel add_a(") < text.index(
        "IR after pass 'add_b'") < text.index("kernel add_a_b(")
    for spec in ("add_b", ["add_b"]):
        stream = io.StringIO()
        run_pipeline(elementwise_add(), [renamer("a"), renamer("b")], {"print_after": spec}, stream)
        assert "IR after pass 'add_a'" not in stream.getvalue()
        assert "IR after pass 'add_b'" in stream.getvalue()


def test_print_after_an_unknown_pass_is_an_error():
    with pytest.raises(TilecError, match=r"unknown pass\(es\) nosuch; this pipeline has: add_a, add_b"):
        run_pipeline(elementwise_add(), [renamer("a"), renamer("b")], {"print_after": "nosuch"})


def test_timing_table(monkeypatch):
    monkeypatch.setenv("TILEC_PASS_TIMING", "1")
    stream = io.StringIO()
    run_pipeline(elementwise_add(), [renamer("a"), renamer("bb")], {}, stream)
    lines = stream.getvalue().splitlines()
    assert lines[0].split() == ["pass", "ms", "%"]
    assert [ln.split()[0] for ln in lines[1:]] == ["add_a", "add_bb", "total"]
    monkeypatch.setenv("TILEC_PASS_TIMING", "0")
    stream = io.StringIO()
    run_pipeline(elementwise_add(), [renamer("a")], {}, stream)
    assert stream.getvalue() == ""


def test_a_crashing_pass_is_an_internal_error_with_a_repro():
    def boom(func: N.Func) -> N.Func:
        raise KeyError("lost buffer")
    with pytest.raises(InternalError) as info:
        run_pipeline(elementwise_add(), [renamer("a"), Pass("lower/boom", boom)], {})
    err = info.value
    assert err.pass_name == "lower/boom"
    assert "KeyError" in str(err) and "in pass 'lower/boom'" in str(err)
    assert os.path.basename(err.repro_path) == "tilec-crash-lower_boom.tir"
    with open(err.repro_path) as f:
        assert "kernel add_a(" in f.read()  # the input of the failing pass, not the original


def test_user_errors_pass_through_unchanged():
    def user(func: N.Func) -> N.Func:
        raise TilecError("tile too large for the target", N.Loc("k.py", 3, 5))
    with pytest.raises(TilecError, match="tile too large"):
        run_pipeline(elementwise_add(), [Pass("check", user)], {})


def test_a_pass_must_return_a_func():
    with pytest.raises(InternalError, match="the pass returned NoneType, not a Func"):
        run_pipeline(elementwise_add(), [Pass("forgetful", lambda f: None)], {})


def _breaker(func: N.Func) -> N.Func:
    """Drops the launch's loops, leaving a store to an undefined loop variable."""
    launch = func.body[0]
    store = launch.body[0].body[0].body[0]
    return dataclasses.replace(func, body=(dataclasses.replace(launch, body=(store,)),))


def test_verify_each_blames_the_pass_that_broke_the_ir(monkeypatch):
    monkeypatch.delenv("TILEC_VERIFY_EACH", raising=False)
    broken = run_pipeline(elementwise_add(), [Pass("breaker", _breaker)], {})
    assert broken.body[0].body[0].__class__ is N.Store  # unnoticed without verify_each
    with pytest.raises(InternalError, match="in pass 'breaker': the pass produced invalid IR") as info:
        run_pipeline(elementwise_add(), [Pass("breaker", _breaker)], {"verify_each": True})
    assert os.path.exists(info.value.repro_path)
    monkeypatch.setenv("TILEC_VERIFY_EACH", "1")
    with pytest.raises(InternalError, match="invalid IR"):
        run_pipeline(elementwise_add(), [Pass("breaker", _breaker)], {})


def test_make_pass_decorator():
    @make_pass("identity")
    def identity(func: N.Func) -> N.Func:
        """Returns the kernel unchanged."""
        return func
    assert isinstance(identity, Pass) and identity.name == "identity"
    assert identity.doc == "Returns the kernel unchanged."
    f = elementwise_add()
    assert run_pipeline(f, [identity], {"verify_each": True}) is f
