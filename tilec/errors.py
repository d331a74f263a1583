"""Diagnostics: user errors at a source location, and internal compiler errors.

A ``TilecError`` is the user's mistake: it renders as ``file:line:col: error: message``, the source
line, and a caret under the column (docs/design.md, decision 7). An ``InternalError`` is tilec's bug: it
names the pass that failed. The CLI prints either without a Python traceback.
"""
from __future__ import annotations

import linecache
from typing import Optional

from .ir.nodes import Loc


class TilecError(Exception):
    """A mistake in the user's kernel, arguments or input file."""

    def __init__(self, message: str, loc: Optional[Loc] = None, note: str = ""):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.note = note

    def render(self) -> str:
        return format_diagnostic("error", self.message, self.loc, self.note)

    def __str__(self) -> str:
        return self.render()


class InternalError(Exception):
    """A bug inside tilec (a pass produced invalid IR, a backend met something it should not)."""

    def __init__(self, message: str, pass_name: str = "", repro_path: str = ""):
        super().__init__(message)
        self.message = message
        self.pass_name = pass_name
        self.repro_path = repro_path

    def __str__(self) -> str:
        where = f" in pass '{self.pass_name}'" if self.pass_name else ""
        repro = f"\n  the IR that reproduces it was written to {self.repro_path}" if self.repro_path else ""
        return f"internal compiler error{where}: {self.message}{repro}"


# Source text of files that exist only in memory (kernels read from stdin, .tir strings, tests).
_virtual_sources: dict[str, list[str]] = {}


def register_source(filename: str, text: str) -> None:
    """Make ``text`` available to diagnostics under ``filename`` (for sources that are not files)."""
    _virtual_sources[filename] = text.splitlines()


def source_line(loc: Loc) -> str:
    lines = _virtual_sources.get(loc.file)
    if lines is not None:
        return lines[loc.line - 1] if 0 < loc.line <= len(lines) else ""
    return linecache.getline(loc.file, loc.line).rstrip("\n")


def format_diagnostic(kind: str, message: str, loc: Optional[Loc], note: str = "") -> str:
    if loc is None:
        text = f"{kind}: {message}"
    else:
        text = f"{loc}: {kind}: {message}"
        line = source_line(loc)
        if line:
            caret = " " * (max(loc.col, 1) - 1) + "^"
            text += f"\n    {line}\n    {caret}"
    if note:
        text += f"\n  note: {note}"
    return text


class TilecWarning(UserWarning):
    """Warnings tilec gives about a call that works but costs more than it should (e.g. a non-contiguous
    argument copied to a contiguous temporary); ``warnings.simplefilter("error", TilecWarning)`` makes
    them errors, ``compile(..., strict=True)`` refuses such calls."""


# Optional dependencies and the extra that installs each (pyproject.toml [project.optional-dependencies]).
EXTRAS = {"torch": "torch", "safetensors": "model", "tokenizers": "model", "matplotlib": "plot",
          "starlette": "serve", "uvicorn": "serve"}


def missing_extra(module: str, what: str, extra: str = "") -> TilecError:
    """The error for an optional package that is not installed: names the ``pip install tilec[...]``
    (``extra``, else the one that installs ``module``)."""
    extra = extra or EXTRAS.get(module.split(".")[0], "")
    fix = f"pip install tilec[{extra}]" if extra else f"pip install {module}"
    return TilecError(f"{what} needs the '{module}' package, which is not installed: {fix}")


def require(module: str, what: str):
    """Import optional ``module`` or raise ``missing_extra``'s TilecError (never a bare ImportError)."""
    import importlib
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == module.split(".")[0]:
            raise missing_extra(module, what) from None
        raise
