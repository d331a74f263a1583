"""Builds of the cpu target: the assembly is vector code (AVX-512 FMAs, no libm exp calls), the compile
cache survives concurrent processes and corrupt entries and serves a new process fast, and the
ahead-of-time library runs in a process that cannot import llvmlite."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from tilec.backends.llvm import llvm_env
from tilec.backends.llvm.target import assembly

ROOT = pathlib.Path(__file__).parents[3]
sys.path.insert(0, str(ROOT / "examples"))

needs_avx512 = pytest.mark.skipif(not llvm_env.host().has_avx512, reason="host CPU lacks avx512f")


@needs_avx512
def test_gemm_asm_uses_zmm_fma():
    import gemm
    asm = assembly(gemm.gemm(256, 256, 256, dtype="float32").func)
    fmas = re.findall(r"vfmadd231ps\s+[^\n]*%zmm", asm)
    assert len(fmas) >= 16, "the GEMM micro-kernel should be zmm FMAs"


@needs_avx512
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_attention_asm_has_no_libm_exp(dtype):
    import flash_attention
    asm = assembly(flash_attention.flash_attention(1, 2, 256, 64, True, dtype=dtype).func)
    assert not re.search(r"call\s+\S*exp", asm), "exp2 must be inlined vector code, not a libm call"
    assert re.search(r"vfmadd\d+ps\s+[^\n]*%zmm", asm)
    assert re.search(r"vscalefps|vcvt\w*ps2dq\s+[^\n]*%zmm|vpslld\s+[^\n]*%zmm", asm), "vector exp2"


_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np
    sys.path.insert(0, {examples!r})
    t0 = time.perf_counter()
    {block}
    import gemm
    from tilec.backends.llvm.target import CpuTarget
    func = gemm.gemm(96, 80, 72, dtype="float32").func
    t1 = time.perf_counter()
    exe = CpuTarget().build(func, {{}})
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((96, 72)).astype(np.float32)
    b = rng.standard_normal((72, 80)).astype(np.float32)
    c = np.full((96, 80), np.nan, np.float32)
    exe.run([a, b, c], {{}})
    t3 = time.perf_counter()
    err = np.abs(c - a @ b).max()
    assert err < 1e-4, err
    print("OK build_ms=%.1f ready_ms=%.1f total_ms=%.1f llvmlite=%s" % ((t2 - t1) * 1e3, (t3 - t1) * 1e3,
          (t3 - t0) * 1e3, sys.modules.get("llvmlite.binding") is not None))
""")


def _run(cache: pathlib.Path, block_llvmlite: bool = False, wait: bool = True):
    block = "sys.modules['llvmlite'] = None; sys.modules['llvmlite.binding'] = None" if block_llvmlite else ""
    code = _SCRIPT.format(examples=str(ROOT / "examples"), block=block)
    env = dict(os.environ, TILEC_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    if not wait:
        return p
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return out


def _entries(cache: pathlib.Path):
    return sorted((cache / "cpu").glob("*.json"))


def test_cache_eight_concurrent_processes(tmp_path):
    procs = [_run(tmp_path, wait=False) for _ in range(8)]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert out.startswith("OK"), out
    manifests = _entries(tmp_path)
    assert len(manifests) == 1
    assert not list((tmp_path / "cpu").glob("*.tmp")), "temporary files left behind"
    out = _run(tmp_path, block_llvmlite=True)        # a hit: loads with ctypes only
    assert "llvmlite=False" in out


def test_cache_truncated_entry_is_rebuilt(tmp_path):
    _run(tmp_path)
    manifest = json.loads(_entries(tmp_path)[0].read_text())
    lib = tmp_path / "cpu" / manifest["library"]
    data = lib.read_bytes()
    lib.write_bytes(data[: len(data) // 3])           # a torn write
    out = _run(tmp_path)
    assert out.startswith("OK")
    manifest2 = json.loads(_entries(tmp_path)[0].read_text())
    rebuilt = (tmp_path / "cpu" / manifest2["library"]).read_bytes()
    assert hashlib.sha256(rebuilt).hexdigest() == manifest2["sha256"] and len(rebuilt) > len(data) // 3
    _entries(tmp_path)[0].write_text('{"library": ')  # a truncated manifest
    assert _run(tmp_path).startswith("OK")
    json.loads(_entries(tmp_path)[0].read_text())


def test_cached_kernel_ready_fast_in_new_process(tmp_path):
    _run(tmp_path)
    out = _run(tmp_path, block_llvmlite=True)
    ready = float(re.search(r"ready_ms=([\d.]+)", out).group(1))
    assert "llvmlite=False" in out
    assert ready < 100, out


@pytest.mark.skipif("+avx512bf16" not in llvm_env.host().features, reason="host CPU lacks avx512bf16")
def test_bf16_gemm_asm_uses_dot_product():
    import gemm
    asm = assembly(gemm.gemm(256, 256, 256, dtype="bfloat16").func)
    assert re.search(r"vdpbf16ps\s+[^\n]*%zmm", asm)
    assert not re.search(r"vdpbf16ps", assembly(gemm.gemm(256, 256, 256, dtype="bfloat16").func,
                                                 {"cpu_bf16dot": False}))


def _loop_blocks(asm: str) -> list[list[str]]:
    """Innermost loops of an assembly listing: the lines from a label to a jump back to it."""
    lines, loops = asm.splitlines(), []
    for i, line in enumerate(lines):
        m = re.match(r"^(\.\w+):", line)
        if not m:
            continue
        for j in range(i + 1, len(lines)):
            if re.match(r"^\.?\w+:", lines[j]):
                break
            if re.match(rf"\s+j\w+\s+{re.escape(m.group(1))}$", lines[j]):
                body = lines[i + 1:j + 1]
                loops.append([ln.split()[0] for ln in body if ln.strip() and not ln.strip().startswith(".")])
                break
    return loops


@pytest.mark.skipif("+avx512bf16" not in llvm_env.host().features, reason="host CPU lacks avx512bf16")
@pytest.mark.parametrize("trans_b", [False, True])
def test_bf16_gemm_inner_loop_is_pure_dot_products(trans_b):
    """The hot loop of a bfloat16 GEMM: vector loads of packed B, 32-bit broadcasts of A's pairs and at
    least 16 ``vdpbf16ps`` per k-pair step (4 x 64 register tile), nothing else (no per-element
    conversion, no spills)."""
    import tilec.language as T
    n, bs = 256, 128

    @T.prim_func
    def main(A: T.Tensor((n, n), "bfloat16"), B: T.Tensor((n, n), "bfloat16"), C: T.Tensor((n, n), "float32")):
        with T.Kernel(n // bs, n // bs, threads=128) as (bx, by):
            A_s = T.alloc_shared((bs, 64), "bfloat16")
            B_s = T.alloc_shared((bs, 64) if trans_b else (64, bs), "bfloat16")
            C_f = T.alloc_fragment((bs, bs), "float32")
            T.clear(C_f)
            for k in T.Pipelined(n // 64, num_stages=2):
                T.copy(A[by * bs, k * 64], A_s)
                T.copy(B[bx * bs, k * 64] if trans_b else B[k * 64, bx * bs], B_s)
                T.gemm(A_s, B_s, C_f, transpose_B=trans_b)
            T.copy(C_f, C[by * bs, bx * bs])
    asm = assembly(main.func)
    loops = [lp for lp in _loop_blocks(asm) if "vdpbf16ps" in lp]
    assert loops, "no loop with vdpbf16ps"
    hot = max(loops, key=lambda lp: lp.count("vdpbf16ps"))
    assert hot.count("vdpbf16ps") >= 16
    allowed = {"vdpbf16ps", "vbroadcastss", "vpbroadcastd", "vmovaps", "vmovups", "vmovdqa64", "vmovdqu64",
               "addq", "subq", "incq", "decq", "cmpq", "leaq", "movq"}
    other = [op for op in hot if op not in allowed and not op.startswith("j")]
    assert not other, other
    assert re.search(r"vdpbf16ps\s+[^\n]*%zmm", asm)


def test_export_library_of_several_kernels_loads_without_llvmlite(tmp_path):
    import softmax
    from tilec.backends.llvm.target import export_library
    import gemm as g
    ga = g.gemm(64, 48, 40, dtype="float32").func
    sm = softmax.softmax(20, 50).func
    ga, sm = dataclasses.replace(ga, name="gemm_a"), dataclasses.replace(sm, name="softmax_a")
    export_library([ga, sm], tmp_path / "model.so")
    code = textwrap.dedent(f"""
        import sys, numpy as np
        sys.modules['llvmlite'] = None
        from tilec.backends.llvm.target import load_exported
        ks = load_exported({str(tmp_path / 'model.so')!r})
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((64, 40), np.float32), rng.standard_normal((40, 48), np.float32)
        c = np.full((64, 48), np.nan, np.float32)
        ks["gemm_a"].run([a, b, c], {{}})
        x = rng.standard_normal((20, 50), np.float32); y = np.full_like(x, np.nan)
        ks["softmax_a"].run([x, y], {{}})
        e = np.exp(x - x.max(1, keepdims=True)); ref = e / e.sum(1, keepdims=True)
        assert np.abs(c - a @ b).max() < 1e-4 and np.abs(y - ref).max() < 1e-6
        print("OK", sorted(ks))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "OK ['gemm_a', 'softmax_a']" in r.stdout


def test_kernels_run_in_a_forked_child_after_the_pool_started():
    """A process that used the thread pool and then forks (multiprocessing, DataLoader workers) must
    still run multi-threaded kernels in the child: the child gets a fresh pool."""
    import multiprocessing

    from tilec.backends.llvm import runtime

    hits = []
    runtime.par_for(lambda: hits.append(1), nblocks=8, threads=2)   # starts the pool's worker thread
    assert len(hits) == 2

    def child(conn):
        seen = []
        runtime.par_for(lambda: seen.append(1), nblocks=8, threads=2)
        conn.send(len(seen))

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(send,))
    proc.start()
    try:
        assert recv.poll(30), "the forked child hung in par_for"
        assert recv.recv() == 2
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()


@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("readelf") is None,
                    reason="checks x86-64 ELF relocations with readelf")
def test_jit_objects_use_no_32_bit_pc_relative_relocations(tmp_path):
    """MCJIT maps an object's code, constants and GOT/stubs separately; in a big process they can be more
    than 2 GB apart, and a 32-bit PC-relative relocation then overflows (the full suite aborted in
    RuntimeDyldELF's isInt<32> assertion). JIT objects use the large code model; library objects may not."""
    import gemm
    from tilec.backends.llvm.target import compile_object
    func = gemm.gemm(64, 64, 64, dtype="float32").func

    def relocations(obj: bytes) -> set[str]:
        path = tmp_path / "k.o"
        path.write_bytes(obj)
        out = subprocess.run(["readelf", "-rW", str(path)], capture_output=True, text=True, check=True).stdout
        return set(re.findall(r"\bR_X86_64_\w+", out))

    narrow = {"R_X86_64_PC32", "R_X86_64_PLT32", "R_X86_64_GOTPCREL", "R_X86_64_GOTPCRELX",
              "R_X86_64_REX_GOTPCRELX", "R_X86_64_32", "R_X86_64_32S"}
    jit_relocs = relocations(compile_object(func, {}, jit=True)[0])
    assert jit_relocs, "the kernel object should have relocations to check"
    assert not jit_relocs & narrow, f"JIT object has 32-bit relocations: {sorted(jit_relocs & narrow)}"
    # The library objects are position-independent small-model code: the same kernel does use them, so
    # the check above is not vacuous.
    assert relocations(compile_object(func, {})[0]) & narrow
