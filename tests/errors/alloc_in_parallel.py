# expect: 12:13: allocation of 'tmp' inside a T.Parallel loop; allocate it before the loop
# stage: verify
# a per-element allocation
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        for i in T.Parallel(64):
            tmp = T.alloc_local((4,), "float32")
            C_f[i, 0] = 0.0
