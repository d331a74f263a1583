"""The cuda target without a GPU: registry, build (nvcc, cache, errors), library loading, argument checks,
and the user errors the backend reports at the kernel's source line."""
from __future__ import annotations

import ctypes
import subprocess

import pytest
import torch

import cuda_support as cs
from tilec.backends.cuda import CudaTarget
from tilec.backends.cuda import build
from tilec.backends.cuda.codegen import generate
from tilec.backends.cuda.launcher import bind_args
from tilec.errors import InternalError, TilecError
from tilec.ir import nodes as N

irkit = cs.irkit
needs_nvcc = pytest.mark.skipif(not cs.have_nvcc(), reason="nvcc is not installed")


def test_target_protocol_and_availability():
    t = CudaTarget()
    assert (t.name, t.array_kind) == ("cuda", "torch-cuda")
    ok, why = t.available()
    if not torch.cuda.is_available():
        assert not ok and "torch.cuda" in why


def test_registered_as_entry_point():
    from tilec import targets
    if "cuda" not in targets.names():
        pytest.skip("package not installed with its entry points")
    assert isinstance(targets.get("cuda"), CudaTarget)


def test_gencode_form_and_default_arch():
    assert build.gencode("sm_90a") == "-gencode=arch=compute_90a,code=sm_90a"
    assert build.gencode("sm_80") == "-gencode=arch=compute_80,code=sm_80"
    with pytest.raises(TilecError, match="unknown arch"):
        build.gencode("sm_99x")
    if not torch.cuda.is_available():
        assert build.default_arch() == "sm_90a"


@needs_nvcc
def test_build_gives_a_loadable_library_without_gpu():
    exe = CudaTarget().build(irkit.gemm(M=irkit.v("M"), N_=256, K=256, bm=64, bn=64), {"arch": "sm_80"})
    assert exe.binary and exe.binary[:4] == b"\x7fELF"
    assert "tilec_launch_gemm" in exe.get_kernel_source()
    lib = ctypes.CDLL(str(exe.library))
    assert hasattr(lib, "tilec_launch_gemm")
    with pytest.raises(TilecError, match="torch CUDA tensor"):
        exe.run([torch.zeros(4, 256, dtype=torch.float16)] * 3, {})


@needs_nvcc
def test_compile_cache_hits_and_writes_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    text = cs.sources("sm_80")["elementwise_float32"]
    first = build.compile_source(text, "sm_80", "cubin")

    def no_nvcc(*a, **k):
        raise AssertionError("nvcc ran although the result was cached")
    monkeypatch.setattr(subprocess, "run", no_nvcc)
    assert build.compile_source(text, "sm_80", "cubin") == first
    leftovers = [p.name for p in (tmp_path / "cuda").iterdir() if p != first]
    assert leftovers == []


@needs_nvcc
def test_nvcc_error_names_generated_line_and_kernel_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    text = cs.sources("sm_80")["elementwise_float32"]
    broken = text.replace("const int idx = ", "const int idx = undefined_name + ", 1)
    with pytest.raises(InternalError) as info:
        build.compile_source(broken, "sm_80", "cubin")
    msg = str(info.value)
    assert "undefined_name" in msg and "generated line" in msg
    assert "from the kernel at irkit.py:2:5" in msg


def _params():
    M = N.Var("M")
    return (irkit.buf("A", (M, 8), "float16"), irkit.buf("B", (8,), "bfloat16"))


def test_argument_checks():
    a, b = torch.zeros(3, 8, dtype=torch.float16), torch.zeros(8, dtype=torch.bfloat16)
    assert bind_args(_params(), [a, b], {}, require_cuda=False) == {"M": 3}
    cases = [([a], {}, "takes 2 tensors"),
             ([a, b.float()], {}, "needs dtype torch.bfloat16"),
             ([a, torch.zeros(9, dtype=torch.bfloat16)], {}, "dim 0 must be 8"),
             ([a, b], {"M": 4}, "is 3 but M=4"),
             ([torch.zeros(3, 16, dtype=torch.float16)[:, ::2], b], {}, "contiguous"),
             ([torch.zeros(25, dtype=torch.float16)[1:].view(3, 8), b], {}, "16-byte aligned"),
             ([a, [0] * 8], {}, "torch CUDA tensor")]
    for args, dims, msg in cases:
        with pytest.raises(TilecError, match=msg):
            bind_args(_params(), args, dims, require_cuda=False)


def _launch(body, threads=128):
    X = irkit.buf("X", (64, 64), "float32")
    return N.Func("k", (X,), (N.Launch((irkit.c(1),), (irkit.v("bx"),), threads, tuple(body), irkit.loc(1)),),
                  irkit.loc(1))


def test_user_errors_point_at_the_statement():
    X = irkit.buf("X", (64, 64), "float32")
    S = irkit.buf("S", (64, 64), "float32", "shared")
    tile_in_parallel = [N.Alloc(S, irkit.loc(2)),
                        irkit.par("i", 4, [N.Copy(irkit.whole(X), irkit.whole(S), irkit.loc(7))], 6)]
    with pytest.raises(TilecError, match="inside T.Parallel") as info:
        generate(_launch(tile_in_parallel), "sm_90a")
    assert info.value.loc == irkit.loc(7)
    with pytest.raises(TilecError, match="must be in"):
        generate(_launch([], threads=2048), "sm_90a")
    assert "__launch_bounds__(128)" in generate(_launch([], threads=100), "sm_90a").text
    huge = irkit.buf("H", (300, 1024), "float32", "shared")
    with pytest.raises(TilecError, match="more than the"):
        generate(_launch([N.Alloc(huge, irkit.loc(3))]), "sm_80")
    dyn = irkit.buf("D", (N.Var("n"), 4), "float32", "shared")
    with pytest.raises(TilecError, match="constant shape") as info:
        generate(_launch([N.Alloc(dyn, irkit.loc(4))]), "sm_80")
    assert info.value.loc == irkit.loc(4)


def test_unsupported_atomic_dtype_is_a_user_error():
    X = irkit.buf("X", (4,), "int8")
    body = [N.Atomic("add", irkit.region(X, [0], (1,)), N.Const(1, "int8"), irkit.loc(9))]
    f = N.Func("k", (X,), (N.Launch((irkit.c(1),), (irkit.v("bx"),), 32, tuple(body), irkit.loc(1)),), irkit.loc(1))
    with pytest.raises(TilecError, match="atomic add on int8") as info:
        generate(f, "sm_80")
    assert info.value.loc == irkit.loc(9)
