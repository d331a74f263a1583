"""The ``interp`` target: the reference interpreter behind the target protocol of ``tilec.targets``.

It is always available and always first in the registry. ``build`` does no compilation: the executable
keeps the verified ``Func`` and interprets it on each ``run``; its ``source`` is the IR text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..ir.nodes import Func
from .interpreter import run


def _ir_text(func: Func) -> str:
    try:
        from ..ir.printer import print_func
    except ImportError:   # the printer is optional for the interpreter
        return repr(func)
    return print_func(func)


@dataclass
class InterpExecutable:
    func: Func
    source: str
    binary: Optional[bytes] = None

    def run(self, args: list[Any], dims: dict[str, int]) -> None:
        run(self.func, args, dims)


class InterpTarget:
    name = "interp"
    description = "reference interpreter on numpy (the semantics every backend is checked against)"
    array_kind = "numpy"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def build(self, func: Func, options: dict[str, Any]) -> InterpExecutable:
        return InterpExecutable(func=func, source=_ir_text(func))
