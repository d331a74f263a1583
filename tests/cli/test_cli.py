"""The `tilec` command end to end: ir, compile, run, targets; exit codes; messages; --help.

Most tests call ``tilec.cli.main`` in-process (fast); a few run the installed console script and
``python -m tilec.cli`` in a subprocess to check the real entry points, stdin and exit codes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tilec import cli

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]
SCALE, BAD, WRONG, DYN = (str(DATA / n) for n in ("scale.py", "bad_name.py", "wrong_ref.py", "dyn.py"))


def tilec(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ir_prints_the_kernel(capsys):
    code, out, err = tilec(capsys, "ir", SCALE)
    assert code == 0, err
    assert out.startswith("kernel main(X: global float32[100, 16], Y: global float32[100, 16]) {")
    assert "scale.py:7:5" in out.splitlines()[0]
    assert "copy X[bx * 32 +: 32, 0 +: 16] -> X_s" in out


def test_ir_args_override_defaults(capsys):
    code, out, _ = tilec(capsys, "ir", SCALE, "--arg", "M=64", "--arg", "dtype=bfloat16", "--no-locs")
    assert code == 0
    assert out.splitlines()[0] == "kernel main(X: global bfloat16[64, 16], Y: global bfloat16[64, 16]) {"
    assert "#" not in out


def test_ir_text_round_trips_through_a_file(capsys, tmp_path):
    code, first, _ = tilec(capsys, "ir", SCALE)
    tir = tmp_path / "s.tir"
    tir.write_text(first)
    code2, second, err = tilec(capsys, "ir", str(tir))
    assert code == code2 == 0, err
    assert second == first


def test_module_level_kernel_and_kernel_flag(capsys):
    code, out, err = tilec(capsys, "ir", DYN)
    assert code == 0, err
    assert out.startswith("kernel add_one(X: global float32[M, 8], Y: global float32[M, 8])")
    code, out2, _ = tilec(capsys, "ir", DYN, "--kernel", "add_one")
    assert out2 == out
    code, _, err = tilec(capsys, "ir", DYN, "--kernel", "nosuch")
    assert code == 2 and "--kernel nosuch: " in err and "has no attribute 'nosuch'" in err


@pytest.mark.parametrize("argv, message", [
    (["ir", "no/such/file.py"], "error: FILE 'no/such/file.py': no such file"),
    (["ir", SCALE, "--arg", "nosuch=1"], "--arg nosuch: the kernel factory scale in"),
    (["ir", SCALE, "--arg", "M"], "--arg 'M': expected NAME=VALUE"),
    (["ir", SCALE, "--arg", "M=1 2"], "the value '1 2' is neither a Python literal nor a plain word"),
    (["ir", DYN, "--arg", "M=3"], "--arg applies to a kernel factory, but add_one in"),
    (["ir", SCALE, "--arg", "M=abc"], "note: while building scale(M='abc', N=16)"),   # a word is a string
    (["run", SCALE, "--target", "nosuch"], "unknown target 'nosuch' (known: interp"),
    (["run", SCALE, "--target", "interp", "--out-idx", "x"], "--out-idx 'x': expected parameter indices"),
    (["compile", SCALE, "--target", "interp", "--out-idx", "5", "-o", "unused"], "out_idx 5 is out of range"),
])
def test_bad_arguments_name_the_argument(capsys, argv, message):
    code, _, err = tilec(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_kernel_mistakes_print_location_source_and_caret(capsys):
    code, out, err = tilec(capsys, "ir", BAD)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert "bad_name.py:10:31: error: " in lines[0] and "'undefined_scale'" in lines[0]
    assert lines[1].strip() == "Y[i] = X[i] * undefined_scale"
    assert lines[2].index("^") == lines[1].index("undefined_scale")
    assert "Traceback" not in err


def test_run_check_passes_on_interp(capsys):
    code, out, err = tilec(capsys, "run", SCALE, "--target", "interp", "--check", "--seed", "3")
    assert code == 0, err
    assert "scale(M=100, N=16) on interp" in out
    assert "Y: relative error 0.000e+00 (tolerance 1e-06) ok" in out


def test_run_ragged_size_and_make_inputs(capsys):
    code, out, err = tilec(capsys, "run", SCALE, "--target", "interp", "--check", "--arg", "M=70")
    assert code == 0 and "ok" in out, err
    code, out, err = tilec(capsys, "run", DYN, "--target", "interp", "--check")
    assert code == 0 and "Y: relative error 0.000e+00" in out, err


def test_run_check_over_tolerance_exits_1(capsys):
    code, out, _ = tilec(capsys, "run", WRONG, "--target", "interp", "--check")
    assert code == 1
    assert "FAILED" in out


def test_run_without_reference_cannot_check(capsys, tmp_path):
    src = tmp_path / "noref.py"
    src.write_text(Path(SCALE).read_text().replace("def reference(", "def _reference("))
    code, _, err = tilec(capsys, "run", str(src), "--target", "interp", "--check")
    assert code == 2 and "has no reference() to compare against" in err
    code, out, _ = tilec(capsys, "run", str(src), "--target", "interp")
    assert code == 0 and "on interp" in out


def test_run_many_files_prints_a_table_and_the_worst_status(capsys):
    code, out, err = tilec(capsys, "run", SCALE, WRONG, BAD, "--target", "interp", "--check")
    assert code == 2  # an error beats a failed check
    table = out[out.index("example"):].splitlines()
    assert table[0].split() == ["example", "target", "compile", "run", "rel.err", "result"]
    results = {Path(r.split()[0]).name: r.split()[-1] for r in table[2:]}
    assert results == {"scale.py": "ok", "wrong_ref.py": "FAILED", "bad_name.py": "error"}
    assert "undefined_scale" in err


def test_run_a_tir_file_sizes_symbols_with_arg(capsys, tmp_path):
    _, text, _ = tilec(capsys, "ir", DYN)
    tir = tmp_path / "dyn.tir"
    tir.write_text(text)
    code, out, err = tilec(capsys, "run", str(tir), "--target", "interp", "--arg", "M=20")
    assert code == 0 and "add_one(M=20) on interp" in out, err
    code, _, err = tilec(capsys, "run", str(tir), "--target", "interp")
    assert code == 2 and "symbolic dimension(s) M: give the size with --arg M=N" in err


def test_compile_writes_a_folder_atomically(capsys, tmp_path):
    out_dir = tmp_path / "out" / "scale"
    code, out, err = tilec(capsys, "compile", SCALE, "--target", "interp", "-o", str(out_dir))
    assert code == 0, err
    man = json.loads((out_dir / "manifest.json").read_text())
    assert man["kernel"] == "main" and man["target"] == "interp" and man["out_idx"] == [1]
    assert man["params"][0] == {"name": "X", "dtype": "float32", "shape": [100, 16]}
    assert man["factory_args"] == {"M": 100, "N": 16}
    assert set(man["files"]) == {"ir", "source"}
    for f in man["files"].values():
        assert (out_dir / f).is_file()
    _, ir_text, _ = tilec(capsys, "ir", SCALE)
    assert (out_dir / "main.tir").read_text() == ir_text
    # A second compile replaces the previous output; nothing is left beside it.
    code, _, _ = tilec(capsys, "compile", SCALE, "--target", "interp", "--arg", "M=64", "-o", str(out_dir))
    assert code == 0
    assert json.loads((out_dir / "manifest.json").read_text())["params"][0]["shape"] == [64, 16]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scale"]


def test_compile_refuses_to_replace_a_foreign_folder(capsys, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    code, _, err = tilec(capsys, "compile", SCALE, "--target", "interp", "-o", str(tmp_path))
    assert code == 2 and "refusing to replace it" in err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_compile_cpu_writes_source_and_binary(capsys, tmp_path):
    _, out, _ = tilec(capsys, "targets")
    if "cpu     yes" not in out:
        pytest.skip("the cpu target is not available here")
    code, _, err = tilec(capsys, "compile", SCALE, "--target", "cpu", "-o", str(tmp_path / "o"))
    assert code == 0, err
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert set(man["files"]) == {"ir", "source", "binary"}
    assert (tmp_path / "o" / man["files"]["binary"]).stat().st_size > 0


def test_targets_lists_interp_first(capsys):
    code, out, _ = tilec(capsys, "targets")
    assert code == 0
    rows = out.splitlines()[2:]
    assert rows[0].split()[:2] == ["interp", "yes"]
    assert {r.split()[0] for r in rows} >= {"interp", "cpu", "cuda", "ascend"}


@pytest.mark.parametrize("command", ["ir", "compile", "run", "targets"])
def test_help_teaches_by_example(capsys, command):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"tilec {command}" in out


def _console_script() -> str:
    found = Path(sys.executable).parent / "tilec"
    return str(found) if found.exists() else (shutil.which("tilec") or "")


def test_console_script_and_stdin(tmp_path):
    exe = _console_script()
    assert exe, "the tilec console script is not installed (pip install -e .)"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.run([exe, "ir", SCALE], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([exe, "ir", "-"], input=first.stdout, capture_output=True, text=True, env=env,
                           timeout=120)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    bad = subprocess.run([sys.executable, "-m", "tilec.cli", "run", BAD, "--target", "interp"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "undefined_scale" in bad.stderr and "Traceback" not in bad.stderr


def test_example_gemm_ir_round_trips(capsys, tmp_path):
    """`tilec ir examples/gemm.py > g.tir && tilec ir g.tir` prints the same text twice."""
    code, first, err = tilec(capsys, "ir", str(ROOT / "examples" / "gemm.py"))
    assert code == 0, err
    (tmp_path / "g.tir").write_text(first)
    code, second, err = tilec(capsys, "ir", str(tmp_path / "g.tir"))
    assert code == 0, err
    assert second == first and "gemm A_shared, B_shared -> C_local" in first


def test_print_after_all_says_when_a_target_runs_no_pipeline(capsys):
    code, out, err = tilec(capsys, "ir", SCALE, "--target", "interp", "--print-after-all")
    assert code == 0 and out.startswith("kernel main(")
    assert "note: target 'interp' ran no pass pipeline" in err


def test_a_tir_file_with_several_kernels(capsys, tmp_path):
    _, gemm, _ = tilec(capsys, "ir", str(ROOT / "examples" / "gemm.py"))
    _, dyn, _ = tilec(capsys, "ir", DYN)
    two = tmp_path / "two.tir"
    two.write_text(gemm + "\n" + dyn)
    code, out, err = tilec(capsys, "ir", str(two))
    assert code == 0 and out == gemm + "\n" + dyn, err
    code, _, err = tilec(capsys, "run", str(two), "--target", "interp")
    assert code == 2 and "holds several kernels (main, add_one); choose one with --kernel NAME" in err
    code, out, err = tilec(capsys, "run", str(two), "--kernel", "add_one", "--arg", "M=5", "--target", "interp")
    assert code == 0 and "add_one(M=5) on interp" in out, err


def test_passes_and_semantic_check_from_the_command_line(capsys):
    """--passes runs the tile passes before the target; --check-semantics interprets around each one."""
    softmax = str(ROOT / "examples" / "softmax.py")
    code, out, err = tilec(capsys, "run", softmax, "--target", "interp", "--passes", "default",
                           "--check-semantics", "--check", "--print-after", "fuse")
    assert code == 0, err
    assert "IR after pass 'fuse'" in err and "ok" in out
    code, _, err = tilec(capsys, "run", softmax, "--target", "interp", "--passes", "simplify,bogus")
    assert code == 2 and "unknown pass 'bogus'" in err
    code, _, err = tilec(capsys, "run", softmax, "--target", "interp", "--check-semantics")
    assert code == 2 and "--check-semantics needs --passes" in err
