# expect: 12:9: 'C_f' was defined inside an `if`
# stage: any
# a fragment allocated inside a runtime `if` is used after it
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        if bx == 0:
            C_f = T.alloc_fragment((64, 64), "float32")
        T.clear(C_f)
