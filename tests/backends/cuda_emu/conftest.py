"""Every test here needs the cuda-emu target (g++ and the emulator's isa.h): skipped, with the reason, without.

The race and bounds checker (the target's ``racecheck`` option) is on for every build these tests make
through the target without saying otherwise: each module runs with ``TILEC_EMU_RACECHECK=1``, the
target's default for the option (docs/backends/cuda.md, "Race and bounds checker"). Libraries the tests
build directly (``build.load``) choose their flags themselves.
"""
import os

import pytest

from tilec import targets
from tilec.backends.cuda.emu.target import RACECHECK_ENV


def pytest_collection_modifyitems(config, items):
    ok, why = targets.get("cuda-emu").available()
    if not ok:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=f"cuda-emu unavailable: {why}"))


@pytest.fixture(scope="module", autouse=True)
def racecheck_on():
    """Module-scoped (so module fixtures that prebuild see it too), restored afterwards: tests outside this
    folder keep the target's plain default."""
    old = os.environ.get(RACECHECK_ENV)
    os.environ[RACECHECK_ENV] = os.environ.get("TILEC_TEST_RACECHECK", "1")
    yield
    if old is None:
        del os.environ[RACECHECK_ENV]
    else:
        os.environ[RACECHECK_ENV] = old
