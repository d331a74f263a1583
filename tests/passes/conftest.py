"""Pass-test options: ``--update-expected`` rewrites the ``# EXPECTED`` sections of the ``.tir`` case files
from the passes' current output (and their ``# REPORT:`` lines), so that a human reviews the change as a
diff. ``TILEC_UPDATE_EXPECTED=1`` does the same when pytest is started from a directory that does not
load this file first (pytest reads options only from the first conftest files it sees)."""
from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-expected", action="store_true", default=False,
                     help="rewrite the EXPECTED sections of tests/passes/*.tir from the passes' output")


@pytest.fixture
def update_expected(request: pytest.FixtureRequest) -> bool:
    try:
        flag = request.config.getoption("--update-expected")
    except ValueError:
        flag = False
    return bool(flag) or os.environ.get("TILEC_UPDATE_EXPECTED", "") not in ("", "0")
