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

Server throughput (``"server"`` in the JSON; ``--serve-clients 1,4,16``, ``--serve-clients ''`` skips it):
the compiled model behind ``tilec model serve``'s app (``serve.py``: continuous batching over
``--serve-slots`` cache slots, default 16) under uvicorn in a thread of this process, and N concurrent
httpx clients, each sending ``--serve-requests`` non-streaming /v1/completions one after another
(prompts of ``--serve-prompt-len`` random token ids, ``max_tokens`` ``--serve-max-tokens``, greedy).
Reported per N: requests/s, completion tokens/s (from the responses' usage), mean latency, and the
largest batch the engine decoded at once.

Several processes (``"ranks"`` in the JSON; ``--ranks 1,2``, ``--ranks ''`` skips it): the same weights
written as a checkpoint folder, a library built per world size (``build --tp``), and ``world`` spawned
ranks on torch.distributed (gloo; tensor and expert parallelism, ``parallel.py``), each loading its
shard and using its share of the CPUs; greedy prefill of the batch then ``--decode-steps`` steps, the
median decode step of rank 0 reported as tokens/s beside one rank, and whether the tokens agree.
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

from tilec.models.deepseek_v32.config import get_config, load_config  # noqa: E402
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


def serve_throughput(args, params: dict, kernels, clients: list[int], requests: int, prompt_len: int,
                     max_tokens: int) -> dict:
    """The server part (module docstring): {"slots", "runs": [{clients, requests, ...}, ...]}."""
    import socket
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tilec.models.deepseek_v32.serve import Engine, create_app, uvicorn_server
    from tilec.models.deepseek_v32.tokenizer import ByteTokenizer
    model = Model(args, params, kernels)
    engine = Engine(model, ByteTokenizer(args.vocab_size))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/completions"
    server = uvicorn_server(create_app(engine, "bench"), log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    gen = torch.Generator().manual_seed(1)

    def client(n_req: int) -> list[tuple[float, int]]:
        out = []
        with httpx.Client(timeout=600) as h:
            for _ in range(n_req):
                prompt = torch.randint(2, args.vocab_size, (prompt_len,), generator=gen).tolist()
                t0 = time.perf_counter()
                r = h.post(base, json={"model": "bench", "prompt": prompt, "max_tokens": max_tokens,
                                       "temperature": 0})
                r.raise_for_status()
                out.append((time.perf_counter() - t0, r.json()["usage"]["completion_tokens"]))
        return out

    runs = []
    try:
        client(1)                                    # warm-up
        for n in clients:
            before = engine.stats()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                done = [x for rows in pool.map(client, [requests] * n) for x in rows]
            wall = time.perf_counter() - t0
            after = engine.stats()
            tokens = sum(t for _, t in done)
            runs.append({"clients": n, "requests": len(done), "wall_s": wall, "requests_per_s": len(done) / wall,
                         "tokens_per_s": tokens / wall, "completion_tokens": tokens,
                         "mean_latency_s": statistics.mean(lat for lat, _ in done),
                         "decode_steps": after["steps"] - before["steps"]})
            # the largest batch over the whole run so far (the counter is cumulative; runs grow in N)
            runs[-1]["largest_batch_so_far"] = after["largest_batch"]
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
    return {"slots": args.max_batch_size, "prompt_len": prompt_len, "max_tokens": max_tokens, "runs": runs}


def ranks_throughput(args, config_name: str, worlds: list[int], batch: int, prompt_len: int, steps: int) -> dict:
    """Greedy decode on 1..N spawned ranks (tensor/expert parallel, gloo) from a checkpoint folder and a
    library per world size."""
    from tilec.models.deepseek_v32.testing import greedy_ranks, write_hf_checkpoint
    with tempfile.TemporaryDirectory(prefix="tilec-bench-tp-") as tmp:
        folder = write_hf_checkpoint(os.path.join(tmp, "ckpt"), args, seed=0, mtp=False)
        args = load_config(os.path.join(folder, "config.json"), max_batch_size=args.max_batch_size,
                           max_seq_len=args.max_seq_len)      # as the folder reads back (HF keys)
        gen = torch.Generator().manual_seed(1)
        prompts = torch.randint(2, args.vocab_size, (batch, prompt_len), generator=gen).tolist()
        runs, first = [], None
        for world in worlds:
            lib = os.path.join(tmp, f"lib-tp{world}")
            build_library(args, "cpu", lib, config_name, world=world)
            res = greedy_ranks(folder, world, prompts, steps, library=lib)
            step = statistics.median(res["decode_s"][1:] or res["decode_s"])
            first = first if first is not None else res["tokens"]
            runs.append({"world": world, "decode_step_s": step, "decode_tokens_per_s": batch / step,
                         "tokens_equal_1_rank": bool((res["tokens"] == first).all()) if worlds[0] == 1 else None})
        base = runs[0]["decode_tokens_per_s"]
        for r in runs:
            r["ratio_to_first"] = r["decode_tokens_per_s"] / base
    return {"backend": "gloo", "runs": runs}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--model", help="a library folder from `tilec model build` (default: build one)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--decode-steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--serve-clients", default="1,4,16", help="concurrent clients per server run ('' skips it)")
    ap.add_argument("--serve-slots", type=int, default=16, help="the server's cache slots (max_batch_size)")
    ap.add_argument("--serve-requests", type=int, default=2, help="requests per client")
    ap.add_argument("--serve-prompt-len", type=int, default=32)
    ap.add_argument("--serve-max-tokens", type=int, default=16)
    ap.add_argument("--ranks", default="1,2", help="world sizes of the several-process run ('' skips it)")
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
    clients = [int(c) for c in ns.serve_clients.split(",") if c.strip()]
    if clients:
        from dataclasses import replace
        out["server"] = serve_throughput(replace(lib.args, max_batch_size=ns.serve_slots), dict(ref.state_dict()),
                                         lib, clients, ns.serve_requests, ns.serve_prompt_len, ns.serve_max_tokens)
        for r in out["server"]["runs"]:
            print(f"server, {r['clients']:2d} clients: {r['requests_per_s']:.2f} requests/s, "
                  f"{r['tokens_per_s']:.1f} tokens/s, mean latency {r['mean_latency_s']:.2f} s", file=sys.stderr)
    worlds = [int(w) for w in ns.ranks.split(",") if w.strip()]
    if worlds:
        out["ranks"] = ranks_throughput(lib.args, ns.config, worlds, ns.batch, ns.prompt_len, ns.decode_steps)
        for r in out["ranks"]["runs"]:
            print(f"{r['world']} rank(s): decode {r['decode_tokens_per_s']:.1f} tokens/s "
                  f"(batch {ns.batch}), tokens as 1 rank: {r['tokens_equal_1_rank']}", file=sys.stderr)
    text = json.dumps(out, indent=2)
    print(text)
    if ns.json:
        pathlib.Path(ns.json).write_text(text + "\n")
    if tmp is not None:
        tmp.cleanup()
    return out


if __name__ == "__main__":
    main()
