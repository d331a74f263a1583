"""The compile cache (tilec/runtime/cache.py): size parsing, LRU eviction, locking, corrupt entries, the
``tilec cache`` commands, and 4 processes compiling into one cache folder at once."""
from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from tilec import cli
from tilec.errors import TilecError
from tilec.runtime import cache

from .conftest import elementwise_add


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TILEC_CACHE_MAX", raising=False)
    monkeypatch.delenv("TILEC_NO_CACHE", raising=False)
    return tmp_path / "cache"


def test_parse_size():
    assert cache.parse_size("500M") == 500 * 2**20
    assert cache.parse_size("2G") == cache.parse_size("2GiB") == cache.parse_size("2gb") == 2 * 2**30
    assert cache.parse_size("1.5K") == 1536 and cache.parse_size("123456") == 123456
    assert cache.parse_size("0") is None and cache.parse_size("none") is None
    for bad in ("x", "-1", "2Q", "1e9", ""):
        with pytest.raises(TilecError, match="TILEC_CACHE_MAX"):
            cache.parse_size(bad)


def test_max_size_env(root, monkeypatch):
    assert cache.max_size() == 2 * 2**30
    monkeypatch.setenv("TILEC_CACHE_MAX", "300")
    assert cache.max_size() == 300
    monkeypatch.setenv("TILEC_CACHE_MAX", "lots")
    with pytest.raises(TilecError, match="'lots' is not a size"):
        cache.max_size()


def _builder(data: bytes, calls: list):
    def build(tmp: Path) -> None:
        calls.append(data)
        (tmp / name_of[data]).write_bytes(data)
    return build


name_of: dict[bytes, str] = {}


def _entry(name: str, fill: bytes, calls: list) -> Path:
    """A cached_build of a 100-byte file ``name`` in backend folder 'test'."""
    path = cache.cache_dir("test") / name
    data = fill * 100
    name_of[data] = name
    return cache.cached_build(path, _builder(data, calls))


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_lru_eviction_touches_on_hit(root, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_MAX", "250")
    calls: list = []
    a = _entry("a" * 32 + ".so", b"a", calls)
    _age(a, 100)
    b = _entry("b" * 32 + ".so", b"b", calls)
    _age(b, 50)
    assert _entry("a" * 32 + ".so", b"a", calls) == a and len(calls) == 2   # a hit: touched, not rebuilt
    _entry("c" * 32 + ".so", b"c", calls)                                    # 300 bytes > 250: evict the LRU
    assert a.exists() and not b.exists()
    assert cache.info().size == 200 and cache.info().entries == 2


def test_files_of_one_key_are_one_entry_and_the_new_entry_stays(root, monkeypatch):
    d = cache.cache_dir("cpu")
    key = "0123456789abcdef" * 2
    for name in (f"{key}.json", f"{key}.ll", f"{key}-{'f' * 16}.so"):
        (d / name).write_bytes(b"x" * 100)
        _age(d / name, 10)
    (d / "junk.lock").write_bytes(b"")
    (d / "tmpabc").mkdir()
    es = cache.entries()
    assert len(es) == 1 and es[0].size == 300 and len(es[0].files) == 3
    monkeypatch.setenv("TILEC_CACHE_MAX", "50")
    calls: list = []
    big = _entry("9" * 32 + ".so", b"9", calls)     # itself over the bound: kept, everything older goes
    assert big.exists() and not any(d.glob(f"{key}*")) and (d / "junk.lock").exists()


def test_empty_entry_is_rebuilt(root):
    calls: list = []
    p = _entry("e" * 32 + ".so", b"e", calls)
    p.write_bytes(b"")                      # a truncated write
    assert _entry("e" * 32 + ".so", b"e", calls).read_bytes() == b"e" * 100 and len(calls) == 2


def _add_kernel(rows: int, cols: int):
    import tilec
    return tilec.compile(elementwise_add("float32", rows=rows, cols=cols), out_idx=[2], target="cpu",
                         poison_outputs=True)


def _check(kernel, rows: int, cols: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, cols)).astype(np.float32)
    b = rng.standard_normal((rows, cols)).astype(np.float32)
    out = kernel(a, b)
    ref = a + b
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref)) if np.isfinite(out).all() else float("inf")


def test_corrupt_library_entry_is_rebuilt(root):
    pytest.importorskip("llvmlite")
    assert _check(_add_kernel(3, 8), 3, 8, 0) < 1e-6
    libs = list((root / "cpu").glob("*.so"))
    assert len(libs) == 1
    good = libs[0].read_bytes()
    # A truncated library (its sha256 no longer matches), written as a new file: this process has the
    # old one mapped, and truncating a mapped library in place kills the process (SIGBUS).
    bad = libs[0].with_name("bad.tmp")
    bad.write_bytes(good[: len(good) // 2])
    os.replace(bad, libs[0])
    assert _check(_add_kernel(3, 8), 3, 8, 1) < 1e-6
    assert libs[0].read_bytes() == good


SHAPES = [(2, 4), (3, 8), (4, 16), (5, 4), (6, 8), (7, 16)]


def _worker(args) -> list[str]:
    index, cache_dir, limit = args
    os.environ["TILEC_CACHE_DIR"] = cache_dir
    os.environ["TILEC_CACHE_MAX"] = str(limit)
    errors = []
    # Every process compiles the shared shapes plus two of its own, in a different order.
    shapes = SHAPES[:2] + SHAPES[2 + index:3 + index] + SHAPES[:2][::-1]
    for n, (rows, cols) in enumerate(shapes):
        err = _check(_add_kernel(rows, cols), rows, cols, seed=index * 10 + n)
        if not err < 1e-6:
            errors.append(f"process {index}: {rows}x{cols} relative error {err}")
    return errors


def test_four_processes_share_one_bounded_cache(root, tmp_path):
    pytest.importorskip("llvmlite")
    # Size one entry first, then bound the cache to about three of them.
    probe = tmp_path / "probe"
    os.environ["TILEC_CACHE_DIR"] = str(probe)
    _check(_add_kernel(2, 4), 2, 4, 0)
    one = sum(e.size for e in cache.entries(probe))
    os.environ["TILEC_CACHE_DIR"] = str(root)
    limit = int(one * 3.5)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_worker, [(i, str(root), limit) for i in range(4)])
    assert [e for r in results for e in r] == []
    os.environ["TILEC_CACHE_MAX"] = str(limit)
    try:
        info = cache.info()
        assert 0 < info.size <= limit and 1 <= info.entries <= 3   # 6 kernels were built: some evicted
        # No torn files: every remaining entry loads and computes correctly.
        for rows, cols in SHAPES[:4]:
            assert _check(_add_kernel(rows, cols), rows, cols, 99) < 1e-6
    finally:
        del os.environ["TILEC_CACHE_MAX"]
    assert not list(root.rglob("*.tmp"))


def test_cli_cache_info_and_clear(root, capsys, monkeypatch):
    calls: list = []
    _entry("a" * 32 + ".so", b"a", calls)
    _entry("b" * 32 + ".so", b"b", calls)
    monkeypatch.setenv("TILEC_CACHE_MAX", "500M")
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"dir:     {root}" in out and "entries: 2" in out and "(200 bytes)" in out
    assert "limit:   500.0M" in out and "test" in out
    assert cli.main(["cache", "clear", "--backend", "other"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out and cache.info().entries == 0
    monkeypatch.setenv("TILEC_CACHE_MAX", "2X")
    assert cli.main(["cache", "info"]) == 2
    assert "TILEC_CACHE_MAX='2X' is not a size" in capsys.readouterr().err


def test_open_library_rebuilds_an_entry_evicted_before_dlopen(root):
    pytest.importorskip("llvmlite")
    _check(_add_kernel(2, 4), 2, 4, 0)
    lib = next((root / "cpu").glob("*.so"))
    good = lib.read_bytes()
    lib.unlink()                      # another process evicted it after our lookup
    rebuilt: list = []

    def rebuild() -> Path:
        rebuilt.append(1)
        lib.write_bytes(good)
        return lib

    cdll, path = cache.open_library(rebuild)
    assert rebuilt == [1] and path == lib and cdll is not None
    with pytest.raises(TilecError, match="evicted by other processes 3 times.*TILEC_CACHE_MAX"):
        cache.open_library(lambda: root / "gone.so")


@pytest.mark.parametrize("target", ["cpu", "ascend", "cuda-emu"])
def test_entry_evicted_between_lookup_and_load_is_rebuilt(root, monkeypatch, target):
    """Every cached library is opened through ``open_library``: the entry is evicted (as another process's
    write would) just before it opens, and the kernel still builds, from a rebuilt entry, and computes."""
    import tilec
    from tilec import targets
    ok, why = targets.get(target).available()
    if not ok:
        pytest.skip(why)
    kernel = elementwise_add("float32", rows=4, cols=16)
    tilec.compile(kernel, out_idx=[2], target=target)          # the entry exists: the next build is a hit
    real, evicted = cache.open_library, []

    def evict_then_open(build):
        def build_then_evict():
            path = build()
            if not evicted:                                       # once, right after the lookup
                assert cache.evict(limit=0), "nothing to evict"  # the whole cache, as a tight bound would
                evicted.append(path)
            return path
        return real(build_then_evict)

    monkeypatch.setattr(cache, "open_library", evict_then_open)
    assert _check(tilec.compile(kernel, out_idx=[2], target=target, poison_outputs=True), 4, 16, 5) < 1e-6
    assert len(evicted) == 1
