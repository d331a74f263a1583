# expect: 7:10: expected a dtype name, got NoneType None
# stage: frontend
# a T.Tensor annotation whose dtype is None (a factory argument not passed)
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), None)):
    with T.Kernel(2, threads=128) as bx:
        A_s = T.alloc_shared((64, 128), "float16")
        T.copy(A[bx * 64, 0], A_s)
