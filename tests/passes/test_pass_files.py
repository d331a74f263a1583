"""Runs every case of the ``.tir`` pass-test files (format: tircases.py): the pipeline's output must print
as the case's ``# EXPECTED`` section, its ``# REPORT:`` lines must match, and the interpreter must give
identical values before and after every pass on random inputs."""
from __future__ import annotations

from pathlib import Path

import pytest

from tilec.ir.parser import parse_func
from tilec.ir.printer import print_func
from tilec.ir.verifier import verify
from tilec.passes import registry
from tilec.passes.check_semantics import check_pipeline
from tilec.passes.manager import run_pipeline

from . import tircases

HERE = Path(__file__).parent
FILES = sorted(HERE.glob("*.tir"))
CASES = [(path, case.index) for path in FILES for case in tircases.read_cases(path)[1]]


def _case_id(item) -> str:
    path, index = item
    return f"{path.stem}-{index}"


def run_case(case: tircases.Case) -> tuple[object, object, list[str]]:
    """(input Func, output Func, report lines) of one case."""
    func = parse_func(case.padded_input(), str(case.path))
    verify(func)
    passes = registry.pipeline(case.passes)
    reports: list[str] = []
    out = func
    for p in passes:
        hook = registry.REPORTS.get(p.name)
        if hook is not None:
            reports = hook(out).split("\n") if hook(out) else []
        out = run_pipeline(out, [p], {"verify_each": True})
    return func, out, reports


def _update(case: tircases.Case, printed: str, reports: list[str]) -> None:
    header, cases = tircases.read_cases(case.path)
    bodies = [c.lines for c in cases]
    bodies[case.index] = tircases.render_case(cases[case.index], printed, reports)
    tircases.write_cases(case.path, header, cases, bodies)


@pytest.mark.parametrize("item", CASES, ids=_case_id)
def test_pass_case(item, update_expected):
    path, index = item
    case = tircases.read_cases(path)[1][index]
    func, out, reports = run_case(case)
    printed = print_func(out, locs=False)
    if update_expected:
        _update(case, printed, reports)
    else:
        assert case.expected_text is not None, \
            f"{path.name} case {index} ({case.name}) has no '# EXPECTED' section; run with --update-expected"
        expected = print_func(parse_func("\n" * case.first_line + case.expected_text, str(path)), locs=False)
        assert printed == expected, f"{path.name}: {case.name}\n--- got ---\n{printed}"
        got = [r.strip() for r in reports]
        assert got == case.reports, f"{path.name}: {case.name}: report\n" + "\n".join(reports)
    check = check_pipeline(func, registry.pipeline(case.passes), case.dims, seed=index, trials=2,
                           options={"verify_each": True}, exact=True)
    assert not check.inconclusive, check.inconclusive
    assert check.ok, f"{case.name}: pass '{check.first_bad}' changed the results: {check.detail}"


def test_every_pass_has_cases():
    covered: dict[str, int] = {}
    for path in FILES:
        for case in tircases.read_cases(path)[1]:
            for name in case.passes:
                covered[name] = covered.get(name, 0) + 1
    for name in registry.names():
        assert covered.get(name, 0) >= 3, f"pass '{name}' has {covered.get(name, 0)} .tir cases (want >= 3)"


def test_case_files_parse_into_cases():
    assert FILES and all(tircases.read_cases(p)[1] for p in FILES)
