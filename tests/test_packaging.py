"""Packaging: a wheel built from this tree holds tilec (backends in tilec.backends) and its data files,
carries the metadata a user expects, and installs into a fresh venv without torch where compile + call on
numpy works and `tilec run` either runs or names `pip install tilec[torch]`.

Builds once per module from a copy of the tree (so nothing is written into the checkout) without build
isolation and without dependencies, which keeps it to seconds; the editable install is what `make venv`
uses. The torch-less venv gets the wheel from pip and tilec's core dependencies (numpy, lark, llvmlite,
jinja2 + markupsafe, ml_dtypes, filelock, tqdm: the versions this suite tests) through a .pth file naming
a folder of links to them,
so the test needs no network and no index, and torch is absent by construction.
"""
from __future__ import annotations

import glob
import importlib.util
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
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, dst / name)


def _data_files() -> list[str]:
    found = []
    for pkg in ("tilec",):
        for path in (ROOT / pkg).rglob("*"):
            if path.suffix in DATA_SUFFIXES and "__pycache__" not in path.parts:
                found.append(path.relative_to(ROOT).as_posix())
    return sorted(found)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    _copy_tree(src)
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, timeout=120)
    (built,) = glob.glob(str(wheels / "tilec-*.whl"))
    return built


@pytest.mark.slow
def test_wheel_contents_install_and_entry_points(wheel: str, tmp_path: Path) -> None:
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


def test_wheel_metadata(wheel: str) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Author: tilec developers" in meta
    assert "Requires-Python: >=3.10" in meta
    assert "Project-URL: Homepage, https://github.com/tilec-dev/tilec" in meta
    assert "Classifier: Topic :: Software Development :: Compilers" in meta
    requires = [line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Requires-Dist: ")]
    core = [r for r in requires if "extra ==" not in r]
    # Every dependency has a lower bound, torch is not a core one, and each extra exists.
    assert core and all(">=" in r or "==" in r for r in requires), requires
    assert not any(r.startswith("torch") for r in core), core
    assert any(r.startswith("llvmlite>=0.45") for r in core), core
    for extra in ("torch", "model", "plot", "test"):
        assert f"Provides-Extra: {extra}" in meta


# Core dependencies the torch-less venv links to (import name -> also the folders shipped beside it).
_CORE = ("numpy", "lark", "llvmlite", "jinja2", "markupsafe", "ml_dtypes", "filelock", "tqdm")


def _link_core_deps(dst: Path) -> None:
    dst.mkdir()
    for name in _CORE:
        spec = importlib.util.find_spec(name)
        (folder,) = spec.submodule_search_locations
        folder = Path(folder)
        os.symlink(folder, dst / name)
        for extra in folder.parent.glob(f"{name}.libs"):   # numpy's bundled OpenBLAS
            os.symlink(extra, dst / extra.name)


@pytest.fixture(scope="module")
def bare_venv(wheel: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv without torch: the wheel installed by pip (--no-deps), core deps linked in."""
    tmp = tmp_path_factory.mktemp("bare")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                    "-q", wheel], check=True, capture_output=True, timeout=120)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, timeout=60).stdout.strip())
    _link_core_deps(tmp / "deps")
    (site / "core-deps.pth").write_text(str(tmp / "deps") + "\n")
    return venv


def _bare_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TILEC_CACHE_DIR"] = str(tmp / "cache")
    return env


_PROBE = """
import numpy as np, tilec, tilec.backends, tilec.language as T
def add(N, block=128):
    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32"), C: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, block), threads=128) as bx:
            for i in T.Parallel(block):
                C[bx * block + i] = A[bx * block + i] * 2.0 + B[bx * block + i]
    return main
kernel = tilec.compile(add(1024), out_idx=[2], target="cpu")
rng = np.random.default_rng(7)
a, b = rng.standard_normal(1024).astype(np.float32), rng.standard_normal(1024).astype(np.float32)
c = kernel(a, b)
ref = a * 2.0 + b
print(type(c).__name__, float(np.linalg.norm(c - ref) / np.linalg.norm(ref)))
print(tilec.__file__)
print(tilec.backends.__file__)
"""


@pytest.mark.slow
def test_bare_venv_compiles_and_runs_on_cpu_without_torch(bare_venv: Path, tmp_path: Path) -> None:
    py = str(bare_venv / "bin" / "python")
    env = _bare_env(tmp_path)
    no_torch = subprocess.run([py, "-c", "import torch"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    (tmp_path / "probe.py").write_text(_PROBE)   # kernels are read from their source file
    out = subprocess.run([py, "probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kind, err, tilec_file, backends_file = out.stdout.split()
    assert kind == "ndarray" and float(err) < 1e-6, out.stdout
    assert tilec_file.startswith(str(bare_venv)) and backends_file.startswith(str(bare_venv))
    clash = subprocess.run([py, "-c", "import backends"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
    assert clash.returncode != 0 and "No module named 'backends'" in clash.stderr


@pytest.mark.slow
def test_bare_venv_tilec_run_without_torch(bare_venv: Path, tmp_path: Path) -> None:
    tilec = str(bare_venv / "bin" / "tilec")
    env = _bare_env(tmp_path)
    for name in ("softmax.py", "gemm.py"):    # float32 and float16 inputs, drawn with numpy here
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    ran = subprocess.run([tilec, "run", "softmax.py", "gemm.py", "--target", "cpu"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "softmax.py: softmax(" in ran.stdout and "gemm.py: gemm(" in ran.stdout, ran.stdout
    # --check needs the torch reference(): a clear error naming the extra, never a traceback.
    checked = subprocess.run([tilec, "run", "softmax.py", "--target", "cpu", "--check"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 2, (checked.stdout, checked.stderr)
    assert "pip install tilec[torch]" in checked.stderr and "Traceback" not in checked.stderr
    model = subprocess.run([tilec, "model", "init", "--config", "tiny", "-o", "tiny.safetensors"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert model.returncode == 2, (model.stdout, model.stderr)
    assert "pip install tilec[model]" in model.stderr and "Traceback" not in model.stderr


def test_missing_extra_names_the_pip_install() -> None:
    from tilec.errors import TilecError, missing_extra, require
    assert "pip install tilec[torch]" in str(missing_extra("torch", "x"))
    assert "pip install tilec[model]" in str(missing_extra("tokenizers", "x"))
    assert "pip install tilec[plot]" in str(missing_extra("matplotlib", "x"))
    assert require("numpy", "x").__name__ == "numpy"
    with pytest.raises(TilecError, match=r"'no_such_module_17' package, which is not installed"):
        require("no_such_module_17", "x")


def test_fuzz_save_defaults_to_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tilec.fuzz import __main__ as fuzz_main
    seen = {}

    class _Summary:
        findings: list = []

        def text(self) -> str:
            return "0 findings"

    def fake_fuzz(*args, save_dir=None, **kwargs):
        seen["save_dir"] = save_dir
        return _Summary()

    monkeypatch.setattr(fuzz_main, "fuzz", fake_fuzz)
    monkeypatch.chdir(tmp_path)
    assert fuzz_main.main(["--n", "0", "--save", "--quiet"]) == 0
    assert seen["save_dir"] == tmp_path
    assert fuzz_main.main(["--n", "0", "--save-dir", "elsewhere", "--quiet"]) == 0
    assert seen["save_dir"] == Path("elsewhere")
    assert fuzz_main.main(["--n", "0", "--quiet"]) == 0
    assert seen["save_dir"] is None
    assert fuzz_main.save_directory(True, None) == Path.cwd()
