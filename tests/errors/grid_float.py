# expect: 8:5: grid extent
# stage: any
# a float grid extent
import tilec.language as T

@T.prim_func
def main(C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2.5, threads=128) as bx:
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
