# expect: 12:9: copy: source 'C_f' tile is 64x64 but destination 'C' tile is 32x64
# stage: verify
# writing a 64x64 fragment into a 32x64 slice
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
        T.copy(C_f, C[0:32, 0:64])
