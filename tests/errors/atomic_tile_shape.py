# expect: 11:9: atomic_add: destination tile is 64x32 but the value tile is 64x64
# stage: verify
# atomic tile update with mismatched shapes
import tilec.language as T

@T.prim_func
def main(C: T.Tensor((128, 128), "float32")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
        T.atomic_add(C[0:64, 0:32], C_f)
