"""The Ascend backend: AscendC-style C++ from Tile IR, run on the CPU against tilec's AscendC emulation.

``target.AscendTarget`` is the plugin (entry point "ascend"); ``codegen`` writes the C++; ``build``
compiles it with g++ against ``include/kernel_operator.h``; docs/backends/ascend.md explains the mapping.
"""
