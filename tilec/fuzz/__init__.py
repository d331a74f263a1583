"""The random-program fuzzer: every target and the pass pipeline held to the interpreter.

``generator.generate(seed)`` makes a valid, well-defined tile program; ``driver.fuzz(n, seed)`` runs
programs on the passes and every available target and compares with the interpreter; ``shrink`` reduces
a disagreement to a small ``.tir`` regression test. ``python -m tilec.fuzz --n 2000 --seed 0`` is the
command line (``make fuzz N=...``).
"""
from __future__ import annotations

from .generator import Program, generate

__all__ = ["Program", "generate"]
