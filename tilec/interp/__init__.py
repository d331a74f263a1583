"""The reference interpreter of Tile IR on numpy: the numerical oracle every backend is checked against.

``run(func, args, dims)`` executes a kernel in place on storage-dtype numpy arrays; ``target.InterpTarget``
plugs it into the target registry as ``interp``.
"""
from __future__ import annotations

from .interpreter import run

__all__ = ["run"]
