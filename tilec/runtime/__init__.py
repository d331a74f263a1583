"""The runtime: compiling a kernel for a target and calling it on numpy arrays or torch tensors.

``kernel.py`` holds ``compile`` and ``JITKernel`` (target choice, verification, the call convention),
``args.py`` the argument checks, dimension binding and array conversion, ``jit.py`` the memoizing
``@tilec.jit`` decorator. The package root re-exports ``compile`` and ``jit`` as ``tilec.compile`` and
``tilec.jit``.
"""
from .jit import JITFactory, jit
from .kernel import JITKernel, auto_target, compile, resolve_target

__all__ = ["compile", "jit", "JITKernel", "JITFactory", "auto_target", "resolve_target"]
