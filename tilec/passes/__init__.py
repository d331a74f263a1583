"""Compiler passes over Tile IR, one module per pass, and the pass manager that runs them.

``manager.py`` defines ``Pass`` and ``run_pipeline`` (verify-after-each, print-after, timing, crash
reproduction); each target assembles its own ordered pipeline from the pass modules here.
"""
from .manager import Pass, make_pass, run_pipeline

__all__ = ["Pass", "make_pass", "run_pipeline"]
