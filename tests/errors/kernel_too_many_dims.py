# expect: 8:5: T.Kernel takes 1 to 3 grid extents, got 4
# stage: any
# a 4-D grid
import tilec.language as T

@T.prim_func
def main(C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, 2, 2, threads=128) as (bx, by, bz, bw):
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
