"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers after a fixed delay and misbehaves on request.

It is a test double for the model endpoints: fault tests, the executor's tests
and the benchmarks of issue 5 talk to it through the real ``openai`` client
over real sockets. One asyncio loop, hand-parsed HTTP/1.1 with keep-alive, so
a thousand concurrent connections cost a thousand small tasks, not threads.

Run it standalone (the benchmark does)::

    python -m tests.execute.fault_server --port 8123 --delay 0.05

or in-process, on a background thread (the tests do)::

    with FaultServer(delay=0.0) as fs:
        client = AsyncOpenAI(base_url=fs.base_url, api_key="x")
        fs.add_rule(match="classify", faults=["429:1", "500"])   # the next two matching calls fail
        ...
        assert fs.counts()["steps"]["classify"] == 3

``spawn(delay=0.05)`` starts it as a subprocess instead and returns a
:class:`FaultControl` with the same methods (used where the client's own loop
must not share a GIL with the server, e.g. the 1000-run benchmark).

Model endpoints
    ``POST /v1/chat/completions``  non-streaming, or SSE with ``stream: true`` (the usage chunk is
    sent when ``stream_options.include_usage`` is true, as OpenAI does)
    ``POST /v1/embeddings``        hashed bag-of-words vectors (``--dim``, default 64), L2-normalised,
    so texts that share words are closer
    ``GET  /v1/models``            one model, ``fault-model``

Answers (deterministic, so tests can assert them)
    chat text is the matching rule's ``reply``, else a minimal instance of the request's
    ``response_format`` JSON schema, else ``"echo: <last user message>"``; it is cut to
    ``max_tokens`` words (``finish_reason: "length"``). Tokens are whitespace-separated
    words: ``prompt_tokens`` counts the words of all messages, ``completion_tokens`` those of
    the reply.

Faults (one per request; a rule's list is consumed in order, then requests succeed)
    ``ok``                    answer normally
    ``429`` / ``429:S``       rate limited, ``Retry-After: S`` seconds (default 1)
    ``429ms:M``               rate limited, ``retry-after-ms: M``
    ``429date:S``             rate limited, ``Retry-After`` as an HTTP date S seconds ahead
    ``500`` ``502`` ``503`` ``400`` ``401`` ``404`` ``422``   that status with an OpenAI error body
    ``hang``                  never answer (until the client hangs up)
    ``drop``                  close the connection without a response
    ``malformed``             200 with ``application/json`` that is not JSON (in SSE: a broken event)
    ``badshape``              200 with valid JSON that is not a completion (no ``choices``)
    ``slow:S``                answer normally after S seconds instead of the fixed delay

Selecting the fault of a request, first that applies
    1. header ``X-Fault: <fault>`` (this request only);
    2. the first rule whose ``match`` equals the ``X-Petriflow-Step`` header, or is a substring
       of the last user message (embeddings: of any input), or is ``"*"``, and that has faults
       left;
    3. the behaviour of its step or model, when behaviours are set (below);
    4. ``ok``. Header ``X-Delay: S`` overrides the delay for one request.

Behaviours (distributions instead of scripts; :mod:`tests.execute.synthetic`)
    per step or per model: a latency distribution, input and output token distributions (what
    ``usage`` reports), the probability of each fault (``500`` retryable, ``400`` fatal, ``hang``
    a timeout, ``429:S`` with ``Retry-After``), and a drawn reply (a route label, or a JSON list
    of a drawn number of items); seeded, one generator per step or model, every draw logged.

Which fault a request gets and what the answers are (no I/O) live in
:mod:`tests.execute.fault_answers`; this module is the HTTP side.

Control (JSON, same port)
    ``GET  /control/counts``  ``{"total", "paths": {path: n}, "steps": {step: n},
    "prompts": {last user message: n}, "faults": {fault: n}, "in_flight", "peak_in_flight"}``
    (every request to /v1 is counted when it arrives, whatever its fate; it is in flight from
    then until its answer is written or the connection ends, and the peak is the most at once
    since the last reset: the oracle for limits on concurrent calls)
    ``GET  /control/chats``   ``{"chats": [messages, ...]}``: the ``messages`` of the last 64 chat
    requests as received (content parts included)
    ``POST /control/reset``   forget counts, rules and behaviours (the delay stays)
    ``POST /control/rules``   ``{"rules": [{"match": str, "faults": [str], "reply": str|null,
    "delay": float|null}]}`` appends rules; a rule without faults (or whose faults are used up)
    fixes the reply and/or the delay of every request it matches (e.g. ``{"match": "B",
    "delay": 0.1}`` makes step B's calls take 100 ms)
    ``POST /control/delay``   ``{"delay": S}`` sets the fixed delay
    ``POST /control/behaviours``  ``{"seed": int, "behaviours": {step or model: behaviour}}`` replaces
    the behaviours (and their log); ``{}`` removes them (so does ``reset``)
    ``GET  /control/draws``   ``{"draws": [{"key", "step", "model", "fault", "delay", "input_tokens",
    "output_tokens"}, ...]}``, one per request the behaviours answered, in arrival order
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from .fault_answers import (
    MODEL,
    Admission,
    State,
    chat_reply,
    embedding,
    example,
    message_text,
    usage,
    word_count,
)
from .synthetic import Behaviour, Synthetic

__all__ = ["MODEL", "Behaviour", "FaultControl", "FaultServer", "State", "example", "serve", "spawn"]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}
# -- HTTP -----------------------------------------------------------------------


def _response(status: int, body: bytes, headers: dict[str, str] | None = None,
              ctype: str = "application/json") -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(status, "server_error")
    return _response(status, json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode(),
                     headers)


def _status_fault(fault: str) -> bytes | None:
    name, _, arg = fault.partition(":")
    if name == "429":
        return _error(429, "rate limited (fault server)", {"Retry-After": arg or "1"})
    if name == "429ms":
        return _error(429, "rate limited (fault server)", {"retry-after-ms": arg or "1000"})
    if name == "429date":
        when = email.utils.formatdate(time.time() + float(arg or 1), usegmt=True)
        return _error(429, "rate limited (fault server)", {"Retry-After": when})
    if name.isdigit():
        return _error(int(name), f"injected {name} (fault server)")
    return None


class _Server:
    def __init__(self, state: State) -> None:
        self.state = state

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, *_ = lines[0].split(" ") + ["", ""]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(n) if n else b""
                keep = await self.route(method, target.split("?", 1)[0], headers, body, reader, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def route(self, method: str, path: str, headers: dict[str, str], body: bytes,
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False closes the connection."""
        if path.startswith("/control/"):
            writer.write(self.control(method, path, body))
            await writer.drain()
            return True
        if path == "/v1/models" or path == "/health":
            writer.write(_response(200, json.dumps({"object": "list", "data": [
                {"id": MODEL, "object": "model", "owned_by": "petriflow-tests"}]}).encode()))
            await writer.drain()
            return True
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            writer.write(_error(400, "invalid JSON body"))
            await writer.drain()
            return True
        if path == "/v1/chat/completions":
            messages = req.get("messages") or []
            self.state.record_chat(messages)
            prompt = next((message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
                          "")
            text = prompt
        elif path == "/v1/embeddings":
            inp = req.get("input", "")
            prompt, text = None, " ".join(inp) if isinstance(inp, list) else str(inp)
        else:
            writer.write(_error(404, f"unknown route {path}"))
            await writer.drain()
            return True
        admitted = self.state.admit(path, headers, text, prompt, req.get("model"))
        try:
            return await self.answer(req, path, admitted, reader, writer)
        finally:
            self.state.release()

    async def answer(self, req: dict[str, Any], path: str, admitted: Admission,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one admitted /v1 request as its fault says; False closes the connection."""
        fault, reply, delay, tokens = admitted
        if fault.startswith("slow:"):
            delay, fault = float(fault.split(":", 1)[1]), "ok"
        if fault == "hang":
            with contextlib.suppress(Exception):
                await reader.read()  # returns when the client hangs up
            return False
        if delay > 0:
            await asyncio.sleep(delay)
        if fault == "drop":
            return False
        status = _status_fault(fault)
        if status is not None:
            writer.write(status)
            await writer.drain()
            return True
        if path == "/v1/embeddings":
            writer.write(self.embeddings(req, fault, tokens[0]))
        elif req.get("stream"):
            await self.stream(req, reply, fault, writer, tokens)
            return False
        else:
            writer.write(self.completion(req, reply, fault, tokens))
        await writer.drain()
        return True

    def control(self, method: str, path: str, body: bytes) -> bytes:
        data = json.loads(body or b"{}") if method == "POST" else {}
        if path == "/control/counts":
            return _response(200, json.dumps(self.state.counts()).encode())
        if path == "/control/reset":
            self.state.reset()
        elif path == "/control/rules":
            self.state.add_rules(list(data.get("rules", [])))
        elif path == "/control/delay":
            self.state.delay = float(data["delay"])
        elif path == "/control/behaviours":
            self.state.set_synthetic(Synthetic.from_doc(data) if data.get("behaviours") else None)
        elif path == "/control/draws":
            return _response(200, json.dumps({"draws": self.state.draws()}).encode())
        elif path == "/control/chats":
            return _response(200, json.dumps({"chats": self.state.chat_messages()}).encode())
        else:
            return _error(404, f"unknown control {path}")
        return _response(200, b'{"ok": true}')

    def completion(self, req: dict[str, Any], reply: str | None, fault: str,
                   tokens: tuple[int | None, int | None]) -> bytes:
        if fault == "malformed":
            return _response(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
        if fault == "badshape":
            return _response(200, b'{"unexpected": true}')
        text, finish = chat_reply(req, reply)
        return _response(200, json.dumps({
            "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model") or MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": usage(req, text, tokens)}).encode())

    def embeddings(self, req: dict[str, Any], fault: str, drawn: int | None) -> bytes:
        if fault == "malformed":
            return _response(200, b'{"data": [{"embedding": [0.1, ')
        inp = req.get("input", "")
        texts = [inp] if isinstance(inp, str) else [str(t) for t in inp]
        if req.get("encoding_format") == "base64":
            import base64
            import struct
            data = [base64.b64encode(struct.pack(f"<{self.state.dim}f", *embedding(t, self.state.dim))).decode()
                    for t in texts]
        else:
            data = [embedding(t, self.state.dim) for t in texts]
        tokens = sum(word_count(t) for t in texts) if drawn is None else drawn
        return _response(200, json.dumps({
            "object": "list", "model": req.get("model") or MODEL,
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}).encode())

    async def stream(self, req: dict[str, Any], reply: str | None, fault: str, writer: asyncio.StreamWriter,
                     tokens: tuple[int | None, int | None]) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Connection: close\r\n\r\n")
        text, finish = chat_reply(req, reply)
        base = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": req.get("model") or MODEL}
        pieces = [w + " " for w in text.split(" ")]
        if pieces:
            pieces[-1] = pieces[-1][:-1]
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]}]
        events += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                   for p in pieces if p]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (req.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage(req, text, tokens)})
        if fault == "badshape":
            events = [{"unexpected": True}]
        for i, ev in enumerate(events):
            if fault == "malformed" and i == len(events) // 2:
                writer.write(b"data: {\"choices\": [\n\n")
                break
            writer.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
        else:
            writer.write(b"data: [DONE]\n\n")
        await writer.drain()


async def serve(*, host: str = "127.0.0.1", port: int = 0, delay: float = 0.0, dim: int = 64,
                state: State | None = None, started: Any = None) -> None:
    """Run the server forever on this loop; ``started(port)`` is called once it listens."""
    state = state or State(delay, dim)
    server = await asyncio.start_server(_Server(state).handle, host, port, backlog=4096, limit=2**20)
    bound = server.sockets[0].getsockname()[1]
    if started is not None:
        started(bound)
    async with server:
        await server.serve_forever()


class FaultServer:
    """The server on a background thread of this process; a context manager."""

    def __init__(self, *, delay: float = 0.0, dim: int = 64, port: int = 0) -> None:
        self.state = State(delay, dim)
        self._port = port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name="fault-server", daemon=True)
        self.port = 0

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop

        def started(p: int) -> None:
            self.port = p
            self._ready.set()

        self._task = loop.create_task(serve(port=self._port, state=self.state, started=started))
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(self._task)
        pending = asyncio.all_tasks(loop)  # open connections: cancel them so none is left dangling
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    def start(self) -> FaultServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def close(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def counts(self) -> dict[str, Any]:
        return self.state.counts()

    def reset(self) -> None:
        self.state.reset()

    def add_rule(self, match: str = "*", faults: list[str] | None = None, *, reply: str | None = None,
                 delay: float | None = None) -> None:
        self.state.add_rules([{"match": match, "faults": faults or [], "reply": reply, "delay": delay}])

    def set_delay(self, delay: float) -> None:
        self.state.delay = delay

    def set_behaviours(self, behaviours: Mapping[str, Behaviour], *, seed: int = 0) -> None:
        """Replace the behaviours (by step or model) and start their generators and log afresh."""
        self.state.set_synthetic(Synthetic(behaviours, seed=seed) if behaviours else None)

    def draws(self) -> list[dict[str, Any]]:
        return self.state.draws()

    def chats(self) -> list[list[Any]]:
        """The ``messages`` of the last 64 chat requests, as the server received them."""
        return self.state.chat_messages()


class FaultControl:
    """The same control methods as :class:`FaultServer`, over HTTP (for a server in another process)."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
        self.port = port
        self.proc = proc

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/control/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def counts(self) -> dict[str, Any]:
        return self._call("counts")

    def reset(self) -> None:
        self._call("reset", {})

    def add_rule(self, match: str = "*", faults: list[str] | None = None, *, reply: str | None = None,
                 delay: float | None = None) -> None:
        self._call("rules", {"rules": [{"match": match, "faults": faults or [], "reply": reply, "delay": delay}]})

    def set_delay(self, delay: float) -> None:
        self._call("delay", {"delay": delay})

    def set_behaviours(self, behaviours: Mapping[str, Behaviour], *, seed: int = 0) -> None:
        self._call("behaviours", Synthetic(behaviours, seed=seed).to_doc() if behaviours else {})

    def draws(self) -> list[dict[str, Any]]:
        return list(self._call("draws")["draws"])

    def chats(self) -> list[list[Any]]:
        return list(self._call("chats")["chats"])

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn(*, delay: float = 0.0, dim: int = 64, python: str = sys.executable) -> FaultControl:
    """Start the server as a subprocess (run from the repository root) and wait until it listens."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([python, "-m", "tests.execute.fault_server", "--port", "0", "--delay", str(delay),
                             "--dim", str(dim)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=root)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("listening"):
        proc.kill()
        raise RuntimeError(f"fault server did not start: {line!r}")
    return FaultControl(int(line.split()[-1]), proc)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fault_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before every model answer")
    ap.add_argument("--dim", type=int, default=64, help="embedding dimension")
    a = ap.parse_args(argv)
    try:
        import uvloop  # optional: faster loop for the benchmark, when installed

        uvloop.install()
    except ImportError:
        pass

    def started(port: int) -> None:
        print(f"listening on 127.0.0.1 port {port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port=a.port, delay=a.delay, dim=a.dim, started=started))


if __name__ == "__main__":
    main()
