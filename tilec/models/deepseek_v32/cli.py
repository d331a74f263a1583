"""``tilec model ...``: random weights, the ahead-of-time model library, and generation from it.

- ``tilec model init --config tiny --seed 0 -o tiny.safetensors``: random weights in DeepSeek's names.
- ``tilec model build --config tiny --target cpu -o build/dsv32-tiny``: every kernel of the
  configuration compiled into one shared library plus ``manifest.json`` (``library.py``).
- ``tilec model generate --model build/dsv32-tiny --weights tiny.safetensors --prompt "..."
  [--max-new-tokens 32] [--temperature 0] [--check]``: loads only the built library (no compiler),
  streams the completion, prints tokens/s; ``--check`` runs ``reference.py`` on the same tokens and
  prints the largest logit error of every step.

``register(subparsers)`` adds the group to the ``tilec`` command (``tilec/cli.py``).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

_HELP = """\
examples:
  tilec model init --config tiny --seed 0 -o tiny.safetensors
  tilec model build --config tiny --target cpu -o build/dsv32-tiny
  tilec model generate --model build/dsv32-tiny --weights tiny.safetensors --prompt "Hello" \\
      --max-new-tokens 32 --temperature 0 --check
"""


def register(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("model", help="DeepSeek-V3.2 on compiled kernels: init, build, generate",
                       epilog=_HELP, formatter_class=fmt,
                       description="DeepSeek-V3.2-Exp assembled from tilec kernels.")
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    q = msub.add_parser("init", help="write random weights (safetensors, DeepSeek's names)")
    q.add_argument("--config", default="tiny", help="tiny, tiny-fp8 (default tiny)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("-o", "--output", required=True, metavar="FILE")
    q.set_defaults(handler=_user_errors(cmd_init))
    q = msub.add_parser("build", help="compile every kernel of a configuration into one library")
    q.add_argument("--config", default="tiny", help="tiny, tiny-fp8 (default tiny)")
    q.add_argument("--target", default="cpu", help="cpu (a shared library)")
    q.add_argument("-o", "--output", required=True, metavar="DIR")
    q.set_defaults(handler=_user_errors(cmd_build))
    q = msub.add_parser("generate", help="generate text from a built library and weights")
    q.add_argument("--model", required=True, metavar="DIR", help="a folder written by `tilec model build`")
    q.add_argument("--weights", required=True, metavar="FILE", nargs="+", help="safetensors file(s)")
    q.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for a batch)")
    q.add_argument("--max-new-tokens", type=int, default=32)
    q.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    q.add_argument("--seed", type=int, default=33377335, help="sampling seed")
    q.add_argument("--attention", default="reference", choices=("reference", "flashmla"),
                   help="attention kernels: the reference's rounding points, or FlashMLA semantics")
    q.add_argument("--check", action="store_true", help="run the PyTorch reference alongside")
    q.set_defaults(handler=_user_errors(cmd_generate))


def _user_errors(handler):
    """Report a bad library, weights file or argument as a user error (exit 2, no traceback)."""
    def run(ns: argparse.Namespace) -> int:
        from tilec.errors import TilecError

        from .library import LibraryError
        from .weights import WeightsError
        try:
            return handler(ns)
        except (LibraryError, WeightsError, ValueError, OSError) as e:
            raise TilecError(str(e)) from None
    return run


def _config(name: str):
    from tilec.errors import TilecError

    from .config import get_config
    if name == "671b":
        raise TilecError("--config 671b: far too large for this command (its parameter count: "
                         f"{get_config('671b').n_params() / 1e9:.1f}B); use tiny or tiny-fp8")
    try:
        return get_config(name)
    except ValueError as e:
        raise TilecError(f"--config: {e}") from None


def cmd_init(ns: argparse.Namespace) -> int:
    import os

    import torch

    from .init import init_random_weights
    from .reference import Transformer
    from .weights import save_weights
    args = _config(ns.config)
    os.makedirs(os.path.dirname(os.path.abspath(ns.output)), exist_ok=True)
    torch.manual_seed(ns.seed)
    model = init_random_weights(Transformer(args), ns.seed)
    save_weights(model, ns.output)
    print(f"wrote {ns.output}: config {ns.config}, seed {ns.seed}, {args.n_params() / 1e6:.2f}M parameters")
    return 0


def cmd_build(ns: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .library import build_library
    from .specs import kernel_specs
    args = _config(ns.config)
    n = len(kernel_specs(args))
    start = time.perf_counter()
    with tqdm(total=n, desc=f"build {ns.config}", unit="kernel", file=sys.stderr) as bar:
        def step(name: str) -> None:
            bar.set_postfix_str(name[:40])
            bar.update(1)
        man = build_library(args, ns.target, ns.output, ns.config, progress=step)
    print(f"built {len(man['kernels'])} kernels for {ns.config} ({man['target']}) into {ns.output}/"
          f"{man['library']} + manifest.json in {time.perf_counter() - start:.1f} s")
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


def cmd_generate(ns: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .generate import generate
    from .library import load_library
    from .model import Model
    from .reference import Transformer
    from .tokenizer import load_tokenizer
    from .weights import load_weights
    lib = load_library(ns.model)
    args = lib.args
    holder = load_weights(Transformer(args), ns.weights)
    model = Model(args, dict(holder.state_dict()), lib, lib.target, ns.attention)
    tok = load_tokenizer(ns.model, args.vocab_size)
    prompts = [tok.encode(p) for p in ns.prompt]
    checker = _Checker(holder) if ns.check else None
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
    bar = tqdm(total=total, desc="generate", unit="tok", file=sys.stderr, leave=False)
    if stream:
        print(ns.prompt[0], end="", flush=True)
    done: list[int] = []

    def on_token(cur: int, nxt) -> None:
        bar.update(1)
        if stream and cur >= len(prompts[0]) and nxt[0].item() != tok.eos_token_id:
            done.append(int(nxt[0]))
            print(_printable(tok.decode(done[-1:])), end="", flush=True)

    gen = torch.Generator().manual_seed(ns.seed)
    outs = generate(forward, prompts, ns.max_new_tokens, args.max_seq_len, tok.eos_token_id,
                    ns.temperature, gen, on_token)
    bar.close()
    if stream:
        print()
    else:
        for p, o in zip(ns.prompt, outs):
            print(f"{p!r} -> {_printable(tok.decode(o))!r}")
    _print_speed(times, len(prompts))
    return _print_check(checker) if checker is not None else 0


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
