"""The process-wide LLVM state of the CPU backend: target machine, optimizer, JIT engine, object emission.

llvmlite is initialised once; one host target machine and one long-lived MCJIT engine live for the
whole process (docs/backends/cpu.md: an engine takes ownership of its target machine, and reusing a target
machine after its engine died segfaulted). Every JIT-compiled kernel object is added to that engine.
Object files come from target machines that are never given to an engine: position-independent
small-code-model objects for the ahead-of-time path (linked into shared libraries), and large-code-model
objects for the JIT. The JIT must not use the small code model: MCJIT's memory manager maps code, data
and its GOT/stubs separately, and in a big process (torch, many loaded libraries) they can land more than
2 GB apart, so a 32-bit PC-relative relocation overflows (an assertion abort in llvmlite's LLVM, silent
corruption in a release LLVM). The large model addresses everything with 64-bit absolute relocations.
This module is the only place that talks to ``llvmlite.binding``.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
import llvmlite.binding as llvm


@dataclass(frozen=True)
class HostInfo:
    """What codegen needs to know about the CPU: name, feature string and float vector width."""
    cpu: str
    features: str
    triple: str
    vector_floats: int      # float lanes in one native vector register (16 AVX-512, 8 AVX2, 4 NEON/SSE)

    @property
    def has_avx512(self) -> bool:
        return "+avx512f" in self.features


_lock = threading.Lock()
_state: dict = {}


def _init() -> None:
    if _state:
        return
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    cpu = llvm.get_host_cpu_name()
    features = llvm.get_host_cpu_features().flatten()
    triple = llvm.get_process_triple()
    if "+avx512f" in features:
        width = 16
    elif "+avx2" in features or "+avx" in features:
        width = 8
    else:
        width = 4
    _state["host"] = HostInfo(cpu, features, triple, width)
    target = llvm.Target.from_triple(triple)
    _state["target"] = target
    _state["tm_obj"] = target.create_target_machine(cpu=cpu, features=features, opt=3,
                                                     reloc="pic", codemodel="default")
    _state["tm_jit"] = target.create_target_machine(cpu=cpu, features=features, opt=3,
                                                     reloc="static", codemodel="large")
    engine_tm = target.create_target_machine(cpu=cpu, features=features, opt=3)
    backing = llvm.parse_assembly("")
    _state["engine"] = llvm.create_mcjit_compiler(backing, engine_tm)
    _state["modules"] = [backing]


def host() -> HostInfo:
    with _lock:
        _init()
        return _state["host"]


def data_layout() -> str:
    with _lock:
        _init()
        return str(_state["tm_obj"].target_data)


def patch_function_attributes(text: str, vector_bits: int) -> str:
    """Add string attributes llvmlite.ir cannot express to every defined function.

    ``prefer-vector-width`` makes LLVM use full 512-bit vectors on cores that otherwise pick 256 bits.
    """
    attr = f'"prefer-vector-width"="{vector_bits}" "target-cpu"="{host().cpu}"'
    lines = text.splitlines()
    out = []
    for line in lines:
        if line.startswith("define "):
            # Attach an attribute group number unused by llvmlite's own output.
            line = re.sub(r"\s*\{\s*$", " #9999 {", line)
        out.append(line)
    out.append(f"attributes #9999 = {{ {attr} }}")
    return "\n".join(out) + "\n"


def optimize(text: str) -> llvm.ModuleRef:
    """Parse textual IR, verify it and run the O3 pipeline with both vectorizers on."""
    with _lock:
        _init()
        mod = llvm.parse_assembly(text)
        mod.triple = _state["host"].triple
        mod.data_layout = str(_state["tm_obj"].target_data)
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pto.loop_unrolling = True
        pto.loop_interleaving = True
        pb = llvm.create_pass_builder(_state["tm_obj"], pto)
        mpm = pb.getModulePassManager()
        mpm.run(mod, pb)
        return mod


def emit_object(mod: llvm.ModuleRef, jit: bool = False) -> bytes:
    """Object code of ``mod``: for linking into a shared library, or (``jit``) for ``jit_add_object``."""
    with _lock:
        return _state["tm_jit" if jit else "tm_obj"].emit_object(mod)


def emit_assembly(mod: llvm.ModuleRef) -> str:
    with _lock:
        return _state["tm_obj"].emit_assembly(mod)


def jit_add_object(obj: bytes, symbols: list[str]) -> dict[str, int]:
    """Load a compiled object file (``emit_object(..., jit=True)``'s bytes, e.g. from the disk cache) into
    the process's engine and return the addresses of ``symbols``: the JIT path without recompiling."""
    with _lock:
        _init()   # a cached object may be the first thing this process asks of LLVM
        engine = _state["engine"]
        ref = llvm.ObjectFileRef.from_data(obj)
        engine.add_object_file(ref)
        engine.finalize_object()
        _state["modules"].append(ref)  # the engine reads the object's sections; keep its bytes alive
        return {s: engine.get_function_address(s) for s in symbols}
