"""The executor on small workflows: dataflow, routes, loops, maps, resources, policies, traces.

Python-kind steps need no model; chat steps talk to the fault server (a real
OpenAI-protocol HTTP server on 127.0.0.1) through the real ``openai`` client,
and the server's request counts are the oracle for retries. Back-off sleeps
are recorded instead of slept, so no test depends on timing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from petriflow.errors import BudgetExceeded
from petriflow.execute import Executor, TraceWriter, plan, run_sync
from petriflow.execute.servers import Endpoint
from petriflow.execute.store import MemoryStore
from petriflow.spec import WorkflowBuilder
from petriflow.trace import TRACE_FIELDS, read_traces

S = "petriflow.execute.builtins:scripted"
_keys = itertools.count()


def script(*entries: Any) -> dict[str, Any]:
    return {"kwargs": {"key": f"t{next(_keys)}", "script": list(entries)}}


class Sleeps:
    """Records back-off delays instead of sleeping them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def replays(dag: Any, events: tuple[str, ...]) -> bool:
    m = dag.net.replay(events)
    return dag.net.is_final(m)


def ran(result: Any) -> list[str]:
    """Steps in the order they started."""
    return [e.split(".")[0] for e in result.events if e.split(".")[1:2] in (["start"], ["start_loop"])]


def test_route_follows_the_output_and_the_xor_join_takes_it() -> None:
    wf = (WorkflowBuilder("r")
          .step("pick", kind="python", function=S, config=script("right"),
                route=[{"to": "left", "p": 0.5, "when": "left"}, {"to": "right", "p": 0.5, "when": "right"}])
          .step("left", kind="python", function=S, config=script("L"))
          .step("right", kind="python", function=S, config=script("R"))
          .step("join", kind="python", function="petriflow.execute.builtins:first_answer", after_any=["left", "right"])
          .build())
    dag = plan(wf)
    r = run_sync(dag, "q")
    assert r.ok and r.output == {"answer": "R", "route": "right"}
    assert "left" not in r.outputs and "pick.choose.right" in r.events
    assert replays(dag, r.events)


def test_a_loop_goes_back_while_asked_and_never_beyond_its_bound() -> None:
    wf = (WorkflowBuilder("l")
          .step("draft", kind="python", function=S, config=script("d"))
          .step("review", kind="python", function=S, config=script("retry"), after=["draft"],
                loop={"to": "draft", "max": 2, "when": "retry"})
          .build())
    dag = plan(wf)
    r = run_sync(dag, "q")
    assert r.ok and ran(r).count("draft") == 3 and ran(r).count("review") == 3
    assert r.events.count("review.loop") == 2 and replays(dag, r.events)


def test_a_loop_stops_when_the_output_says_so() -> None:
    wf = (WorkflowBuilder("l2")
          .step("draft", kind="python", function=S, config=script("d"))
          .step("review", kind="python", function=S, config=script({"retry": True}, {"retry": False}),
                after=["draft"], loop={"to": "draft", "max": 5, "when": "retry"})
          .build())
    r = run_sync(plan(wf), "q")
    assert r.ok and ran(r).count("draft") == 2


def _map_wf(items: list[str], max_items: int) -> Any:
    return (WorkflowBuilder("m")
            .step("split", kind="python", function=S, config=script(items))
            .step("each", kind="python", function="petriflow.execute.builtins:echo", after=["split"],
                  map={"over": "split", "max": max_items})
            .build())


def test_a_map_runs_one_task_per_item() -> None:
    dag = plan(_map_wf(["a", "b", "c"], 4))
    r = run_sync(dag, "q")
    assert r.ok and [o["item"] for o in r.outputs["each"]] == ["a", "b", "c"]
    assert "each.spawn3" in r.events and replays(dag, r.events)


def test_a_map_over_too_many_items_is_a_clear_error() -> None:
    r = run_sync(plan(_map_wf(["a", "b", "c"], 2)), "q")
    assert not r.ok and "map.max" in (r.error or "") and "3 items" in (r.error or "")


def test_resource_capacity_is_never_exceeded_across_cases(fault_server: Any) -> None:
    """Six cases at once, one call each on a resource of capacity 2: the server sees two calls at a time, no more.

    Inside one case the net's resource place bounds the holders; across cases
    only the executor's shared semaphore does, so the oracle is the server's
    count of requests in flight at once. Each call is held 0.3 s so that calls
    which may overlap do: with a semaphore per case all six would be in flight
    together, with none at all too, and a peak below 2 would mean the cases
    were not run concurrently and the test saw nothing.
    """
    fault_server.set_delay(0.3)
    wf = (WorkflowBuilder("res").model("m", name="fault-model", base_url="http://unused/v1")
          .resource("llm", capacity=2)
          .step("ask", kind="chat", model="m", prompt="Say hi to {question}", uses=["llm"])
          .build())
    dag = plan(wf)
    results = asyncio.run(Executor(dag, endpoints=endpoint(fault_server.base_url)).run_many("abcdef", concurrency=6))
    assert all(r.ok for r in results) and all(replays(dag, r.events) for r in results)
    counts = fault_server.counts()
    assert counts["steps"]["ask"] == 6 and counts["in_flight"] == 0
    assert counts["peak_in_flight"] == 2


def test_steps_taking_several_units_get_them_all_at_once_and_never_deadlock(fault_server: Any) -> None:
    """Three cases whose one call takes both units of a capacity-2 resource: one call at a time, all finish.

    In the net the step's start takes both tokens at once, so the verifier
    finds no deadlock. A semaphore taken unit by unit reaches one: when the
    first call gives its two units back, each of the two waiting calls is
    handed one and both wait for the other forever. The peak of 1 at the
    server shows the units were what held the calls back.
    """
    fault_server.set_delay(0.2)
    wf = (WorkflowBuilder("pair").model("m", name="fault-model", base_url="http://unused/v1")
          .resource("llm", capacity=2)
          .step("ask", kind="chat", model="m", prompt="Say hi to {question}", uses={"llm": 2})
          .build())
    dag = plan(wf)

    async def main() -> list[Any]:
        batch = Executor(dag, endpoints=endpoint(fault_server.base_url)).run_many("abc", concurrency=3)
        return await asyncio.wait_for(batch, timeout=30)

    results = asyncio.run(main())
    assert all(r.ok for r in results) and all(replays(dag, r.events) for r in results)
    assert fault_server.counts()["peak_in_flight"] == 1


def test_python_retries_only_retryable_errors_then_falls_back() -> None:
    wf = (WorkflowBuilder("p")
          .step("flaky", kind="python", function=S, config=script("!retryable", "!timeout", "ok"),
                retry={"max_attempts": 3, "backoff": 0.2, "jitter": False})
          .step("fatal", kind="python", function=S, config=script("!fatal", "never"), after=["flaky"],
                retry={"max_attempts": 3, "backoff": 0.2}, fallback="plan_b")
          .step("plan_b", kind="python", function=S, config=script("B"))
          .build())
    sleeps = Sleeps()
    trace = TraceWriter(keep=True)
    dag = plan(wf)
    r = asyncio.run(Executor(dag, sleep=sleeps, trace=trace).run("q"))
    assert r.ok and r.output == "B" and r.outputs["flaky"] == "ok"
    assert sleeps.delays == [0.2, 0.4]  # exponential back-off; a fatal error is never retried
    outcomes = [(t.step, t.attempt, t.outcome) for t in trace.records]
    assert outcomes == [("flaky", 1, "error"), ("flaky", 2, "timeout"), ("flaky", 3, "ok"),
                        ("fatal", 1, "fallback"), ("plan_b", 1, "ok")]
    assert replays(dag, r.events)


def test_a_step_out_of_attempts_fails_the_run_clearly() -> None:
    wf = WorkflowBuilder("f").step("x", kind="python", function=S, config=script("!retryable"),
                                   retry={"max_attempts": 2, "backoff": 0}).build()
    r = asyncio.run(Executor(plan(wf), sleep=Sleeps()).run("q"))
    assert not r.ok and r.exit_code == 1 and "step 'x'" in (r.error or "") and "2 attempt" in (r.error or "")


def test_human_step_waits_for_an_answer_and_escalates_at_its_deadline() -> None:
    wf = (WorkflowBuilder("h")
          .step("review", kind="human", timeout=0.3, config={"poll": 0.01}, fallback="escalate")
          .step("escalate", kind="python", function=S, config=script("escalated"))
          .build())
    dag = plan(wf)
    store = MemoryStore()
    Executor(dag, store=store).answer("run-a", "review", "approved")
    ok = asyncio.run(Executor(dag, store=store).run("q", run_id="run-a"))
    late = asyncio.run(Executor(dag, store=store).run("q", run_id="run-b"))
    assert ok.output == "approved" and late.output == "escalated"


# -- chat steps against the fault server --------------------------------------------------

def chat_wf(*, retry: int = 3, timeout: float | None = None, fallback: bool = False, schema: Any = None,
            price: float = 0.0) -> Any:
    opts: dict[str, Any] = {"model": "m", "prompt": "Say hi to {question}",
                            "retry": {"max_attempts": retry, "backoff": 0.01}}
    if timeout:
        opts["timeout"] = timeout
    if schema:
        opts["output_schema"] = schema
    b = WorkflowBuilder("c").model("m", name="fault-model", base_url="http://unused/v1", price_input=price,
                                   price_output=price)
    if fallback:
        opts["fallback"] = "backup"
    b.step("ask", kind="chat", **opts)
    if fallback:
        b.step("backup", kind="python", function=S, config=script("backup answer"))
    return b.build()


def endpoint(base_url: str, price: float = 0.0) -> dict[str, Endpoint]:
    return {"m": Endpoint(base_url=base_url, model="fault-model", api_key="x", price_input=price, price_output=price)}


def run_chat(wf: Any, base_url: str, *, price: float = 0.0, **kw: Any) -> tuple[Any, Sleeps, TraceWriter]:
    sleeps, trace = Sleeps(), TraceWriter(keep=True)
    ex = Executor(plan(wf), endpoints=endpoint(base_url, price), sleep=sleeps, trace=trace, **kw)
    return asyncio.run(ex.run("bob")), sleeps, trace


def test_chat_ok_records_usage(fault_server: Any) -> None:
    r, _, trace = run_chat(chat_wf(), fault_server.base_url)
    assert r.ok and r.output == "echo: Say hi to bob"
    rec = trace.records[0]
    assert rec.model == "fault-model" and rec.input_tokens == 4 and rec.output_tokens == 5
    assert fault_server.counts()["steps"]["ask"] == 1


def test_429_waits_at_least_retry_after(fault_server: Any) -> None:
    fault_server.add_rule("ask", ["429:2"])
    r, sleeps, trace = run_chat(chat_wf(), fault_server.base_url)
    assert r.ok and fault_server.counts()["steps"]["ask"] == 2
    assert sleeps.delays and sleeps.delays[0] >= 2.0  # the server's Retry-After beats the 0.01 s back-off
    # the trace keeps what the server asked, so fit can give the simulator the same wait
    assert [(t.outcome, t.retry_after) for t in trace.records] == [("error", 2.0), ("ok", None)]


def test_500s_are_retried_until_attempts_run_out(fault_server: Any) -> None:
    fault_server.add_rule("ask", ["500", "500", "500"])
    r, sleeps, trace = run_chat(chat_wf(retry=3), fault_server.base_url)
    assert not r.ok and fault_server.counts()["steps"]["ask"] == 3 and len(sleeps.delays) == 2
    assert [t.outcome for t in trace.records] == ["error", "error", "error"]


def test_a_hanging_server_times_out_and_the_retry_succeeds(fault_server: Any) -> None:
    fault_server.add_rule("ask", ["hang"])
    r, _, trace = run_chat(chat_wf(timeout=0.5), fault_server.base_url)
    assert r.ok and [t.outcome for t in trace.records] == ["timeout", "ok"]


def test_malformed_json_is_retried(fault_server: Any) -> None:
    fault_server.add_rule("ask", ["malformed"])
    r, _, trace = run_chat(chat_wf(), fault_server.base_url)
    assert r.ok and [t.outcome for t in trace.records] == ["error", "ok"]


def test_structured_output_is_schema_valid(fault_server: Any) -> None:
    schema = {"type": "object", "required": ["mood"], "properties": {"mood": {"type": "string"}}}
    r, _, _ = run_chat(chat_wf(schema=schema), fault_server.base_url)
    assert r.ok and isinstance(r.output, dict) and isinstance(r.output["mood"], str)


def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    return f"http://127.0.0.1:{port}/v1"


def test_a_server_that_is_down_falls_back_or_fails_clearly() -> None:
    url = _dead_url()
    r, _, trace = run_chat(chat_wf(retry=2, fallback=True), url)
    assert r.ok and r.output == "backup answer" and [t.outcome for t in trace.records] == ["error", "fallback", "ok"]
    r2, _, _ = run_chat(chat_wf(retry=2), url)
    assert not r2.ok and "step 'ask'" in (r2.error or "") and "reach" in (r2.error or "")


def test_the_budget_stops_a_run_before_it_is_exceeded(fault_server: Any) -> None:
    # 256 output tokens at $1000 per 1M tokens could cost more than $0.01: the call is not made
    r, _, _ = run_chat(chat_wf(price=1000.0), fault_server.base_url, price=1000.0, budget=0.01)
    assert not r.ok and r.exit_code == BudgetExceeded.exit_code and "budget" in (r.error or "")
    assert fault_server.counts()["total"] == 0


def test_trace_lines_have_exactly_the_fields_and_spans_carry_genai_attributes(fault_server: Any, tmp_path: Any) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk (the dev extra) is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fault_server.add_rule("ask", ["500"])
    path = tmp_path / "t.jsonl"
    trace = TraceWriter(path, tracer_provider=provider)
    ex = Executor(plan(chat_wf()), endpoints=endpoint(fault_server.base_url, 1.0), sleep=Sleeps(), trace=trace)
    r = asyncio.run(ex.run("bob"))
    trace.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert r.ok and [tuple(d) for d in lines] == [tuple(TRACE_FIELDS), tuple(TRACE_FIELDS)]
    recs = read_traces(path)
    assert [x.attempt for x in recs] == [1, 2] and recs[1].cost > 0 and recs[1].end >= recs[1].start
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    a = spans[1].attributes
    assert a["gen_ai.request.model"] == "fault-model" and a["gen_ai.usage.output_tokens"] == recs[1].output_tokens
    assert a["petriflow.outcome"] == "ok" and a["petriflow.attempt"] == 2 and a["petriflow.cost"] == recs[1].cost
    assert "total" in trace.summary()


def test_tool_steps_use_the_allow_list_with_idempotency_keys() -> None:
    from petriflow.errors import InputError
    from petriflow.execute.tools import ToolRegistry

    calls: list[str] = []
    reg = ToolRegistry()
    reg.register("record", lambda query, idempotency_key: calls.append(idempotency_key) or query.upper(),
                 schema={"type": "object", "required": ["query"], "properties": {"query": {"type": "string"}}})
    wf = WorkflowBuilder("t").step("t", kind="tool", tool="record", prompt="{question}").build()
    store = MemoryStore()
    r1 = asyncio.run(Executor(plan(wf), tools=reg, store=store).run("abc", run_id="R"))
    store2 = MemoryStore()
    store2._tools = store._tools  # same keys, a new run of the same case: the tool is not called again
    r2 = asyncio.run(Executor(plan(wf), tools=reg, store=store2).run("abc", run_id="R"))
    assert r1.output == r2.output == "ABC" and len(calls) == 1 and len(calls[0]) == 32
    with pytest.raises(InputError, match="not registered"):
        Executor(plan(WorkflowBuilder("u").step("t", kind="tool", tool="rm_rf").build()))


def test_classify_routes_by_nearest_centroid_and_embeds_the_examples_once(fault_server: Any) -> None:
    wf = (WorkflowBuilder("cls")
          .model("e", name="fault-model", base_url="http://unused/v1", kind="embedding", price_input=1.0)
          .step("intent", kind="classify", model="e",
                labels={"code": ["python list code", "python function code"],
                        "weather": ["rain weather today", "sunny weather forecast"]},
                route=[{"to": "coder", "p": 0.5, "when": "code"}, {"to": "forecaster", "p": 0.5, "when": "weather"}])
          .step("coder", kind="python", function="petriflow.execute.builtins:echo", config={"kwargs": {"value": "C"}})
          .step("forecaster", kind="python", function="petriflow.execute.builtins:echo",
                config={"kwargs": {"value": "W"}})
          .step("out", kind="python", function="petriflow.execute.builtins:first_answer",
                after_any=["coder", "forecaster"])
          .build())
    ep = {"e": Endpoint(base_url=fault_server.base_url, model="fault-model", kind="embedding", api_key="x",
                        price_input=1.0)}
    questions = ["python code for a list", "weather today: rain?", "a python function", "sunny forecast"]
    ex = Executor(plan(wf), endpoints=ep)
    results = asyncio.run(ex.run_many(questions, concurrency=4))
    assert [r.output["route"] for r in results] == ["coder", "forecaster", "coder", "forecaster"]
    assert fault_server.counts()["paths"]["/v1/embeddings"] == 1 + len(questions)
    assert all(r.input_tokens > 0 and r.cost > 0 for r in results)


def test_requests_per_minute_spaces_the_calls() -> None:
    b = WorkflowBuilder("rpm").resource("api", capacity=1, requests_per_minute=1200)  # one call per 50 ms
    for i in range(3):
        b.step(f"c{i}", kind="python", function="petriflow.execute.builtins:echo", uses=["api"])
    trace = TraceWriter(keep=True)
    r = asyncio.run(Executor(plan(b.build()), trace=trace).run("q"))
    starts = sorted(t.start for t in trace.records)
    assert r.ok and starts[2] - starts[0] >= 0.09  # a lower bound: the bucket never lets them closer


def test_an_output_that_names_no_branch_fails_the_case_and_frees_its_resources() -> None:
    wf = (WorkflowBuilder("nb").resource("r", capacity=1)
          .step("pick", kind="python", function=S, config=script("neither"), uses=["r"],
                route=[{"to": "a", "p": 0.5, "when": "a"}, {"to": "b", "p": 0.5, "when": "b"}])
          .step("a", kind="python", function=S, config=script("A"))
          .step("b", kind="python", function=S, config=script("B"))
          .step("j", kind="python", function="petriflow.execute.builtins:first_answer", after_any=["a", "b"])
          .build())
    trace = TraceWriter(keep=True)
    ex = Executor(plan(wf), trace=trace)

    async def both() -> list[Any]:
        first = await ex.run("q")
        second = await asyncio.wait_for(ex.run("q"), 5)  # would hang if the first case kept the resource
        return [first, second]

    first, second = asyncio.run(both())
    assert not first.ok and "names none of the branches" in (first.error or "") and not second.ok
    assert [t.outcome for t in trace.records] == ["error", "error"]


def test_prometheus_text_has_the_per_step_totals() -> None:
    wf = WorkflowBuilder("pm").step("x", kind="python", function=S, config=script("!retryable", "ok"),
                                    retry={"max_attempts": 2, "backoff": 0}).build()
    trace = TraceWriter()
    asyncio.run(Executor(plan(wf), trace=trace, sleep=Sleeps()).run("q"))
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, s.labels["workflow"], s.labels["step"]): s.value
               for fam in text_string_to_metric_families(trace.prometheus(workflow="pm")) for s in fam.samples}
    assert samples[("petriflow_step_attempts_total", "pm", "x")] == 2
    assert samples[("petriflow_step_failures_total", "pm", "x")] == 1


def test_the_trace_schema_is_the_one_fit_reads(tmp_path: Path) -> None:
    """One schema: what the executor's writer writes reads back as the same records, and bad lines fail."""
    from petriflow.errors import ProfileError
    from petriflow.trace import TraceRecord

    recs = [TraceRecord("R", 0, "a", 1.0, 2.0, 1, "error", "m", 3, 4, 0.5, None, "retryable"),
            TraceRecord("R", 0, "a", 2.5, 3.0, 2, "ok", "m", 3, 4, 0.5, "yes")]
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path)
    for r in recs:
        writer.write(r)
    writer.close()
    assert read_traces(path) == recs
    good = recs[1].to_json()
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "outcome": "maybe"}) + "\n")
    with pytest.raises(ProfileError, match="unknown outcome") as err:
        read_traces(path)
    assert err.value.where.endswith("t.jsonl:2")


@pytest.mark.parametrize(("limit", "called"), [(4, False), (100, True)])
def test_a_prompt_over_max_input_tokens_is_refused_before_any_request(fault_server: Any, limit: int,
                                                                      called: bool) -> None:
    """"Say hi to bob" estimates at 4 + 4 (role markers) + 1 tokens: over 4 it is a fatal failure without a call,
    so a cost bound that counts max_input_tokens holds."""
    wf = chat_wf()
    wf = replace(wf, steps=(replace(wf.steps[0], config=MappingProxyType({"max_input_tokens": limit})),))
    r, sleeps, trace = run_chat(wf, fault_server.base_url)
    assert r.ok is called and fault_server.counts()["steps"].get("ask", 0) == (1 if called else 0)
    if not called:
        assert [(t.outcome, t.error) for t in trace.records] == [("error", "fatal")] and not sleeps.delays
