"""A kernel with a symbolic row count, a module-level T.prim_func and make_inputs, for the CLI tests."""
import torch

import tilec.language as T

M = T.dynamic("M")


@T.prim_func
def add_one(X: T.Tensor((M, 8), "float32"), Y: T.Tensor((M, 8), "float32")):
    with T.Kernel(T.ceildiv(M, 16), threads=128) as bx:
        X_s = T.alloc_fragment((16, 8), "float32")
        T.copy(X[bx * 16, 0], X_s)
        for i, j in T.Parallel(16, 8):
            X_s[i, j] = X_s[i, j] + 1.0
        T.copy(X_s, Y[bx * 16, 0])


OUT_IDX = [1]
TOLERANCE = 1e-6


def make_inputs(params, generator):
    return [torch.rand(37, 8, generator=generator)]


def reference(X, **params):
    return X + 1.0
