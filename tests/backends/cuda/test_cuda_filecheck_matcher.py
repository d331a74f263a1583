"""The FileCheck subset used by the CUDA codegen tests: it must accept what matches and reject the rest."""
from __future__ import annotations

import pytest

import cuda_support as cs

TEXT = """\
kernel a
  x = 1
  y = 2
kernel b
  x = 3
  z = 4
"""


def test_check_next_not_label_accept():
    cs.filecheck(TEXT, """
    CHECK-LABEL: kernel a
    CHECK: x = 1
    CHECK-NEXT: y = 2
    CHECK-NOT: z =
    CHECK-LABEL: kernel b
    CHECK: x = {{[0-9]}}
    CHECK-NEXT: z = 4
    """)


@pytest.mark.parametrize("spec", [
    "CHECK: w = 1",                                          # absent
    "CHECK: y = 2\nCHECK: x = 1",                            # out of order
    "CHECK: x = 1\nCHECK-NEXT: kernel b",                    # not on the next line
    "CHECK-LABEL: kernel a\nCHECK-NOT: z =\nCHECK-LABEL: kernel b",  # fine: z is after label b
    "CHECK-LABEL: kernel a\nCHECK: z = 4\nCHECK-LABEL: kernel b",  # confined to its block
    "CHECK: kernel a\nCHECK-NOT: x = 3\nCHECK: z = 4",       # forbidden between two matches
    "CHECK-LABEL: kernel c",                                 # missing label
])
def test_rejects(spec):
    if "CHECK-NOT: z =\nCHECK-LABEL" in spec:
        cs.filecheck(TEXT, spec)
        return
    with pytest.raises(AssertionError):
        cs.filecheck(TEXT, spec)


def test_spec_without_directives_is_an_error():
    with pytest.raises(ValueError):
        cs.filecheck(TEXT, "nothing here")
