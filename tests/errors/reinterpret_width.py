# expect: 14:23: reinterpret of a 32-bit float32 value as 16-bit uint16
# stage: verify
# bit reinterpretation between types of different widths
import tilec.language as T

@T.prim_func
def main(A: T.Tensor((128, 128), "float16"), B: T.Tensor((128, 128), "float16"),
         C: T.Tensor((128, 128), "float16")):
    with T.Kernel(2, 2, threads=128) as (bx, by):
        acc = T.alloc_fragment((64,), "float32")
        bits = T.alloc_fragment((64,), "uint16")
        T.fill(acc, 1.0)
        for i in T.Parallel(64):
            bits[i] = T.reinterpret(acc[i], "uint16")
