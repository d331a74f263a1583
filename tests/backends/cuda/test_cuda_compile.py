"""Every hand-built kernel (cuda_irkit.py) and every example compiles with nvcc for sm_80 and sm_90a,
the machine code of the matrix kernels uses the tensor cores, and the examples do not spill.

No GPU is needed: the cubins are inspected with cuobjdump (SASS). Where cuobjdump is missing, the PTX
is checked for ``mma.sync`` instead.
"""
from __future__ import annotations

import pathlib

import pytest

import cuda_support as cs

pytestmark = pytest.mark.skipif(not cs.have_nvcc(), reason="nvcc is not installed")
KERNELS = sorted(cs.irkit.all_kernels())


@pytest.mark.parametrize("arch", cs.ARCHES)
@pytest.mark.parametrize("name", KERNELS)
def test_kernel_compiles(name, arch):
    result = cs.cubins()[(name, arch)]
    if isinstance(result, Exception):
        raise result
    assert pathlib.Path(result).stat().st_size > 0


@pytest.mark.parametrize("arch", cs.ARCHES)
@pytest.mark.parametrize("which", ["DEFAULTS", "RAGGED"])
@pytest.mark.parametrize("example", [p.stem for p in cs.examples()])
def test_example_compiles(example, which, arch):
    result = cs.example_cubins()[(example, which, arch)]
    if isinstance(result, Exception):
        raise result
    if isinstance(result, str):  # generated only (see cuda_support.example_cubins)
        assert "__global__" in result
        return
    assert pathlib.Path(result).stat().st_size > 0


@pytest.mark.skipif(cs.cuobjdump() is None, reason="cuobjdump is not installed")
@pytest.mark.parametrize("arch", cs.ARCHES)
@pytest.mark.parametrize("example", [p.stem for p in cs.examples()])
def test_example_kernels_keep_everything_in_registers(example, arch):
    """At the examples' default sizes no kernel spills or uses local memory (ptxas's stack frame is 0)."""
    from tilec.backends.cuda.build import resource_usage
    cubin = cs.example_cubins()[(example, "DEFAULTS", arch)]
    if isinstance(cubin, Exception):
        raise cubin
    usage = resource_usage(pathlib.Path(cubin))
    assert usage, "cuobjdump reported no kernel"
    for name, u in usage.items():
        assert 0 < u["REG"] <= 255 and u["STACK"] == 0, f"{example} {arch} {name}: {u}"


def test_resource_usage_names_kernels():
    from tilec.backends.cuda.build import _demangled_name
    assert _demangled_name("_Z11main_kernelPK6__halfS1_PS_") == "main_kernel"
    assert _demangled_name("_Z20tileops_misc_kernel0PKfPf") == "tileops_misc_kernel0"
    assert _demangled_name("plain_c_name") == "plain_c_name"


def _sass_or_ptx(name: str, arch: str) -> str:
    if cs.cuobjdump():
        return cs.sass(cs.cubins()[(name, arch)])
    from tilec.backends.cuda.build import compile_source
    return pathlib.Path(compile_source(cs.sources(arch)[name], arch, "ptx")).read_text()


@pytest.mark.parametrize("arch", cs.ARCHES)
@pytest.mark.parametrize("name", ["gemm_f16", "gemm_bf16_nt", "gemm_trans_a", "fa_causal", "gemm_odd_nt"])
def test_tensor_core_kernels_use_hmma(name, arch):
    code = _sass_or_ptx(name, arch)
    if cs.cuobjdump():
        assert "HMMA.16816.F32" in code, f"{name}: no HMMA m16n8k16 in the SASS"
        assert "LDSM" in code, f"{name}: operands are not loaded with ldmatrix"
        # register arrays indexed only by constants: no local-memory traffic
        assert "LDL" not in code and "STL" not in code, f"{name}: fragments spilled to local memory"
    else:
        assert "mma.sync.aligned.m16n8k16" in code


@pytest.mark.parametrize("name", ["gemm_f16", "fa"])
def test_pipelined_loads_use_cp_async(name):
    code = _sass_or_ptx(name, "sm_90a")
    assert ("LDGSTS" in code) if cs.cuobjdump() else ("cp.async.cg.shared.global" in code)


def test_fp32_gemm_uses_fma_not_tensor_cores():
    code = _sass_or_ptx("gemm_fp32", "sm_90a")
    if cs.cuobjdump():
        assert "HMMA" not in code and "FFMA" in code
    else:
        assert "mma.sync" not in code


def test_sass_of_an_example_gemm_uses_hmma():
    if not cs.cuobjdump():
        pytest.skip("cuobjdump is not installed (pip install nvidia-cuda-cuobjdump)")
    path = cs.example_cubins()[("gemm", "DEFAULTS", "sm_90a")]
    if isinstance(path, Exception):
        raise path
    assert "HMMA.16816.F32" in cs.sass(path)
