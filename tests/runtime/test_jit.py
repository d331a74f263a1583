"""@tilec.jit: compile on call, memoized on the factory's arguments."""
from __future__ import annotations

import numpy as np

import tilec

from .conftest import FakeTarget, elementwise_add


def test_jit_memoizes_on_arguments():
    fake = FakeTarget()
    calls = []

    @tilec.jit(out_idx=[2], target=fake, pass_configs={"tl.disable_tma_lower": True})
    def make(rows, cols=4, dtype="float32"):
        calls.append((rows, cols, dtype))
        return elementwise_add(dtype, rows=rows, cols=cols)

    k1 = make(3)
    assert make(3) is k1
    assert make(3, cols=4) is not k1  # keyword and positional spellings are different keys
    k2 = make(5)
    assert k2 is not k1 and make(5) is k2
    assert make(3, 4, "float16") is not k1
    assert calls == [(3, 4, "float32"), (3, 4, "float32"), (5, 4, "float32"), (3, 4, "float16")]
    assert len(fake.builds) == 4
    assert fake.builds[0][1]["pass_configs"] == {"tl.disable_tma_lower": True}
    a = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(k1(a, a), 2 * a)
    assert make.__name__ == "make"


def test_jit_unhashable_and_numeric_arguments():
    fake = FakeTarget()
    seen = []

    @tilec.jit(out_idx=-1, target=fake)
    def make(rows, shape=(4,), extra=None):
        seen.append(rows)
        return elementwise_add(rows=int(rows), cols=shape[0])

    k = make(2, [4], extra={"a": [1]})
    assert make(2, [4], extra={"a": [1]}) is k
    assert make(2, (4,), extra={"a": [1]}) is not k  # a list and a tuple are different arguments
    assert make(2.0, [4], extra={"a": [1]}) is not k  # 2 and 2.0 are kept apart
    assert len(seen) == 3


def test_jit_without_parentheses_and_on_a_kernel():
    @tilec.jit
    def make(rows):
        return elementwise_add(rows=rows)
    assert make.__wrapped__ is not None
    fake = FakeTarget()
    k = tilec.jit(elementwise_add(rows=2), out_idx=[2], target=fake)
    assert isinstance(k, tilec.JITKernel) and len(fake.builds) == 1
