"""Reading a decorated function's source: its AST, exact ``file:line:col`` locations, and its Python scope.

``inspect.getsourcelines`` gives the function's lines and first line number; the lines are dedented so
``ast`` can parse a nested function, and every node's location is mapped back to the real file's line
and 1-based column (``ast`` columns are UTF-8 byte offsets; we convert them to characters). The scope a
kernel sees is its closure cells, then the locals of the frame that decorated it (where TileLang
evaluates annotations), then its globals and builtins.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import TilecError
from ..ir import nodes
from ..ir.nodes import Loc


@dataclass
class Source:
    """A parsed function: its ``FunctionDef`` plus what is needed to map AST positions to a ``Loc``."""
    file: str
    first_line: int          # file line of the first source line
    lines: list[str]         # the dedented lines
    removed: list[int]       # characters removed from the start of each line by the dedent
    tree: ast.FunctionDef

    def loc(self, node: ast.AST) -> Loc:
        lineno = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        index = lineno - 1
        if 0 <= index < len(self.lines):
            text = self.lines[index].encode("utf-8")[:col].decode("utf-8", errors="replace")
            col = len(text) + self.removed[index]
        return Loc(self.file, self.first_line + index, col + 1)


_cache: dict[Any, Source] = {}


def parse_function(fn: Callable[..., Any], what: str) -> Source:
    """Parse ``fn``'s source (cached per code object and file: code objects compare equal by value, not
    by file, so the same function text in two files would otherwise share one file's locations)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        raise TilecError(f"{what} must be a Python function, got {type(fn).__name__}")
    key = (code.co_filename, code)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        raw, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as e:
        raise TilecError(f"cannot read the source of {what} '{fn.__name__}' ({e}); kernels must be "
                         "defined in a file", Loc(code.co_filename, code.co_firstlineno, 1)) from None
    lines, removed = _dedent([line.rstrip("\n").rstrip("\r") for line in raw])
    try:
        module = ast.parse("\n".join(lines))
    except SyntaxError as e:
        line = first + (e.lineno or 1) - 1
        raise TilecError(f"syntax error: {e.msg}", Loc(code.co_filename, line, e.offset or 1)) from None
    tree = next((n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if not isinstance(tree, ast.FunctionDef):
        raise TilecError(f"{what} '{fn.__name__}' must be a plain `def` function",
                         Loc(code.co_filename, first, 1))
    src = Source(code.co_filename, first if first > 0 else 1, lines, removed, tree)
    _cache[key] = src
    return src


def _dedent(lines: list[str]) -> tuple[list[str], list[int]]:
    first = next((ln for ln in lines if ln.strip()), "")
    indent = first[:len(first) - len(first.lstrip())]
    out, removed = [], []
    for ln in lines:
        if indent and ln.startswith(indent):
            out.append(ln[len(indent):])
            removed.append(len(indent))
        else:
            # A continuation line indented less than the def (inside brackets or a string): keep it.
            out.append(ln.lstrip() if indent and not ln.strip() else ln)
            removed.append(0)
    return out, removed


class PyScope:
    """Name lookup in the Python world around a kernel: closure, decorating frame, globals, builtins."""

    _MISSING = object()

    def __init__(self, fn: Callable[..., Any], outer: Optional[dict[str, Any]] = None):
        self.layers: list[dict[str, Any]] = []
        closure = {}
        code = fn.__code__
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                closure[name] = cell.cell_contents
            except ValueError:  # an unbound cell: the name is assigned later in the factory
                pass
        self.layers.append(closure)
        if outer:
            self.layers.append(outer)
        self.layers.append(fn.__globals__)
        self.layers.append(vars(builtins))

    def lookup(self, name: str) -> Any:
        for layer in self.layers:
            if name in layer:
                return layer[name]
        return self._MISSING

    def has(self, value: Any) -> bool:
        return value is not self._MISSING


def caller_loc(depth: int = 2) -> Optional[nodes.Loc]:
    """The location of the Python code that called into the language surface (for Python-level errors)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:  # pragma: no cover - a shallow stack
        return None
    line, col = frame.f_lineno, 1
    try:  # the column of the instruction being run (Python 3.11+): the caret lands on the expression
        pos = list(frame.f_code.co_positions())[frame.f_lasti // 2]
        if pos[0] == line and pos[2] is not None:
            col = pos[2] + 1
    except (AttributeError, IndexError):  # pragma: no cover - older Pythons
        pass
    return nodes.Loc(frame.f_code.co_filename, line, col)
