"""The on-disk compile cache shared by every backend: where it lives and how an entry is written.

Entries live under ``$TILEC_CACHE_DIR/<backend>`` (default ``~/.cache/tilec/<backend>``), named by a hash
of everything that determines their bytes. An entry is built in a temporary folder inside the cache
and moved into place with ``os.replace``, so concurrent processes see either no entry or a whole one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    return Path(os.environ.get("TILEC_CACHE_DIR") or Path.home() / ".cache" / "tilec")


def cache_dir(backend: str) -> Path:
    """The cache folder of one backend, created on first use."""
    path = cache_root() / backend
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_build(path: Path, build: Callable[[Path], None]) -> Path:
    """``path`` if a non-empty entry exists, else build it there atomically.

    ``build`` receives a fresh temporary folder in the cache and must leave the finished artifact at
    ``tmp_dir / path.name``; it is then moved to ``path`` atomically. A truncated (empty) entry is rebuilt.
    """
    if path.exists() and path.stat().st_size > 0:
        return path
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        build(Path(tmp))
        os.replace(staged, path)
    return path
