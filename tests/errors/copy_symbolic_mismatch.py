# expect: 13:9: copy: source 'A' tile is nx64 but destination 'B' tile is mx64
# stage: verify
# two symbolic extents that are different expressions
import tilec.language as T

n = T.dynamic("n")
m = T.dynamic("m")


@T.prim_func
def main(A: T.Tensor((n, 64), "float32"), B: T.Tensor((m, 64), "float32")):
    with T.Kernel(1, threads=128) as bx:
        T.copy(A, B)
