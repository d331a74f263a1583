"""Fixtures for the runtime tests: hand-built kernels and a small numpy target that records its calls.

The kernels are built from IR nodes directly, so these tests exercise argument checking, dimension
binding, out_idx handling and array conversion independently of the frontend.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tilec import numerics
from tilec.ir import nodes as N


def elementwise_add(dtype: str = "float32", rows: Any = None, cols: int = 4) -> N.Func:
    """``C[i, j] = A[i, j] + B[i, j]`` over ``[rows, cols]``; ``rows`` defaults to the symbol M."""
    M = N.Var("M") if rows is None else N.Const(rows)
    shape = (M, N.Const(cols))
    A, B, C = (N.Buffer(n, shape, dtype, "global") for n in "ABC")
    i, j = N.Var("i"), N.Var("j")
    store = N.Store(C, (i, j), N.BinOp("+", N.Load(A, (i, j)), N.Load(B, (i, j))))
    inner = N.For(j, N.Const(0), N.Const(cols), "serial", (store,))
    outer = N.For(i, N.Const(0), M, "serial", (inner,))
    launch = N.Launch((N.Const(1),), (N.Var("bx"),), 1, (outer,))
    return N.Func("add", (A, B, C), (launch,))


class RecordingExecutable:
    """Runs ``elementwise_add`` with numpy on storage arrays, rounding as the interpreter does."""

    def __init__(self, func: N.Func):
        self.func = func
        self.source = f"// fake source for {func.name}"
        self.binary = None
        self.calls: list[tuple[list[Any], dict[str, int]]] = []

    def run(self, args: list[Any], dims: dict[str, int]) -> None:
        self.calls.append((args, dims))
        a, b, c = args
        dtype = self.func.params[2].dtype
        total = numerics.to_float32(a, dtype) + numerics.to_float32(b, dtype)
        c[...] = numerics.from_float32(total, dtype)


class FakeTarget:
    name = "fake"
    description = "records calls (tests only)"
    array_kind = "numpy"

    def __init__(self, ok: bool = True):
        self.ok = ok
        self.builds: list[tuple[N.Func, dict[str, Any]]] = []
        self.last: RecordingExecutable | None = None

    def available(self) -> tuple[bool, str]:
        return (self.ok, "" if self.ok else "no fake hardware")

    def build(self, func: N.Func, options: dict[str, Any]) -> RecordingExecutable:
        self.builds.append((func, options))
        self.last = RecordingExecutable(func)
        return self.last


@pytest.fixture
def fake() -> FakeTarget:
    return FakeTarget()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
