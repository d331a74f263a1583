"""The CPU backend of tilec: Tile IR -> LLVM IR (llvmlite) -> vectorized, multi-threaded native code.

``CpuTarget`` (target.py) is what the ``tilec.targets`` entry point ``cpu`` names. Flow:
codegen_module.py / codegen.py / codegen_expr.py / lower_tileops.py / lower_gemm.py generate LLVM IR;
llvm_env.py optimizes and JIT-compiles or emits objects; aot.py links shared libraries; cache.py keeps
them on disk; runtime.py runs grid blocks on a thread pool. docs/backends/cpu.md is the user guide.
"""
from .target import CpuExecutable, CpuTarget

__all__ = ["CpuTarget", "CpuExecutable"]
