"""One model call through the official ``openai`` client: usage, cost, and a verdict on failure.

The executor owns retries, because retries are part of the verified net (a
bounded counter place), so this module makes exactly **one attempt** per call
(the openai client's own ``max_retries`` is 0: no hidden retries) and says what
went wrong in a form the executor can act on: a
:class:`RetryableCallError` or a :class:`FatalCallError` (both in
:mod:`petriflow.execute.call_errors`, re-exported here).

Every answer carries its token usage (from ``usage``, streamed answers too via
``stream_options.include_usage``), its cost from the workflow's prices, its
latency and its finish reason. One optional policy lives here because it is
about one request, not about the net: a response cache keyed by the content
of the request (:class:`MemoryCache`, :class:`SqliteCache`). Nothing here
sends a second request: every request the executor makes is an attempt of
the net, which the budget check and the simulator see too.

    >>> async def main(client: ModelClient, ep: Endpoint) -> None:   # doctest: +SKIP
    ...     r = await client.chat(ep, [{"role": "user", "content": "hi"}], max_tokens=16)
    ...     print(r.text, r.input_tokens, r.output_tokens, r.cost)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from petriflow.errors import FatalCallError, RetryableCallError
from petriflow.execute.call_errors import classify_error, httpx_module, parse_retry_after
from petriflow.execute.pricing import call_cost
from petriflow.execute.response_cache import (
    MemoryCache,
    ResponseCache,
    SqliteCache,
    request_key,
)
from petriflow.execute.servers import Endpoint, resolve_endpoint

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "STEP_HEADER",
    "ChatResult",
    "EmbedResult",
    "Endpoint",
    "FatalCallError",
    "MemoryCache",
    "ModelClient",
    "ResponseCache",
    "RetryableCallError",
    "SqliteCache",
    "classify_error",
    "is_strict_schema",
    "parse_retry_after",
    "request_key",
    "resolve_endpoint",
]

STEP_HEADER = "X-Petriflow-Step"
"""Sent with every call made for a step, so servers (and the fault server's counters) can tell steps apart."""


@dataclass(frozen=True)
class ChatResult:
    """One chat completion: the text, its parsed JSON (when a schema was asked), usage and cost."""

    text: str
    parsed: Any | None
    input_tokens: int
    output_tokens: int
    cost: float
    model: str
    latency_s: float
    finish_reason: str | None
    cached: bool = False


@dataclass(frozen=True, eq=False)
class EmbedResult:
    """Embeddings, one row per input text (float32, shape ``(n, dim)``), with usage and cost."""

    vectors: np.ndarray
    input_tokens: int
    cost: float
    model: str
    latency_s: float
    cached: bool = False


# -- the client -------------------------------------------------------------------


def is_strict_schema(schema: Mapping[str, Any]) -> bool:
    """Whether OpenAI's strict structured outputs accept the schema: every object closed, every property required.

    Sending ``strict: true`` with a schema that is not would be refused (400);
    sending ``strict: false`` keeps the request valid (llama.cpp constrains either way).
    """
    if not isinstance(schema, Mapping):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties", True) is not False or set(schema.get("required", ())) != set(props):
            return False
    children: list[Any] = list((schema.get("properties") or {}).values())
    children += [schema[k] for k in ("items", "not") if isinstance(schema.get(k), Mapping)]
    for k in ("anyOf", "oneOf", "allOf", "prefixItems"):
        children += list(schema.get(k) or [])
    children += list((schema.get("$defs") or {}).values())
    return all(is_strict_schema(c) for c in children)


def _max_tokens_field(endpoint: Endpoint) -> str:
    """OpenAI itself wants ``max_completion_tokens`` (its reasoning models refuse ``max_tokens``); servers
    that copy its API (llama.cpp, vLLM, Ollama) know ``max_tokens``."""
    return "max_completion_tokens" if "api.openai.com" in endpoint.base_url else "max_tokens"


def _strip_fences(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else t[3:]
        t = t.rsplit("```", 1)[0]
    return t.strip()


def _parse_json(text: str, schema: Mapping[str, Any], where: str) -> Any:
    """The answer as JSON, validated against the schema the request asked for."""
    import jsonschema

    try:
        value = json.loads(_strip_fences(text))
    except json.JSONDecodeError as exc:
        raise RetryableCallError(f"the answer is not JSON ({exc.msg}): {text[:120]!r}", kind="malformed",
                                 where=where) from exc
    try:
        jsonschema.validate(value, dict(schema))
    except jsonschema.ValidationError as exc:
        raise RetryableCallError(f"the answer does not match the output schema: {exc.message}", kind="malformed",
                                 where=where) from exc
    return value


class _Pool:
    """Several ``AsyncOpenAI`` clients for one endpoint; each call takes the least busy one.

    Why: httpcore's connection pool scans every connection for every request,
    so one pool of 1000 connections costs O(n^2) under a burst (measured: ~4x
    the client CPU of 32 pools of 32). Small pools keep that scan short. A new
    pool is made only when every pool is full, so light use needs one.
    """

    def __init__(self, endpoint: Endpoint, *, shards: int, per_shard: int, timeout: float) -> None:
        self.endpoint = endpoint
        self.max_shards = shards
        self.per_shard = per_shard
        self.timeout = timeout
        self.clients: list[AsyncOpenAI] = []
        self.busy: list[int] = []
        self._verify: Any = True
        self._add()

    def _add(self) -> None:
        import openai

        httpx = httpx_module()
        if self._verify is True:
            import ssl

            self._verify = ssl.create_default_context()  # loaded once (it is slow), shared by every shard
        http = openai.DefaultAsyncHttpxClient(verify=self._verify, limits=httpx.Limits(
            max_connections=self.per_shard, max_keepalive_connections=self.per_shard))
        self.clients.append(openai.AsyncOpenAI(base_url=self.endpoint.base_url,
                                               api_key=self.endpoint.api_key or "none", max_retries=0,
                                               timeout=self.timeout, http_client=http))
        self.busy.append(0)

    def pick(self) -> int:
        busy = self.busy
        i = min(range(len(busy)), key=busy.__getitem__)
        if busy[i] >= self.per_shard and len(busy) < self.max_shards:
            self._add()
            i = len(busy) - 1
        return i


class ModelClient:
    """Calls OpenAI-compatible endpoints through pooled ``AsyncOpenAI`` clients (retries off), reused.

    ``cache`` (optional) answers repeated requests without calling;
    ``default_timeout`` bounds a call that was given no ``timeout``;
    ``max_connections`` caps the connections to one endpoint.
    """

    def __init__(self, *, cache: ResponseCache | None = None, default_timeout: float = 120.0,
                 max_connections: int = 1024) -> None:
        self.cache = cache
        self.default_timeout = default_timeout
        self.max_connections = max_connections
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _pool(self, endpoint: Endpoint) -> _Pool:
        """The endpoint's pool on the running loop. Connections belong to a loop, so a client used
        again under a new ``asyncio.run`` (a sync wrapper called twice) starts fresh pools."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._pools, self._loop = {}, loop
        key = (endpoint.base_url, endpoint.api_key)
        pool = self._pools.get(key)
        if pool is None:
            per = 32
            pool = _Pool(endpoint, shards=max(1, -(-self.max_connections // per)),
                         per_shard=min(per, self.max_connections), timeout=self.default_timeout)
            self._pools[key] = pool
        return pool

    def openai_client(self, endpoint: Endpoint) -> AsyncOpenAI:
        """An ``AsyncOpenAI`` for an endpoint (retries off), for calls this class does not make."""
        return self._pool(endpoint).clients[0]

    async def _post(self, endpoint: Endpoint, path: str, body: Mapping[str, Any], *, timeout: float,
                    headers: Mapping[str, str] | None) -> Any:
        """POST through the official client, reading the JSON ourselves (statuses still raise as openai does)."""
        pool = self._pool(endpoint)
        i = pool.pick()
        pool.busy[i] += 1
        try:
            resp = await pool.clients[i].post(path, body=body, cast_to=httpx_module().Response,
                                              options={"timeout": timeout, "headers": dict(headers or {})})
            return json.loads(resp.content)
        finally:
            pool.busy[i] -= 1

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            for c in pool.clients:
                await c.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- chat --

    async def chat(self, endpoint: Endpoint, messages: Sequence[Mapping[str, Any]], *,
                   json_schema: Mapping[str, Any] | None = None, schema_name: str = "output",
                   max_tokens: int = 256, temperature: float = 0.0, timeout: float | None = None,
                   stream: bool = False, step: str | None = None,
                   use_cache: bool = True, extra_body: Mapping[str, Any] | None = None) -> ChatResult:
        """One chat completion: one attempt, one request.

        With ``json_schema`` the request asks for constrained JSON
        (``response_format: json_schema``) and ``parsed`` holds the validated
        value; an answer that is not valid JSON for the schema raises
        ``RetryableCallError(kind="malformed")``. ``step`` is sent as the
        ``X-Petriflow-Step`` header and names the step in errors.
        """
        where = f"step '{step}'" if step else f"model '{endpoint.model}'"
        payload: dict[str, Any] = {"model": endpoint.model, "messages": [dict(m) for m in messages],
                                   _max_tokens_field(endpoint): max_tokens, "temperature": temperature}
        if json_schema is not None:
            payload["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name, "schema": dict(json_schema), "strict": is_strict_schema(json_schema)}}
        if extra_body:
            payload.update(extra_body)
        key = request_key(endpoint, payload) if self.cache is not None and use_cache else None
        if key is not None and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return ChatResult(**{**hit, "cost": 0.0, "latency_s": 0.0, "cached": True})
        headers = {STEP_HEADER: step} if step else None
        limit = self.default_timeout if timeout is None else timeout
        once = self._stream_once if stream else self._chat_once
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                text, finish, n_in, n_out, model = await once(endpoint, payload, timeout=limit, headers=headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise classify_error(exc, where=where) from exc
        latency = time.perf_counter() - t0
        parsed = _parse_json(text, json_schema, where) if json_schema is not None else None
        result = ChatResult(text=text, parsed=parsed, input_tokens=n_in, output_tokens=n_out,
                            cost=call_cost(endpoint, input_tokens=n_in, output_tokens=n_out), model=model,
                            latency_s=latency, finish_reason=finish)
        if key is not None and self.cache is not None:
            self.cache.put(key, {k: v for k, v in asdict(result).items()
                                 if k not in ("cost", "latency_s", "cached")})
        return result

    async def _chat_once(self, endpoint: Endpoint, payload: Mapping[str, Any], *, timeout: float,
                         headers: Mapping[str, str] | None) -> tuple[str, str | None, int, int, str]:
        data = await self._post(endpoint, "/chat/completions", payload, timeout=timeout, headers=headers)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
            return (str(text), choice.get("finish_reason"), int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0), str(data.get("model") or endpoint.model))
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise RetryableCallError(f"the answer is not a chat completion: {str(data)[:120]}",
                                     kind="malformed") from exc

    async def _stream_once(self, endpoint: Endpoint, payload: Mapping[str, Any], *, timeout: float,
                           headers: Mapping[str, str] | None) -> tuple[str, str | None, int, int, str]:
        pool = self._pool(endpoint)
        i = pool.pick()
        pool.busy[i] += 1
        try:
            resp = await pool.clients[i].chat.completions.create(
                **payload, stream=True, stream_options={"include_usage": True}, timeout=timeout,
                extra_headers=headers)
            parts: list[str] = []
            finish: str | None = None
            n_in = n_out = 0
            model = endpoint.model
            async for chunk in resp:
                if getattr(chunk, "usage", None) is not None:
                    n_in = int(chunk.usage.prompt_tokens or 0)
                    n_out = int(chunk.usage.completion_tokens or 0)
                model = getattr(chunk, "model", None) or model
                for choice in getattr(chunk, "choices", None) or []:
                    if choice.delta is not None and choice.delta.content:
                        parts.append(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        finally:
            pool.busy[i] -= 1
        if finish is None:
            raise RetryableCallError("the stream ended before the answer did", kind="malformed")
        return "".join(parts), finish, n_in, n_out, model

    # -- embeddings --

    async def embed(self, endpoint: Endpoint, texts: Sequence[str], *, timeout: float | None = None,
                    step: str | None = None, input_type: str | None = None, use_cache: bool = True) -> EmbedResult:
        """Embeddings of ``texts`` (one attempt). ``input_type`` ("query"/"passage") goes to servers that use it."""
        where = f"step '{step}'" if step else f"model '{endpoint.model}'"
        payload: dict[str, Any] = {"model": endpoint.model, "input": list(texts), "encoding_format": "float"}
        if input_type:
            payload["input_type"] = input_type
        key = request_key(endpoint, payload) if self.cache is not None and use_cache else None
        if key is not None and self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return EmbedResult(vectors=np.asarray(hit["vectors"], dtype=np.float32),
                                   input_tokens=hit["input_tokens"], cost=0.0, model=hit["model"], latency_s=0.0,
                                   cached=True)
        limit = self.default_timeout if timeout is None else timeout
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                data = await self._post(endpoint, "/embeddings", payload, timeout=limit,
                                        headers={STEP_HEADER: step} if step else None)
            try:
                rows = sorted(data["data"], key=lambda d: d["index"])
                vectors = np.asarray([d["embedding"] for d in rows], dtype=np.float32)
                n_in = int((data.get("usage") or {}).get("prompt_tokens") or 0)
            except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                raise RetryableCallError(f"the answer is not a list of embeddings: {str(data)[:120]}",
                                         kind="malformed") from exc
            if vectors.ndim != 2 or len(vectors) != len(texts):
                raise RetryableCallError(f"expected {len(texts)} embeddings, got shape {vectors.shape}",
                                         kind="malformed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise classify_error(exc, where=where) from exc
        model = str(data.get("model") or endpoint.model)
        result = EmbedResult(vectors=vectors, input_tokens=n_in,
                             cost=call_cost(endpoint, input_tokens=n_in, output_tokens=0), model=model,
                             latency_s=time.perf_counter() - t0)
        if key is not None and self.cache is not None:
            self.cache.put(key, {"vectors": vectors.tolist(), "input_tokens": n_in, "model": model})
        return result
