# expect: 12:9: a kernel cannot return a value
# stage: frontend
# a kernel does not return values; it writes its outputs
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
        return C_f
