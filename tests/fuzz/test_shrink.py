"""The shrinker reduces a failing program to a small valid one that still fails, and saves it in the
regression format that test_regressions.py reads."""
from __future__ import annotations

from tilec.fuzz import driver
from tilec.fuzz.generator import generate
from tilec.fuzz.shrink import save_regression, shrink, size
from tilec.ir import nodes as n
from tilec.ir import visitor as v
from tilec.ir.parser import parse_func
from tilec.ir.verifier import verify


def _has_cumsum_that_runs(func: n.Func) -> bool:
    """A stand-in for "the target disagrees": the program still holds a cumsum and still interprets."""
    if not any(isinstance(x, n.Cumsum) for x in v.walk(func)):
        return False
    return not any(o.status == "invalid" for o in driver.check_program(func, {"M": 37}, 0, {}, passes=False))


def _seed_with(feature: str) -> int:
    return next(s for s in range(200) if {feature, "symbolic"} <= set(generate(s).features))


def test_shrinks_to_a_small_valid_program():
    prog = generate(_seed_with("cumsum"))
    small = shrink(prog.func, _has_cumsum_that_runs, budget=400)
    verify(small)
    assert _has_cumsum_that_runs(small)
    assert size(small) < size(prog.func) // 3, (size(small), size(prog.func))
    stmts = [x for x in v.walk(small) if isinstance(x, n.Stmt) and not isinstance(x, n.Launch)]
    assert len(stmts) <= 6, stmts


def test_a_predicate_that_never_holds_keeps_the_program():
    prog = generate(3)
    assert shrink(prog.func, lambda f: False, budget=50) is prog.func


def test_saved_regression_reads_back(tmp_path):
    prog = generate(_seed_with("symbolic"))
    finding = driver.Finding(prog.seed, "cpu", "values differ\nat [0]", prog.func, prog.dims)
    path = save_regression(finding, tmp_path)
    text = path.read_text()
    assert path.name == f"cpu-{prog.seed}.tir"
    assert parse_func(text, str(path)) == prog.func
    for line in ("# TARGET: cpu", f"# SEED: {prog.seed}", f"# DIMS: M={prog.dims['M']}", "# XFAIL:",
                 "# DETAIL: values differ at [0]"):
        assert line in text


def test_command_line_runs_and_reports(capsys):
    from tilec.fuzz.__main__ import main
    assert main(["--n", "12", "--seed", "5", "--targets", "none", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("12 programs in ") and "passes       agree 12" in out


class _BuggyTarget:
    """A planted miscompile: ``cumsum ... reverse`` runs forwards (interpreted otherwise)."""
    name, description, array_kind = "buggy", "interp with a planted bug", "numpy"

    def available(self):
        return True, ""

    def build(self, func, options):
        from tilec.interp.target import InterpTarget
        wrong = v.rewrite(func, lambda x: n.Cumsum(x.src, x.dst, x.dim, False, x.loc)
                          if isinstance(x, n.Cumsum) else None)
        return InterpTarget().build(wrong, options)


def test_driver_finds_shrinks_and_saves_a_planted_bug(tmp_path):
    targets = {"buggy": _BuggyTarget()}
    for s in range(300):
        prog = generate(s)
        outcomes = driver.check_program(prog.func, prog.dims, s, targets, passes=False)
        if any(o.bad for o in outcomes):
            break
    else:
        raise AssertionError("no program with a reverse cumsum in 300 seeds")
    small = shrink(prog.func, driver.still_fails("buggy", targets, prog.dims, s))
    assert size(small) < size(prog.func)
    assert any(isinstance(x, n.Cumsum) and x.reverse for x in v.walk(small))
    finding = driver.Finding(s, "buggy", "planted", prog.func, prog.dims, shrunk=small)
    text = save_regression(finding, tmp_path).read_text()
    assert "reverse" in text and "# TARGET: buggy" in text


def test_a_planted_fusion_bug_is_found_and_blamed_on_fuse(monkeypatch):
    """Store-to-load forwarding that forgets half types round on store: some random program must change
    meaning, and the semantic check must name 'fuse' (the fuzzer finds pass bugs, not only backend bugs).
    (Merging loops without the dependence check is not visible to the interpreter, which runs a parallel
    body statement by statement over all iterations; targets running iterations in order catch it.)"""
    from tilec.passes import fuse
    from tilec.passes.analysis import reads

    def forwardable(s: n.Stmt) -> bool:   # the real one also requires a dtype that stores exactly
        return isinstance(s, n.Store) and s.buffer not in reads(s.value) and \
            not any(isinstance(x, n.Load) for x in v.walk(s.indices))
    monkeypatch.setattr(fuse, "_forwardable", forwardable)
    for s in range(300):
        prog = generate(s)
        outcomes = driver.check_program(prog.func, prog.dims, s, {}, passes=True)
        bad = [o for o in outcomes if o.bad]
        if bad:
            assert "pass 'fuse'" in bad[0].detail, bad[0].detail
            return
    raise AssertionError("no program exposed forwarding of unrounded half values")
