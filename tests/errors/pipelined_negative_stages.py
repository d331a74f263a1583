# expect: 11:9: num_stages must be a non-negative integer, got -1
# stage: verify
# a negative pipeline depth
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        for k in T.Pipelined(4, num_stages=-1):
            T.copy(A[by * 64, k * 32], A_s)
