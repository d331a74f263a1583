"""Tokenizers: a checkpoint folder's ``tokenizer.json``, or byte-level for the built-in ``tiny`` configs.

A folder holding ``tokenizer.json`` is read through the ``tokenizers`` package (``pip install
tilec[model]``); its BOS/EOS come from ``tokenizer_config.json`` (``bos_token``/``eos_token``, strings or
``{"content": ...}``) and ``generation_config.json`` (``bos_token_id``/``eos_token_id``, which win; a list
of EOS ids ends generation at any of them), never from constants. ``apply_chat_template(messages,
add_generation_prompt=True)`` renders ``tokenizer_config.json``'s ``chat_template`` with jinja2 in a
sandbox, as transformers does (``trim_blocks``, ``lstrip_blocks``, ``raise_exception``), and returns the
text; ``encode(text, add_bos=False)`` then tokenizes it with the template's own BOS.

The byte tokenizer maps each UTF-8 byte b to id b + 2, keeping 0 and 1 for BOS and EOS as DeepSeek's
vocabulary does; any vocabulary of at least 258 entries can use it.

Streaming (``TextStream``): tokens are decoded incrementally; text that ends inside a UTF-8 sequence (a
multi-byte character split over tokens decodes to U+FFFD) is held back until the sequence completes,
and so is any tail that could be the start of a stop string. ``push(id)`` returns the newly final text
and whether a stop string (or EOS) was met; ``finish()`` returns what was held back.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Optional, Sequence

BOS, EOS = 0, 1
_OFFSET = 2
MODEL_EXTRA = "pip install tilec[model]"


class TokenizerError(ValueError):
    """A tokenizer file or chat template that cannot be used; the message names the file."""


class ByteTokenizer:
    bos_token_id = BOS
    eos_token_id = EOS
    eos_token_ids = (EOS,)
    chat_template = None

    def __init__(self, vocab_size: int = 258):
        if vocab_size < 256 + _OFFSET:
            raise ValueError(f"a byte tokenizer needs a vocabulary of at least 258, not {vocab_size}")
        self.vocab_size = vocab_size

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [b + _OFFSET for b in text.encode("utf-8")]
        return [BOS] + ids if add_bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        data = bytes(i - _OFFSET for i in ids if _OFFSET <= i < 256 + _OFFSET)
        return data.decode("utf-8", errors="replace")

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        raise TokenizerError("this model has no chat template (no tokenizer_config.json with 'chat_template')")


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as e:
        raise TokenizerError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    return data


def load_generation_config(folder: Optional[str]) -> dict:
    """``generation_config.json`` of a folder ({} when absent)."""
    return _read_json(os.path.join(folder, "generation_config.json")) if folder else {}


def _token_text(value: Any) -> Optional[str]:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizer:
    """A ``tokenizer.json`` read by the ``tokenizers`` package, with the folder's special tokens and chat
    template (module docstring)."""

    def __init__(self, path: str, tokenizer_config: Optional[dict] = None,
                 generation_config: Optional[dict] = None):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise TokenizerError(f"{path} needs the 'tokenizers' package: {MODEL_EXTRA}") from None
        try:
            self._tok = Tokenizer.from_file(path)
        except Exception as e:    # tokenizers raises its own exception type for a bad file
            raise TokenizerError(f"{path}: not a readable tokenizer.json: {e}") from None
        self.path = path
        tc, gc = tokenizer_config or {}, generation_config or {}
        self.bos_token = _token_text(tc.get("bos_token"))
        self.eos_token = _token_text(tc.get("eos_token"))
        self.bos_token_id = self._special_id("bos", self.bos_token, gc.get("bos_token_id"))
        eos = gc.get("eos_token_id")
        eos_ids = list(eos) if isinstance(eos, list) else [eos] if eos is not None else []
        if not eos_ids:
            eos_ids = [self._special_id("eos", self.eos_token, None)]
        if any(i is None or not isinstance(i, int) for i in eos_ids):
            raise TokenizerError(f"{os.path.dirname(path)}: no EOS token (tokenizer_config.json 'eos_token' or "
                                 f"generation_config.json 'eos_token_id')")
        self.eos_token_ids = tuple(eos_ids)
        self.eos_token_id = eos_ids[0]
        if self.eos_token is None:
            self.eos_token = self._tok.id_to_token(self.eos_token_id)
        if self.bos_token is None and self.bos_token_id is not None:
            self.bos_token = self._tok.id_to_token(self.bos_token_id)
        self.add_bos = bool(tc.get("add_bos_token", True)) and self.bos_token_id is not None
        self.chat_template = tc.get("chat_template")
        if isinstance(self.chat_template, list):     # [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in self.chat_template if isinstance(t, dict)}
            self.chat_template = named.get("default") or next(iter(named.values()), None)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

    def _special_id(self, kind: str, token: Optional[str], given: Any) -> Optional[int]:
        if given is not None:
            if not isinstance(given, int):
                raise TokenizerError(f"generation_config.json: {kind}_token_id must be an integer, not {given!r}")
            return given
        if token is None:
            return None
        tid = self._tok.token_to_id(token)
        if tid is None:
            raise TokenizerError(f"{self.path}: the {kind} token {token!r} of tokenizer_config.json is not in "
                                 f"the vocabulary")
        return tid

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return [self.bos_token_id] + ids if add_bos and self.add_bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True, **extra: Any) -> str:
        """The rendered chat template (text; it carries its own BOS, so encode it with ``add_bos=False``)."""
        if not self.chat_template:
            raise TokenizerError(f"{os.path.dirname(self.path)}: tokenizer_config.json has no 'chat_template'")
        return render_chat_template(self.chat_template, messages, add_generation_prompt,
                                    bos_token=self.bos_token or "", eos_token=self.eos_token or "", **extra)


def render_chat_template(template: str, messages: list[dict], add_generation_prompt: bool = True,
                         **context: Any) -> str:
    """Render a Hugging Face chat template with jinja2 (sandboxed, as ``transformers`` does)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TokenizerError(f"chat template: {message}")

    def strftime_now(fmt: str) -> str:
        import datetime
        return datetime.datetime.now().strftime(fmt)

    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
            raise TokenizerError(f"a chat message needs 'role' and 'content', got {m!r}")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, indent=indent,
                                                                                   ensure_ascii=ensure_ascii)
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                **context)
    except jinja2.TemplateError as e:
        raise TokenizerError(f"chat template: {e}") from None


def chat_messages(prompt: str, system: Optional[str] = None) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": prompt}]


def encode_chat(tokenizer: Any, messages: list[dict]) -> list[int]:
    """Token ids of ``messages`` in the chat template with the generation prompt (the template carries
    its own BOS): what ``model generate --chat`` and the server's /v1/chat/completions feed the model."""
    return tokenizer.encode(tokenizer.apply_chat_template(messages, add_generation_prompt=True), add_bos=False)


def load_tokenizer(model_dir: Optional[str], vocab_size: int):
    """``tokenizer.json`` (with tokenizer_config.json / generation_config.json) from ``model_dir`` when
    present, else the byte tokenizer."""
    if model_dir:
        path = os.path.join(model_dir, "tokenizer.json")
        if os.path.isfile(path):
            tok = HFTokenizer(path, _read_json(os.path.join(model_dir, "tokenizer_config.json")),
                              load_generation_config(model_dir))
            if tok.vocab_size > vocab_size:
                raise TokenizerError(f"{path}: {tok.vocab_size} tokens, more than the model's vocab_size "
                                     f"{vocab_size}")
            return tok
    return ByteTokenizer(vocab_size)


class TextStream:
    """Incremental detokenization of one sequence, holding back incomplete UTF-8 and partial stop strings.

    ``push(token_id) -> (text, stopped)``: the text that became final with this token, and whether the
    sequence ended (an EOS id, or a stop string; the stop string and everything after it is never
    returned). ``finish()`` returns the held-back tail (without an incomplete character's U+FFFD
    only if more tokens could have completed it: at the end it is emitted as decoded)."""

    def __init__(self, tokenizer: Any, stop: Sequence[str] = (), eos_ids: Optional[Iterable[int]] = None):
        self.tok = tokenizer
        self.stop = [s for s in stop if s]
        self.eos = set(eos_ids if eos_ids is not None else getattr(tokenizer, "eos_token_ids",
                                                                  (tokenizer.eos_token_id,)))
        self.ids: list[int] = []
        # ids[:start] are decoded and final (emitted or in ``text``); decoding resumes from ``prefix`` (the
        # previous chunk's first token) so that decoders whose output depends on the previous token
        # (a leading-space rule) see it, and only the text past ids[prefix:start] is new
        self.prefix = self.start = 0
        self.text = ""        # final text not yet emitted (a possible stop-string prefix)
        self.stopped = False

    def push(self, token_id: int) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        if token_id in self.eos:
            self.stopped = True
            return self._flush_all(), True
        self.ids.append(int(token_id))
        chunk = self._new_text()
        if chunk.endswith("\ufffd"):      # inside a multi-byte character: wait for the next token
            return "", False
        self.prefix, self.start = self.start, len(self.ids)
        self.text += chunk
        return self._release()

    def _new_text(self) -> str:
        before = self.tok.decode(self.ids[self.prefix:self.start]) if self.start > self.prefix else ""
        after = self.tok.decode(self.ids[self.prefix:])
        return after[len(before):] if after.startswith(before) else self.tok.decode(self.ids[self.start:])

    def _release(self) -> tuple[str, bool]:
        for s in self.stop:
            at = self.text.find(s)
            if at >= 0:
                self.stopped = True
                out, self.text = self.text[:at], ""
                return out, True
        hold = 0           # the longest tail that is a proper prefix of a stop string
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), 0, -1):
                if self.text.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        cut = len(self.text) - hold
        out, self.text = self.text[:cut], self.text[cut:]
        return out, False

    def _flush_all(self) -> str:
        rest = self._new_text() if self.start < len(self.ids) else ""
        self.prefix = self.start = len(self.ids)
        out, self.text = self.text + rest, ""
        return out

    def finish(self) -> str:
        """What is still held back, once no more tokens come."""
        if self.stopped:
            return ""
        self.stopped = True
        return self._flush_all()
