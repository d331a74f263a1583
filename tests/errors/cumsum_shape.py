# expect: 13:9: cumsum: destination 'D' is 64x32 but the source is 64x64
# stage: verify
# a scan keeps its shape
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        S = T.alloc_shared((64, 64), "float32")
        D = T.alloc_shared((64, 32), "float32")
        T.fill(S, 1.0)
        T.cumsum(S, D, dim=1)
