"""Row softmax, Y = softmax(X, dim=1), for rows of any length.

Each block owns ``block_M`` rows and walks the columns in ``block_N`` tiles twice: an online pass keeps the
running max and the running sum of ``exp2((x - max) * log2(e))`` (rescaling the sum whenever the max grows),
and a second pass writes the normalized values. Columns past ``N`` are masked to ``-inf`` so they add 0.
"""
import tilec.language as T

LOG2E = 1.4426950408889634


def softmax(M, N, block_M=32, block_N=128, threads=128, dtype="float32", accum_dtype="float32"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=threads) as bx:
            x = T.alloc_fragment((block_M, block_N), accum_dtype)
            row_max = T.alloc_fragment((block_M,), accum_dtype)
            prev_max = T.alloc_fragment((block_M,), accum_dtype)
            tile_sum = T.alloc_fragment((block_M,), accum_dtype)
            row_sum = T.alloc_fragment((block_M,), accum_dtype)
            T.fill(row_max, -T.infinity(accum_dtype))
            T.clear(row_sum)
            num_tiles = T.ceildiv(N, block_N)
            for k in T.Pipelined(num_tiles, num_stages=2):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    x[i, j] = T.if_then_else(k * block_N + j < N, x[i, j], -T.infinity(accum_dtype))
                T.copy(row_max, prev_max)
                T.reduce_max(x, row_max, dim=1, clear=False)
                for i, j in T.Parallel(block_M, block_N):
                    x[i, j] = T.exp2((x[i, j] - row_max[i]) * LOG2E)
                T.reduce_sum(x, tile_sum, dim=1)
                for i in T.Parallel(block_M):
                    row_sum[i] = row_sum[i] * T.exp2((prev_max[i] - row_max[i]) * LOG2E) + tile_sum[i]
            for k in T.serial(num_tiles):
                T.copy(X[bx * block_M, k * block_N], x)
                for i, j in T.Parallel(block_M, block_N):
                    x[i, j] = T.exp2((x[i, j] - row_max[i]) * LOG2E) / row_sum[i]
                T.copy(x, Y[bx * block_M, k * block_N])

    return main


KERNEL = softmax
DEFAULTS = dict(M=512, N=1024)
RAGGED = dict(M=100, N=300)
OUT_IDX = [1]
TOLERANCE = 1e-5


def reference(X, **params):
    return X.float().softmax(dim=1).to(X.dtype)


def main():
    import torch

    import tilec
    p = DEFAULTS
    kernel = tilec.compile(softmax(**p), out_idx=OUT_IDX, target="interp")
    X = torch.randn(p["M"], p["N"], generator=torch.Generator().manual_seed(0))
    Y = kernel(X)
    ref = reference(X, **p)
    err = ((Y - ref).norm() / ref.norm()).item()
    print(f"softmax {p}: relative error {err:.3e} ({'ok' if err < TOLERANCE else 'FAIL'})")


if __name__ == "__main__":
    main()
