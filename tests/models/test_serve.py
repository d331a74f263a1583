"""`tilec model serve` against a real uvicorn server on a free port, on the HF-style fixture checkpoint
(``testing.write_hf_checkpoint``, 2 layers, FP8), talked to with the ``openai`` package and httpx:

- continuous batching is exact: ``Model.prefill_slot``/``decode_slots`` give bit-identical logits to
  running each sequence alone, and 4 concurrent streaming clients get the greedy (and seeded sampled)
  completions that ``generate`` gives each prompt alone, while the engine decoded them together;
- a client that disconnects mid-stream frees its slot, the others finish unchanged, a later request works;
- malformed requests get OpenAI-style 4xx error bodies and the server keeps serving;
- ``/v1/models``; the ``tilec model serve`` command in a subprocess; the missing-extra message.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tilec.models.deepseek_v32.checkpoint import load_pretrained  # noqa: E402
from tilec.models.deepseek_v32.generate import generate, room  # noqa: E402
from tilec.models.deepseek_v32.model import Model  # noqa: E402
from tilec.models.deepseek_v32.serve import Engine, create_app, uvicorn_server  # noqa: E402
from tilec.models.deepseek_v32.testing import write_hf_checkpoint  # noqa: E402
from tilec.models.deepseek_v32.tokenizer import TextStream, chat_messages, encode_chat  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "fixture"
SLOTS, SEQ = 4, 64
TILEC = [sys.executable, "-c", "import sys; from tilec.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_hf_checkpoint(str(tmp_path_factory.mktemp("serve") / NAME), seed=2)


@pytest.fixture(scope="module")
def served(folder):
    """(base url, engine, pre, alone-model): the server runs the engine's model; ``alone`` is a second
    Model on the same weights and kernels for the one-request-at-a-time references."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = load_pretrained(folder, max_seq_len=SEQ, max_batch_size=SLOTS)
    alone = Model(pre.args, dict(pre.params), pre.model.kernels)
    engine = Engine(pre.model, pre.tokenizer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn_server(create_app(engine, NAME, pre.generation_config), "127.0.0.1", port, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", engine, pre, alone
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()
    sock.close()


def client(base: str):
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)


def run_alone(pre, model, ids: list[int], max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
              seed: int = 0, stop=()) -> tuple[str, int, str]:
    """(text, completion tokens, finish_reason) of ``ids`` generated alone by ``generate``."""
    stream, parts = TextStream(pre.tokenizer, list(stop)), []

    def stop_cb(row: int, tok: int) -> bool:
        text, done = stream.push(tok)
        parts.append(text)
        return done
    gen = torch.Generator().manual_seed(seed)
    out = generate(model, [ids], max_tokens, pre.args.max_seq_len, list(pre.tokenizer.eos_token_ids), temperature,
                   gen, top_p=top_p, stop=stop_cb)[0]
    stopped = stream.stopped
    text = "".join(parts) + stream.finish()
    length = not stopped and len(out) == room(len(ids), max_tokens, pre.args.max_seq_len)
    return text, len(out), "length" if length else "stop"


def wait_idle(base: str, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while True:
        h = httpx.get(base + "/health").json()
        if (h["active"] == 0 and h["waiting"] == 0) or time.time() > deadline:
            return h
        time.sleep(0.02)


def test_slots_are_bit_identical_to_alone(served):
    """The model API the engine uses: a slot prefilled over a dirty row and rows decoded together at
    different positions (contiguous and gathered slot sets) give exactly the logits of each alone."""
    _, _, pre, alone = served
    m = Model(pre.args, dict(pre.params), pre.model.kernels)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 400, (n,), generator=g) for n in (5, 11, 3, 8)]
    refs = []
    for p in prompts:
        logits = [alone(p.view(1, -1), 0)[0]]
        for j in range(4):
            logits.append(alone(logits[-1].argmax().view(1, 1), len(p) + j)[0])
        refs.append(torch.stack(logits))
    m.reset(SLOTS)
    m.prefill_slot(torch.randint(3, 400, (30,), generator=g), 2)       # an earlier tenant's cache rows
    slot_of = [2, 0, 3, 1]
    got = [[m.prefill_slot(p, slot_of[i])] for i, p in enumerate(prompts)]
    for j in range(4):
        rows = [0, 1, 2, 3] if j % 2 == 0 else [3, 1]                 # slots [2,0,3,1] / [1,0]: gathers
        positions = torch.tensor([len(prompts[i]) + len(got[i]) - 1 for i in rows])
        out = m.decode_slots(torch.stack([got[i][-1].argmax() for i in rows]), positions, [slot_of[i] for i in rows])
        for r, i in enumerate(rows):
            got[i].append(out[r])
    for i, ref in enumerate(refs):
        mine = torch.stack(got[i])
        assert torch.isfinite(mine).all()
        assert torch.equal(mine, ref[:len(mine)]), i
    with pytest.raises(ValueError, match="slot 4 is not in 0..3"):
        m.decode_slots(torch.tensor([1]), torch.tensor([3]), [4])


def test_models_endpoint(served):
    base, engine, _, _ = served
    models = client(base).models.list()
    assert [m.id for m in models.data] == [NAME] and models.data[0].owned_by == "tilec"
    h = httpx.get(base + "/health").json()
    assert h["status"] == "ok" and h["slots"] == SLOTS


def test_concurrent_streams_equal_alone(served, monkeypatch):
    """4 streaming clients at once (chat and plain completions, prompts of different lengths, one seeded
    sampled with a stop string) get what each prompt gives alone, decoded together in one batch."""
    base, engine, pre, alone = served
    tok = pre.tokenizer
    jobs = [("chat", "Hello there", dict(max_tokens=12, temperature=0)),
            ("text", "The quick brown fox", dict(max_tokens=10, temperature=0)),
            ("chat", "DeepSeek-V3.2 uses multi-head latent attention", dict(max_tokens=14, temperature=0)),
            ("text", "Kernels compile", dict(max_tokens=12, temperature=0.8, top_p=0.9, seed=5, stop=["e"]))]
    expect = []
    for kind, prompt, kw in jobs:
        ids = encode_chat(tok, chat_messages(prompt)) if kind == "chat" else tok.encode(prompt)
        expect.append((run_alone(pre, alone, ids, kw["max_tokens"], kw["temperature"], kw.get("top_p", 1.0),
                                 kw.get("seed", 0), kw.get("stop", ())), len(ids)))
    before = engine.stats()
    real, first = engine.model.prefill_slot, []

    def held(*a, **kw):       # the first prefill waits for the other requests to queue: they join together
        if not first:
            first.append(1)
            deadline = time.time() + 20
            while len(engine.waiting) < len(jobs) - 1 and time.time() < deadline:
                time.sleep(0.005)
        return real(*a, **kw)
    monkeypatch.setattr(engine.model, "prefill_slot", held)
    c = client(base)
    barrier = threading.Barrier(len(jobs))

    def one(job):
        kind, prompt, kw = job
        barrier.wait()
        opts = dict(model=NAME, stream=True, stream_options={"include_usage": True}, **kw)
        if kind == "chat":
            chunks = list(c.chat.completions.create(messages=[{"role": "user", "content": prompt}], **opts))
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        else:
            chunks = list(c.completions.create(prompt=prompt, **opts))
            text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
        reason = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        return text, chunks[-1].usage, reason

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    for ((text, n, reason), n_prompt), (got, usage, reasons) in zip(expect, results):
        assert got == text
        assert reasons == [reason]
        assert (usage.prompt_tokens, usage.completion_tokens) == (n_prompt, n)
    assert "e" not in results[3][0] and results[3][2] == ["stop"]
    after = wait_idle(base)
    assert after["active"] == 0 and after["errors"] == 0
    assert after["largest_batch"] == len(jobs), after          # the requests were decoded together
    assert after["finished"] - before["finished"] == len(jobs)


def test_disconnect_mid_stream_frees_the_slot(served):
    base, engine, pre, alone = served
    prompt = "Numbers: 0 1 2 3"
    want = run_alone(pre, alone, pre.tokenizer.encode(prompt), 24)[0]
    before = engine.stats()
    other: dict = {}

    def steady():
        r = client(base).completions.create(model=NAME, prompt=prompt, max_tokens=24, temperature=0, stream=True)
        other["text"] = "".join(ch.choices[0].text for ch in r)

    with httpx.Client(timeout=60) as h:
        body = {"model": NAME, "prompt": "Hello, world!", "max_tokens": 40, "temperature": 0, "stream": True}
        with h.stream("POST", base + "/v1/completions", json=body) as resp:
            assert resp.status_code == 200
            t = threading.Thread(target=steady)
            t.start()
            lines = resp.iter_lines()
            got = [ln for ln in (next(lines) for _ in range(4)) if ln.startswith("data: ")]
            assert got and json.loads(got[0][6:])["object"] == "text_completion"
        # the response is closed: the client went away after a few tokens
        t.join(60)
    assert other["text"] == want
    after = wait_idle(base)
    assert after["active"] == 0 and after["free_slots"] == SLOTS
    assert after["cancelled"] - before["cancelled"] == 1
    assert after["finished"] - before["finished"] == 1                 # only the steady client finished
    assert after["generated_tokens"] - before["generated_tokens"] < 24 + 40
    r = client(base).completions.create(model=NAME, prompt=prompt, max_tokens=24, temperature=0)
    assert r.choices[0].text == want and r.choices[0].finish_reason in ("length", "stop")


def test_disconnect_while_waiting_for_a_plain_answer(served, monkeypatch):
    """A non-streamed request whose client gives up is cancelled too (the server watches the connection)."""
    base, engine, _, _ = served
    real = engine.model.decode_slots

    def slow(*a, **kw):        # 50 ms a step: the 40 steps outlast the client's 0.3 s
        time.sleep(0.05)
        return real(*a, **kw)
    monkeypatch.setattr(engine.model, "decode_slots", slow)
    before = engine.stats()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(base + "/v1/completions", json={"model": NAME, "prompt": "Hello", "max_tokens": 40,
                                                   "temperature": 0}, timeout=0.3)
    after = wait_idle(base)
    assert after["cancelled"] - before["cancelled"] == 1 and after["finished"] == before["finished"]
    assert after["steps"] - before["steps"] < 39 and after["free_slots"] == SLOTS


BAD = [
    (b"{not json", 400, "invalid_json", None),
    (b"[1, 2]", 400, "invalid_json", None),
    ({"prompt": "hi"}, 400, "missing_required_parameter", "model"),
    ({"model": NAME}, 400, "missing_required_parameter", "prompt"),
    ({"model": "gpt-4", "prompt": "hi"}, 404, "model_not_found", "model"),
    ({"model": NAME, "prompt": "hi", "max_tokens": "many"}, 400, "invalid_type", "max_tokens"),
    ({"model": NAME, "prompt": "hi", "max_tokens": 0}, 400, "invalid_value", "max_tokens"),
    ({"model": NAME, "prompt": "hi", "temperature": -1}, 400, "invalid_value", "temperature"),
    ({"model": NAME, "prompt": "hi", "top_p": 1.5}, 400, "invalid_value", "top_p"),
    ({"model": NAME, "prompt": "hi", "stop": [1]}, 400, "invalid_type", "stop"),
    ({"model": NAME, "prompt": "hi", "stream": "yes"}, 400, "invalid_type", "stream"),
    ({"model": NAME, "prompt": "hi", "n": 2}, 400, "unsupported_value", "n"),
    ({"model": NAME, "prompt": [1, 99999]}, 400, "invalid_value", "prompt"),
    ({"model": NAME, "prompt": "word " * 80}, 400, "context_length_exceeded", "prompt"),
]
BAD_CHAT = [
    ({"model": NAME}, 400, "missing_required_parameter", "messages"),
    ({"model": NAME, "messages": []}, 400, "invalid_value", "messages"),
    ({"model": NAME, "messages": [{"content": "x"}]}, 400, "invalid_type", "messages"),
    ({"model": NAME, "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_value", "messages"),
]


def test_malformed_requests_get_4xx_and_the_server_keeps_serving(served):
    base, engine, _, _ = served
    with httpx.Client(base_url=base, timeout=30) as h:
        for path, cases in (("/v1/completions", BAD), ("/v1/chat/completions", BAD_CHAT)):
            for body, status, code, param in cases:
                r = h.post(path, content=body) if isinstance(body, bytes) else h.post(path, json=body)
                assert r.status_code == status, (body, r.text)
                err = r.json()["error"]
                assert (err["code"], err["param"]) == (code, param), (body, err)
                assert err["type"] == "invalid_request_error" and err["message"]
        r = h.get("/v1/completions")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        r = h.get("/v2/nothing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with pytest.raises(openai.BadRequestError, match="leaves no room under max_seq_len=64"):
        client(base).completions.create(model=NAME, prompt="word " * 80)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client(base).chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    r = client(base).chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                             temperature=0)
    assert r.choices[0].message.role == "assistant" and r.usage.completion_tokens <= 3
    assert wait_idle(base)["errors"] == 0


def test_a_failing_step_fails_its_request_only(served, monkeypatch):
    """A model call that raises answers its request with a 500 error body; the engine keeps serving."""
    base, engine, _, _ = served
    real = engine.model.prefill_slot
    calls = []

    def broken(tokens, slot, *a):
        calls.append(slot)
        if len(calls) == 1:
            raise RuntimeError("injected")
        return real(tokens, slot, *a)
    monkeypatch.setattr(engine.model, "prefill_slot", broken)
    before = engine.stats()["errors"]
    with pytest.raises(openai.InternalServerError, match="RuntimeError: injected"):
        client(base).completions.create(model=NAME, prompt="Hello", max_tokens=4, temperature=0)
    r = client(base).completions.create(model=NAME, prompt="Hello", max_tokens=4, temperature=0)
    assert r.choices[0].finish_reason in ("length", "stop")
    h = wait_idle(base)
    assert h["errors"] == before + 1 and h["free_slots"] == SLOTS


def test_cli_serve_subprocess(folder):
    """`tilec model serve` in its own process: listens, answers /v1/models and a completion, exits on SIGTERM."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([*TILEC, "model", "serve", "--weights", folder, "--max-seq-len",
                             str(SEQ), "--max-batch-size", "2", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                models = httpx.get(base + "/v1/models").json()
                break
            except httpx.TransportError:
                assert time.time() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert models["data"][0]["id"] == NAME and models["data"][0]["max_model_len"] == SEQ
        r = client(base).completions.create(model=NAME, prompt="Hello", max_tokens=4, temperature=0)
        assert r.usage.completion_tokens <= 4 and httpx.get(base + "/health").json()["slots"] == 2
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "serving fixture (2 slots, max_seq_len 64)" in err


def test_cli_serve_bad_port_is_a_user_error(capsys, folder):
    from tilec import cli
    assert cli.main(["model", "serve", "--weights", folder, "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "--port 70000: not a port number" in err and "Traceback" not in err


def test_missing_serve_extra_names_the_pip_install(monkeypatch):
    from tilec.errors import TilecError, missing_extra, require
    assert "pip install tilec[serve]" in str(missing_extra("uvicorn", "x"))
    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(TilecError, match=r"pip install tilec\[serve\]"):
        require("starlette", "tilec model serve")
