"""The fuzzer in CI: a bounded number of random programs on the pass pipeline and on every available target.

- 200 programs through the target-independent passes, interpreted before and after: identical values.
- Each registered target but ``interp`` (cpu, ascend, cuda as they land; skipped while unavailable) runs
  the first programs of the same sequence within a time budget (compiling is the slow part: cpu ~0.25 s,
  ascend ~3 s per program on a cold cache), at least ``MIN_PROGRAMS`` of them, and must agree with the
  interpreter on every one it accepts, both as generated and after the pass pipeline (the interpreter
  cannot see an illegal fusion; a target running iterations in order can). ``TILEC_FUZZ_N`` /
  ``TILEC_FUZZ_BUDGET`` change the sizes.
- The generator is deterministic, valid (verifier) and exercises every feature it claims to.
"""
from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from tilec import targets as target_registry
from tilec.fuzz import driver
from tilec.fuzz.generator import generate
from tilec.ir.printer import print_func

N_PROGRAMS = int(os.environ.get("TILEC_FUZZ_N", "200"))
TARGET_BUDGET_S = float(os.environ.get("TILEC_FUZZ_BUDGET", "20"))
MIN_PROGRAMS = 3
SEED = 0


def _show(bad: list) -> str:
    return "\n".join(f"seed {s}: {o.target} {o.status}: {o.detail}\n"
                     f"{print_func(generate(s).func, locs=False)}" for s, o in bad[:3])


def test_generator_is_deterministic_and_varied():
    assert print_func(generate(7).func) == print_func(generate(7).func)
    assert print_func(generate(7).func) != print_func(generate(8).func)
    features = Counter(f for s in range(N_PROGRAMS) for f in generate(s).features)
    for want in ("gemm", "pipelined", "reduce", "cumsum", "if", "let", "select", "symbolic", "atomic",
                 "block_trip_count", "int_arith", "guarded_load", "half_fragment", "two_launches", "row_copy",
                 "guarded_store", "serial", "unrolled", "scalar", "transpose_a", "transpose_b"):
        assert features[want] >= 3, f"only {features[want]} programs use {want}: {features}"


def test_passes_agree_with_the_interpreter():
    bad, statuses = [], Counter()
    for s in range(SEED, SEED + N_PROGRAMS):
        prog = generate(s)
        for o in driver.check_program(prog.func, prog.dims, s, {}, passes=True):
            statuses[o.status] += 1
            if o.status != "agree":
                bad.append((s, o))
    assert statuses["agree"] == N_PROGRAMS, f"{statuses}\n{_show(bad)}"


@pytest.mark.parametrize("name", [t for t in target_registry.names() if t != "interp"])
def test_target_agrees_with_the_interpreter(name):
    targets, skipped = driver.usable_targets([name])
    if name not in targets:
        pytest.skip(f"target {name}: {skipped.get(name)}")
    start, statuses, bad, ran = time.perf_counter(), Counter(), [], 0
    for s in range(SEED, SEED + N_PROGRAMS):
        if ran >= MIN_PROGRAMS and time.perf_counter() - start > TARGET_BUDGET_S:
            break
        prog = generate(s)
        for o in driver.check_program(prog.func, prog.dims, s, targets, passes=False, after_passes=True):
            statuses[o.status] += 1
            if o.bad or o.status == "invalid":
                bad.append((s, o))
        ran += 1
    assert not bad, f"{name}: {statuses}\n{_show(bad)}"
    assert statuses["agree"] + statuses["compiled"] >= 1, f"{name} accepted no program: {statuses}"
    if getattr(targets[name], "array_kind", "numpy") == "numpy":   # executing targets (cuda-emu too) run
        assert statuses["agree"] >= MIN_PROGRAMS, f"{name} executed too few programs: {statuses}"


def test_passes_are_idempotent_on_random_programs():
    from tilec.ir.verifier import verify
    from tilec.passes import registry
    for s in range(SEED, SEED + N_PROGRAMS // 2):
        func = generate(s).func
        for name in registry.names():
            p = registry.get(name)
            once = p(func)
            verify(once)
            assert p(once) == once, f"seed {s}: pass {name} is not idempotent"
