"""Seeded bugs: the cuda-emu target must catch a one-line mistake in real generated CUDA.

Each case takes the text tilec generates for ``examples/gemm.py`` (a 3-stage cp.async ring at 128^3 on the
mma.sync path for sm_80 and on the wgmma path for sm_90a; the RAGGED size for the tail guards), applies
one textual mutation (asserting it replaced exactly the expected number of occurrences, so a change in
the generator cannot turn a case into a silent no-op), builds it with ``emu.build.load`` and runs it on
fresh random inputs. The unmutated text must pass in the same test; the mutated one must be caught by the
signal the case names:

- ``nan``: a NaN in the output (shared memory starts as NaN bytes, outputs are poisoned, and every array
  sits between NaN-filled guard zones, so a read of data not yet landed, never written or out of bounds
  shows),
- ``wrong``: ``||out-ref||/||ref||`` beyond 1e-2 against the torch reference,
- ``error``: a ``TilecError`` from the emulator (deadlock, bad ldmatrix/descriptor address, ...),
- ``guard``: a write into an output's guard zone (outside the tensor).

No race checker is involved: everything is caught through numerics, poison and the emulator's own checks.
A control case shows the checks are not just "any edit fails": changing the swizzle consistently (writer
and reader alike, still a bijection) is not a bug on the mma.sync path and must pass, while the same edit
breaks the wgmma path, whose reads follow the hardware's swizzle through the descriptor.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tilec import numerics
from tilec.backends.cuda.emu.build import build_library, load
from tilec.backends.cuda.emu.target import CudaEmuExecutable, CudaEmuTarget
from tilec.errors import TilecError

ROOT = pathlib.Path(__file__).resolve().parents[3]
GUARD = 256  # bytes of NaN poison before and after every array
FLAVOURS = {"mma": {}, "wgmma": {"arch": "sm_90a", "wgmma": True}}
# The wgmma kernel has two warpgroups: the emulator performs a wgmma once its whole warpgroup has issued it,
# which orders that warpgroup's warps, so a missing barrier shows only across warpgroups.
SIZES = {"pipelined": {"mma": dict(M=128, N=128, K=128, num_stages=3),
                       "wgmma": dict(M=128, N=128, K=128, num_stages=3, block_M=128, threads=256)},
         "ragged": {"mma": None}}  # None: the example's RAGGED


def _example():
    spec = importlib.util.spec_from_file_location("tilec_seeded_gemm", ROOT / "examples" / "gemm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEMM = _example()


@dataclass(frozen=True)
class Mutation:
    id: str
    flavour: str
    size: str
    old: str
    new: str
    count: int       # occurrences of ``old`` in the generated text, all replaced
    caught_by: str   # nan | wrong | error | guard


MUTATIONS = [
    # The barrier after the stage's wait: it publishes the landed stage to the other threads (and keeps the
    # stage about to be refilled from being overwritten while still read).
    Mutation("drop_stage_barrier", "mma", "pipelined", "tilec::cp_async_wait<1>();\n      __syncthreads();",
             "tilec::cp_async_wait<1>();", 1, "nan"),
    Mutation("drop_stage_barrier", "wgmma", "pipelined",
             "tilec::fence_proxy_async();  // publish the landed stage to wgmma (async proxy)\n      __syncthreads();",
             "tilec::fence_proxy_async();  // publish the landed stage to wgmma (async proxy)", 1, "nan"),
    # Waiting for all but the newest 2 groups of a 3-stage ring leaves the stage being consumed in flight.
    Mutation("wait_too_little", "mma", "pipelined", "tilec::cp_async_wait<1>();", "tilec::cp_async_wait<2>();",
             1, "nan"),
    Mutation("wait_too_little", "wgmma", "pipelined", "tilec::cp_async_wait<1>();", "tilec::cp_async_wait<2>();",
             1, "nan"),
    # B ([K, N], row-major) must be loaded transposed into the col-major mma B fragment, A must not.
    Mutation("b_ldmatrix_not_trans", "mma", "pipelined", "tilec::ldmatrix_x4_trans(_t,", "tilec::ldmatrix_x4(_t,",
             1, "wrong"),
    Mutation("a_ldmatrix_trans", "mma", "pipelined", "tilec::ldmatrix_x4(_a[_mt],",
             "tilec::ldmatrix_x4_trans(_a[_mt],", 1, "wrong"),
    # The ldmatrix read of B uses another swizzle than the cp.async that wrote it (XOR of row/2 over 4
    # chunks instead of row over 8).
    Mutation("read_swizzle_mismatch", "mma", "pipelined", "&B_shared[(_it_1 % 3) * 2048 + tilec::swz<64, 8, 8>(",
             "&B_shared[(_it_1 % 3) * 2048 + tilec::swz<64, 8, 4>(", 1, "wrong"),
    # The swizzle helper's XOR changed for 8-chunk rows: consistent for threads, but wgmma reads the
    # 128-byte-swizzled B panels the way the descriptor's mode says the hardware lays them out.
    Mutation("swizzle_xor", "wgmma", "pipelined", "const int x = NC >= 8 ? (r & 7) :",
             "const int x = NC >= 8 ? (r & 3) :", 1, "wrong"),
    # The B descriptor's swizzle mode: 64-byte (2) for a buffer laid out with the 128-byte pattern (1); the
    # emulator reports the reads it implies beyond the shared window.
    Mutation("b_descriptor_swizzle_mode", "wgmma", "pipelined", ", 4096, 1024, 1)", ", 4096, 1024, 2)", 1,
             "error"),
    # Fragment register order: B's two registers of each n tile swapped (k 0-7 <-> k 8-15)...
    Mutation("b_fragment_regs_swapped", "mma", "pipelined", "_b[2 * _np][0] = _t[0]; _b[2 * _np][1] = _t[1];",
             "_b[2 * _np][0] = _t[1]; _b[2 * _np][1] = _t[0];", 1, "wrong"),
    # ... and A's registers a2a3 <-> a4a5 (rows 8-15 of k 0-7 and rows 0-7 of k 8-15) through the ldmatrix
    # lane addresses: matrix 1 and matrix 2 of the x4 load exchanged.
    Mutation("a_fragment_regs_swapped", "mma", "pipelined",
             "(0 + _wm0 + _mt * 16 + (_lane & 15), 0 + _kk * 16 + (_lane >> 4) * 8)",
             "(0 + _wm0 + _mt * 16 + (_lane & 7) + (_lane >> 4) * 8, 0 + _kk * 16 + ((_lane >> 3) & 1) * 8)", 1,
             "wrong"),
    # wgmma: retire all but the newest group (never the last), or read B as K-major (its K-major reads run
    # past the shared window: an emulator error).
    Mutation("wgmma_wait_too_little", "wgmma", "pipelined", "tilec::wgmma_wait<0>();", "tilec::wgmma_wait<1>();",
             1, "wrong"),
    Mutation("wgmma_trans_b", "wgmma", "pipelined", "::tilec_emu::isa::AB::f16, 64, 1, d, da, db",
             "::tilec_emu::isa::AB::f16, 64, 0, d, da, db", 1, "error"),
    # Tail guards at M=200, N=136, K=100: the store's column guard lets column N through (it lands on the
    # next row's column 0, and past the end of C on the last row) ...
    Mutation("store_guard_off_by_one", "mma", "ragged", "(unsigned)(((bx * 64) + _j)) < (unsigned)(136)",
             "(unsigned)(((bx * 64) + _j)) <= (unsigned)(136)", 1, "guard"),
    # ... and B's K guard lets row K through: it reads past the end of B (NaN in the guard zone), which
    # A's zero-filled column K cannot cancel (0 * NaN).
    # (the guard is both the source select and cp.async's src-size predicate: 2 uses in each of 2 loads).
    Mutation("load_guard_off_by_one", "mma", "ragged", "(unsigned)(_s0) < (unsigned)(100) && (unsigned)(_s1) < "
             "(unsigned)(136)", "(unsigned)(_s0) <= (unsigned)(100) && (unsigned)(_s1) < (unsigned)(136)", 4, "nan"),
]
# Not bugs: edits that must still pass (the checks do not flag every change).
CONTROLS = [
    Mutation("swizzle_xor_consistent", "mma", "pipelined", "const int x = NC >= 8 ? (r & 7) :",
             "const int x = NC >= 8 ? (r & 3) :", 1, "none"),
]


def mutate(text: str, m: Mutation) -> str:
    found = text.count(m.old)
    assert found == m.count, f"{m.id}: expected {m.count} occurrence(s) of {m.old!r} in the generated text, " \
                             f"found {found}"
    out = text.replace(m.old, m.new)
    assert out != text
    return out


def _params(flavour: str, size: str) -> dict:
    return dict(SIZES[size][flavour] or GEMM.RAGGED)


_SOURCES: dict = {}


def source(flavour: str, size: str):
    key = (flavour, size)
    if key not in _SOURCES:
        _SOURCES[key] = CudaEmuTarget().generate(GEMM.gemm(**_params(flavour, size)), FLAVOURS[flavour])
    return _SOURCES[key]


def _arch(flavour: str) -> str:
    return FLAVOURS[flavour].get("arch", "sm_80")


@pytest.fixture(scope="module", autouse=True)
def prebuilt():
    """Build every library (unmutated and mutated) in parallel g++ processes first; builds are cached."""
    from concurrent.futures import ThreadPoolExecutor
    jobs = {(source(f, s).text, _arch(f)) for s in SIZES for f in SIZES[s]}
    jobs |= {(mutate(source(m.flavour, m.size).text, m), _arch(m.flavour)) for m in MUTATIONS + CONTROLS}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(lambda j: build_library(*j), sorted(jobs)))


def _guarded(nbytes: int) -> tuple[np.ndarray, slice]:
    """A 64-byte aligned uint8 buffer with ``GUARD`` bytes of 0xff (NaN in every float type) on each side."""
    raw = np.full(nbytes + 2 * GUARD + 64, 0xFF, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + nbytes + 2 * GUARD], slice(GUARD, GUARD + nbytes)


def run(text: str, flavour: str, size: str) -> str:
    """Run ``text`` (the kernel of ``source(flavour, size)``, maybe mutated) on fresh inputs; return what is
    wrong with the result: '' when it passes, else 'error: ...', 'guard', 'nan' or 'wrong (...)'."""
    p = _params(flavour, size)
    src = source(flavour, size)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(p["M"], p["K"], generator=g).half()
    b = torch.randn(p["K"], p["N"], generator=g).half()
    arrays, raws = [], []
    for t, shape in ((a, a.shape), (b, b.shape), (None, (p["M"], p["N"]))):
        raw, mid = _guarded(int(np.prod(shape)) * 2)
        view = raw[mid].view(np.float16).reshape(shape)
        if t is not None:
            view[...] = t.numpy()
        arrays.append(view)   # the output keeps its 0xff (NaN) poison
        raws.append((raw, mid))
    try:
        CudaEmuExecutable(src, load(text, _arch(flavour)), _arch(flavour)).run(arrays, {})
    except TilecError as e:
        return f"error: {e}"
    for raw, mid in raws:
        if not ((raw[:mid.start] == 0xFF).all() and (raw[mid.stop:] == 0xFF).all()):
            return "guard"
    out = numerics.to_float32(arrays[2], "float16").astype(np.float64)
    if np.isnan(out).any():
        return "nan"
    ref = GEMM.reference(a, b).double().numpy()
    err = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    return f"wrong ({err:.3e})" if not err < 1e-2 else ""


@pytest.mark.parametrize("m", MUTATIONS, ids=[f"{m.flavour}-{m.id}" for m in MUTATIONS])
def test_seeded_bug_is_caught(m: Mutation) -> None:
    text = source(m.flavour, m.size).text
    assert run(text, m.flavour, m.size) == "", f"{m.flavour}/{m.size}: the unmutated kernel fails"
    got = run(mutate(text, m), m.flavour, m.size)
    assert got, f"{m.flavour}-{m.id}: the seeded bug was not caught"
    assert got.split(" ")[0].rstrip(":") == m.caught_by, f"{m.flavour}-{m.id}: caught as {got}, " \
                                                         f"expected {m.caught_by}"


@pytest.mark.parametrize("m", CONTROLS, ids=[f"{m.flavour}-{m.id}" for m in CONTROLS])
def test_harmless_edit_passes(m: Mutation) -> None:
    assert run(mutate(source(m.flavour, m.size).text, m), m.flavour, m.size) == ""


def test_paths_are_the_ones_meant():
    """The cases rely on these paths: a 3-stage cp.async ring feeding mma.sync / wgmma, cp.async at RAGGED."""
    mma, wg = source("mma", "pipelined").text, source("wgmma", "pipelined").text
    assert "3 stage(s), cp.async ring" in mma and "tilec::mma_f16(" in mma and "wgmma_m64" not in mma
    assert "tilec::wgmma_m64n64k16_f16_tb1(" in wg and "tilec::mma_f16(" not in wg.split("__global__", 1)[1]
    assert "tilec::cp_async16(&B_shared" in source("mma", "ragged").text
