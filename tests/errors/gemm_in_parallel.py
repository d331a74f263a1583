# expect: 14:13: T.gemm inside a T.Parallel loop
# stage: verify
# T.gemm nested in an element-wise loop
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        B_s = T.alloc_shared((32, 64), "float16")
        C_f = T.alloc_fragment((64, 64), "float32")
        for i in T.Parallel(2):
            T.gemm(A_s, B_s, C_f)
