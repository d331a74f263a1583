# expect: 12:9: gemm: A ('A') is in global memory but must be in shared or fragment memory
# stage: verify
# T.gemm reads a global tensor directly instead of a shared tile
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((64, 32), "float16"), C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        B_s = T.alloc_shared((32, 64), "float16")
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
        T.gemm(A, B_s, C_f)
