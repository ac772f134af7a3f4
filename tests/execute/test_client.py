"""The model client against a real HTTP server that misbehaves on request (the fault server).

Each test counts requests at the server, so "one attempt per call" and "no
hidden retries" are checked where they happen, on the wire.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from petriflow.errors import InputError, ModelCallError
from petriflow.execute.client import (
    STEP_HEADER,
    ChatResult,
    FatalCallError,
    MemoryCache,
    ModelClient,
    RetryableCallError,
    SqliteCache,
    is_strict_schema,
    parse_retry_after,
    request_key,
    resolve_endpoint,
)
from petriflow.execute.servers import Endpoint
from petriflow.spec.model import ModelEndpoint, Step, Workflow

from .fault_server import FaultServer, spawn

T = TypeVar("T")
USER = [{"role": "user", "content": "what is a petri net"}]


def run(fn: Callable[[ModelClient], Awaitable[T]], **client_kw: Any) -> T:
    """Run ``fn(client)`` on a fresh loop with a fresh client (clients belong to one loop)."""

    async def main() -> T:
        async with ModelClient(**client_kw) as client:
            return await fn(client)

    return asyncio.run(main())


def ep(fs: FaultServer, **prices: float) -> Endpoint:
    return Endpoint(base_url=fs.base_url, model="fault-model", kind="chat", api_key="k", **prices)


def fail(fs: FaultServer, fault: str, **kw: Any) -> ModelCallError:
    """Make one call that the server answers with ``fault``; return what the client raised."""
    fs.add_rule("*", [fault])
    with pytest.raises(ModelCallError) as info:
        run(lambda c: c.chat(ep(fs), USER, step="s", **kw))
    assert fs.counts()["total"] == 1, "exactly one request: the client must not retry on its own"
    return info.value


# -- answers, usage, cost -----------------------------------------------------------


def test_chat_returns_text_usage_and_cost(fault_server: FaultServer) -> None:
    r = run(lambda c: c.chat(ep(fault_server, price_input=2.0, price_output=10.0, price_call=0.5), USER, step="ask"))
    assert r.text == "echo: what is a petri net"
    assert (r.input_tokens, r.output_tokens) == (5, 6)  # the fault server counts words
    assert r.cost == pytest.approx((5 * 2.0 + 6 * 10.0) / 1e6 + 0.5)
    assert r.finish_reason == "stop" and r.parsed is None and r.model == "fault-model"
    assert r.latency_s > 0 and not r.cached
    counts = fault_server.counts()
    assert counts["steps"] == {"ask": 1} and counts["paths"] == {"/v1/chat/completions": 1}


def test_streaming_counts_usage_like_a_plain_call(fault_server: FaultServer) -> None:
    plain = run(lambda c: c.chat(ep(fault_server, price_input=1.0), USER))
    streamed = run(lambda c: c.chat(ep(fault_server, price_input=1.0), USER, stream=True))
    assert streamed.text == plain.text
    assert (streamed.input_tokens, streamed.output_tokens) == (plain.input_tokens, plain.output_tokens) == (5, 6)
    assert streamed.cost == plain.cost > 0
    assert streamed.finish_reason == "stop"


def test_max_tokens_cuts_the_answer(fault_server: FaultServer) -> None:
    r = run(lambda c: c.chat(ep(fault_server), USER, max_tokens=2))
    assert r.finish_reason == "length" and r.output_tokens == 2 and r.text == "echo: what"


SCHEMA = {"type": "object", "required": ["label", "score"], "additionalProperties": False,
          "properties": {"label": {"enum": ["code", "general"]}, "score": {"type": "number"}}}


def test_json_schema_output_is_parsed_and_validated(fault_server: FaultServer) -> None:
    r = run(lambda c: c.chat(ep(fault_server), USER, json_schema=SCHEMA))
    assert r.parsed == {"label": "code", "score": 0.5} == json.loads(r.text)


def test_json_in_a_code_fence_is_accepted(fault_server: FaultServer) -> None:
    fault_server.add_rule("*", reply='```json\n{"label": "general", "score": 1}\n```')
    assert run(lambda c: c.chat(ep(fault_server), USER, json_schema=SCHEMA)).parsed == {"label": "general", "score": 1}


@pytest.mark.parametrize("reply", ['{"label": "poetry", "score": 1}', "not json at all", '{"label": "code"}'])
def test_output_that_breaks_the_schema_is_malformed(fault_server: FaultServer, reply: str) -> None:
    fault_server.add_rule("*", reply=reply)
    with pytest.raises(RetryableCallError) as info:
        run(lambda c: c.chat(ep(fault_server), USER, json_schema=SCHEMA))
    assert info.value.kind == "malformed"


# -- failures, classified -----------------------------------------------------------


@pytest.mark.parametrize(("fault", "wait"), [("429:2", 2.0), ("429:0.25", 0.25), ("429ms:1500", 1.5)])
def test_429_is_a_rate_limit_with_the_servers_wait(fault_server: FaultServer, fault: str, wait: float) -> None:
    err = fail(fault_server, fault)
    assert isinstance(err, RetryableCallError) and err.kind == "rate_limit" and err.status == 429
    assert err.retry_after == pytest.approx(wait)
    assert err.where == "step 's'"


def test_429_with_an_http_date(fault_server: FaultServer) -> None:
    err = fail(fault_server, "429date:30")
    assert isinstance(err, RetryableCallError) and err.kind == "rate_limit"
    assert err.retry_after is not None and 28.0 <= err.retry_after <= 31.0  # HTTP dates have 1 s resolution


@pytest.mark.parametrize("fault", ["500", "502", "503"])
def test_5xx_is_a_retryable_server_error(fault_server: FaultServer, fault: str) -> None:
    err = fail(fault_server, fault)
    assert isinstance(err, RetryableCallError) and err.kind == "server" and err.status == int(fault)
    assert err.retry_after is None


@pytest.mark.parametrize("fault", ["400", "401", "404", "422"])
def test_4xx_is_fatal(fault_server: FaultServer, fault: str) -> None:
    err = fail(fault_server, fault)
    assert isinstance(err, FatalCallError) and not isinstance(err, RetryableCallError)
    assert err.status == int(fault)


def test_a_hanging_server_is_a_timeout(fault_server: FaultServer) -> None:
    err = fail(fault_server, "hang", timeout=0.3)
    assert isinstance(err, RetryableCallError) and err.kind == "timeout"


def test_a_hanging_stream_is_a_timeout(fault_server: FaultServer) -> None:
    err = fail(fault_server, "hang", timeout=0.3, stream=True)
    assert isinstance(err, RetryableCallError) and err.kind == "timeout"


@pytest.mark.parametrize("fault", ["malformed", "badshape"])
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_answers(fault_server: FaultServer, fault: str, stream: bool) -> None:
    err = fail(fault_server, fault, stream=stream)
    assert isinstance(err, RetryableCallError) and err.kind == "malformed"


def test_a_dropped_connection(fault_server: FaultServer) -> None:
    err = fail(fault_server, "drop")
    assert isinstance(err, RetryableCallError) and err.kind == "connection"


def test_a_server_that_is_down() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m")
    with pytest.raises(RetryableCallError) as info:
        run(lambda c: c.chat(down, USER, timeout=5))
    assert info.value.kind == "connection"
    with pytest.raises(RetryableCallError) as info:
        run(lambda c: c.embed(down.__class__(base_url=down.base_url, model="m", kind="embedding"), ["x"]))
    assert info.value.kind == "connection"


def test_the_failure_is_recovered_by_the_next_call(fault_server: FaultServer) -> None:
    fault_server.add_rule("flaky", ["500", "429:0"])

    async def three(c: ModelClient) -> list[str]:
        outcomes = []
        for _ in range(3):
            try:
                await c.chat(ep(fault_server), USER, step="flaky")
                outcomes.append("ok")
            except RetryableCallError as e:
                outcomes.append(e.kind)
        return outcomes

    assert run(three) == ["server", "rate_limit", "ok"]
    assert fault_server.counts()["steps"] == {"flaky": 3}


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_retry_after_seconds_and_milliseconds(seconds: float) -> None:
    assert parse_retry_after({"Retry-After": repr(seconds)}) == pytest.approx(seconds)
    assert parse_retry_after({"retry-after-ms": repr(seconds * 1000)}) == pytest.approx(seconds)


def test_retry_after_edge_cases() -> None:
    assert parse_retry_after(None) is None and parse_retry_after({}) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "-3"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "500", "retry-after": "9"}) == 0.5  # the finer one wins
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0


# -- embeddings -----------------------------------------------------------------------


def test_embeddings_shape_usage_and_similarity(fault_server: FaultServer) -> None:
    e = Endpoint(base_url=fault_server.base_url, model="fault-model", kind="embedding", price_input=1.0)
    texts = ["reverse a python list", "reverse a python list please", "population of france"]
    r = run(lambda c: c.embed(e, texts, step="classify"))
    assert r.vectors.shape == (3, 64) and r.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(r.vectors, axis=1), 1.0, atol=1e-5)
    sims = r.vectors @ r.vectors[0]
    assert sims[1] > sims[2]
    assert r.input_tokens == 12 and r.cost == pytest.approx(12 / 1e6)  # words: 4 + 5 + 3
    assert fault_server.counts()["steps"] == {"classify": 1}


def test_malformed_embeddings(fault_server: FaultServer) -> None:
    fault_server.add_rule("*", ["malformed"])
    e = Endpoint(base_url=fault_server.base_url, model="fault-model", kind="embedding")
    with pytest.raises(RetryableCallError) as info:
        run(lambda c: c.embed(e, ["x"]))
    assert info.value.kind == "malformed"


# -- cache and hedging ------------------------------------------------------------------


def test_cache_answers_a_repeated_request_without_calling(fault_server: FaultServer) -> None:
    cache = MemoryCache()

    async def calls(c: ModelClient) -> list[ChatResult]:
        return [await c.chat(ep(fault_server, price_input=1.0), USER),
                await c.chat(ep(fault_server, price_input=1.0), USER),
                await c.chat(ep(fault_server, price_input=1.0), USER, max_tokens=3)]

    first, again, other = run(calls, cache=cache)
    assert not first.cached and again.cached and not other.cached
    assert again.text == first.text and again.input_tokens == first.input_tokens and again.cost == 0.0
    assert fault_server.counts()["total"] == 2 and len(cache) == 2


def test_sqlite_cache_survives_the_client(fault_server: FaultServer, tmp_path: Any) -> None:
    path = tmp_path / "cache.sqlite"
    run(lambda c: c.chat(ep(fault_server), USER, json_schema=SCHEMA), cache=SqliteCache(path))
    again = run(lambda c: c.chat(ep(fault_server), USER, json_schema=SCHEMA), cache=SqliteCache(path))
    assert again.cached and again.parsed == {"label": "code", "score": 0.5}
    assert fault_server.counts()["total"] == 1


def test_request_key_depends_on_content_only() -> None:
    a = Endpoint(base_url="http://h/v1", model="m")
    assert request_key(a, {"x": 1, "y": [1, 2]}) == request_key(a, {"y": [1, 2], "x": 1})
    assert request_key(a, {"x": 1}) != request_key(a, {"x": 2})
    assert request_key(a, {"x": 1}) != request_key(Endpoint(base_url="http://h/v1", model="n"), {"x": 1})


def test_a_slow_answer_is_waited_for_with_one_request(fault_server: FaultServer) -> None:
    """No hedging: a second copy of a call would be in neither the net, the budget check nor the simulator."""
    fault_server.add_rule("*", ["slow:0.2"])
    r = run(lambda c: c.chat(ep(fault_server), USER, timeout=5))
    assert r.text == "echo: what is a petri net" and fault_server.counts()["total"] == 1


def test_many_concurrent_calls_share_one_client(fault_server: FaultServer) -> None:
    fault_server.set_delay(0.02)

    async def many(c: ModelClient) -> list[ChatResult]:
        return await asyncio.gather(*(c.chat(ep(fault_server), [{"role": "user", "content": f"q{i}"}])
                                      for i in range(200)))

    results = run(many)
    assert sorted(r.text for r in results) == sorted(f"echo: q{i}" for i in range(200))
    counts = fault_server.counts()
    assert counts["total"] == 200 and all(n == 1 for n in counts["prompts"].values())


def test_rules_fix_the_delay_and_reply_of_a_step(fault_server: FaultServer) -> None:
    fault_server.add_rule("slowstep", delay=0.2)
    fault_server.add_rule("fixed", reply="always this")

    async def calls(c: ModelClient) -> list[ChatResult]:
        return [await c.chat(ep(fault_server), USER, step="slowstep"), await c.chat(ep(fault_server), USER, step="fixed"),
                await c.chat(ep(fault_server), USER, step="fixed")]

    slow, a, b = run(calls)
    assert slow.latency_s >= 0.2 and slow.text == "echo: what is a petri net"
    assert a.text == b.text == "always this"


def test_strict_schemas() -> None:
    assert is_strict_schema(SCHEMA)
    assert not is_strict_schema({**SCHEMA, "required": ["label"]})
    assert not is_strict_schema({k: v for k, v in SCHEMA.items() if k != "additionalProperties"})
    nested = {"type": "object", "additionalProperties": False, "required": ["xs"],
              "properties": {"xs": {"type": "array", "items": {"type": "object", "properties": {"a": {}}}}}}
    assert not is_strict_schema(nested)
    nested["properties"]["xs"]["items"].update(additionalProperties=False, required=["a"])
    assert is_strict_schema(nested)


def test_openai_itself_gets_max_completion_tokens() -> None:
    from petriflow.execute.client import _max_tokens_field

    assert _max_tokens_field(Endpoint(base_url="https://api.openai.com/v1", model="m")) == "max_completion_tokens"
    assert _max_tokens_field(Endpoint(base_url="http://127.0.0.1:8/v1", model="m")) == "max_tokens"


def test_one_client_serves_successive_event_loops(fault_server: FaultServer) -> None:
    """A synchronous wrapper runs each case under its own asyncio.run; the client must survive that."""
    client = ModelClient()
    for _ in range(3):
        assert asyncio.run(client.chat(ep(fault_server), USER)).text == "echo: what is a petri net"
    assert fault_server.counts()["total"] == 3


def test_step_header_name() -> None:
    assert STEP_HEADER.lower() == "x-petriflow-step"


# -- endpoints of a workflow ----------------------------------------------------------------


def _wf(**models: ModelEndpoint) -> Workflow:
    return Workflow(name="w", steps=(Step(id="a", kind="chat", model="m"),), models=models)


def test_undeclared_model_uses_the_openai_variables() -> None:
    got = resolve_endpoint(_wf(), "gpt-x", env={"OPENAI_API_KEY": "sk", "OPENAI_BASE_URL": "http://h:1/v1"})
    assert got == Endpoint(base_url="http://h:1/v1", model="gpt-x", kind="chat", api_key="sk")
    assert resolve_endpoint(None, "gpt-x", env={"OPENAI_API_KEY": "sk"}).base_url == "https://api.openai.com/v1"
    keyless = resolve_endpoint(None, "llama", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert keyless.base_url == "http://127.0.0.1:9/v1" and keyless.api_key == "none"  # vLLM, Ollama: no key
    emb = resolve_endpoint(None, "text-embedding-3-small", env={"OPENAI_API_KEY": "sk"})
    assert emb.kind == "embedding"


def test_local_can_be_redirected_to_another_server() -> None:
    wf = _wf(chat=ModelEndpoint(id="chat", name="SmolLM2", price_input=0.1))
    redirect = {"PETRIFLOW_LOCAL_BASE_URL": "http://127.0.0.1:9/v1"}
    got = resolve_endpoint(wf, "chat", env=redirect)
    assert got == Endpoint(base_url="http://127.0.0.1:9/v1", model="SmolLM2", kind="chat", api_key="local",
                           price_input=0.1, accepts=("text",))  # the local SmolLM2 reads text only
    vision = _wf(chat=ModelEndpoint(id="chat", name="llava", accepts=("text", "image")))
    assert resolve_endpoint(vision, "chat", env=redirect).accepts == ("text", "image")  # unless declared
    undeclared = resolve_endpoint(wf, "default-embedding", env=redirect)
    assert undeclared.base_url == "http://127.0.0.1:9/v1" and undeclared.kind == "embedding"


def test_declared_remote_model_takes_its_key_and_prices() -> None:
    m = ModelEndpoint(id="m", name="served-name", base_url="http://vllm:8000/v1", api_key_env="VLLM_KEY",
                      kind="embedding", price_input=0.5, price_call=0.01)
    got = resolve_endpoint(_wf(m=m), "m", env={"VLLM_KEY": "secret"})
    assert got == Endpoint(base_url="http://vllm:8000/v1", model="served-name", kind="embedding",
                           api_key="secret", price_input=0.5, price_output=0.0, price_call=0.01)
    with pytest.raises(InputError, match="VLLM_KEY") as info:
        resolve_endpoint(_wf(m=m), "m", env={})
    assert info.value.where == "model 'm'"


@pytest.mark.local_models
def test_declared_local_model_is_the_local_server(local_models: dict[str, Endpoint]) -> None:
    wf = _wf(chat=ModelEndpoint(id="chat", name="SmolLM2", price_output=0.3),
             e5=ModelEndpoint(id="e5", name="e5", kind="embedding"))
    chat = resolve_endpoint(wf, "chat", env={})
    assert chat.base_url == local_models["chat"].base_url and chat.price_output == 0.3 and chat.kind == "chat"
    assert resolve_endpoint(wf, "e5", env={}).base_url == local_models["embedding"].base_url
    # no model declared and no OpenAI variables: local by default, of the kind asked for
    assert resolve_endpoint(None, "default", env={}).base_url == local_models["chat"].base_url
    assert resolve_endpoint(None, "x", kind="embedding", env={}).base_url == local_models["embedding"].base_url


# -- the fault server itself ---------------------------------------------------------------


def test_fault_server_takes_a_thousand_concurrent_connections(fault_server: FaultServer) -> None:
    """Raw sockets (no client library in the way): every one of 1000 simultaneous requests is answered."""
    fault_server.set_delay(0.05)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", fault_server.port)
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        answer = json.loads(await reader.readexactly(length))
        writer.close()
        return int(head.split(b" ")[1]) if answer["choices"][0]["message"]["content"] == "echo: hi" else 0

    async def all_of_them() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(1000)))

    assert asyncio.run(all_of_them()) == [200] * 1000
    assert fault_server.counts()["paths"] == {"/v1/chat/completions": 1000}


def test_fault_server_as_a_subprocess() -> None:
    with spawn(delay=0.0) as fc:
        fc.add_rule("x", ["503"])
        e = Endpoint(base_url=fc.base_url, model="m")
        with pytest.raises(RetryableCallError):
            run(lambda c: c.chat(e, USER, step="x"))
        assert run(lambda c: c.chat(e, USER, step="x")).text == "echo: what is a petri net"
        counts = fc.counts()
        assert counts["steps"] == {"x": 2} and counts["faults"] == {"503": 1, "ok": 1}
        fc.reset()
        assert fc.counts()["total"] == 0
    assert fc.proc is not None and fc.proc.poll() is not None
