"""CPU backend tests: a private compile cache per test session, and the test helpers on sys.path."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True, scope="session")
def _cpu_cache_dir(tmp_path_factory):
    old = os.environ.get("TILEC_CACHE_DIR")
    os.environ["TILEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("tilec-cpu-cache"))
    yield
    if old is None:
        os.environ.pop("TILEC_CACHE_DIR", None)
    else:
        os.environ["TILEC_CACHE_DIR"] = old
