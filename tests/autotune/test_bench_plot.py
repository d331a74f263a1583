"""`tilec bench` (checked timing vs the file's reference, --autotune over configs(), --json, --plot), the
[plot] extra's message, and a DeepSeek kernel's config space."""
from __future__ import annotations

import json
import sys

import pytest

from tilec import cli

KERNEL_FILE = '''
import tilec.language as T


def scale(M, N, block_M=32, dtype="float32", alpha=2.0):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            X_s = T.alloc_shared((block_M, N), dtype)
            T.copy(X[bx * block_M, 0], X_s)  # T.copy guards the ragged edge
            for i, j in T.Parallel(block_M, N):
                X_s[i, j] = X_s[i, j] * alpha
            T.copy(X_s, Y[bx * block_M, 0])
    return main


KERNEL = scale
DEFAULTS = dict(M=64, N=16)
RAGGED = dict(M=37, N=16)
OUT_IDX = [1]
TOLERANCE = 1e-6


def configs(M, N, **params):
    return [dict(block_M=16), dict(block_M=32), dict(block_M=32, bogus=1)]


def reference(X, **params):
    return X * REF_FACTOR


REF_FACTOR = 2.0
'''


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))


def write(tmp_path, factor=2.0):
    path = tmp_path / "k.py"
    path.write_text(KERNEL_FILE.replace("REF_FACTOR = 2.0", f"REF_FACTOR = {factor}"))
    return str(path)


def test_bench_autotune_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    f, png, js = write(tmp_path), tmp_path / "b.png", tmp_path / "b.json"
    code = cli.main(["bench", f, "--target", "cpu", "--autotune", "--plot", str(png), "--json", str(js),
                     "--warmup", "1", "--rep", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "k default (M=64,N=16) on cpu: tilec" in out and "k ragged (M=37,N=16)" in out and "torch/tilec" in out
    assert "winner {block_M=" in out and "skipped {block_M=32, bogus=1}: compile failed: TypeError" in out
    rows = json.loads(js.read_text())["rows"]
    assert [r["ok"] for r in rows] == [True, True] and rows[0]["error"] <= 1e-6
    assert set(rows[0]["times"]) == {"tilec", "torch", "tilec (tuned)"}
    assert all(v > 0 for v in rows[1]["times"].values())
    assert rows[0]["autotune"]["config"] in ({"block_M": 16}, {"block_M": 32})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_bench_wrong_reference_fails(tmp_path, capsys):
    code = cli.main(["bench", write(tmp_path, factor=3.0), "--target", "cpu", "--warmup", "1", "--rep", "2"])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out


def test_plot_without_matplotlib_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    code = cli.main(["bench", write(tmp_path), "--target", "cpu", "--plot", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install tilec[plot]" in err and not (tmp_path / "x.png").exists()


def test_deepseek_hadamard_space_tunes_on_cpu():
    from tilec.autotuner import AutoTuner
    from tilec.models.deepseek_v32 import tuning
    from tilec.models.deepseek_v32.kernels import hadamard
    res = (AutoTuner.from_kernel(hadamard.hadamard_kernel, tuning.hadamard_configs).set_kernel_parameters((32,))
           .set_compile_args(out_idx=[1], target="cpu").set_profile_args(dims={"M": 64}).run(warmup=1, rep=3))
    assert res.config in tuning.hadamard_configs(32)
    assert all(t.latency is not None and t.error < 1e-2 for t in res.trials), res.report()
    assert tuning.moe_up_configs(8, 256, 128, 4, 3, True) == [dict(block_N=32, block_K=128),
                                                              dict(block_N=64, block_K=128),
                                                              dict(block_N=128, block_K=128)]
