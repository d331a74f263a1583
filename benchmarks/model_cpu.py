"""DeepSeek-V3.2 end to end on the CPU: the compiled model (its ahead-of-time library) against the
PyTorch reference (``reference.py``), prefill and decode tokens/s, in one process.

    python benchmarks/model_cpu.py [--config tiny] [--model DIR] [--batch 2] [--prompt-len 64]
                                   [--decode-steps 16] [--rounds 3] [--json PATH]

``--model`` uses a library built by ``tilec model build``; without it the library is built into a
temporary folder first (kernels come from the on-disk object cache after the first build). Both
models hold the same random weights. A round is one prefill of ``batch x prompt-len`` tokens then
``decode-steps`` single-token steps; rounds alternate the two models so a noisy machine slows both
alike, and the medians are reported. ratio = reference time / compiled time (> 1: compiled is faster).
The result is printed as JSON (and written to ``--json``).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tilec.models.deepseek_v32.config import get_config  # noqa: E402
from tilec.models.deepseek_v32.init import init_random_weights  # noqa: E402
from tilec.models.deepseek_v32.library import build_library, load_library  # noqa: E402
from tilec.models.deepseek_v32.model import Model  # noqa: E402
from tilec.models.deepseek_v32.reference import Transformer  # noqa: E402


def one_round(forward, tokens: torch.Tensor, steps: int) -> tuple[float, float]:
    """(prefill seconds, decode seconds per step) for one prefill and ``steps`` decode calls."""
    t0 = time.perf_counter()
    logits = forward(tokens, 0)
    t1 = time.perf_counter()
    nxt = logits.argmax(-1, keepdim=True)
    n = tokens.size(1)
    t2 = time.perf_counter()
    for i in range(steps):
        nxt = forward(nxt, n + i).argmax(-1, keepdim=True)
    t3 = time.perf_counter()
    return t1 - t0, (t3 - t2) / steps


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--model", help="a library folder from `tilec model build` (default: build one)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--decode-steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the result here")
    ns = ap.parse_args(argv)
    args = get_config(ns.config)
    tmp = None
    if ns.model is None:
        tmp = tempfile.TemporaryDirectory(prefix="tilec-bench-")
        ns.model = os.path.join(tmp.name, "lib")
        build_library(args, "cpu", ns.model, ns.config)
    lib = load_library(ns.model)
    ref = init_random_weights(Transformer(lib.args), 0)
    model = Model(lib.args, dict(ref.state_dict()), lib)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, lib.args.vocab_size, (ns.batch, ns.prompt_len), generator=gen)
    one_round(model, tokens, 2)                       # warm-up: caches, thread pool, first-call costs
    one_round(ref, tokens, 2)
    times = {"compiled": [], "reference": []}
    for _ in range(ns.rounds):
        times["compiled"].append(one_round(model, tokens, ns.decode_steps))
        times["reference"].append(one_round(ref, tokens, ns.decode_steps))
    out = {"config": ns.config, "batch": ns.batch, "prompt_len": ns.prompt_len,
           "decode_steps": ns.decode_steps, "rounds": ns.rounds, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    for name, rows in times.items():
        pre = statistics.median(r[0] for r in rows)
        dec = statistics.median(r[1] for r in rows)
        out[name] = {"prefill_s": pre, "prefill_tokens_per_s": ns.batch * ns.prompt_len / pre,
                     "decode_step_s": dec, "decode_tokens_per_s": ns.batch / dec}
    out["prefill_ratio"] = out["reference"]["prefill_s"] / out["compiled"]["prefill_s"]
    out["decode_ratio"] = out["reference"]["decode_step_s"] / out["compiled"]["decode_step_s"]
    text = json.dumps(out, indent=2)
    print(text)
    if ns.json:
        pathlib.Path(ns.json).write_text(text + "\n")
    if tmp is not None:
        tmp.cleanup()
    return out


if __name__ == "__main__":
    main()
