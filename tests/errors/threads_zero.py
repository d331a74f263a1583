# expect: 8:5: threads must be a positive
# stage: any
# a launch with zero threads
import tilec.language as T

@T.prim_func
def main(C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, threads=0) as bx:
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
