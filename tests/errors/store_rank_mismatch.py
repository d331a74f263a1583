# expect: 12:13: store to 'C_f' takes 2 indices (64x64 buffer) but 1 was given
# stage: verify
# storing into a 2-D fragment with one index
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        for i in T.Parallel(64):
            C_f[i] = 0.0
