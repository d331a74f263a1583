"""The text round trip: parse(print(ir)) == ir for hand-built IR, random expressions, every .tir file in
tests/, and every example kernel (examples/*.py at its DEFAULTS and RAGGED sizes)."""
from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

import pytest

from tilec.ir import nodes as n
from tilec.ir.parser import parse, parse_func
from tilec.ir.printer import print_func, print_module

from . import samples

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
TIR_FILES = sorted((ROOT / "tests").rglob("*.tir"))


def check_round_trip(module: n.Module) -> str:
    text = print_module(module)
    back = parse(text, "roundtrip.tir")
    assert back == module, _first_difference(module, back)
    assert print_module(back) == text
    assert print_module(parse(print_module(module, locs=False)), locs=False) == print_module(module, locs=False)
    return text


def _first_difference(a: n.Module, b: n.Module) -> str:
    for fa, fb in zip(a.funcs, b.funcs):
        for la, lb in zip(print_func(fa).splitlines(), print_func(fb).splitlines()):
            if la != lb:
                return f"first differing line:\n  {la}\n  {lb}"
        if fa != fb:
            return f"kernel {fa.name} differs in a way the text does not show:\n{fa}\n{fb}"
    return "different number of kernels"


def test_hand_built_module_round_trips():
    text = check_round_trip(samples.module())
    for word in ("while", "atomic add", "cumsum", "hint", "noclear", "reverse", "transpose_a", "nan:f16",
                 "-inf:bf16", "1e-05", "-128:i8", "true", "kernel empty"):
        assert word in text


def test_every_node_type_is_covered_by_the_samples():
    from tilec.ir import visitor
    seen = {type(x) for x in visitor.walk(samples.module())}
    classes = {c for c in vars(n).values() if isinstance(c, type) and c.__module__ == n.__name__}
    abstract = {n.Expr, n.Stmt, n.Loc}
    assert classes - abstract - seen == set()


def test_nan_from_anywhere_prints_the_same():
    f = samples.gemm_kernel()
    launch = f.body[0]
    nan = n.Const(float("nan"), "float32")
    store = n.Fill(samples.whole(launch.body[2].buffer), nan)
    g = n.Func(f.name, f.params, (n.Launch(launch.grid, launch.block_vars, 1, launch.body + (store,)),))
    text = print_func(g)
    assert "fill C_f, nan" in text
    assert print_func(parse_func(text)) == text


# --- random expressions: every operator at every nesting, so precedence and folding are exercised ---

X = n.Buffer("X", (n.Const(8),), "float32", "global")
VARS = (n.Var("i"), n.Var("y", "float32"), n.Var("p", "bool"))


def random_const(rng: random.Random) -> n.Const:
    kind = rng.randrange(6)
    if kind == 0:
        return n.Const(rng.randint(-20, 20))
    if kind == 1:
        return n.Const(rng.choice([0.5, -1.5, 1e-05, -3e20, math.inf, -math.inf, 2.0]), "float32")
    if kind == 2:
        return n.Const(rng.choice([True, False]), "bool")
    if kind == 3:
        return n.Const(rng.randint(-5, 5), rng.choice(["int8", "int64", "int16"]))
    if kind == 4:
        return n.Const(rng.randint(0, 9), rng.choice(["uint8", "uint32"]))
    return n.Const(rng.choice([0.25, -0.75, math.inf]), rng.choice(["bfloat16", "float16", "float8_e4m3"]))


def random_expr(rng: random.Random, depth: int) -> n.Expr:
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([lambda: random_const(rng), lambda: rng.choice(VARS),
                           lambda: n.Load(X, (random_expr(rng, 0),))])()
    sub = lambda: random_expr(rng, depth - 1)  # noqa: E731
    kind = rng.randrange(8)
    if kind <= 2:
        ops = n.ARITH_OPS + n.COMPARE_OPS + n.LOGIC_OPS
        return n.BinOp(rng.choice(ops), sub(), sub())
    if kind == 3:
        return n.UnaryOp(rng.choice(n.UNARY_OPS), sub())
    if kind == 4:
        return n.Call(rng.choice(n.INTRINSICS), tuple(sub() for _ in range(rng.randint(1, 2))))
    if kind == 5:
        return rng.choice([n.Cast, n.Reinterpret])(rng.choice(["float16", "int32", "uint32"]), sub())
    if kind == 6:
        return n.Select(sub(), sub(), sub())
    return n.Load(X, (sub(),))


def test_random_expressions_round_trip():
    rng = random.Random(1234)
    stores = tuple(n.Store(X, (n.Const(k % 8),), random_expr(rng, 5), n.Loc("r.py", k + 1, 1))
                   for k in range(400))
    lets = (n.Let(VARS[0], n.Const(1)), n.Let(VARS[1], n.Const(1.0, "float32")),
            n.Let(VARS[2], n.Const(True, "bool")))
    f = n.Func("fuzz", (X,), (n.Launch((n.Const(1),), (n.Var("bx"),), 1, lets + stores),))
    check_round_trip(n.Module((f,)))


# --- files written by people: .tir tests and example kernels ---


@pytest.mark.parametrize("path", TIR_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_tir_file_round_trips(path: Path):
    module = parse(path.read_text(), str(path))
    assert module.funcs, f"{path} holds no kernel"
    check_round_trip(module)


def test_tir_files_exist():
    assert any(p.parent == Path(__file__).parent / "tir" for p in TIR_FILES)


def _load_example(path: Path):
    name = f"_tilec_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not EXAMPLES, reason="examples/ holds no kernels yet")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_round_trips(path: Path):
    example = _load_example(path)
    assert hasattr(example, "KERNEL") and hasattr(example, "DEFAULTS"), \
        f"{path.name} does not follow the example convention (KERNEL, DEFAULTS)"
    sizes = [example.DEFAULTS] + ([example.RAGGED] if hasattr(example, "RAGGED") else [])
    for params in sizes:
        func = example.KERNEL(**params).func
        assert isinstance(func, n.Func)
        check_round_trip(n.Module((func,)))


def test_examples_are_found_when_present():
    # Not vacuous: once examples/ holds kernels, the parametrized test above has cases.
    if any(p.name != "__init__.py" for p in (ROOT / "examples").glob("*.py")):
        assert EXAMPLES
