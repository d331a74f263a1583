"""Lint: `ruff check` over the whole tree reports nothing, under the [tool.ruff] config in pyproject.toml.

Runs the ruff the test extras pin (the binary next to the running interpreter, else `python -m ruff`)
with its cache off, so the check writes nothing into the checkout; skipped when ruff is not installed.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff_command() -> list[str] | None:
    for name in ("ruff", "ruff.exe"):
        binary = Path(sys.executable).parent / name
        if binary.is_file():
            return [str(binary)]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    return None


def test_ruff_check_is_clean() -> None:
    ruff = _ruff_command()
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    proc = subprocess.run([*ruff, "check", "--no-cache", "--output-format", "concise", str(ROOT)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        findings = (proc.stdout + proc.stderr).strip()
        pytest.fail(f"ruff check reports (exit {proc.returncode}):\n{findings}", pytrace=False)
