"""The cuda-emu race and bounds checker (option ``racecheck``, tilec_emu/racecheck.h).

Probe kernels written here, and generated kernels with a barrier deleted, must be reported (kernel, block,
both threads and kinds, both generated lines, the Python lines where there are some); without the checker
none of them raises. No false positives on the examples and the DeepSeek kernels: those tests run with
the checker on (conftest.py).
"""
from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import numpy as np
import pytest

import tilec
from tilec.backends.cuda.emu.build import load, python_loc
from tilec.backends.cuda.emu.target import CudaEmuTarget
from tilec.errors import TilecError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import probe as P  # noqa: E402
from probe import probe_source  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
ON = ("-DTILEC_EMU_RACECHECK=1",)


def run_probe(body: str, mode: int = 0, checked: bool = True) -> np.ndarray:
    return P.run_probe(body, mode, ON if checked else ())


def line_of(text: str, needle: str) -> int:
    hits = [n for n, s in enumerate(text.splitlines(), 1) if needle in s]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def test_missing_barrier_between_write_and_another_threads_read():
    body = ("s[t] = t + 100 * blockIdx.x;\n  if (mode) __syncthreads();\n"
            "  out[blockIdx.x * 64 + t] = s[(t + 1) % 64];")
    src = probe_source(body)
    w, r = line_of(src, "s[t] = t"), line_of(src, "out[blockIdx.x")
    good = run_probe(body, 1)  # with the barrier: no report, the right values
    assert np.array_equal(good, np.array([(t + 1) % 64 + 100 * b for b in range(2) for t in range(64)], np.float32))
    # thread 0 reads s[1] before thread 1 writes it (fibers run in order until a barrier)
    want = (rf"kernel probe_kernel, block \(0, 0, 0\), thread 1: shared-memory race on byte offset 4: read by "
            rf"thread 0 at generated line {r}, then write by thread 1 at generated line {w}, with no __syncthreads")
    with pytest.raises(TilecError, match=want):
        run_probe(body, 0)
    bad = run_probe(body, 0, checked=False)  # the plain emulator reads the poison, silently
    assert np.isnan(bad[:63]).all()


def test_write_write_race_and_own_accesses_are_no_race():
    src_line = "if (mode != 1 || t == 5) s[100] = t;"
    body = f"s[t] = 1.0f;\n  out[t] = s[t];\n  s[t] += 2.0f;\n  {src_line}\n  __syncthreads();\n  out[64 + t] = s[100];"
    n = line_of(probe_source(body), src_line)
    with pytest.raises(TilecError, match=rf"write by thread 0 at generated line {n}, then write by thread 1 at "
                                         rf"generated line {n}"):
        run_probe(body, 0)
    out = run_probe(body, 1)  # one writer: a thread's own reads and writes of its bytes never race
    assert (out[:64] == 1.0).all() and (out[64:] == 5.0).all()


def test_atomics_do_not_race_with_atomics_but_with_plain_accesses():
    body = ("if (t == 0) s[0] = 0.0f;\n  __syncthreads();\n  atomicAdd(&s[1 - 1], 1.0f);\n"
            "  if (mode == 2 && t == 9) out[0] = s[0];\n  __syncthreads();\n  if (t == 0) out[blockIdx.x] = s[0];")
    assert run_probe(body, 0)[:2].tolist() == [64.0, 64.0]
    with pytest.raises(TilecError, match=r"atomic by thread \d+ at generated line \d+, then read by thread 9"):
        run_probe(body, 2)


def test_cp_async_writes_and_ldmatrix_reads_count_as_the_right_threads():
    # thread 3's cp.async (issued, landed at its wait) and thread 40's read of it: no barrier between
    body = ("if (t == 3) tilec::cp_async16(&s[0], &in[0], true);\n  tilec::cp_async_commit();\n"
            "  tilec::cp_async_wait<0>();\n  if (mode) __syncthreads();\n  if (t == 40) out[0] = s[2];")
    src = probe_source(body)
    cp, rd = line_of(src, "cp_async16"), line_of(src, "out[0] = s[2]")
    with pytest.raises(TilecError, match=rf"byte offset 8: write by thread 3 at generated line {cp}, then read by "
                                         rf"thread 40 at generated line {rd}"):
        run_probe(body, 0)
    assert run_probe(body, 1)[0] == 2.0
    # ldmatrix: lane l of warp 0 reads row l (16 bytes at s + 16 l); warp 1's thread 32 + l wrote it
    body = ("if (t >= 32) s[4 * (t - 32)] = 1.0f;\n  if (mode) __syncthreads();\n"
            "  unsigned r[4];\n  if (t < 32) tilec::ldmatrix_x4(r, tilec::smem_u32(&s[4 * t]));")
    src = probe_source(body)
    ldm, wr = line_of(src, "ldmatrix_x4"), line_of(src, "s[4 * (t - 32)]")
    run_probe(body, 1)
    with pytest.raises(TilecError, match=rf"read by thread 0 at generated line {ldm}, then write by thread 32 at "
                                         rf"generated line {wr}"):
        run_probe(body, 0)


def test_out_of_bounds_global_read_and_shared_write():
    body = "out[t] = in[t + 100];"  # 'in' holds 128 floats: threads 28.. read past its end
    n = line_of(probe_source(body), body)
    with pytest.raises(TilecError, match=rf"thread 28: global read of 'in' out of bounds at generated line {n}: "
                                         rf"byte offset 512 \(4 bytes\), the array has 512 bytes"):
        run_probe(body)
    body = "s[t + 200] = 1.0f;"  # 1024 bytes of shared memory: 256 floats, threads 56.. write past them
    n = line_of(probe_source(body), body)
    with pytest.raises(TilecError, match=rf"thread 56: shared-memory write out of bounds at generated line {n}: "
                                         rf"byte offset 1024 \(4 bytes\), the kernel has 1024 bytes"):
        run_probe(body)
    # a vector access through reinterpret_cast stays checked, with its width
    body = "if (t == 0) *reinterpret_cast<uint4*>(&out[126]) = make_uint4(0, 0, 0, 0);"
    with pytest.raises(TilecError, match=r"global write of 'out' out of bounds .*byte offset 504 \(16 bytes\), the "
                                         r"array has 512 bytes"):
        run_probe(body)


def _example(name: str, which: str = "DEFAULTS"):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"racecheck_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.KERNEL(**getattr(mod, which)).func


@pytest.mark.parametrize("flavour", [{}, {"arch": "sm_90a", "wgmma": True}], ids=["mma", "wgmma"])
def test_generated_gemm_with_a_barrier_deleted_is_a_race(flavour):
    mod, func = _example("gemm")
    src = CudaEmuTarget().generate(func, flavour)
    lines = src.text.splitlines(keepends=True)
    # the barrier after the pipeline's cp.async wait: the stage is read before the other threads' copies landed
    k = next(i for i, s in enumerate(lines) if s.strip() == "__syncthreads();" and "cp_async_wait" in
             "".join(lines[i - 3:i]))
    text = "".join(lines[:k] + lines[k + 1:])
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((512, 512)).astype(np.float16) for _ in range(2))
    c = np.zeros((512, 512), np.float16)
    arch = flavour.get("arch", "sm_80")
    load(src.text, arch, ON).call(src.entry, [a, b, c], [], ["A", "B", "C"])  # as generated: no report
    with pytest.raises(TilecError) as e:
        load(text, arch, ON).call(src.entry, [a, b, c], [], ["A", "B", "C"])
    msg = str(e.value)
    m = re.search(r"kernel main_kernel, block \(0, 0, 0\), thread \d+: shared-memory race on byte offset \d+: "
                  r"write by thread (\d+) at generated line (\d+) \((\S+)\), then read by thread (\d+) at generated "
                  r"line (\d+) \((\S+)\)", msg)
    assert m, msg
    assert m.group(1) != m.group(4)
    w, r = int(m.group(2)), int(m.group(5))
    tl = text.splitlines()
    assert "cp_async16" in tl[w - 1]  # the copy's issue ...
    assert ("wgmma_m64n" if flavour else "ldmatrix_x4") in tl[r - 1]  # ... and the instruction reading the stage
    gemm_py = str(ROOT / "examples" / "gemm.py")
    assert m.group(3).startswith(gemm_py + ":") and m.group(6).startswith(gemm_py + ":")
    src_lines = pathlib.Path(gemm_py).read_text().splitlines()
    assert "T.copy" in src_lines[int(m.group(3).split(":")[1]) - 1]
    assert "T.gemm" in src_lines[int(m.group(6).split(":")[1]) - 1]
    load(text, arch).call(src.entry, [a, b, c], [], ["A", "B", "C"])  # without the checker: no error


def test_python_loc_of_generated_lines():
    _, func = _example("gemm")
    text = CudaEmuTarget().generate(func, {}).text
    gemm_py = str(ROOT / "examples" / "gemm.py")
    n = line_of(text, "const int _tid = threadIdx.x;")
    assert python_loc(text, n).startswith(gemm_py + ":")  # no statement above: the launch's location
    assert python_loc(text, line_of(text, "extern \"C\" int tilec_launch_main")) is None
    assert python_loc(text, 3) is None


def test_options_and_defaults(monkeypatch):
    t = CudaEmuTarget()
    monkeypatch.delenv("TILEC_EMU_RACECHECK", raising=False)
    assert t.options({})["racecheck"] is False
    assert t.options({"racecheck": True})["racecheck"] is True
    assert t.options({"pass_configs": {"tilec.cuda.racecheck": True}})["racecheck"] is True
    monkeypatch.setenv("TILEC_EMU_RACECHECK", "1")  # what conftest.py does for these tests
    assert t.options({})["racecheck"] is True
    assert t.options({"racecheck": False})["racecheck"] is False


def test_public_api_and_cli_flag(tmp_path, monkeypatch, capsys):
    from tilec import cli
    from tilec.backends.cuda.emu import target as emu_target
    monkeypatch.delenv("TILEC_EMU_RACECHECK", raising=False)
    flags = []
    real = emu_target.load

    def spy(text, arch="sm_80", extra_flags=()):
        flags.append(tuple(extra_flags))
        return real(text, arch, extra_flags)
    monkeypatch.setattr(emu_target, "load", spy)
    mod, func = _example("softmax", "RAGGED")
    kernel = tilec.compile(func, out_idx=mod.OUT_IDX, target="cuda-emu", pass_configs={"tilec.cuda.racecheck": True})
    x = np.random.default_rng(0).standard_normal((100, 300)).astype(np.float32)
    y = np.asarray(kernel(x))
    e = np.exp(x - x.max(1, keepdims=True))
    assert np.abs(y - e / e.sum(1, keepdims=True)).max() < 1e-6
    assert flags == [ON]
    example = str(ROOT / "examples" / "softmax.py")
    assert cli.main(["run", example, "--target", "cuda-emu", "--racecheck", "--check"]) in (0, None)
    assert cli.main(["compile", example, "--target", "cuda-emu", "--racecheck", "-o", str(tmp_path / "o")]) in (0, None)
    assert flags[1:] == [ON, ON]
    assert cli.main(["run", example, "--target", "cuda-emu"]) in (0, None)
    assert flags[3:] == [()]
    capsys.readouterr()
    rc = cli.main(["run", example, "--target", "cpu", "--racecheck"])
    assert rc not in (0, None)
    assert "--racecheck needs --target cuda-emu" in capsys.readouterr().err
