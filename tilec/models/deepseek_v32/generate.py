"""The generation loop of DeepSeek's ``generate.py`` (docs/deepseek_kernels.md §5.2), model-agnostic.

``forward(tokens[B, S], start_pos) -> logits[B, vocab]`` is either the PyTorch reference or the
compiled model. Prompts of different lengths are handled as the reference does: the first call
prefills the shortest prompt's length, then one position at a time, teacher-forcing the longer
prompts. ``on_token`` is called with each new column of tokens so a caller can stream them;
``stop(row, token) -> bool`` ends a row early (a stop string met: ``tokenizer.TextStream``).

Sampling (``sample``): temperature 0 is greedy (argmax); otherwise softmax(logits / T), restricted to
the ``top_k`` most likely tokens (0: all) and then to the smallest set whose probability reaches
``top_p`` (1.0: all), drawn by the reference's exponential race (argmax of p / Exponential(1) noise,
a categorical sample; the filtered probabilities need no renormalization for it). With ``top_p=1``
and ``top_k=0`` it is the reference's ``sample`` draw for draw.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch


def check_sampling(temperature: float, top_p: float, top_k: int) -> None:
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0: no limit), not {top_k}")


def sampling_defaults(generation_config: dict, temperature: Optional[float] = None, top_p: Optional[float] = None,
                      top_k: Optional[int] = None) -> tuple[float, float, int]:
    """(temperature, top_p, top_k): the given values, the rest from ``generation_config.json`` when it
    samples (``do_sample``), else greedy (0, 1.0, 0). ``model generate`` and the server both use it."""
    samples = bool(generation_config.get("do_sample", False))
    t = temperature if temperature is not None else \
        float(generation_config.get("temperature", 1.0)) if samples else 0.0
    p = top_p if top_p is not None else float(generation_config.get("top_p", 1.0)) if samples else 1.0
    k = top_k if top_k is not None else int(generation_config.get("top_k", 0)) if samples else 0
    return t, p, k


def filter_probs(probs: torch.Tensor, top_p: float = 1.0, top_k: int = 0) -> torch.Tensor:
    """``probs`` [B, V] with every token outside the top-k / top-p set zeroed (not renormalized)."""
    if top_k and top_k < probs.size(-1):
        kth = probs.topk(top_k, dim=-1).values[..., -1:]
        probs = probs.masked_fill(probs < kth, 0.0)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p          # mass of the more likely tokens
        drop = before >= top_p
        drop[..., 0] = False                                  # the most likely token always stays
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
    return probs


def sample(logits: torch.Tensor, temperature: float, generator: Optional[torch.Generator] = None,
           top_p: float = 1.0, top_k: int = 0):
    """Categorical sample from softmax(logits / T) (top-k, top-p filtered) by the reference's
    exponential-race trick."""
    probs = torch.softmax(logits.float() / max(temperature, 1e-5), dim=-1)
    if top_p < 1.0 or top_k:
        probs = filter_probs(probs, top_p, top_k)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return probs.div_(noise).argmax(dim=-1)


def next_token(logits: torch.Tensor, temperature: float, generator: Optional[torch.Generator] = None,
               top_p: float = 1.0, top_k: int = 0) -> torch.Tensor:
    """The next token of each row of ``logits`` [B, V]: argmax at temperature 0, else ``sample``. The one
    rule ``generate`` and the server (``serve.py``) both use, so the same seed gives the same tokens."""
    return sample(logits, temperature, generator, top_p, top_k) if temperature > 0 else logits.argmax(dim=-1)


def room(prompt_len: int, max_new_tokens: int, max_seq_len: int) -> int:
    """How many tokens a prompt of ``prompt_len`` may get: ``max_new_tokens``, cut where the sequence
    would pass ``max_seq_len`` (ValueError when not even one fits)."""
    total = min(max_seq_len, max_new_tokens + prompt_len)
    if prompt_len >= total:
        raise ValueError(f"a prompt of {prompt_len} tokens leaves no room under max_seq_len={max_seq_len}")
    return total - prompt_len


@torch.inference_mode()
def generate(forward: Callable[[torch.Tensor, int], torch.Tensor], prompts: list[list[int]],
             max_new_tokens: int, max_seq_len: int, eos_id: int, temperature: float = 0.0,
             generator: Optional[torch.Generator] = None,
             on_token: Optional[Callable[[int, torch.Tensor], None]] = None, top_p: float = 1.0,
             top_k: int = 0, stop: Optional[Callable[[int, int], bool]] = None) -> list[list[int]]:
    """Return each prompt's completion (at most ``max_new_tokens`` ids, cut at ``eos_id``, which may be
    a list of ids, or after the token at which ``stop(row, token)`` said True)."""
    check_sampling(temperature, top_p, top_k)
    eos_ids = list(eos_id) if isinstance(eos_id, (list, tuple)) else [eos_id]
    eos_t = torch.tensor(eos_ids, dtype=torch.long)
    lens = [len(p) for p in prompts]
    if min(lens) == 0:
        raise ValueError("every prompt needs at least one token")
    total = max(lens) + room(max(lens), max_new_tokens, max_seq_len)
    tokens = torch.full((len(prompts), total), -1, dtype=torch.long)
    for i, p in enumerate(prompts):
        tokens[i, :len(p)] = torch.tensor(p, dtype=torch.long)
    prompt_mask = tokens != -1
    finished = torch.zeros(len(prompts), dtype=torch.bool)
    ends = [total] * len(prompts)       # a row's tokens end before this column (a stop string)
    prev = 0
    for cur in range(min(lens), total):
        logits = forward(tokens[:, prev:cur], prev)
        nxt = next_token(logits, temperature, generator, top_p, top_k)
        nxt = torch.where(prompt_mask[:, cur], tokens[:, cur], nxt)
        tokens[:, cur] = nxt
        if on_token is not None:
            on_token(cur, nxt)
        finished |= (~prompt_mask[:, cur]) & torch.isin(nxt, eos_t)
        if stop is not None:
            for i in range(len(prompts)):
                if cur >= lens[i] and ends[i] == total and not finished[i] and stop(i, int(nxt[i])):
                    ends[i] = cur + 1
                    finished[i] = True
        prev = cur
        if bool(finished.all()):
            break
    out = []
    for i, n in enumerate(lens):
        row = tokens[i, n:min(n + max_new_tokens, ends[i])].tolist()
        row = [t for t in row if t != -1]
        cut = min([row.index(e) for e in eos_ids if e in row], default=len(row))
        out.append(row[:cut])
    return out
