# expect: 14:9: gemm: B is 32x64 but C is 64x128: N=64 from B but C has 128 columns
# stage: verify
# the accumulator has the wrong number of columns
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        B_s = T.alloc_shared((32, 64), "float16")
        C_f = T.alloc_fragment((64, 128), "float32")
        T.clear(C_f)
        T.gemm(A_s, B_s, C_f)
