"""Packaging: a wheel built from this tree holds tilec (backends in tilec.backends) and its data files.

Builds from a copy of the tree (so nothing is written into the checkout) without build isolation and
without dependencies, which keeps it to seconds; the editable install is what `make venv` uses.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_SUFFIXES = (".j2", ".h", ".hpp", ".cpp", ".lark")


def _copy_tree(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.o", "*.egg-info")
    for name in ("tilec",):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)


def _data_files() -> list[str]:
    found = []
    for pkg in ("tilec",):
        for path in (ROOT / pkg).rglob("*"):
            if path.suffix in DATA_SUFFIXES and "__pycache__" not in path.parts:
                found.append(path.relative_to(ROOT).as_posix())
    return sorted(found)


@pytest.mark.slow
def test_wheel_contents_install_and_entry_points(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _copy_tree(src)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, timeout=120)
    (wheel,) = glob.glob(str(wheels / "tilec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("tilec/__init__.py", "tilec/cli.py", "tilec/runtime/kernel.py", "tilec/backends/__init__.py",
                   *_data_files()):
        assert needed in names, f"{needed} is missing from the wheel"
    assert not any(n.startswith(("tests/", "examples/")) for n in names)
    dist = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(dist).decode()
    assert "tilec = tilec.cli:main" in entry_points
    for line in ("cpu = tilec.backends.llvm.target:CpuTarget", "cuda = tilec.backends.cuda.target:CudaTarget",
                 "ascend = tilec.backends.ascend.target:AscendTarget"):
        assert line in entry_points

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    wheel], check=True, capture_output=True, timeout=120)
    # Run from a folder without the checkout on sys.path: only the installed copy can be found.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    probe = ("import tilec, tilec.backends, tilec.runtime, tilec.passes.manager, tilec.cli;"
             "print(tilec.__file__); print(tilec.backends.__file__); print(tilec.__version__)")
    out = subprocess.run([sys.executable, "-c", probe],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    tilec_file, backends_file, version = out.stdout.split()
    assert tilec_file.startswith(str(target)) and backends_file.startswith(str(target))
    assert version == "0.1.0"
    # No foreign top-level package: `backends` is a name PyPI already has.
    assert not any(n.startswith("backends/") for n in names)
    clash = subprocess.run([sys.executable, "-c", "import backends"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert clash.returncode != 0
