# expect: 13:9: reduce_sum: destination 'm' is 128 but reducing 64x128 along dim 1 gives 64
# stage: verify
# the destination keeps the reduced dimension instead of the other one
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        S = T.alloc_fragment((64, 128), "float32")
        m = T.alloc_fragment((128,), "float32")
        T.fill(S, 1.0)
        T.reduce_sum(S, m, dim=1)
