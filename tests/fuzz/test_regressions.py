"""Fuzz regressions: each tests/fuzz/regressions/*.tir is a shrunk program on which a target once disagreed
with the interpreter (written by ``python -m tilec.fuzz --save``). It must now agree; a file still marked
``# XFAIL:`` is an open bug and must still fail (delete the line when the fix lands)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tilec.fuzz import driver
from tilec.ir.parser import parse_func

FILES = sorted((Path(__file__).parent / "regressions").glob("*.tir"))


def _directives(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^#\s*([A-Z]+):(.*)$", text, re.M)}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_regression(path: Path):
    text = path.read_text()
    d = _directives(text)
    func = parse_func(text, str(path))
    pairs = [kv.split("=") for kv in d.get("DIMS", "").split(",") if kv.strip()]
    dims = {k.strip(): int(x) for k, x in pairs}
    seed, target = int(d["SEED"]), d["TARGET"]
    name, _, optimized = target.partition("+")   # "cpu+passes": cpu on the pass pipeline's output
    targets = {}
    if target != driver.PASSES:
        targets, skipped = driver.usable_targets([name])
        if name not in targets:
            pytest.skip(f"target {name}: {skipped.get(name)}")
    outcomes = driver.check_program(func, dims, seed, targets, passes=target == driver.PASSES,
                                    after_passes=bool(optimized))
    bad = [o for o in outcomes if o.bad and o.target == target]
    if "XFAIL" in d:
        assert bad, f"{path.name} now passes: delete its '# XFAIL:' line"
        pytest.xfail(d["XFAIL"])
    assert not bad, bad[0].detail
