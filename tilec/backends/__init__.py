"""Code generators and builders for tilec's compiled targets, one subpackage per target.

``tilec.backends.llvm`` (CPU through llvmlite), ``tilec.backends.cuda`` (CUDA C++ and nvcc) and
``tilec.backends.ascend`` (AscendC-style C++ against a CPU emulation of the AscendC API). Each exposes a
target class that the core finds through the ``tilec.targets`` entry-point group declared in
pyproject.toml; the core never imports a backend by name (tests/test_layers.py checks it).
"""
