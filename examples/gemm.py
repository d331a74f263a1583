"""GEMM, C = A @ B: the canonical tiled kernel (shared tiles, a pipelined K loop, a fragment accumulator).

Run it: ``python examples/gemm.py`` (interpreter check) or ``tilec run examples/gemm.py --target cpu``.
"""
import tilec.language as T


def gemm(M, N, K, block_M=64, block_N=64, block_K=32, num_stages=2, threads=128, dtype="float16",
         accum_dtype="float32"):
    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor((K, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                # Tiles past the edge of A or B read as zero, so ragged K needs no guard.
                T.copy(A[by * block_M, k * block_K], A_shared)
                T.copy(B[k * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_M, bx * block_N])

    return main


KERNEL = gemm
DEFAULTS = dict(M=512, N=512, K=512)
RAGGED = dict(M=200, N=136, K=100)
OUT_IDX = [2]
TOLERANCE = 1e-2


def configs(M, N, K, **params):
    """The autotune space (``tilec bench --autotune``, benchmarks/autotune.py): tile sizes; every config
    computes the same C, so any of them may win."""
    return [dict(block_M=bm, block_N=bn, block_K=bk)
            for bm in (32, 64, 128) for bn in (32, 64, 128) for bk in (32, 64)]


def reference(A, B, **params):
    return (A.float() @ B.float()).to(A.dtype)


def main():
    import torch

    import tilec
    p = DEFAULTS
    kernel = tilec.compile(gemm(**p), out_idx=OUT_IDX, target="interp")
    g = torch.Generator().manual_seed(0)
    A = torch.randn(p["M"], p["K"], generator=g).half()
    B = torch.randn(p["K"], p["N"], generator=g).half()
    C = kernel(A, B)
    ref = reference(A, B, **p).float()
    err = ((C.float() - ref).norm() / ref.norm()).item()
    print(f"gemm {p}: relative error {err:.3e} ({'ok' if err < TOLERANCE else 'FAIL'})")


if __name__ == "__main__":
    main()
