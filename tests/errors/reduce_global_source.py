# expect: 11:9: reduce_max: source 'A' is a global tensor
# stage: verify
# T.reduce_* works on on-chip tiles, not global tensors
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        m = T.alloc_fragment((128,), "float16")
        T.reduce_max(A, m, dim=1)
