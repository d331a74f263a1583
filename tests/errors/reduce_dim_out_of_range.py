# expect: 13:9: reduce_max: dim 2 is out of range for a 2-D source (valid: 0..1)
# stage: verify
# reduction along a dimension the tile does not have
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        S = T.alloc_fragment((64, 128), "float32")
        m = T.alloc_fragment((64,), "float32")
        T.fill(S, 1.0)
        T.reduce_max(S, m, dim=2)
