# expect: 11:9: copy: source 'A' tile is 64x64 but destination 'A_s' tile is 64x32
# stage: verify
# an explicit slice larger than the destination tile
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        A_s = T.alloc_shared((64, 32), "float16")
        T.copy(A[0:64, 0:64], A_s)
