"""``tilec model ...``: random weights, the ahead-of-time model library, and generation from it.

- ``tilec model init --config tiny --seed 0 -o tiny.safetensors``: random weights in DeepSeek's names;
  ``-o DIR`` writes a Hugging Face-style checkpoint folder instead (``testing.write_hf_checkpoint``).
- ``tilec model build --config tiny --target cpu -o build/dsv32-tiny [--max-batch-size N --max-seq-len N]``:
  every kernel of the configuration compiled into one shared library plus ``manifest.json``
  (``library.py``). ``--weights FOLDER`` takes the configuration from the folder's config.json.
- ``tilec model serve --weights FOLDER [--model DIR] [--host H --port P --max-batch-size N]``: an
  OpenAI-compatible HTTP server (``serve.py``) with continuous batching over the batch slots.
- ``tilec model generate --weights FOLDER|INDEX|FILE... [--model DIR] --prompt "..." [--chat [--system S]]
  [--max-new-tokens 32] [--temperature T --top-p P --top-k K --seed S] [--stop STR] [--check]``:
  with ``--model`` loads only the built library (no compiler), else compiles the kernels in-process;
  streams the completion, prints tokens/s; ``--check`` runs ``reference.py`` on the same tokens and
  prints the largest logit error of every step.

``--config`` is a built-in name (tiny, tiny-fp8), a Hugging Face config.json or a ModelArgs JSON.
``register(subparsers)`` adds the group to the ``tilec`` command (``tilec/cli.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

_HELP = """\
examples:
  tilec model init --config tiny --seed 0 -o tiny.safetensors
  tilec model build --config tiny --target cpu -o build/dsv32-tiny
  tilec model generate --model build/dsv32-tiny --weights tiny.safetensors --prompt "Hello" \\
      --max-new-tokens 32 --temperature 0 --check
  tilec model build --weights DeepSeek-V3.2-Exp/ --max-batch-size 4 --max-seq-len 4096 -o build/dsv32
  tilec model generate --model build/dsv32 --weights DeepSeek-V3.2-Exp/ --chat --prompt "Hi" --top-p 0.95
  tilec model serve --model build/dsv32 --weights DeepSeek-V3.2-Exp/ --port 8000
"""
_CONFIG_HELP = "tiny, tiny-fp8, a config.json (Hugging Face keys) or a ModelArgs JSON"


def register(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("model", help="DeepSeek-V3.2 on compiled kernels: init, build, generate, serve",
                       epilog=_HELP, formatter_class=fmt,
                       description="DeepSeek-V3.2-Exp assembled from tilec kernels.")
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    q = msub.add_parser("init", help="write random weights (safetensors, DeepSeek's names; or an HF folder)")
    q.add_argument("--config", default="tiny", help=_CONFIG_HELP + " (default tiny)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("-o", "--output", required=True, metavar="FILE|DIR",
                   help="a .safetensors file, or a folder: an HF-style checkpoint (config.json, 2 shards + index, "
                        "tokenizer, the MTP layer)")
    q.set_defaults(handler=_user_errors(cmd_init))
    q = msub.add_parser("build", help="compile every kernel of a configuration into one library")
    q.add_argument("--config", default=None, help=_CONFIG_HELP + " (default: the --weights folder's "
                                                                 "config.json, else tiny)")
    q.add_argument("--weights", default=None, metavar="DIR|INDEX", help="a checkpoint folder (for its config.json)")
    q.add_argument("--target", default="cpu", help="cpu (a shared library)")
    q.add_argument("--tp", type=int, default=1, metavar="N",
                   help="build one rank's kernels of a run on N processes (torchrun --nproc-per-node N)")
    _size_args(q, "recorded in the manifest")
    q.add_argument("-o", "--output", required=True, metavar="DIR")
    q.set_defaults(handler=_user_errors(cmd_build))
    q = msub.add_parser("generate", help="generate text from a checkpoint (and a built library)")
    q.add_argument("--model", default=None, metavar="DIR",
                   help="a folder written by `tilec model build` (default: compile the kernels in this process)")
    q.add_argument("--weights", required=True, metavar="PATH", nargs="+",
                   help="a checkpoint folder, its model.safetensors.index.json, or safetensors file(s)")
    q.add_argument("--config", default=None, help=_CONFIG_HELP + " (default: the library's, else the "
                                                                 "folder's config.json)")
    q.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for a batch)")
    q.add_argument("--chat", action="store_true", help="wrap each prompt in the chat template "
                                                       "(tokenizer_config.json), with the generation prompt")
    q.add_argument("--system", default=None, help="with --chat: a system prompt")
    q.add_argument("--max-new-tokens", type=int, default=32)
    q.add_argument("--temperature", type=float, default=None,
                   help="0 = greedy; default: generation_config.json's when it samples, else 0")
    q.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass (default "
                                                             "generation_config.json's, else 1.0)")
    q.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens (0: all)")
    q.add_argument("--stop", action="append", default=[], metavar="STR", help="stop string (repeatable)")
    q.add_argument("--seed", type=int, default=33377335, help="sampling seed")
    _size_args(q, "without --model; with --model at most the library's")
    q.add_argument("--attention", default="reference", choices=("reference", "flashmla"),
                   help="attention kernels: the reference's rounding points, or FlashMLA semantics")
    q.add_argument("--check", action="store_true", help="run the PyTorch reference alongside")
    _dist_args(q)
    q.set_defaults(handler=_user_errors(cmd_generate))
    q = msub.add_parser("serve", help="an OpenAI-compatible HTTP server with continuous batching",
                        description="Serve /v1/models, /v1/completions and /v1/chat/completions (streaming "
                                    "too); concurrent requests share the library's batch slots "
                                    "(docs/model.md, 'Serving').")
    q.add_argument("--model", "--library", dest="model", default=None, metavar="DIR",
                   help="a folder written by `tilec model build` (default: compile the kernels in this process)")
    q.add_argument("--weights", required=True, metavar="PATH", nargs="+",
                   help="a checkpoint folder, its model.safetensors.index.json, or safetensors file(s)")
    q.add_argument("--config", default=None, help=_CONFIG_HELP + " (default: the library's, else the "
                                                                 "folder's config.json)")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    q.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    q.add_argument("--served-model-name", default=None, metavar="NAME",
                   help="the model id clients name (default: the checkpoint folder's name)")
    _size_args(q, "the server's slots; without --model; with --model at most the library's")
    q.add_argument("--attention", default="reference", choices=("reference", "flashmla"),
                   help="attention kernels (as for generate)")
    q.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    q.set_defaults(handler=_user_errors(cmd_serve))


def _dist_args(q: Any) -> None:
    q.add_argument("--dist-backend", default=None, choices=("auto", "gloo", "nccl"),
                   help="under torchrun: the torch.distributed backend (default $TILEC_DIST_BACKEND, else auto: "
                        "gloo, the model's tensors being in CPU memory)")


def _size_args(q: Any, note: str) -> None:
    q.add_argument("--max-batch-size", type=int, default=None, metavar="N",
                   help=f"most prompts per call (cache batch; {note})")
    q.add_argument("--max-seq-len", type=int, default=None, metavar="N",
                   help=f"longest prompt + completion (cache length; {note})")


def _user_errors(handler):
    """Report a bad library, weights file or argument as a user error (exit 2, no traceback)."""
    def run(ns: argparse.Namespace) -> int:
        import warnings

        from tilec.errors import TilecError

        from .checkpoint import UnusedWeightsWarning
        from .library import LibraryError
        from .weights import WeightsError
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UnusedWeightsWarning)
                try:
                    return handler(ns)
                finally:
                    for w in caught:
                        if issubclass(w.category, UnusedWeightsWarning):
                            print(f"warning: {w.message}", file=sys.stderr)
                        else:
                            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        except (LibraryError, WeightsError, ValueError, OSError) as e:
            raise TilecError(str(e)) from None
    return run


def _config(name: str, **sizes: Any):
    from tilec.errors import TilecError

    from .config import get_config, load_config
    if name == "671b":
        raise TilecError("--config 671b: far too large for this command (its parameter count: "
                         f"{get_config('671b').n_params() / 1e9:.1f}B); use tiny or tiny-fp8")
    try:
        return load_config(name, **sizes)
    except ValueError as e:
        raise TilecError(f"--config: {e}") from None


def _sizes(ns: argparse.Namespace) -> dict:
    return {"max_batch_size": ns.max_batch_size, "max_seq_len": ns.max_seq_len}


def cmd_init(ns: argparse.Namespace) -> int:
    import torch

    from .init import init_random_weights
    from .reference import Transformer
    from .weights import save_weights
    args = _config(ns.config)
    if not ns.output.endswith(".safetensors"):
        from .testing import write_hf_checkpoint
        write_hf_checkpoint(ns.output, args, seed=ns.seed)
        print(f"wrote {ns.output}/: an HF-style checkpoint (config.json, 2 shards + index, tokenizer, MTP layer), "
              f"config {ns.config}, seed {ns.seed}, {args.n_params() / 1e6:.2f}M parameters")
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(ns.output)), exist_ok=True)
    torch.manual_seed(ns.seed)
    model = init_random_weights(Transformer(args), ns.seed)
    save_weights(model, ns.output)
    print(f"wrote {ns.output}: config {ns.config}, seed {ns.seed}, {args.n_params() / 1e6:.2f}M parameters")
    return 0


def cmd_build(ns: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .checkpoint import resolve_files
    from .config import check_buildable
    from .library import build_library
    from .specs import kernel_specs
    name = ns.config
    if name is None and ns.weights is not None:
        folder = resolve_files(ns.weights)[0]
        if folder is None or not os.path.isfile(os.path.join(folder, "config.json")):
            raise ValueError(f"--weights {ns.weights}: no config.json next to the weights; give --config")
        name = os.path.join(folder, "config.json")
    args = _config(name or "tiny", **_sizes(ns))
    check_buildable(args, ns.target)
    label = name or "tiny"
    n = len(kernel_specs(args, "cpu", ns.tp))
    start = time.perf_counter()
    with tqdm(total=n, desc=f"build {os.path.basename(label.rstrip('/'))}", unit="kernel", file=sys.stderr) as bar:
        def step(kname: str) -> None:
            bar.set_postfix_str(kname[:40])
            bar.update(1)
        man = build_library(args, ns.target, ns.output, label, progress=step, world=ns.tp)
    ranks = f", {ns.tp} ranks" if ns.tp > 1 else ""
    print(f"built {len(man['kernels'])} kernels for {label} ({man['target']}{ranks}, "
          f"max_batch_size {args.max_batch_size}, "
          f"max_seq_len {args.max_seq_len}) into {ns.output}/{man['library']} + manifest.json in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


class _Checker:
    """Runs the reference on the same inputs as the compiled model and records the logit errors."""

    def __init__(self, ref: Any):
        self.ref, self.rows = ref, []

    def __call__(self, tokens, start_pos: int, logits) -> None:
        lr = self.ref(tokens, start_pos)
        err = (logits - lr).abs().max().item()
        rel = ((logits - lr).norm() / lr.norm()).item()
        same = bool((logits.argmax(-1) == lr.argmax(-1)).all())
        self.rows.append((start_pos, tokens.size(1), err, rel, same))


def _sampling(ns: argparse.Namespace, gen_cfg: dict) -> tuple[float, float, int]:
    """--temperature/--top-p/--top-k, defaulting to generation_config.json when it samples."""
    from .generate import sampling_defaults
    return sampling_defaults(gen_cfg, ns.temperature, ns.top_p, ns.top_k)


def _load_pretrained(ns: argparse.Namespace, par: Any = None):
    """(weights argument, ``load_pretrained`` result) for ``generate`` and ``serve``, which load alike;
    ``par``: this rank of a torchrun job (its shard only)."""
    from .checkpoint import load_pretrained
    weights = ns.weights[0] if len(ns.weights) == 1 else ns.weights
    return weights, load_pretrained(weights, library=ns.model, config=ns.config, attention=ns.attention,
                                    max_batch_size=ns.max_batch_size, max_seq_len=ns.max_seq_len, par=par)


def cmd_generate(ns: argparse.Namespace) -> int:
    """Under torchrun every rank runs this with its shard; the ranks compute the same logits (the head's
    are gathered), hence the same tokens, and rank 0 alone prints."""
    import contextlib

    from .parallel import init_from_env, world_from_env
    if world_from_env() > 1 and ns.check:
        raise ValueError("--check runs the PyTorch reference on the whole model: run it in one process")
    par = init_from_env(ns.dist_backend or "auto")
    try:
        quiet = contextlib.redirect_stdout(open(os.devnull, "w")) if par.rank else contextlib.nullcontext()
        with quiet:
            return _generate(ns, par)
    finally:
        if par.world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()


def _generate(ns: argparse.Namespace, par: Any) -> int:
    import torch
    from tqdm import tqdm

    from .generate import check_sampling, generate
    from .tokenizer import TextStream, chat_messages, encode_chat
    _, pre = _load_pretrained(ns, par)
    args, model, tok = pre.args, pre.model, pre.tokenizer
    if len(ns.prompt) > args.max_batch_size:
        raise ValueError(f"{len(ns.prompt)} prompts, more than max_batch_size={args.max_batch_size}"
                         + (f" of the library {ns.model} (rebuild with --max-batch-size)" if ns.model else ""))
    if ns.system is not None and not ns.chat:
        raise ValueError("--system needs --chat")
    temperature, top_p, top_k = _sampling(ns, pre.generation_config)
    check_sampling(temperature, top_p, top_k)
    if ns.chat:
        prompts = [encode_chat(tok, chat_messages(p, ns.system)) for p in ns.prompt]
    else:
        prompts = [tok.encode(p) for p in ns.prompt]
    checker = _Checker(pre.reference()) if ns.check else None
    times: list[tuple[int, float]] = []      # (tokens processed, seconds) per forward

    def forward(tokens, start_pos):
        t0 = time.perf_counter()
        logits = model(tokens, start_pos)
        times.append((tokens.numel(), time.perf_counter() - t0))
        if checker is not None:
            checker(tokens, start_pos, logits)
        return logits

    stream = len(prompts) == 1
    total = min(args.max_seq_len, ns.max_new_tokens + max(map(len, prompts))) - min(map(len, prompts))
    bar = tqdm(total=total, desc="generate", unit="tok", file=sys.stderr, leave=False,
               disable=par.rank != 0)
    if stream:
        print(ns.prompt[0], end="", flush=True)
    streams = [TextStream(tok, ns.stop) for _ in prompts]
    texts = [""] * len(prompts)

    def on_token(cur: int, nxt) -> None:
        bar.update(1)

    def stop(row: int, token: int) -> bool:
        text, done = streams[row].push(token)
        texts[row] += text
        if stream and text:
            print(_printable(text), end="", flush=True)
        return done

    gen = torch.Generator().manual_seed(ns.seed)
    generate(forward, prompts, ns.max_new_tokens, args.max_seq_len, list(tok.eos_token_ids), temperature, gen,
             on_token, top_p=top_p, top_k=top_k, stop=stop)
    bar.close()
    for i, st in enumerate(streams):
        tail = st.finish()
        texts[i] += tail
        if stream and tail:
            print(_printable(tail), end="", flush=True)
    if stream:
        print()
    else:
        for p, o in zip(ns.prompt, texts):
            print(f"{p!r} -> {_printable(o)!r}")
    _print_speed(times, len(prompts))
    return _print_check(checker) if checker is not None else 0


def cmd_serve(ns: argparse.Namespace) -> int:
    from tilec.errors import require

    from .serve import SERVE_WHAT, Engine, create_app, model_name, uvicorn_server
    require("starlette", SERVE_WHAT)
    require("uvicorn", SERVE_WHAT)
    if not 0 <= ns.port <= 65535:
        raise ValueError(f"--port {ns.port}: not a port number (0..65535)")
    from .parallel import world_from_env
    if world_from_env() > 1:
        raise ValueError("model serve runs in one process (WORLD_SIZE > 1 is for model generate); start it "
                         "without torchrun")
    weights, pre = _load_pretrained(ns)
    name = ns.served_model_name or model_name(weights, ns.config)
    engine = Engine(pre.model, pre.tokenizer)
    server = uvicorn_server(create_app(engine, name, pre.generation_config), ns.host, ns.port, ns.log_level)
    print(f"serving {name} ({pre.args.max_batch_size} slots, max_seq_len {pre.args.max_seq_len}) on "
          f"http://{ns.host}:{ns.port}/v1", file=sys.stderr, flush=True)
    server.run()
    return 0


def _printable(text: str) -> str:
    """Random weights emit arbitrary bytes: keep control characters off the terminal."""
    return "".join(ch if ch.isprintable() or ch == "\n" else "\ufffd" for ch in text)


def _print_speed(times: list[tuple[int, float]], batch: int) -> None:
    pre_n, pre_t = times[0]
    dec = times[1:]
    msg = f"prefill: {pre_n} tokens in {pre_t * 1e3:.1f} ms ({pre_n / pre_t:.0f} tokens/s)"
    if dec:
        dt = sum(t for _, t in dec)
        msg += (f"; decode: {len(dec)} steps x batch {batch} in {dt:.3f} s "
                f"({len(dec) * batch / dt:.1f} tokens/s)")
    print(msg)


def _print_check(checker: _Checker) -> int:
    import math
    worst = 0.0
    for pos, n, err, rel, same in checker.rows:
        kind = "prefill" if n > 1 else "decode "
        print(f"check {kind} pos {pos:4d}: max |logit - reference| = {err:.4f} (relative {rel:.2e}), "
              f"argmax {'same' if same else 'DIFFERS'}")
        worst = max(worst, err) if math.isfinite(err) else math.inf
    agree = sum(r[4] for r in checker.rows)
    print(f"check: largest logit error {worst:.4f} over {len(checker.rows)} steps; greedy token agrees "
          f"with the reference at {agree}/{len(checker.rows)} steps")
    if agree < len(checker.rows):
        print("note: the indexer's top-k and the MoE routing flip on (near-)ties, and torch.topk orders "
              "exact ties arbitrarily, so the two models can part ways (docs/model.md, 'How it is checked')")
    return 0 if math.isfinite(worst) else 1
