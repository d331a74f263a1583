# expect: 12:9: buffer 'A_s' is used as a scalar
# stage: any
# T.fill with a tile as the value
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        C_f = T.alloc_fragment((64, 32), "float16")
        T.fill(C_f, A_s)
