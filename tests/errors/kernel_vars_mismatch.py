# expect: 8:5: 2 grid extents
# stage: any
# two grid extents but only one block index bound
import tilec.language as T

@T.prim_func
def main(C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as bx:
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
        T.copy(C_f, C[bx * 64, 0])
