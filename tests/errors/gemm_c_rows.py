# expect: 14:9: gemm: A is 64x32 but C is 32x64: M=64 from A but C has 32 rows
# stage: verify
# the accumulator has the wrong number of rows
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        B_s = T.alloc_shared((32, 64), "float16")
        C_f = T.alloc_fragment((32, 64), "float32")
        T.clear(C_f)
        T.gemm(A_s, B_s, C_f)
