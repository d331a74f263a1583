"""The ``cuda-emu`` target: the CUDA C++ of the ``cuda`` target run on the CPU (g++ against tilec_emu/)."""
