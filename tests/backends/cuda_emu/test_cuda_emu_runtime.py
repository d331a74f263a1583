"""The cuda-emu runtime: fibers, barriers, deferred cp.async, deadlock reports, the codegen flavour, the target."""
from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import pytest

import tilec
from tilec.backends.cuda.codegen import generate
from tilec.errors import TilecError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import probe as P  # noqa: E402

run_probe = P.run_probe


def test_barrier_orders_shared_memory_and_missing_one_reads_poison():
    body = "s[t] = t + 100 * blockIdx.x;\n  if (mode) __syncthreads();\n  out[blockIdx.x * 64 + t] = s[(t + 1) % 64];"
    good = run_probe(body, 1)
    assert np.array_equal(good, np.array([(t + 1) % 64 + 100 * b for b in range(2) for t in range(64)], np.float32))
    bad = run_probe(body, 0)  # thread t runs before t+1 has written: reads the NaN poison
    assert np.isnan(bad[:63]).all() and not np.isnan(bad[63])


def test_cp_async_lands_only_at_its_wait():
    # Threads 0..15 each copy two 16-byte chunks (two groups) and read their own chunks back; cp.async
    # completion is per thread, so each one reads only what its own waits landed.
    body = """
  const int o = blockIdx.x * 64 + 4 * t;
  if (t < 16) tilec::cp_async16(&s[4 * t], &in[4 * t], true);
  tilec::cp_async_commit();
  if (t < 16) tilec::cp_async16(&s[64 + 4 * t], &in[64 + 4 * t], mode != 2);
  tilec::cp_async_commit();
  __syncthreads();  // a barrier completes nothing
  if (t < 16) out[o] = s[4 * t];
  tilec::cp_async_wait<1>();
  if (t < 16) { out[o + 1] = s[4 * t]; out[o + 2] = s[64 + 4 * t]; }
  tilec::cp_async_wait<0>();
  if (t < 16) out[o + 3] = s[64 + 4 * t];"""
    out = run_probe(body, 1)[:64].reshape(16, 4)
    assert np.isnan(out[:, 0]).all()                                  # before any wait: poison
    assert np.array_equal(out[:, 1], 4 * np.arange(16))               # wait<1>: the older group landed
    assert np.isnan(out[:, 2]).all()                                  # the newer one had not
    assert np.array_equal(out[:, 3], 64 + 4 * np.arange(16))          # after wait<0>
    assert (run_probe(body, 2)[:64].reshape(16, 4)[:, 3] == 0).all()  # src-size 0: zero fill


def test_deadlock_is_an_error_naming_the_kernel():
    with pytest.raises(TilecError, match=r"probe_kernel.*deadlock.*threads 0\.\.31 wait at __syncthreads.*exited"):
        run_probe("if (t < 32) __syncthreads();\n  out[t] = 1;")


def test_warp_collective_in_divergent_code_is_an_error():
    with pytest.raises(TilecError, match=r"probe_kernel.*deadlock.*__shfl_xor_sync"):
        run_probe("float v = t;\n  if (t < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);\n  out[t] = v;")


def test_shuffle_and_ballot():
    out = run_probe("float v = __shfl_xor_sync(0xffffffffu, float(t), 3);\n"
                    "  unsigned b = __ballot_sync(0xffffffffu, t & 1);\n"
                    "  out[blockIdx.x * 64 + t] = (t == 5) ? float(b == 0xaaaaaaaau) : v;")
    want = np.array([t ^ 3 for t in range(64)], np.float32)
    want[5] = 1.0
    assert np.array_equal(out[:64], want)


def _kernels(text: str) -> list[str]:
    return re.findall(r"^__global__ .*?^}\n", text, flags=re.S | re.M)


def _plain_pointers(text: str) -> str:
    """The emu flavour's pointer declarations TILEC_EMU_PTR(T) spelled as the cuda target's T*."""
    return re.sub(r"TILEC_EMU_PTR\(([^()]*)\)", r"\1*", text)


def test_same_kernel_bodies_as_the_cuda_target():
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[3] / "examples" / "flash_attention.py"
    spec = importlib.util.spec_from_file_location("emu_fa", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    func = mod.KERNEL(**mod.RAGGED).func
    for arch, opts in (("sm_80", {}), ("sm_90a", {"wgmma": True})):
        cuda, emu = generate(func, arch, opts).text, generate(func, arch, {**opts, "emu": True}).text
        # identical bodies; the declarations differ only by the macro that makes them checked pointers
        # under the race checker
        assert "TILEC_EMU_PTR(" in emu and "TILEC_EMU_PTR" not in cuda
        assert _kernels(cuda) and _kernels(cuda) == _kernels(_plain_pointers(emu))
        assert "asm" not in emu.split("namespace tilec {", 1)[1] and "<<<" not in emu and "<<<" in cuda


def test_compile_through_the_public_api():
    from tilec.backends.cuda.emu.target import CudaEmuTarget
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[3] / "examples" / "softmax.py"
    spec = importlib.util.spec_from_file_location("emu_softmax", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    kernel = tilec.compile(mod.KERNEL(**mod.RAGGED).func, out_idx=mod.OUT_IDX, target="cuda-emu")
    x = np.random.default_rng(0).standard_normal((100, 300)).astype(np.float32)
    y = kernel(x)
    y = y.numpy() if hasattr(y, "numpy") else y
    e = np.exp(x - x.max(1, keepdims=True))
    assert np.abs(y - e / e.sum(1, keepdims=True)).max() < 1e-6
    with pytest.raises(TilecError, match="wgmma needs arch sm_90a"):
        CudaEmuTarget().build(mod.KERNEL(**mod.RAGGED).func, {"wgmma": True})


def test_cli_run_and_compile(tmp_path, capsys):
    import pathlib
    from tilec import cli
    example = str(pathlib.Path(__file__).resolve().parents[3] / "examples" / "softmax.py")
    assert cli.main(["run", example, "--target", "cuda-emu"]) in (0, None)
    assert cli.main(["compile", example, "--target", "cuda-emu", "-o", str(tmp_path / "o")]) in (0, None)
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"main.tir", "main.cu", "main.so", "manifest.json"}
    assert "tilec_emu::launch" in (tmp_path / "o" / "main.cu").read_text()
