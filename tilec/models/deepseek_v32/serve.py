"""``tilec model serve``: an OpenAI-compatible HTTP server with continuous batching (docs/model.md, "Serving").

Two parts:

- ``Engine``: one thread owns the ``model.Model`` and its ``max_batch_size`` cache slots. Requests wait
  in a FIFO queue; at every step boundary the engine drops the sequences whose client went away,
  admits waiting ones into free slots (one ``Model.prefill_slot`` each, which also yields their first
  token), then runs one ``Model.decode_slots`` over every active sequence, each at its own position.
  A row's logits are those of the sequence running alone (``decode_slots`` masks other rows' and a
  slot's earlier tenants' keys), so greedy output does not depend on what else is being served.
  Sampling (``generate.next_token``, a ``torch.Generator`` per sequence seeded by ``seed``), stop
  strings and UTF-8-safe incremental decoding (``tokenizer.TextStream``), the chat template
  (``tokenizer.encode_chat``) and the length rule (``generate.room``) are ``model generate``'s own.
- ``create_app(engine, name)``: a starlette app. ``GET /v1/models``, ``POST /v1/completions``, ``POST
  /v1/chat/completions`` (``stream: true`` sends server-sent events ``data: {chunk}`` and ``data:
  [DONE]`` in OpenAI's chunk format), ``GET /health`` (the engine's counters). Bad requests get
  OpenAI's error body ``{"error": {"message", "type", "param", "code"}}`` with 400 (malformed JSON,
  missing or mistyped fields, a prompt with no room under ``max_seq_len``), 404 (unknown model or
  path) or 405; a client that disconnects (mid-stream or while waiting) frees its slot at the next step.

``serve(pre, host, port)`` runs the app under uvicorn. starlette and uvicorn are the ``serve`` extra
(``pip install tilec[serve]``).
"""
from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from .generate import check_sampling, next_token, room, sampling_defaults
from .tokenizer import TextStream, TokenizerError, encode_chat

SERVE_WHAT = "tilec model serve"


@dataclass
class Sampling:
    """A request's generation parameters (validated)."""
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: Optional[int]
    stop: list[str]


@dataclass(eq=False)
class Sequence:
    """One prompt being completed; the engine thread alone touches its state after ``submit``."""
    prompt: list[int]
    params: Sampling
    index: int = 0                       # the choice index within its request
    queue: Any = None                    # asyncio.Queue of (index, kind, payload), fed thread-safely
    loop: Any = None
    slot: Optional[int] = None
    pos: int = 0                         # the position of the next token fed to the model
    tokens: list[int] = field(default_factory=list)
    budget: int = 0                      # most tokens it may get (generate.room)
    text: Optional[TextStream] = None
    generator: Optional[torch.Generator] = None
    cancelled: bool = False
    done: bool = False

    def emit(self, kind: str, payload: Any) -> None:
        if self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (self.index, kind, payload))
        except RuntimeError:             # the event loop is gone: nobody listens any more
            self.cancelled = True


class Engine:
    """Continuous batching over the model's cache slots (module docstring). ``start()`` runs the loop in
    a daemon thread; ``submit``/``cancel`` may be called from any thread."""

    def __init__(self, model: Any, tokenizer: Any, eos_ids: Optional[list[int]] = None):
        self.model, self.tok = model, tokenizer
        self.args = model.args
        self.n_slots = self.args.max_batch_size
        self.eos_ids = list(eos_ids if eos_ids is not None else tokenizer.eos_token_ids)
        self.slots: list[Optional[Sequence]] = [None] * self.n_slots
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.cond = threading.Condition()
        self.stopping = False
        self.thread: Optional[threading.Thread] = None
        self.counters = {"steps": 0, "prefills": 0, "finished": 0, "cancelled": 0, "errors": 0,
                         "largest_batch": 0, "generated_tokens": 0}
        model.reset(self.n_slots)

    # --- any thread ------------------------------------------------------------------------------
    def start(self) -> "Engine":
        if self.thread is None:
            self.stopping = False
            self.thread = threading.Thread(target=self._loop, name="tilec-engine", daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def submit(self, seq: Sequence) -> None:
        seq.budget = room(len(seq.prompt), seq.params.max_tokens, self.args.max_seq_len)
        seq.text = TextStream(self.tok, seq.params.stop, self.eos_ids)
        seed = seq.params.seed if seq.params.seed is not None else int(torch.randint(0, 2 ** 62, ()).item())
        seq.generator = torch.Generator().manual_seed(seed)
        with self.cond:
            self.waiting.append(seq)
            self.cond.notify_all()

    def cancel(self, seq: Sequence) -> None:
        """Stop ``seq`` (its client went away): it leaves the queue, or its slot frees at the next step."""
        with self.cond:
            if seq.done or seq.cancelled:
                return
            seq.cancelled = True
            self.cond.notify_all()

    def stats(self) -> dict:
        with self.cond:
            active = sum(s is not None for s in self.slots)
            return {"slots": self.n_slots, "active": active, "free_slots": self.n_slots - active,
                    "waiting": len(self.waiting), **self.counters}

    # --- the engine thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not any(self.slots):
                    self.cond.wait()
                if self.stopping:
                    break
                self._drop_cancelled()
                admit = []
                while self.waiting and None in self.slots:
                    seq = self.waiting.popleft()
                    if seq.cancelled:
                        self.counters["cancelled"] += 1
                        continue
                    seq.slot = self.slots.index(None)
                    self.slots[seq.slot] = seq
                    admit.append(seq)
            for seq in admit:
                self._run([seq], prefill=True)
            active = [s for s in self.slots if s is not None and not s.done and not s.cancelled]
            if active:
                self._run(active, prefill=False)
        for seq in [s for s in self.slots if s is not None] + list(self.waiting):
            seq.emit("error", (503, "the server is shutting down"))

    def _drop_cancelled(self) -> None:
        for i, seq in enumerate(self.slots):
            if seq is not None and (seq.cancelled or seq.done):
                self.slots[i] = None
                if seq.cancelled and not seq.done:
                    self.counters["cancelled"] += 1

    def _free(self, seq: Sequence) -> None:
        with self.cond:
            if seq.slot is not None and self.slots[seq.slot] is seq:
                self.slots[seq.slot] = None

    def _run(self, seqs: list[Sequence], prefill: bool) -> None:
        try:
            if prefill:
                logits = self.model.prefill_slot(torch.tensor(seqs[0].prompt, dtype=torch.long), seqs[0].slot)[None]
                seqs[0].pos = len(seqs[0].prompt)
                self.counters["prefills"] += 1
            else:
                logits = self.model.decode_slots(torch.tensor([s.tokens[-1] for s in seqs]),
                                                 torch.tensor([s.pos for s in seqs]), [s.slot for s in seqs])
                for s in seqs:
                    s.pos += 1
                self.counters["steps"] += 1
                self.counters["largest_batch"] = max(self.counters["largest_batch"], len(seqs))
        except Exception as e:         # a failed step fails its sequences; the engine keeps serving
            for s in seqs:
                self._fail(s, e)
            return
        for row, s in enumerate(seqs):
            p = s.params
            try:
                tok = int(next_token(logits[row:row + 1], p.temperature, s.generator, p.top_p, p.top_k)[0])
                self._accept(s, tok)
            except Exception as e:
                self._fail(s, e)

    def _fail(self, seq: Sequence, e: Exception) -> None:
        self.counters["errors"] += 1
        seq.done = True
        self._free(seq)
        seq.emit("error", (500, f"the model failed: {type(e).__name__}: {e}"))

    def _accept(self, seq: Sequence, tok: int) -> None:
        seq.tokens.append(tok)
        self.counters["generated_tokens"] += 1
        text, stopped = seq.text.push(tok)
        reason = "stop" if stopped else None
        if reason is None and len(seq.tokens) >= seq.budget:
            reason = "length"
            text += seq.text.finish()
        if text:
            seq.emit("text", text)
        if reason is not None:
            seq.done = True
            self._free(seq)
            self.counters["finished"] += 1
            n = len(seq.tokens) - (1 if seq.tokens[-1] in self.eos_ids else 0)   # as ``generate`` returns
            seq.emit("done", {"finish_reason": reason, "prompt_tokens": len(seq.prompt), "completion_tokens": n,
                              "token_ids": seq.tokens[:n]})


# --- requests ----------------------------------------------------------------------------------------

class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


_MISSING = object()


def _get(body: dict, name: str, kinds: tuple, default: Any = _MISSING, what: str = "") -> Any:
    """``body[name]`` checked against JSON ``kinds`` ("string", "integer", "number", "boolean", "array",
    "object"); null counts as absent."""
    value = body.get(name)
    if value is None:
        if default is _MISSING:
            raise RequestError(400, f"'{name}' is required", name, "missing_required_parameter")
        return default
    checks = {"string": lambda v: isinstance(v, str),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool), "array": lambda v: isinstance(v, list),
              "object": lambda v: isinstance(v, dict)}
    if not any(checks[k](value) for k in kinds):
        what = what or " or ".join(("an " if k[0] in "aeiou" else "a ") + k for k in kinds)
        raise RequestError(400, f"'{name}' must be {what}, not {json.dumps(value)[:60]}",
                           name, "invalid_type")
    return value


def _sampling(body: dict, gen_cfg: dict, default_max: Optional[int], max_seq_len: int) -> Sampling:
    max_tokens = _get(body, "max_tokens", ("integer",), None)
    if max_tokens is None:
        max_tokens = _get(body, "max_completion_tokens", ("integer",), None)
    if max_tokens is None:
        max_tokens = default_max if default_max is not None else max_seq_len
    if max_tokens < 1:
        raise RequestError(400, f"'max_tokens' must be at least 1, not {max_tokens}", "max_tokens", "invalid_value")
    t, p, k = sampling_defaults(gen_cfg, _get(body, "temperature", ("number",), None),
                                _get(body, "top_p", ("number",), None), _get(body, "top_k", ("integer",), None))
    if k == -1:                       # vLLM's spelling of "no limit"
        k = 0
    try:
        check_sampling(t, p, k)
    except ValueError as e:
        param = str(e).split(" ")[0]
        raise RequestError(400, str(e), param, "invalid_value") from None
    seed = _get(body, "seed", ("integer",), None)
    stop = _get(body, "stop", ("string", "array"), [], "a string or an array of strings")
    stop = [stop] if isinstance(stop, str) else stop
    if not all(isinstance(s, str) for s in stop):
        raise RequestError(400, "'stop' must be a string or an array of strings", "stop", "invalid_type")
    n = _get(body, "n", ("integer",), 1)
    if n != 1:
        raise RequestError(400, f"'n' must be 1 (one completion per prompt), not {n}", "n", "unsupported_value")
    for name in ("logprobs", "top_logprobs", "tools", "functions", "suffix"):
        if body.get(name) not in (None, False, [], 0):
            raise RequestError(400, f"'{name}' is not supported by this server", name, "unsupported_parameter")
    if body.get("echo") not in (None, False):
        raise RequestError(400, "'echo' is not supported by this server", "echo", "unsupported_parameter")
    return Sampling(int(max_tokens), float(t), float(p), int(k), seed, stop)


def _message_text(m: Any, i: int) -> dict:
    if not isinstance(m, dict):
        raise RequestError(400, f"messages[{i}] must be an object with 'role' and 'content'", "messages",
                           "invalid_type")
    role, content = m.get("role"), m.get("content")
    if not isinstance(role, str):
        raise RequestError(400, f"messages[{i}].role must be a string", "messages", "invalid_type")
    if content is None:
        content = ""
    if isinstance(content, list):        # [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise RequestError(400, f"messages[{i}].content: only text parts are supported", "messages",
                                   "unsupported_value")
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise RequestError(400, f"messages[{i}].content must be a string or an array of text parts", "messages",
                           "invalid_type")
    return {"role": role, "content": content}


class Server:
    """The request handling of ``create_app``: parsing, submission, responses."""

    def __init__(self, engine: Engine, name: str, generation_config: Optional[dict] = None):
        self.engine, self.name = engine, name
        self.gen_cfg = generation_config or {}
        self.created = int(time.time())

    def _prompts_of_completion(self, body: dict) -> list[list[int]]:
        prompt = _get(body, "prompt", ("string", "array"), what="a string, an array of strings or of token ids")
        vocab = self.engine.args.vocab_size

        def ids(p: Any, where: str) -> list[int]:
            if isinstance(p, str):
                return self.engine.tok.encode(p)
            if isinstance(p, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
                bad = [t for t in p if not 0 <= t < vocab]
                if bad:
                    raise RequestError(400, f"{where}: token id {bad[0]} is outside the vocabulary 0..{vocab - 1}",
                                       "prompt", "invalid_value")
                return list(p)
            raise RequestError(400, f"{where} must be a string or an array of token ids", "prompt", "invalid_type")
        if isinstance(prompt, str) or (prompt and all(isinstance(t, int) for t in prompt)):
            out = [ids(prompt, "prompt")]
        else:
            out = [ids(p, f"prompt[{i}]") for i, p in enumerate(prompt)]
        if not out or any(not p for p in out):
            raise RequestError(400, "the prompt is empty (no tokens)", "prompt", "invalid_value")
        return out

    def _prompt_of_chat(self, body: dict) -> list[int]:
        messages = _get(body, "messages", ("array",))
        if not messages:
            raise RequestError(400, "'messages' must not be empty", "messages", "invalid_value")
        msgs = [_message_text(m, i) for i, m in enumerate(messages)]
        try:
            return encode_chat(self.engine.tok, msgs)
        except TokenizerError as e:
            raise RequestError(400, str(e), "messages", "invalid_value") from None

    def parse(self, body: Any, chat: bool) -> tuple[list[Sequence], bool, bool]:
        """(sequences, stream, include_usage) of a request body, or RequestError."""
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object", None, "invalid_json")
        model = _get(body, "model", ("string",))
        if model != self.name:
            raise RequestError(404, f"The model '{model}' does not exist; this server serves '{self.name}'",
                               "model", "model_not_found")
        stream = _get(body, "stream", ("boolean",), False)
        opts = _get(body, "stream_options", ("object",), {})
        include_usage = bool(opts.get("include_usage", False))
        prompts = [self._prompt_of_chat(body)] if chat else self._prompts_of_completion(body)
        params = _sampling(body, self.gen_cfg, None if chat else 16, self.engine.args.max_seq_len)
        seqs = []
        for i, p in enumerate(prompts):
            try:
                room(len(p), params.max_tokens, self.engine.args.max_seq_len)
            except ValueError as e:
                raise RequestError(400, f"{e} (the model's context length)", "messages" if chat else "prompt",
                                   "context_length_exceeded") from None
            seed = None if params.seed is None else (params.seed + i) % 2 ** 64    # torch's seed range
            seqs.append(Sequence(p, Sampling(**{**params.__dict__, "seed": seed}), index=i))
        return seqs, stream, include_usage


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_app(engine: Engine, name: str, generation_config: Optional[dict] = None):
    """The starlette app serving ``engine`` as model ``name`` (module docstring). Its lifespan starts and
    stops the engine thread."""
    from tilec.errors import require
    require("starlette", SERVE_WHAT)
    import contextlib

    import anyio
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    srv = Server(engine, name, generation_config)

    def error(e: RequestError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(400, f"the request body is not valid JSON: {e}", None, "invalid_json") from None

    async def until_disconnect(request: Request) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    async def events(request: Request, seqs: list[Sequence], watch: bool):
        """Engine events of the request's sequences until all are done; cancels them on exit (a client gone,
        an error, the response dropped). ``watch``: also end when the client disconnects."""
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for s in seqs:
            s.queue, s.loop = queue, loop
        gone = asyncio.ensure_future(until_disconnect(request)) if watch else None
        try:
            for s in seqs:
                engine.submit(s)
            open_ = len(seqs)
            while open_:
                if gone is not None:
                    get = asyncio.ensure_future(queue.get())
                    await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
                    if not get.done():
                        get.cancel()
                        return
                    ev = get.result()
                else:
                    ev = await queue.get()
                if ev[1] in ("done", "error"):
                    open_ -= 1
                yield ev
        finally:
            if gone is not None:
                gone.cancel()
            for s in seqs:
                engine.cancel(s)

    class SSE(StreamingResponse):
        """Streams ``data:`` events and ends (cancelling the stream, so its sequences free their slots) when
        the client disconnects, whatever ASGI version the server speaks."""

        async def __call__(self, scope, receive, send) -> None:
            async with anyio.create_task_group() as tg:
                async def run() -> None:
                    with contextlib.suppress(OSError):
                        await self.stream_response(send)
                    tg.cancel_scope.cancel()
                tg.start_soon(run)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()

    async def complete(request: Request, chat: bool):
        try:
            seqs, stream, include_usage = srv.parse(await body_of(request), chat)
        except RequestError as e:
            return error(e)
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        if not stream:
            texts = [""] * len(seqs)
            done: dict[int, dict] = {}
            async for index, kind, payload in events(request, seqs, watch=True):
                if kind == "text":
                    texts[index] += payload
                elif kind == "done":
                    done[index] = payload
                else:
                    status, msg = payload
                    return error(RequestError(status, msg, None, None, "server_error"))
            if len(done) < len(seqs):      # the client went away
                return JSONResponse({}, status_code=499)
            choices = []
            for i, t in enumerate(texts):
                c = {"index": i, "logprobs": None, "finish_reason": done[i]["finish_reason"]}
                c.update({"message": {"role": "assistant", "content": t}} if chat else {"text": t})
                choices.append(c)
            usage = _usage(sum(d["prompt_tokens"] for d in done.values()),
                           sum(d["completion_tokens"] for d in done.values()))
            return JSONResponse({"id": rid, "object": obj, "created": created, "model": name, "choices": choices,
                                 "usage": usage})

        chunk_obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list, usage: Optional[dict] = None) -> str:
            body = {"id": rid, "object": chunk_obj, "created": created, "model": name, "choices": choices}
            if include_usage:
                body["usage"] = usage
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        def choice(i: int, text: Optional[str], reason: Optional[str] = None, role: bool = False) -> dict:
            if chat:
                delta = {} if text is None else {"content": text}
                if role:
                    delta["role"] = "assistant"
                return {"index": i, "delta": delta, "logprobs": None, "finish_reason": reason}
            return {"index": i, "text": text or "", "logprobs": None, "finish_reason": reason}

        async def body():
            prompt_n = completion_n = 0
            if chat:
                yield chunk([choice(s.index, "", role=True) for s in seqs])
            async for index, kind, payload in events(request, seqs, watch=False):
                if kind == "text":
                    yield chunk([choice(index, payload)])
                elif kind == "done":
                    prompt_n += payload["prompt_tokens"]
                    completion_n += payload["completion_tokens"]
                    yield chunk([choice(index, None if chat else "", payload["finish_reason"])])
                else:
                    status, msg = payload
                    err = RequestError(status, msg, None, None, "server_error").body()
                    yield f"data: {json.dumps(err)}\n\n"
                    return
            if include_usage:
                yield chunk([], _usage(prompt_n, completion_n))
            yield "data: [DONE]\n\n"

        return SSE(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def completions(request: Request):
        return await complete(request, chat=False)

    async def chat_completions(request: Request):
        return await complete(request, chat=True)

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": srv.created, "owned_by": "tilec",
             "max_model_len": engine.args.max_seq_len}]})

    async def health(request: Request):
        return JSONResponse({"status": "ok", **engine.stats()})

    async def http_error(request: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(RequestError(exc.status_code, msg, None, code).body(), status_code=exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    routes = [Route("/v1/models", models, methods=["GET"]),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)


def model_name(source: Any, config: Optional[str] = None) -> str:
    """The served model's id: the checkpoint folder's name (or the config's)."""
    import os
    if isinstance(source, (list, tuple)):
        source = source[0]
    path = str(source).rstrip("/")
    if os.path.isfile(path):
        path = os.path.dirname(path) if path.endswith(".json") else os.path.splitext(path)[0]
    return os.path.basename(path) or (config or "tilec-model")


def uvicorn_server(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """A ``uvicorn.Server`` for ``app`` (``.run()`` blocks; tests run it in a thread)."""
    from tilec.errors import require
    uvicorn = require("uvicorn", SERVE_WHAT)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on"))
