"""Every test here needs the cuda-emu target (g++ and the emulator's isa.h): skipped, with the reason, without."""
import pytest

from tilec import targets


def pytest_collection_modifyitems(config, items):
    ok, why = targets.get("cuda-emu").available()
    if not ok:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=f"cuda-emu unavailable: {why}"))
