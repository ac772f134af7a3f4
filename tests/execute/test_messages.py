"""What a run says when things go wrong (issue 11 items 10 and 11).

No credential reaches the store or the screen; the Prometheus text cannot be
forged by a name; an unreachable endpoint is named by its URL, a timeout by
its duration, and a read-only store is called read-only.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from petriflow.errors import InputError
from petriflow.execute import Executor, SqliteStore, TraceWriter, plan
from petriflow.execute.redact import redact
from petriflow.execute.servers import Endpoint
from petriflow.spec import WorkflowBuilder
from petriflow.trace import TraceRecord

KEY = "sk-proj-abcdefghijklmnop0123456789"


def test_redact_removes_keys_from_env_headers_and_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "zz-secret-value-42")
    text = redact(f'401: key {KEY} rejected; headers {{"Authorization": "Bearer abc.def.ghi"}} and zz-secret-value-42')
    assert KEY not in text and "abc.def.ghi" not in text and "zz-secret-value-42" not in text
    assert text.count("[REDACTED]") == 3


@pytest.fixture
def leaky_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "leaky_steps.py").write_text(
        "import os\ndef call(inputs):\n    raise PermissionError('invalid key ' + os.environ['OPENAI_API_KEY'])\n"
        "async def hang(inputs):\n    import asyncio\n    await asyncio.Event().wait()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return "leaky_steps"


def test_an_echoed_key_is_neither_stored_nor_returned(tmp_path: Path, leaky_module: str) -> None:
    dag = plan(WorkflowBuilder("leak").step("a", kind="python", function=f"{leaky_module}:call").build())
    store = SqliteStore(tmp_path / "r.sqlite")
    result = asyncio.run(Executor(dag, store=store).run_many(["q"], run_id="R"))[0]
    assert not result.ok and "invalid key [REDACTED]" in (result.error or "")
    dump = "\n".join(store._db.iterdump())
    assert KEY not in dump and KEY not in (result.error or "")


def test_a_timeout_says_how_long_it_waited(leaky_module: str) -> None:
    dag = plan(WorkflowBuilder("t").step("a", kind="python", function=f"{leaky_module}:hang", timeout=0.05).build())
    result = asyncio.run(Executor(dag).run("q"))
    assert result.error is not None and "no answer within 0.05 s" in result.error
    assert "TimeoutError: TimeoutError" not in result.error


def test_an_unreachable_endpoint_is_named_by_its_url() -> None:
    wf = (WorkflowBuilder("u").model("m", name="fault-model", base_url="http://127.0.0.1:9/v1")
          .step("a", kind="chat", model="m", prompt="hi").build())
    ep = {"m": Endpoint(base_url="http://127.0.0.1:9/v1", model="fault-model", api_key="x")}
    result = asyncio.run(Executor(plan(wf), endpoints=ep).run("q"))
    assert result.error is not None and "cannot reach the endpoint at http://127.0.0.1:9/v1" in result.error


def test_a_read_only_store_is_said_to_be_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.sqlite"
    SqliteStore(path).close()
    real = sqlite3.connect

    def read_only(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real(f"file:{database}?mode=ro", *args, uri=True, **kwargs)  # what a read-only file gives

    monkeypatch.setattr(sqlite3, "connect", read_only)
    with pytest.raises(InputError, match="the checkpoint store is read-only"):
        SqliteStore(path)


def test_a_name_cannot_forge_a_prometheus_line() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    trace = TraceWriter()
    evil = 'x"} 1\npetriflow_step_cost_dollars_total{workflow="forged'
    trace.write(TraceRecord("r", 0, evil, 0.0, 1.0, 1, "ok", None, 3, 4, 0.5, None))
    text = trace.prometheus(workflow=evil)
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    assert len(samples) == 6 and all(s.labels == {"workflow": evil, "step": evil} for s in samples)
    assert "forged" not in {s.labels.get("workflow") for s in samples}
