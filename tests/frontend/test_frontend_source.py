"""Source locations: the same kernel text in two files keeps each file's own locations (code objects
compare equal by value, file names aside, so a cache keyed by the code object alone mixed them up)."""
from __future__ import annotations

import importlib.util

from tilec.frontend.source import parse_function

KERNEL = '''
def body(x):
    return x + 1
'''


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.body


def test_identical_functions_in_two_files_keep_their_own_file(tmp_path):
    (tmp_path / "first.py").write_text(KERNEL)
    (tmp_path / "second.py").write_text(KERNEL)
    first, second = _load(tmp_path / "first.py", "first_src"), _load(tmp_path / "second.py", "second_src")
    assert first.__code__ == second.__code__          # the premise: equal by value
    assert parse_function(first, "kernel").file.endswith("first.py")
    assert parse_function(second, "kernel").file.endswith("second.py")
