# expect: 12:13: T.copy inside a T.Parallel loop
# stage: verify
# a tile operation nested in an element-wise loop
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        for i in T.Parallel(4):
            T.copy(A[i * 16, 0], A_s)
