"""The shrinker: reduce a program on which a target disagrees to a small one that still does, and save it.

Greedy and deterministic: it tries candidate edits in order from large to small (delete a statement,
replace a loop or ``if`` by its body, cut a loop to one trip, run one block, replace an expression by
zero, one, or one of its operands), keeps the first candidate that still verifies, is strictly smaller
and still fails, and starts over, until no edit helps or the budget of checks is spent. The result is
saved as a ``.tir`` regression test (``save_regression``) with the target, input seed and dimensions in
``#`` directives, and ``# XFAIL:`` while the bug is open (tests/fuzz/test_regressions.py runs them).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import TilecError
from ..ir import nodes as n
from ..ir import visitor as v
from ..ir.printer import print_func
from ..ir.verifier import verify


def size(func: n.Func) -> int:
    return sum(1 for _ in v.walk(func))


def _nth_stmt(func: n.Func, k: int, edit: Callable[[n.Stmt], Optional[tuple]]) -> Optional[n.Func]:
    """``func`` with ``edit`` applied to its k-th statement (in ``map_stmts`` order); None if no change."""
    counter = [0]
    changed = [False]

    def fn(s: n.Stmt):
        counter[0] += 1
        if counter[0] - 1 != k:
            return None
        out = edit(s)
        if out is not None:
            changed[0] = True
        return out

    launches = []
    for launch in func.body:   # launches themselves are kept (a kernel is launches)
        launches.append(dataclasses.replace(launch, body=v.map_stmts(launch.body, fn)))
    return dataclasses.replace(func, body=tuple(launches)) if changed[0] else None


def _count_stmts(func: n.Func) -> int:
    return sum(1 for x in v.walk(func) if isinstance(x, n.Stmt) and not isinstance(x, n.Launch))


def _splice(s: n.Stmt) -> Optional[tuple]:
    if isinstance(s, n.For):
        return tuple(v.substitute(s.body, {s.var: s.start}))
    if isinstance(s, n.If):
        return s.then_body
    if isinstance(s, n.While):
        return ()
    return None


def _else(s: n.Stmt) -> Optional[tuple]:
    return s.else_body if isinstance(s, n.If) and s.else_body else None


def _one_trip(s: n.Stmt) -> Optional[n.Stmt]:
    if isinstance(s, n.For) and isinstance(s.start, n.Const) and isinstance(s.stop, n.Const) \
            and s.stop.value - s.start.value > 1:
        return dataclasses.replace(s, stop=n.Const(s.start.value + 1))
    return None


def _smaller_exprs(e: n.Expr) -> list[n.Expr]:
    out: list[n.Expr] = []
    if not isinstance(e, n.Const) and e.dtype != "bool":
        is_float = e.dtype.startswith(("float", "bfloat"))
        out += [n.Const(0.0 if is_float else 0, e.dtype), n.Const(1.0 if is_float else 1, e.dtype)]
    out += [c for _, c in v.children(e) if isinstance(c, n.Expr) and c.dtype == e.dtype]
    return out


def _nth_expr(func: n.Func, k: int, choice: int) -> Optional[n.Func]:
    counter = [0]

    def fn(e: n.Expr):
        counter[0] += 1
        if counter[0] - 1 != k:
            return None
        options = _smaller_exprs(e)
        return options[choice] if choice < len(options) else None

    out = v.map_exprs(func, fn)
    return None if out is func else out


def candidates(func: n.Func) -> Iterator[n.Func]:
    """Smaller variants of ``func``, biggest cuts first."""
    count = _count_stmts(func)
    for edit in (lambda s: (), _splice, _else, _one_trip):
        for k in range(count):
            cand = _nth_stmt(func, k, edit)
            if cand is not None:
                yield cand
    for li, launch in enumerate(func.body):
        for d, g in enumerate(launch.grid):
            if not (isinstance(g, n.Const) and g.value == 1):
                grid = launch.grid[:d] + (n.Const(1),) + launch.grid[d + 1:]
                body = func.body[:li] + (dataclasses.replace(launch, grid=grid),) + func.body[li + 1:]
                yield dataclasses.replace(func, body=body)
    exprs = sum(1 for x in v.walk(func) if isinstance(x, n.Expr))
    for k in range(exprs):
        for choice in range(4):
            cand = _nth_expr(func, k, choice)
            if cand is not None:
                yield cand


def _valid(func: n.Func) -> bool:
    try:
        verify(func)
        return True
    except TilecError:
        return False
    except Exception:
        return False


def shrink(func: n.Func, fails: Callable[[n.Func], bool], budget: int = 600) -> n.Func:
    """The smallest program found (greedily) for which ``fails`` still holds."""
    best, best_size, checks = func, size(func), 0
    progress = True
    while progress and checks < budget:
        progress = False
        for cand in candidates(best):
            if checks >= budget:
                break
            if size(cand) >= best_size or not _valid(cand):
                continue
            checks += 1
            if fails(cand):
                best, best_size, progress = cand, size(cand), True
                break
    return best


def save_regression(finding, directory: Path) -> Path:
    """Write the (shrunk) program of a finding as ``<target>-<seed>.tir``; returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    func = finding.shrunk or finding.func
    detail = re.sub(r"\s+", " ", finding.detail)[:300]
    dims = ", ".join(f"{k}={x}" for k, x in finding.dims.items())
    lines = [
        f"# Fuzz regression found by `python -m tilec.fuzz` (program seed {finding.seed}), shrunk.",
        f"# TARGET: {finding.target}",
        f"# SEED: {finding.seed}",
        f"# DIMS: {dims}",
        f"# DETAIL: {detail}",
        "# XFAIL: open bug; delete this line once the target agrees with the interpreter",
    ]
    path = directory / f"{finding.target}-{finding.seed}.tir"
    path.write_text("\n".join(lines) + "\n" + print_func(func, locs=False))
    return path
