# expect: 12:13: T.fill (or T.clear) inside a T.Parallel loop (the loop at line 11)
# stage: verify
# T.clear (a fill) nested in an element-wise loop
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        for i, j in T.Parallel(64, 64):
            T.clear(C_f)
