# expect: 12:12: if condition must be a bool, got a float16 value
# stage: verify
# a tensor element used as a condition without a comparison
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
        if A[bx, by]:
            T.copy(C_f, C[0, 0])
