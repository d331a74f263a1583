"""Tokenizers: byte-level for the ``tiny`` configuration, ``tokenizer.json`` for a real model.

The byte tokenizer maps each UTF-8 byte b to id b + 2, keeping 0 and 1 for BOS and EOS as DeepSeek's
vocabulary does; any vocabulary of at least 258 entries can use it. A model directory holding a
``tokenizer.json`` is read through the ``tokenizers`` package instead (imported only then).
"""
from __future__ import annotations

import os

BOS, EOS = 0, 1
_OFFSET = 2


class ByteTokenizer:
    bos_token_id = BOS
    eos_token_id = EOS

    def __init__(self, vocab_size: int = 258):
        if vocab_size < 256 + _OFFSET:
            raise ValueError(f"a byte tokenizer needs a vocabulary of at least 258, not {vocab_size}")
        self.vocab_size = vocab_size

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [b + _OFFSET for b in text.encode("utf-8")]
        return [BOS] + ids if add_bos else ids

    def decode(self, ids: list[int]) -> str:
        data = bytes(i - _OFFSET for i in ids if _OFFSET <= i < 256 + _OFFSET)
        return data.decode("utf-8", errors="replace")


class HFTokenizer:
    """A ``tokenizer.json`` read by the ``tokenizers`` package."""

    def __init__(self, path: str, bos_token_id: int = BOS, eos_token_id: int = EOS):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise RuntimeError(f"{path} needs the 'tokenizers' package: pip install tokenizers") from None
        self._tok = Tokenizer.from_file(path)
        self.bos_token_id, self.eos_token_id = bos_token_id, eos_token_id

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return [self.bos_token_id] + ids if add_bos else ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)


def load_tokenizer(model_dir: str | None, vocab_size: int):
    """``tokenizer.json`` from ``model_dir`` when present, else the byte tokenizer."""
    if model_dir:
        path = os.path.join(model_dir, "tokenizer.json")
        if os.path.isfile(path):
            return HFTokenizer(path)
    return ByteTokenizer(vocab_size)
