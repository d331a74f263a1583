# expect: 9:9: atomic_add: a scalar value updates one element, but the destination is a 64x64 tile of 'C'
# stage: verify
# a scalar atomic applied to a whole tile
import tilec.language as T

@T.prim_func
def main(C: T.Tensor((128, 128), "float32")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        T.atomic_add(C[0:64, 0:64], 1.0)
