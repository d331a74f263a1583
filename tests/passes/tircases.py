"""The multi-case ``.tir`` pass-test format: reading cases, running them, rewriting expected sections.

A file holds a header and cases separated by lines ``# -----``::

    # What the file tests.
    # PASSES: fuse, simplify           <- the pipeline (comma-separated pass names); a case may override
    # -----
    # CASE: two maps over the same range merge
    # DIMS: M=100                      <- optional: values of symbolic dimensions for the semantic check
    kernel k(...) { ... }              <- the input
    # EXPECTED
    kernel k(...) { ... }              <- the output of the pipeline, printed without locations
    # REPORT: launch 0: ...            <- optional: the report of the last pass that has one

Every case also runs the interpreter before and after each pass on random inputs and requires
identical values (tilec.passes.check_semantics), so an expected section cannot bless a miscompile.
The whole file is also an ordinary ``.tir`` module (the directives are comments), so the IR round-trip
test reads it too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

SEPARATOR = "# -----"
_DIRECTIVE = re.compile(r"#\s*([A-Z][A-Z-]*):\s*(.*?)\s*\Z")


@dataclass
class Case:
    path: Path
    index: int
    first_line: int                     # 0-based line of the case's first line in the file
    lines: list[str]
    directives: dict[str, str] = field(default_factory=dict)
    input_text: str = ""
    expected_text: Optional[str] = None
    reports: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.directives.get("CASE", f"case {self.index}")

    @property
    def passes(self) -> list[str]:
        return [p.strip() for p in self.directives["PASSES"].split(",") if p.strip()]

    @property
    def dims(self) -> dict[str, int]:
        spec = self.directives.get("DIMS", "")
        return {k.strip(): int(v) for k, v in (kv.split("=") for kv in spec.split(",") if kv.strip())}

    def padded_input(self) -> str:
        """The input kernel's text at its own line numbers (so parse errors point into the file)."""
        return "\n" * self.first_line + self.input_text


def read_cases(path: Path) -> tuple[list[str], list[Case]]:
    """(the header's lines, the cases) of a case file."""
    lines = path.read_text().split("\n")
    chunks: list[tuple[int, list[str]]] = [(0, [])]
    for k, line in enumerate(lines):
        if line.strip() == SEPARATOR:
            chunks.append((k + 1, []))
        else:
            chunks[-1][1].append(line)
    header = chunks[0][1]
    defaults = _directives(header)
    cases = []
    for index, (start, body) in enumerate(chunks[1:]):
        case = Case(path, index, start, body, dict(defaults))
        case.directives.update(_directives(body))
        _split(case)
        cases.append(case)
    return header, cases


def _directives(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = _DIRECTIVE.match(line.strip())
        if m and m.group(1) not in ("REPORT",):
            out[m.group(1)] = m.group(2)
    return out


def _split(case: Case) -> None:
    marks = [k for k, line in enumerate(case.lines) if line.strip() == "# EXPECTED"]
    end = marks[0] if marks else len(case.lines)
    case.input_text = "\n".join(case.lines[:end])
    if marks:
        rest = case.lines[end + 1:]
        case.reports = [line.strip()[len("# REPORT:"):].strip() for line in rest
                        if line.strip().startswith("# REPORT:")]
        body = [line for line in rest if not line.strip().startswith("# REPORT:")]
        case.expected_text = "\n".join(body)


def render_case(case: Case, printed: str, reports: list[str]) -> list[str]:
    """The case's lines with its expected section replaced by ``printed`` and ``reports``."""
    marks = [k for k, line in enumerate(case.lines) if line.strip() == "# EXPECTED"]
    head = case.lines[:marks[0]] if marks else list(case.lines)
    while head and not head[-1].strip():
        head.pop()
    out = head + ["# EXPECTED"] + printed.rstrip("\n").split("\n")
    out += [f"# REPORT: {r}" if r else "# REPORT:" for r in reports]
    return out


def write_cases(path: Path, header: list[str], cases: list[Case], bodies: list[list[str]]) -> None:
    out = list(header)
    for body in bodies:
        out.append(SEPARATOR)
        out.extend(body)
    path.write_text("\n".join(out).rstrip("\n") + "\n")
