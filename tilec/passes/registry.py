"""The target-independent passes by name, with their report hooks, for pipelines, the CLI and the tests.

Targets assemble their own pipelines; this table lets ``tilec ir --passes a,b,c``, the pass tests and the
fuzzer name a pass by the string it prints under. ``REPORTS`` maps a pass name to the analysis whose text
its ``.tir`` tests pin down (``# REPORT:`` lines). ``DEFAULT`` is the order in which the passes compose:
simplify first, fusion then a cleanup, code motion, memory planning, and predication last (it reads the
final regions).
"""
from __future__ import annotations

from typing import Callable

from ..errors import TilecError
from ..ir import nodes
from . import fuse, licm, memory_plan, predicate, simplify
from .manager import Pass

PASSES: dict[str, Pass] = {p.name: p for p in (
    simplify.simplify, fuse.fuse, licm.licm, memory_plan.memory_plan, predicate.predicate)}

REPORTS: dict[str, Callable[[nodes.Func], str]] = {
    "memory_plan": memory_plan.report,
    "predicate": predicate.report,
}

DEFAULT = ("simplify", "fuse", "simplify", "licm", "memory_plan", "predicate")


def names() -> list[str]:
    return list(PASSES)


def get(name: str) -> Pass:
    try:
        return PASSES[name]
    except KeyError:
        raise TilecError(f"unknown pass '{name}' (known: {', '.join(PASSES)})") from None


def pipeline(spec: str | tuple | list = DEFAULT) -> list[Pass]:
    """Passes from a comma-separated string or a sequence of names."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    return [get(p.strip()) for p in parts if p.strip()]
