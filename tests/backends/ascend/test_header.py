"""C++ tests of tilec's AscendC emulation header (backends/ascend/include/kernel_operator.h).

header_ok.cpp runs a Cube GEMM (Nd2Nz -> LoadData -> Mmad -> Fixpipe), a double-buffered TQue vector add,
reductions/cast/compare/sort and a MIX kernel with cross-core flags, each against a host reference;
header_rules.cpp holds kernels that break one hardware rule each, which the emulation must stop with a
message naming the rule. Builds are cached by content hash (backends/ascend/build.py).
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tilec.backends.ascend.build import compile_source

HERE = Path(__file__).resolve().parent / "cpp"


def _run(exe: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr   # correct kernels raise no rule-17 or TQue warning
    return proc.stdout


@pytest.mark.parametrize("sanitize", [False, True], ids=["O2", "asan"])
def test_positive_cases(sanitize: bool) -> None:
    flags = ("-fsanitize=address", "-g") if sanitize else ()
    exe = compile_source((HERE / "header_ok.cpp").read_text(), kind="exe", extra_flags=flags, name="header_ok")
    out = _run(exe)
    cases = dict(re.findall(r"CASE (\w+) err=(\S+)", out))
    assert set(cases) == {"gemm", "vector_add", "misc", "mix"}, out
    for name, err in cases.items():
        assert float(err) < 1e-3, f"{name}: {out}"


RULE_CASES = {
    "misaligned": (1, "32-byte aligned"),
    "count_not_32b": (3, "multiple of 32"),
    "ub_overflow": (6, "InitBuffer"),
    "wait_without_set": (13, "without a prior SetFlag"),
    "set_never_waited": (13, "never waited"),
    "double_set": (13, "set twice"),
    "vector_touches_l1": (7, "Vector core (AIV) touched L1"),
    "deque_empty": (12, "DeQue on an empty queue"),
    "alloc_too_many": (12, "AllocTensor"),
    "gm_out_of_bounds": (16, "GM access"),
    "local_overflow": (5, "tensor size overflow"),
    "compare_unaligned": (11, "256 bytes"),
    "level0_bad_mask": (10, "mask 100"),
    "wrong_kernel_type": (15, "does not match SetKernelMode"),
    "cross_deadlock": (14, "deadlock"),
    "cross_pending": (14, "pending sets"),
    "fixpipe_nsize": (8, "nSize 20"),
    "mmad_dtype": (9, "dtype combination"),
    "cube_touches_ub": (7, "Cube core (AIC) touched UB"),
    "missing_sync": (17, "V reads UB bytes [0, 32) last written by MTE2"),
    "scalar_after_vector": (17, "S reads UB bytes [0, 32) last written by V"),
}


@pytest.fixture(scope="module")
def rules_exe() -> Path:
    return compile_source((HERE / "header_rules.cpp").read_text(), kind="exe", name="header_rules")


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_rule_is_caught(rules_exe: Path, case: str) -> None:
    rule, words = RULE_CASES[case]
    # rule 17 (cross-pipe hazards) warns by default; TILEC_ASCEND_SYNC=error makes it stop the kernel
    out = _run(rules_exe, case, env={"TILEC_ASCEND_SYNC": "error"})
    assert out.startswith("ERROR:"), out
    assert f"rule {rule} (" in out, out
    assert words in out, out
