"""A tiny FileCheck: match CHECK / CHECK-NEXT / CHECK-NOT / CHECK-LABEL directives against a text.

Semantics follow LLVM FileCheck for the subset used here: patterns are literal substrings (``{{re}}``
embeds a regular expression); CHECK finds the pattern at or after the current line; CHECK-NEXT must
match on the line right after the previous match; CHECK-NOT forbids the pattern between the previous
match and the next positive match (or the end of the current label block); CHECK-LABEL splits the
input into blocks, each starting at a unique label match, and the other directives between two
labels are matched inside that block only.
"""
from __future__ import annotations

import re


class CheckFailure(AssertionError):
    pass


def _pattern(text: str) -> re.Pattern:
    parts = re.split(r"\{\{(.*?)\}\}", text.strip())
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?:{p})" for i, p in enumerate(parts))
    return re.compile(regex)


def parse_checks(spec: str) -> list[tuple[str, str]]:
    out = []
    for line in spec.splitlines():
        m = re.search(r"(CHECK(?:-NEXT|-NOT|-LABEL)?):(.*)$", line)
        if m:
            out.append((m.group(1), m.group(2)))
    if not out:
        raise ValueError("no CHECK directives in the spec")
    return out


def filecheck(text: str, spec: str) -> None:
    """Raise CheckFailure (an AssertionError) with context when ``text`` does not satisfy ``spec``."""
    lines = text.splitlines()
    checks = parse_checks(spec)
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for kind, pat in checks:
        if kind == "CHECK-LABEL" or not groups:
            groups.append((pat if kind == "CHECK-LABEL" else "", []))
        if kind != "CHECK-LABEL":
            groups[-1][1].append((kind, pat))
    bounds = _label_bounds(lines, groups)
    for (label, directives), (start, end) in zip(groups, bounds):
        _match_block(lines, start, end, directives, label)


def _label_bounds(lines: list[str], groups) -> list[tuple[int, int]]:
    starts = []
    pos = 0
    for label, _ in groups:
        if not label:
            starts.append(pos)
            continue
        rx = _pattern(label)
        for n in range(pos, len(lines)):
            if rx.search(lines[n]):
                starts.append(n)
                pos = n + 1
                break
        else:
            raise CheckFailure(f"CHECK-LABEL: {label.strip()!r} not found after line {pos + 1}")
    ends = starts[1:] + [len(lines)]
    return list(zip(starts, ends))


def _match_block(lines: list[str], start: int, end: int, directives, label: str) -> None:
    pos = start + (1 if label else 0)
    last = start if label else -1
    pending_not: list[str] = []
    for kind, pat in directives:
        rx = _pattern(pat)
        if kind == "CHECK-NOT":
            pending_not.append(pat)
            continue
        if kind == "CHECK-NEXT":
            n = last + 1
            if last < 0 or n >= end or not rx.search(lines[n]):
                got = lines[n] if 0 <= n < len(lines) else "<end of input>"
                raise CheckFailure(f"CHECK-NEXT: {pat.strip()!r} is not on the line after line {last + 1}"
                                   f" (found {got!r})")
            found = n
        else:
            found = next((n for n in range(pos, end) if rx.search(lines[n])), -1)
            if found < 0:
                near = "\n".join(lines[pos:min(end, pos + 8)])
                raise CheckFailure(f"CHECK: {pat.strip()!r} not found from line {pos + 1}; text there:\n{near}")
        _check_nots(lines, pos, found, pending_not)
        pending_not = []
        last, pos = found, found + 1
    _check_nots(lines, pos, end, pending_not)


def _check_nots(lines: list[str], start: int, end: int, pats: list[str]) -> None:
    for pat in pats:
        rx = _pattern(pat)
        for n in range(start, end):
            if rx.search(lines[n]):
                raise CheckFailure(f"CHECK-NOT: {pat.strip()!r} found on line {n + 1}: {lines[n]!r}")
