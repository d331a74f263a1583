"""Random tile programs for the fuzzer: seeded, deterministic, always valid and always well-defined.

``generate(seed)`` builds one kernel in the shape real TileLang kernels have: a grid of blocks, each
owning a ``bm x bn`` tile of an ``M x N`` output (``M``, ``N`` often ragged against the tile, ``M``
sometimes symbolic), moving tiles global -> shared -> fragment with ``copy`` (whole tiles or row by
row), computing on fragments with ``parallel`` maps (integer index arithmetic, neighbour loads behind
``select``), ``reduce``, ``cumsum``, ``fill``, ``gemm`` over a ``pipelined`` K loop (transposed
operands too), serial and unrolled loops, ``let``s, ``if``s on block indices, a local scalar
accumulator, and writing the result back with a ragged copy, guarded element stores or ``atomic add``;
sometimes a second launch updates the output. Dtypes vary (float32, float16, bfloat16 inputs,
fragments, shared tiles and outputs).

Programs are well-defined by construction: every fragment is written before it is read, expressions
avoid NaN and overflow (exp is clamped, divisions are by ``|x| + 1``), conditions in ``select`` and ``if``
are on integers (a float threshold would turn rounding differences into large ones), and blocks never
race on an output (only ``atomic add`` combines blocks). The steps live in ``steps.py``, the program
state and random expressions in ``state.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import nodes as n
from ..ir.verifier import verify
from .state import Gen, b, c
from .steps import STEPS, second_launch, step_gemm, step_load, step_pipelined_sum, write_back


@dataclass
class Program:
    """A generated kernel with the symbolic dimension values to run it at."""
    seed: int
    func: n.Func
    dims: dict[str, int]
    features: list[str] = field(default_factory=list)


def _grid(g: Gen, extent: n.Expr, tile: int, value: int) -> n.Expr:
    if isinstance(extent, n.Var):
        return b("//", b("+", extent, c(tile - 1)), c(tile))
    return c(-(-value // tile))


def generate(seed: int) -> Program:
    """One random, valid, well-defined tile program (the same one for the same seed)."""
    g = Gen(seed)
    out: list[n.Stmt] = []
    gemm = g.rng.random() < 0.35
    g.param("X0", (g.M, g.N), g.in_dtype)
    if gemm:
        step_gemm(g, out)
    else:
        g.param("X1", (g.M, g.N), g.rng.choice((g.in_dtype, "float32")))
        step_load(g, out)
    steps = [s for s in STEPS if not (gemm and s[0] is step_pipelined_sum)]
    for _ in range(g.rng.randint(1, 6)):
        step = g.rng.choices([s for s, _ in steps], weights=[w for _, w in steps])[0]
        step(g, out)
    write_back(g, out)
    grid = (_grid(g, g.M, g.bm, g.m_val), _grid(g, g.N, g.bn, g.n_val))
    launches = [n.Launch(grid, (g.bx, g.by), 128, tuple(g.allocs) + tuple(out))]
    if g.rng.random() < 0.15:
        launches.append(second_launch(g, grid))
    func = n.Func(f"fuzz{seed}", tuple(g.params), tuple(launches))
    verify(func)
    return Program(seed, func, dict(g.dims), sorted(set(g.features)))
