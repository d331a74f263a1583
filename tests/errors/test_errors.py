"""The corpus of malformed kernels: every file here must be rejected with a precise diagnostic.

Each ``<case>.py`` in this folder is a small kernel written the way users write them
(``import tilec.language as T``) with one mistake, and a header saying what must be reported::

    # expect: LINE:COL: text the message must contain
    # stage: frontend | verify | any
    # one line saying what is wrong

The test imports the file (``@T.prim_func`` builds the IR at decoration, so frontend errors surface
there), then runs ``verify`` on every kernel it defines. It asserts that a ``TilecError`` (not any
other exception) is raised at exactly that file, line and column, that the message contains the
text, and that the rendered diagnostic shows the source line with a caret under the column. ``stage``
says which layer owns the mistake: ``verify`` errors must come from ``tilec.ir.verifier`` (the IR can
express them, so the verifier must catch them even when the frontend does not), ``frontend`` errors
from anywhere else, ``any`` from either.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from tilec.errors import TilecError
from tilec.ir import nodes
from tilec.ir.verifier import verify

HERE = Path(__file__).resolve().parent
CASES = sorted(p for p in HERE.glob("*.py") if not p.name.startswith(("test_", "conftest")))
_VERIFIER_FILES = ("verifier.py", "verify_ctx.py", "verify_exprs.py", "verify_tileops.py")


@dataclass
class Expectation:
    line: int
    col: int
    text: str
    stage: str


def read_expectation(path: Path) -> Expectation:
    head = path.read_text().splitlines()[:3]
    m = re.match(r"# expect: (\d+):(\d+): (.+)$", head[0])
    s = re.match(r"# stage: (frontend|verify|any)$", head[1])
    assert m and s, f"{path.name}: bad header {head[:2]}"
    return Expectation(int(m.group(1)), int(m.group(2)), m.group(3).strip(), s.group(1))


def _raised_by_verifier(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and Path(frames[-1].filename).name in _VERIFIER_FILES \
        and Path(frames[-1].filename).parent.name == "ir"


def build_and_verify(path: Path) -> TilecError:
    """Import the case and verify its kernels; return the TilecError it raises."""
    name = f"tilec_error_case_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        funcs = [v.func for v in vars(module).values() if isinstance(getattr(v, "func", None), nodes.Func)]
        assert funcs, f"{path.name} built no kernel and raised nothing"
        for f in funcs:
            verify(f)
    except TilecError as err:
        return err
    except Exception as err:  # a crash instead of a diagnostic is a failure of this test
        pytest.fail(f"{path.name}: raised {type(err).__name__} instead of TilecError: {err}\n"
                    + "".join(traceback.format_exception(err)[-6:]))
    finally:
        sys.modules.pop(name, None)
    pytest.fail(f"{path.name}: no error was raised")


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_error_case(path: Path):
    want = read_expectation(path)
    err = build_and_verify(path)
    by_verifier = _raised_by_verifier(err)
    where = "verifier" if by_verifier else "frontend"
    assert err.loc is not None, f"no location; message: {err.message}"
    got = (Path(err.loc.file).resolve(), err.loc.line, err.loc.col)
    assert got == (path, want.line, want.col), \
        f"{where} reported {err.loc}: {err.message}\n expected {path.name}:{want.line}:{want.col}"
    assert want.text in err.message, f"{where} message: {err.message!r}"
    if want.stage == "verify":
        assert by_verifier, f"expected the verifier to report this; the frontend did: {err.message}"
    elif want.stage == "frontend":
        assert not by_verifier, f"expected the frontend to report this; the verifier did: {err.message}"
    rendered = err.render()
    source = path.read_text().splitlines()[want.line - 1]
    assert source in rendered, rendered
    assert "\n    " + " " * (want.col - 1) + "^" in rendered, rendered
