# expect: 12:13: index i of 'C_f' reaches 127, outside dimension 0 of size 64
# stage: verify
# an element-wise loop that runs past the end of a fragment
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        for i, j in T.Parallel(128, 64):
            C_f[i, j] = 0.0
