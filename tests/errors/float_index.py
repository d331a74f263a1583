# expect: 12:27: index 0 of 'A' must be an integer, got a float32 value
# stage: verify
# a float expression used as an index
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        for i, j in T.Parallel(64, 64):
            C_f[i, j] = A[i * 0.5, j]
