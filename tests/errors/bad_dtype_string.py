# expect: 10:40: unknown dtype 'float17'
# stage: frontend
# a misspelled dtype
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float17")
        T.copy(A[by * 64, 0], A_s)
