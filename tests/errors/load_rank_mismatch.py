# expect: 12:25: load from 'A' takes 2 indices (128x128 buffer) but 1 was given
# stage: verify
# indexing a 2-D tensor with one index
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        for i, j in T.Parallel(64, 64):
            C_f[i, j] = A[i]
