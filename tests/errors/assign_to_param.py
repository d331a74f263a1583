# expect: 10:9: cannot assign to 'C': it names a buffer
# stage: frontend
# assigning a scalar to a global tensor parameter without indices
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C = 0.0
