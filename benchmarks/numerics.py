"""Speed of tilec.numerics' bf16/fp8 conversions (ml_dtypes-based) against the integer-arithmetic reference.

    python benchmarks/numerics.py [--n N] [--rounds R] [--json PATH]

Both implementations run in this process on the same random float32 array (normal * 100, so fp8 sees
overflow and subnormals) and must give identical bits; the table gives ratio = reference time / tilec time
(> 1: the current implementation is faster). Medians of R rounds, the two alternating.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from tilec import numerics as N


def _time(fn, x) -> float:
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    x = (np.random.default_rng(0).standard_normal(a.n) * 100).astype(np.float32)
    x[::1000] = np.nan
    cases = {"float32->bfloat16": (N._f32_to_bf16, N._f32_to_bf16_bits),
             "float32->float8_e4m3": (N._f32_to_f8, N._f32_to_f8_bits)}
    rows = []
    print(f"{'conversion':<22} {'tilec ms':>9} {'reference ms':>13} {'ratio':>7}   (n = {a.n})")
    for name, (fast, ref) in cases.items():
        with np.errstate(all="ignore"):
            assert np.array_equal(fast(x), ref(x)), name
            tf, tr = [], []
            for _ in range(a.rounds):
                tf.append(_time(fast, x))
                tr.append(_time(ref, x))
        mf, mr = statistics.median(tf), statistics.median(tr)
        rows.append({"case": name, "n": a.n, "tilec_s": mf, "reference_s": mr, "ratio": mr / mf})
        print(f"{name:<22} {mf * 1e3:9.2f} {mr * 1e3:13.2f} {mr / mf:7.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"benchmark": "numerics", "rows": rows}, f, indent=1)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
