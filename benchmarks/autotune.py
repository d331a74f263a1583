"""Autotuning examples/gemm.py's kernel on one target: the pick, the cache, and an exhaustive check.

    python benchmarks/autotune.py [--target cpu] [--size 512] [--json PATH] [--plot PNG]

1. ``@tilec.autotune(configs=gemm.configs)`` over ``@tilec.jit`` tunes the 18-config space (fresh cache
   folder); 2. a fresh decorator on the same factory (what a new process sees) gets the winner from the
   disk cache: the ratio first/second call is printed (want > 10); 3. an exhaustive loop compiles and times
   every config of the same space with the profiler, and the tuned winner's time is compared with the best
   one found there (want within 10%; both timed again in the same rounds, so a noisy machine moves both).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="cpu")
    ap.add_argument("--size", type=int, default=512, help="M = N = K")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--plot", help="save the autotune landscape here (PNG; pip install tilec[plot])")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the final winner-vs-best timing")
    args = ap.parse_args(argv)
    import os
    os.environ.setdefault("TILEC_CACHE_DIR", tempfile.mkdtemp(prefix="tilec-autotune-bench-"))
    import tilec
    import gemm as ex
    from tilec.profiler import Profiler
    size = args.size

    def make():
        @tilec.autotune(configs=ex.configs, warmup=10, rep=50)
        @tilec.jit(out_idx=ex.OUT_IDX, target=args.target)
        def matmul(M, N, K, **cfg):
            return ex.gemm(M, N, K, **cfg)
        return matmul

    tuned = make()
    t0 = time.perf_counter()
    tuned(size, size, size)
    first_s = time.perf_counter() - t0
    first = tuned.last_result
    print(first.report(top=5))
    again = make()  # a new decorator: no memo, the disk cache answers
    t0 = time.perf_counter()
    again(size, size, size)
    second_s = time.perf_counter() - t0
    second = again.last_result
    print(f"first call (tuning) {first_s:.2f} s, second call {second_s:.3f} s (cache hit: {second.cache_hit}): "
          f"{first_s / second_s:.1f}x faster")

    # The exhaustive loop over the same space, the same profiler.
    loop = []
    for cfg in ex.configs(size, size, size):
        k = tilec.compile(ex.gemm(size, size, size, **cfg), out_idx=ex.OUT_IDX, target=args.target)
        prof = Profiler(k)
        loop.append((prof.do_bench(warmup=10, rep=50, input_tensors=prof.make_inputs(seed=1)), cfg, k))
    best_ms, best_cfg, best_k = min(loop, key=lambda x: x[0])
    print(f"exhaustive loop: best {best_cfg} at {best_ms:.4f} ms; autotune's winner {first.config}")
    # Winner vs best in alternating rounds (a noisy machine slows both alike).
    pw, pb = Profiler(second.kernel), Profiler(best_k)
    inputs = pw.make_inputs(seed=2)
    tw, tb = [], []
    for _ in range(args.rounds):
        tw.append(pw.do_bench(warmup=5, rep=50, input_tensors=inputs))
        tb.append(pb.do_bench(warmup=5, rep=50, input_tensors=inputs))
    tw.sort()
    tb.sort()
    win_ms, loop_ms = tw[len(tw) // 2], tb[len(tb) // 2]
    within = win_ms / loop_ms
    print(f"same rounds: autotune winner {win_ms:.4f} ms, exhaustive best {loop_ms:.4f} ms: "
          f"winner/best {within:.3f} ({'within' if within <= 1.10 else 'NOT within'} 10%)")
    result = dict(target=args.target, size=size, configs=len(first.trials), first_call_s=first_s,
                  second_call_s=second_s, speedup=first_s / second_s, cache_hit=second.cache_hit,
                  winner=first.config, winner_ms=win_ms, exhaustive_best=best_cfg, exhaustive_best_ms=loop_ms,
                  winner_over_best=within, trials=[t.as_json() for t in first.trials],
                  exhaustive=[dict(config=c, latency=ms) for ms, c, _ in loop])
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    if args.plot:
        from tilec.autotuner.plot import save_figure
        save_figure(args.plot, landscapes=[(f"autotune gemm {size}^3 on {args.target}", first.trials,
                                            first.config)])
        print(f"wrote {args.plot}")
    return 0 if (first_s / second_s > 10 and within <= 1.10) else 1


if __name__ == "__main__":
    sys.exit(main())
