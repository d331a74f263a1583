"""Ahead-of-time build: an object file from LLVM, linked by the system C compiler into a shared library.

The library exports the launch and block-count functions of codegen_module.py with C linkage and
depends only on libc and libm, so it loads through ctypes in a process without llvmlite (the model
library uses this; so does the compile cache). ``CC`` picks the compiler (default ``cc``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Optional

from tilec.errors import TilecError


def c_compiler() -> Optional[str]:
    cc = os.environ.get("CC", "cc")
    return shutil.which(cc)


def link_shared(obj) -> bytes:
    """Link one object file (bytes) or several (a list) into a shared library; return its bytes."""
    objs = obj if isinstance(obj, list) else [obj]
    cc = c_compiler()
    if cc is None:
        raise TilecError("cpu target: ahead-of-time build needs a C compiler (set CC or install cc)")
    with tempfile.TemporaryDirectory(prefix="tilec-aot-") as d:
        so = os.path.join(d, "k.so")
        paths = []
        for i, data in enumerate(objs):
            paths.append(os.path.join(d, f"k{i}.o"))
            with open(paths[-1], "wb") as f:
                f.write(data)
        r = subprocess.run([cc, "-shared", "-o", so, *paths, "-lm"], capture_output=True, text=True)
        if r.returncode != 0:
            raise TilecError(f"cpu target: linking the kernel library failed:\n{r.stderr}")
        with open(so, "rb") as f:
            return f.read()
