"""A small kernel in the example-file convention, for the CLI tests: Y = alpha * X, tiled by rows."""
import tilec.language as T


def scale(M, N, block_M=32, dtype="float32", alpha=2.0):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            X_s = T.alloc_shared((block_M, N), dtype)
            T.copy(X[bx * block_M, 0], X_s)
            for i, j in T.Parallel(block_M, N):
                X_s[i, j] = X_s[i, j] * alpha
            T.copy(X_s, Y[bx * block_M, 0])
    return main


KERNEL = scale
DEFAULTS = dict(M=100, N=16)
RAGGED = dict(M=70, N=16)
OUT_IDX = [1]
TOLERANCE = 1e-6


def reference(X, alpha=2.0, **params):
    return X * alpha
