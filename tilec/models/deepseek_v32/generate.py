"""The generation loop of DeepSeek's ``generate.py`` (specs/deepseek_v32.md §5.2), model-agnostic.

``forward(tokens[B, S], start_pos) -> logits[B, vocab]`` is either the PyTorch reference or the
compiled model. Prompts of different lengths are handled as the reference does: the first call
prefills the shortest prompt's length, then one position at a time, teacher-forcing the longer
prompts. ``on_token`` is called with each new column of tokens so a caller can stream them.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch


def sample(logits: torch.Tensor, temperature: float, generator: Optional[torch.Generator] = None):
    """Categorical sample from softmax(logits / T) by the exponential-race trick of the reference."""
    probs = torch.softmax(logits.float() / max(temperature, 1e-5), dim=-1)
    noise = torch.empty_like(probs).exponential_(1, generator=generator)
    return probs.div_(noise).argmax(dim=-1)


@torch.inference_mode()
def generate(forward: Callable[[torch.Tensor, int], torch.Tensor], prompts: list[list[int]],
             max_new_tokens: int, max_seq_len: int, eos_id: int, temperature: float = 0.0,
             generator: Optional[torch.Generator] = None,
             on_token: Optional[Callable[[int, torch.Tensor], None]] = None) -> list[list[int]]:
    """Return each prompt's completion (at most ``max_new_tokens`` ids, cut at ``eos_id``)."""
    lens = [len(p) for p in prompts]
    if min(lens) == 0:
        raise ValueError("every prompt needs at least one token")
    total = min(max_seq_len, max_new_tokens + max(lens))
    if max(lens) >= total:
        raise ValueError(f"a prompt of {max(lens)} tokens leaves no room under max_seq_len={max_seq_len}")
    tokens = torch.full((len(prompts), total), -1, dtype=torch.long)
    for i, p in enumerate(prompts):
        tokens[i, :len(p)] = torch.tensor(p, dtype=torch.long)
    prompt_mask = tokens != -1
    finished = torch.zeros(len(prompts), dtype=torch.bool)
    prev = 0
    for cur in range(min(lens), total):
        logits = forward(tokens[:, prev:cur], prev)
        nxt = sample(logits, temperature, generator) if temperature > 0 else logits.argmax(dim=-1)
        nxt = torch.where(prompt_mask[:, cur], tokens[:, cur], nxt)
        tokens[:, cur] = nxt
        if on_token is not None:
            on_token(cur, nxt)
        finished |= (~prompt_mask[:, cur]) & (nxt == eos_id)
        prev = cur
        if bool(finished.all()):
            break
    out = []
    for i, n in enumerate(lens):
        row = tokens[i, n:n + max_new_tokens].tolist()
        row = [t for t in row if t != -1]
        out.append(row[:row.index(eos_id)] if eos_id in row else row)
    return out
