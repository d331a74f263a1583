"""The on-disk compile cache shared by every backend: where it lives, how an entry is written, its size bound.

Entries live under ``$TILEC_CACHE_DIR/<backend>`` (default ``~/.cache/tilec/<backend>``), named by a hash
of everything that determines their bytes. An entry is built in a temporary folder inside the cache
and moved into place with ``os.replace``, so concurrent processes see either no entry or a whole one;
a ``filelock`` per key (striped over 256 lock files in ``<root>/.locks``) makes concurrent builders of
the same entry build it once. A truncated (empty) entry is rebuilt.

Size bound: ``TILEC_CACHE_MAX`` (bytes, or with a K/M/G/T suffix in powers of 1024: ``500M``, ``2G``;
``0``/``none`` for no bound; default 2G). After every write the whole cache (all backends) is trimmed,
under the root lock ``<root>/.locks/evict.lock``, to the bound by removing the least recently used
entries first. An entry is the set of files of one backend folder that share a key (the first run of
16+ hex digits in the name, e.g. the cpu target's ``<key>.json``, ``<key>.ll``, ``<key>-<hash>.so``);
its last use is the newest access/modification time of its files, and every hit ``touch``es them
(atime is not trusted: many file systems mount with ``relatime``). The entry just written is never
evicted. A library is opened with ``open_library``, which holds the evict lock from its check to the end of
``dlopen`` (once mapped, removing the file is harmless) and rebuilds an entry that another process evicted
after it was looked up. ``tilec cache info`` / ``tilec cache clear`` (``info()`` / ``clear()``) show and empty it.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ..errors import TilecError

DEFAULT_MAX = 2 * 1024**3
LOCKS = ".locks"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_KEY = re.compile(r"[0-9a-f]{16,}")


def cache_root() -> Path:
    return Path(os.environ.get("TILEC_CACHE_DIR") or Path.home() / ".cache" / "tilec")


def cache_dir(backend: str) -> Path:
    """The cache folder of one backend, created on first use."""
    path = cache_root() / backend
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_size(text: str, what: str = "TILEC_CACHE_MAX") -> Optional[int]:
    """``"500M"``, ``"2G"``, ``"1.5GiB"``, ``"123456"`` -> bytes; ``"0"``/``"none"``/``"off"`` -> None (no bound)."""
    s = str(text).strip().upper().replace(" ", "")
    if s in ("0", "NONE", "OFF", "UNLIMITED"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d*)?)([KMGT]?)(I?B)?", s)
    if not m or (m.group(3) and not m.group(2) and m.group(3) != "B"):
        raise TilecError(f"{what}={text!r} is not a size: give bytes or a number with K, M, G or T "
                         f"(powers of 1024), e.g. 500M or 2G; 0 or none for no bound")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def max_size() -> Optional[int]:
    """The cache's size bound in bytes (``TILEC_CACHE_MAX``, default 2 GiB); None when unbounded."""
    env = os.environ.get("TILEC_CACHE_MAX")
    return DEFAULT_MAX if env is None or env.strip() == "" else parse_size(env)


def lock(name: str, timeout: float = 600):
    """A ``filelock.FileLock`` on ``name`` (any string: it is hashed onto one of 256 lock files)."""
    from filelock import FileLock
    folder = cache_root() / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    stripe = "evict" if name == "evict" else hashlib.sha256(name.encode()).hexdigest()[:2]
    return FileLock(str(folder / f"{stripe}.lock"), timeout=timeout)


def touch(paths: Iterable[Path]) -> None:
    """Mark files as just used (for LRU eviction); missing files are ignored."""
    for p in paths:
        try:
            os.utime(p)
        except OSError:
            pass


def cached_build(path: Path, build: Callable[[Path], None]) -> Path:
    """``path`` if a non-empty entry exists, else build it there atomically.

    ``build`` receives a fresh temporary folder in the cache and must leave the finished artifact at
    ``tmp_dir / path.name``; it is then moved to ``path`` atomically. A truncated (empty) entry is rebuilt.
    Concurrent callers for the same ``path`` wait on one lock and the later ones find the entry built.
    """
    if _valid(path):
        touch([path])
        return path
    with lock(str(path)):
        if _valid(path):        # built by another process while we waited
            touch([path])
            return path
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            build(Path(tmp))
            os.replace(staged, path)
    committed([path])
    return path


def open_library(build: Callable[[], Path]) -> tuple[Any, Path]:
    """``(ctypes.CDLL, path)`` of the cached shared library ``build()`` returns (it finds or builds the
    entry), safe against eviction by another process.

    Between a lookup and ``dlopen`` another process's write may evict the entry (it trims the cache to its
    bound). Eviction removes files under the evict lock, so holding that lock from the check to the end
    of ``dlopen`` closes the gap; an entry already gone is built again.
    """
    import ctypes
    return _use_entry(build, lambda path: ctypes.CDLL(str(path)))


def read_entry(build: Callable[[], Path]) -> tuple[bytes, Path]:
    """``(bytes, path)`` of the cache entry ``build()`` returns, built again if evicted before it is read."""
    return _use_entry(build, Path.read_bytes)


def _use_entry(build: Callable[[], Path], use: Callable[[Path], Any], attempts: int = 3) -> tuple[Any, Path]:
    for _ in range(attempts):
        path = build()
        with lock("evict"):
            if _valid(path):
                return use(path), path
    raise TilecError(f"compile cache: {path} was evicted by other processes {attempts} times before it could be "
                     f"loaded; raise TILEC_CACHE_MAX (now {format_size(max_size())})")


def _valid(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------
# Entries, size, eviction


@dataclass
class Entry:
    backend: str
    key: str
    files: list[Path] = field(default_factory=list)
    size: int = 0
    used: float = 0.0


def entry_key(name: str) -> str:
    """The key of a cache file: its first run of 16+ hex digits, else its name up to the first dot."""
    m = _KEY.search(name)
    return m.group(0) if m else name.split(".", 1)[0]


def entries(root: Optional[Path] = None) -> list[Entry]:
    """Every entry of every backend folder under ``root``; lock, temporary and hidden files are left out."""
    root = cache_root() if root is None else root
    found: dict[tuple[str, str], Entry] = {}
    try:
        backends = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    except OSError:
        return []
    for d in backends:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") or name.endswith((".lock", ".tmp")):
                continue
            p = d / name
            try:
                st = p.stat()
            except OSError:   # removed meanwhile
                continue
            if not p.is_file():
                continue      # a build's temporary folder
            e = found.setdefault((d.name, entry_key(name)), Entry(d.name, entry_key(name)))
            e.files.append(p)
            e.size += st.st_size
            e.used = max(e.used, st.st_atime, st.st_mtime)
    return list(found.values())


def evict(limit: Optional[int] = None, keep: Iterable[Path] = ()) -> list[Entry]:
    """Remove least recently used entries until the cache is within ``limit`` (default ``max_size()``);
    entries holding a file in ``keep`` stay. Returns the removed entries."""
    limit = max_size() if limit is None else limit
    if limit is None:
        return []
    keep_set = {Path(p).resolve() for p in keep}
    removed: list[Entry] = []
    with lock("evict"):
        es = entries()
        total = sum(e.size for e in es)
        for e in sorted(es, key=lambda e: e.used):
            if total <= limit:
                break
            if any(p.resolve() in keep_set for p in e.files):
                continue
            for p in e.files:
                try:
                    p.unlink()
                except OSError:
                    pass
            total -= e.size
            removed.append(e)
    return removed


def committed(paths: Iterable[Path]) -> None:
    """Called after a backend wrote an entry's files: trim the cache to its bound, keeping ``paths``."""
    evict(keep=list(paths))


@dataclass
class Info:
    root: Path
    entries: int
    size: int
    limit: Optional[int]
    by_backend: dict[str, tuple[int, int]]   # backend -> (entries, bytes)


def info() -> Info:
    es = entries()
    by: dict[str, tuple[int, int]] = {}
    for e in es:
        n, b = by.get(e.backend, (0, 0))
        by[e.backend] = (n + 1, b + e.size)
    return Info(cache_root(), len(es), sum(e.size for e in es), max_size(), dict(sorted(by.items())))


def clear(backend: Optional[str] = None) -> int:
    """Remove every entry (of one backend folder, or all); returns the number of entries removed."""
    root = cache_root()
    if backend is not None and (not backend or "/" in backend or backend.startswith(".")):
        raise TilecError(f"cache clear: '{backend}' is not a backend folder name")
    n = 0
    with lock("evict"):
        for e in entries(root):
            if backend is None or e.backend == backend:
                for p in e.files:
                    try:
                        p.unlink()
                    except OSError:
                        pass
                n += 1
    return n


def format_size(n: Optional[int]) -> str:
    """``1536`` -> ``1.5K``; None -> ``none``."""
    if n is None:
        return "none"
    if n < 1024:
        return f"{n}B"
    value, unit = float(n), "B"
    for unit in ("K", "M", "G", "T"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f}{unit}"
