# expect: 10:17: unknown name 'C_f'
# stage: frontend
# a fragment used before the line that allocates it
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        T.clear(C_f)
        C_f = T.alloc_fragment((64, 64), "float32")
