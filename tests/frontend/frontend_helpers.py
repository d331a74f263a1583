"""Helpers for frontend tests: build kernels from source text written to a real file (so locations and
carets point into it), and print IR without locations for comparison."""
from __future__ import annotations

import importlib.util
import itertools
import textwrap

import pytest

from tilec.errors import TilecError
from tilec.ir.printer import print_func

_counter = itertools.count()


def write_module(tmp_path, code: str):
    path = tmp_path / f"kern_{next(_counter)}.py"
    path.write_text(textwrap.dedent(code).lstrip("\n"))
    return path


def import_path(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_module(tmp_path, code: str):
    """Write ``code`` (dedented) to a fresh file under tmp_path and import it."""
    return import_path(write_module(tmp_path, code))


def position(path, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of ``needle`` in the file."""
    seen = 0
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        col = line.find(needle)
        while col >= 0:
            if seen == nth:
                return lineno, col + 1
            seen += 1
            col = line.find(needle, col + 1)
    raise AssertionError(f"{needle!r} not in {path}")


def expect_error(tmp_path, code: str, at: str, message: str, nth: int = 0) -> TilecError:
    """Importing ``code`` must raise a TilecError located at ``at`` (its nth occurrence) whose message
    contains ``message``; the rendered diagnostic must show the source line and a caret under it."""
    path = write_module(tmp_path, code)
    with pytest.raises(TilecError) as info:
        import_path(path)
    err = info.value
    line, col = position(path, at, nth)
    assert err.loc is not None, err
    assert (err.loc.file, err.loc.line, err.loc.col) == (str(path), line, col), err.render()
    assert message in err.message, err.render()
    text = err.render()
    src_line = path.read_text().splitlines()[line - 1]
    assert f"{path}:{line}:{col}: error: " in text
    assert "\n    " + src_line + "\n    " + " " * (col - 1) + "^" in text, text
    return err


def ir_text(prim_func) -> str:
    return print_func(prim_func.func, locs=False)
