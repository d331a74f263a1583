"""Seeded bugs in generated CUDA must be caught by the emulator.

Each case renders examples/gemm.py's cuda-emu text (3-stage cp.async pipeline; mma.sync on sm_80 or wgmma
on sm_90a), applies one textual mutation of the kind a code-generator bug would produce, and runs both
texts on the same random inputs: the text as generated must match a float64 matmul, the mutated one must
fail -- wrong numbers, NaN from the 0xff shared-memory poison, or an emulator error. Every mutation asserts
how many places it changed, so a codegen change that removes its target fails here instead of passing
silently. The emulator runs without the race checker (``build.load`` without its flag), so these are
caught by execution semantics alone, except two that only the checker can see: the wgmma pipeline's
missing barrier (the warpgroup's wgmma is one rendezvous of all 128 threads, each past its own copy wait,
so the emulator's values stay right; on a GPU nothing orders the other threads' copies) and the tail
guard (the extra column meets B's zero padding).
"""
from __future__ import annotations

import importlib.util
import pathlib
import re

import numpy as np
import pytest

from tilec.backends.cuda.emu.build import load
from tilec.backends.cuda.emu.target import CudaEmuTarget
from tilec.errors import TilecError

ROOT = pathlib.Path(__file__).resolve().parents[3]
MMA, WGMMA = {}, {"arch": "sm_90a", "wgmma": True}


def _gemm_module():
    spec = importlib.util.spec_from_file_location("seeded_gemm", ROOT / "examples" / "gemm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _source(flavour: dict, m: int = 128, n: int = 128, k: int = 128):
    return CudaEmuTarget().generate(_gemm_module().gemm(m, n, k, num_stages=3), flavour)


def _run(text: str, entry: str, arch: str, m: int, n: int, k: int, flags=()) -> float:
    """Relative error of C against float64 (inf when C has a NaN)."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = np.full((m, n), np.nan, np.float16)                     # poisoned output
    load(text, arch, flags).call(entry, [a, b, c], [], ["A", "B", "C"])
    ref = a.astype(np.float64) @ b.astype(np.float64)
    if not np.isfinite(c).all():
        return float("inf")
    return float(np.linalg.norm(c.astype(np.float64) - ref) / np.linalg.norm(ref))


def mutate(text: str, pattern: str, repl: str, count: int, regex: bool = False) -> str:
    """``text`` with ``pattern`` replaced; exactly ``count`` occurrences must exist (the test's own check)."""
    found = len(re.findall(pattern, text)) if regex else text.count(pattern)
    assert found == count, f"{pattern!r}: {found} occurrences, the mutation expects {count}"
    return re.sub(pattern, repl, text) if regex else text.replace(pattern, repl)


def _loop_barrier_deleted(text: str) -> str:
    # the __syncthreads() right after the loop's cp_async_wait: other warps' copies of the stage are
    # then read before they land (thread order runs warp 0 ahead)
    return mutate(text, r"(tilec::cp_async_wait<1>\(\);\n(?:.*fence_proxy_async.*\n)?)\s*__syncthreads\(\);\n",
                  r"\1", 1, regex=True)


CHECKER = ("-DTILEC_EMU_RACECHECK=1",)
NEEDS_CHECKER = {"barrier_removed_wgmma"}

CASES = {
    "barrier_removed": (MMA, _loop_barrier_deleted),
    "barrier_removed_wgmma": (WGMMA, _loop_barrier_deleted),
    # waits for all but the newest 2 groups: the stage being consumed may not have landed
    "wait_too_early": (MMA, lambda t: mutate(t, "tilec::cp_async_wait<1>();", "tilec::cp_async_wait<2>();", 1)),
    "wait_too_early_wgmma": (WGMMA, lambda t: mutate(t, "tilec::cp_async_wait<1>();", "tilec::cp_async_wait<2>();",
                                                     1)),
    # B's fragments loaded without .trans: each lane gets the transposed 8x8 pieces
    "ldmatrix_not_transposed": (MMA, lambda t: mutate(t, "tilec::ldmatrix_x4_trans(", "tilec::ldmatrix_x4(", 1)),
    # A read with another XOR pattern than it was written with
    "swizzle_read_side": (MMA, lambda t: mutate(t, "tilec::swz<32, 8, 4>(0 + _wm0", "tilec::swz<32, 8, 2>(0 + _wm0",
                                                1)),
    # A's wgmma descriptor says 128-byte swizzle; the tile is laid out with the 64-byte one
    "descriptor_swizzle_mode": (WGMMA, lambda t: mutate(t, r"(gmma_desc\(&A_shared\[[^;]*?, 16, 512, )2\)", r"\g<1>1)",
                                                        1, regex=True)),
    # the first two A fragment registers of the mma swapped (rows 0-7 and 8-15 of the A tile exchanged)
    "mma_fragment_order": (MMA, lambda t: mutate(t, "tilec::mma_f16(&C_local[(_mt * 4 + _nt) * 4], _a[_mt], _b[_nt]);",
                                                 "{ unsigned _x[4] = {_a[_mt][1], _a[_mt][0], _a[_mt][2], _a[_mt][3]}; "
                                                 "tilec::mma_f16(&C_local[(_mt * 4 + _nt) * 4], _x, _b[_nt]); }", 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_seeded_bug_is_caught(name):
    flavour, seed = CASES[name]
    src = _source(flavour)
    arch = flavour.get("arch", "sm_80")
    assert _run(src.text, src.entry, arch, 128, 128, 128) < 1e-2       # as generated: right
    bad = seed(src.text)
    assert bad != src.text
    if name in NEEDS_CHECKER:
        assert _run(bad, src.entry, arch, 128, 128, 128) < 1e-2      # the values alone do not show it
        with pytest.raises(TilecError, match="shared-memory race"):
            _run(bad, src.entry, arch, 128, 128, 128, CHECKER)
        return
    try:
        err = _run(bad, src.entry, arch, 128, 128, 128)
    except TilecError as e:                                          # an emulator report counts as caught
        print(f"{name}: emulator error: {str(e).splitlines()[0][:160]}")
        return
    print(f"{name}: relative error {err:.3g}")
    assert err > 0.1, f"{name}: the seeded bug went unnoticed (relative error {err:.3g})"


def test_tail_guard_off_by_one_is_an_out_of_bounds_report():
    """At a ragged K the copy's column guard `< 100` made `<= 100`: the extra column is multiplied by B's
    zero padding, so C stays right, and only the bounds checker sees the read past A's last row."""
    m, n, k = 72, 64, 100
    src = _source(MMA, m, n, k)
    on = CHECKER
    assert _run(src.text, src.entry, "sm_80", m, n, k, on) < 1e-2
    bad = mutate(src.text, "(unsigned)(_s1) < (unsigned)(100)", "(unsigned)(_s1) <= (unsigned)(100)", 1)
    assert _run(bad, src.entry, "sm_80", m, n, k) < 1e-2               # the numbers alone do not show it
    with pytest.raises(TilecError, match=r"out of bounds"):
        _run(bad, src.entry, "sm_80", m, n, k, on)
