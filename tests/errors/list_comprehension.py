# expect: 11:14: list comprehensions are not supported in kernels
# stage: frontend
# a list comprehension inside a kernel
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        xs = [i for i in range(4)]
        T.clear(C_f)
