"""Every ```python block of docs/deepseek_kernels.md runs and its assertions hold.

The blocks are the user guide's examples of calling the DeepSeek-V3.2 kernel wrappers and factories
(on the interp and cpu targets); each is executed alone in a fresh namespace, so a block that stops
working, or that needs a name another block defined, fails here rather than in a reader's hands.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "deepseek_kernels.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, source) of each ```python block of a markdown text."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = python_blocks(DOC.read_text())


def test_the_doc_has_examples():
    """The extraction found the examples (a changed fence style would otherwise skip them all)."""
    assert len(BLOCKS) >= 5
    assert all("target=" in src for _, src in BLOCKS)


@pytest.mark.parametrize("line,src", BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_doc_example_runs(line, src):
    """A failing ``assert`` or an exception inside the block fails the test, with the doc's line."""
    code = compile(src, f"{DOC}:{line}", "exec")
    exec(code, {"__name__": "__doc_example__"})  # noqa: S102 - the doc's own examples
