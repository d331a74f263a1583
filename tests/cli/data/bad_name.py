"""A kernel with a mistake (an unknown name), for the CLI's error-reporting tests."""
import tilec.language as T


def broken(M=64):
    @T.prim_func
    def main(X: T.Tensor((M,), "float32"), Y: T.Tensor((M,), "float32")):
        with T.Kernel(1, threads=128) as bx:
            for i in T.Parallel(M):
                Y[i] = X[i] * undefined_scale
    return main


KERNEL = broken
DEFAULTS = dict(M=64)
OUT_IDX = [1]
