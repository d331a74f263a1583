"""Grouped block rasterization (T.use_swizzle, and gemm launches by default) permutes the grid: every
(bx, by) is produced by exactly one block. Checked by evaluating the generated index arithmetic."""
from __future__ import annotations

import re

import pytest

import cuda_support as cs


def _raster_lines(text: str) -> list[str]:
    start = text.index("const int _lin = ")
    block = text[start:].splitlines()[:6]
    return [ln.strip() for ln in block]


@pytest.mark.parametrize("gx,gy", [(8, 8), (5, 19), (1, 3), (16, 9)])
def test_rasterization_is_a_permutation(gx, gy):
    lines = _raster_lines(cs.sources("sm_90a")["gemm_f16"])
    panel = int(re.search(r"_lin / \((\d+) \* gridDim.x\)", lines[1]).group(1))
    seen = set()
    for y in range(gy):
        for x in range(gx):
            lin = y * gx + x
            first = (lin // (panel * gx)) * panel
            rows = min(gy - first, panel)
            inn = lin - first * gx
            seen.add((inn // rows, first + inn % rows))
    assert seen == {(x, y) for x in range(gx) for y in range(gy)}
    assert lines[1] == f"const int _first = (_lin / ({panel} * gridDim.x)) * {panel};"
    assert lines[2] == f"const int _rows = min(static_cast<int>(gridDim.y) - _first, {panel});"
    assert lines[4:6] == ["const int by = _first + _in % _rows;", "const int bx = _in / _rows;"]
