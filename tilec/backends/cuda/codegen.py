"""CUDA codegen entry point: a verified ``Func`` -> one CUDA C++ translation unit (jinja2 templates).

Each ``Launch`` becomes a ``__global__`` kernel (emit.py writes its body); ``templates/kernel.cu.j2``
assembles them with the prelude of helpers (``templates/prelude.cuh.j2``) and an ``extern "C"`` host
launcher that takes device pointers, symbolic dims and a stream, launches the kernels in order, raises
the dynamic shared memory limit where a kernel needs more than 48 KB, and checks every CUDA call.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tilec.errors import TilecError
from tilec.ir import nodes as N
from tilec.version import __version__

from .cexpr import ExprEmitter, cname, ctype
from .emit import KernelEmitter
from .layout import walk

TEMPLATES = Path(__file__).parent / "templates"
SMEM_LIMIT = {"sm_80": 163 * 1024, "sm_86": 99 * 1024, "sm_89": 99 * 1024, "sm_90": 227 * 1024,
              "sm_90a": 227 * 1024}

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                          lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class KernelInfo:
    name: str
    threads: int
    smem: int


@dataclass(frozen=True)
class CudaSource:
    text: str
    entry: str
    params: tuple[N.Buffer, ...]
    dims: tuple[str, ...]
    kernels: tuple[KernelInfo, ...]


def symbolic_dims(func: N.Func) -> list[str]:
    """Names of the symbolic dimensions, in order of first appearance in the parameter shapes."""
    out: list[str] = []
    for p in func.params:
        for d in p.shape:
            if isinstance(d, N.Var) and d.name not in out:
                out.append(d.name)
    return out


def written_params(func: N.Func) -> set[str]:
    names: set[str] = set()
    for s in walk(func.body):
        if isinstance(s, N.Store):
            names.add(s.buffer.name)
        elif isinstance(s, (N.Copy, N.Fill, N.Reduce, N.Cumsum, N.Atomic)):
            names.add(s.dst.buffer.name)
        elif isinstance(s, N.Gemm):
            names.add(s.c.buffer.name)
    return names


def _no_memory(buffer: N.Buffer, idx: tuple[str, ...]) -> str:
    raise TilecError(f"cuda: a grid size cannot read buffer '{buffer.name}'", buffer.loc)


def generate(func: N.Func, arch: str, options: dict[str, Any] | None = None) -> CudaSource:
    """CUDA source for ``func``. Option ``wgmma`` (sm_90a only) puts eligible gemms on wgmma.

    Option ``emu`` renders the emulation flavour (the ``cuda-emu`` target, tilec/backends/cuda/emu): the
    same kernels, with the emulator's prelude instead of the device helpers and its launch instead of
    ``<<<>>>``; the wgmma wrappers call the emulated instruction instead of inline PTX."""
    wgmma = bool((options or {}).get("wgmma")) and arch == "sm_90a"
    emu = bool((options or {}).get("emu"))
    dims = symbolic_dims(func)
    written = written_params(func)
    # The emu flavour declares the kernels' pointers as TILEC_EMU_PTR(T): T* unless the race checker is
    # compiled in (tilec_emu/racecheck.h), then a checked pointer; the kernel bodies stay the same text.
    ptr = (lambda t: f"TILEC_EMU_PTR({t})") if emu else (lambda t: f"{t}*")
    kparams = []
    for p in func.params:
        const = "" if p.name in written else "const "
        kparams.append(f"{ptr(const + ctype(p.dtype))} __restrict__ {cname(p.name)}")
    kparams += [f"int {cname(d)}" for d in dims]
    args = [cname(p.name) for p in func.params] + [cname(d) for d in dims]
    host = ExprEmitter({d: f"static_cast<long long>({cname(d)})" for d in dims}, _no_memory)
    kernels, infos, helpers = [], [], {}
    launches = [s for s in func.body if isinstance(s, N.Launch)]
    if len(launches) != len(func.body):
        raise TilecError("cuda: a kernel body must consist of T.Kernel launches", func.loc)
    for i, launch in enumerate(launches):
        em = KernelEmitter(func, launch, i, dims, wgmma=wgmma)
        body = em.emit_launch()
        helpers.update(em.helpers)
        limit = SMEM_LIMIT.get(arch, 227 * 1024)
        if em.smem.total > limit:
            raise TilecError(f"cuda: launch needs {em.smem.total} bytes of shared memory, more than the "
                             f"{limit} {arch} allows (smaller tiles or fewer pipeline stages)", launch.loc)
        grid = [host(g) for g in launch.grid] + ["1"] * (3 - len(launch.grid))
        if len(launch.grid) > 3:
            raise TilecError("cuda: at most 3 grid dimensions", launch.loc)
        kernels.append(dict(name=em.name, loc=str(launch.loc) if launch.loc else "", threads=em.threads,
                            smem=em.smem.total, params=kparams, args=args, body=body, grid=grid,
                            grid_text=", ".join(f"{v.name}: {g}" for v, g in zip(launch.block_vars, grid)),
                            smem_decls=em.smem.decls(ptr)))
        infos.append(KernelInfo(em.name, em.threads, em.smem.total))
    entry = f"tilec_launch_{func.name}"
    if emu:
        from .wgmma import emu_helper
        helpers = {k: emu_helper(k) for k in helpers}
    text = _env.get_template("kernel.cu.j2").render(
        emu=emu, version=_version(), arch=arch, func_name=func.name, func_loc=str(func.loc) if func.loc else "",
        param_text=", ".join(f"{p.name}: {p.dtype}[{len(p.shape)}d]" for p in func.params),
        kernels=kernels, entry=entry, helpers=[helpers[k] for k in sorted(helpers)], dims=[cname(d) for d in dims],
        params=[dict(name=cname(p.name), ctype=ctype(p.dtype)) for p in func.params])
    return CudaSource(text, entry, tuple(func.params), tuple(dims), tuple(infos))


def _version() -> Any:
    return __version__
