# expect: 13:9: gemm: A ('a') must be a 2-D tile, got 32
# stage: verify
# a vector passed as the A operand of T.gemm
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        a = T.alloc_fragment((32,), "float16")
        B_s = T.alloc_shared((32, 64), "float16")
        C_f = T.alloc_fragment((64, 64), "float32")
        T.gemm(a, B_s, C_f)
