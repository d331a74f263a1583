# expect: 11:44: num_stages must be a compile-time int
# stage: frontend
# num_stages must be a compile-time constant
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        for k in T.Pipelined(4, num_stages=bx):
            T.copy(A[by * 64, k * 32], A_s)
