# expect: 13:9: gemm: C ('C_s') is in shared memory but must be in fragment or local memory
# stage: verify
# the accumulator of T.gemm must be a fragment
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        B_s = T.alloc_shared((32, 64), "float16")
        C_s = T.alloc_shared((64, 64), "float32")
        T.gemm(A_s, B_s, C_s)
