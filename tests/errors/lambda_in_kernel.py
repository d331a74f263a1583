# expect: 11:13: lambda expressions are not supported in kernels
# stage: frontend
# Python lambdas are not kernel code
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        f = lambda x: x * 2
        T.clear(C_f)
