"""``on_failure``: a step that fails for good (after its retries and fallback) hands over to a handler that
runs and ends the case, failed. The net has the path (so soundness covers it), the executor takes it, the
simulator takes it as often."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from petriflow import simulate
from petriflow.errors import SpecError
from petriflow.execute import Executor, TraceWriter, plan
from petriflow.net.lower import lower
from petriflow.net.wiring import EntryKind, TransitionRole
from petriflow.spec import loads
from petriflow.verify.report import check

S = "petriflow.execute.builtins:scripted"
_keys = itertools.count()


def audited(ocr: str = "'!fatal'", cached: str = "'!fatal'", *, parallel: bool = False) -> str:
    side = "  - {id: lint, kind: python, function: builtins:len, after: [ingest]}\n" if parallel else ""
    k = next(_keys)
    return f"""
name: audited
steps:
  - {{id: ingest, kind: python, function: builtins:len, on_failure: audit_fail}}
  - id: ocr
    kind: python
    function: {S}
    config: {{kwargs: {{key: ocr{k}, script: [{ocr}]}}}}
    after: [ingest]
    retry: {{max_attempts: 2, backoff: 0}}
    fallback: ocr_cached
    on_failure: audit_fail
    failure_rate: 1.0
  - id: ocr_cached
    kind: python
    function: {S}
    config: {{kwargs: {{key: cached{k}, script: [{cached}]}}}}
    failure_rate: 1.0
  - {{id: audit, kind: python, function: builtins:len, after: [ocr{", lint" if parallel else ""}]}}
  - {{id: audit_fail, kind: python, function: builtins:len, cost: 0.01}}
{side}"""


def test_the_failure_path_is_in_the_net_and_sound() -> None:
    net = lower(loads(audited()))
    w = net.require_wiring()
    assert w.steps["ocr"].on_failure is None  # it has a fallback: the end of its chain fails out
    assert w.role_of("ocr_cached.fail_out") is TransitionRole.FAIL_OUT
    ways = {(st.way.kind, st.way.via) for st in w.steps["audit_fail"].starts}
    assert ways == {(EntryKind.FAILURE, "ingest"), (EntryKind.FAILURE, "ocr_cached")}
    assert check(net).sound is True


def test_a_failure_while_a_parallel_branch_runs_is_unsound() -> None:
    report = check(lower(loads(audited(parallel=True))))
    assert report.sound is False  # the handler ends the case while lint's token is still in the net


def test_the_executor_runs_the_handler_and_the_case_fails() -> None:
    dag = plan(loads(audited()))
    trace = TraceWriter(keep=True)
    res = asyncio.run(Executor(dag, trace=trace).run("q"))
    assert not res.ok and res.exit_code == 1 and "on_failure" in (res.error or "")
    assert "audit_fail" in res.outputs and "audit" not in res.outputs
    m = dag.net.initial
    for t in res.events:  # a firing sequence of the verified net, ending in its final marking
        m = dag.net.fire(m, t)
    assert m[dag.net.place_index(dag.net.sink)] == 1 and "ocr_cached.fail_out" in res.events
    assert [r.step for r in trace.records if r.outcome == "ok"] == ["ingest", "audit_fail"]


def test_a_success_never_runs_the_handler() -> None:
    res = asyncio.run(Executor(plan(loads(audited("ok")))).run("q"))
    assert res.ok and "audit_fail" not in res.outputs


def test_the_simulator_fails_as_many_cases_and_pays_for_the_handler() -> None:
    sim = simulate(loads(audited()), cases=100, seed=3)
    assert sim.failed == 100 and sim.unfinished == 0
    assert sim.failed_costs == pytest.approx([0.01] * len(sim.failed_costs))


@pytest.mark.parametrize(("edit", "message"), [
    (("on_failure: audit_fail}", "on_failure: nowhere}"), "not another step"),
    (("{id: audit_fail, kind: python", "{id: audit_fail, after: [ingest], kind: python"), "must not have"),
    (("  - id: ocr_cached\n", "  - id: ocr_cached\n    on_failure: audit_fail\n"), "inherits"),
])
def test_bad_handlers_are_refused_with_the_step_and_line(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        loads(audited().replace(*edit), file="w.yaml")
    assert err.value.step and err.value.line and err.value.hint


def test_executor_and_simulator_fail_out_as_often_on_the_fault_server(fault_server: Any) -> None:
    """30 of 100 calls fail fatally (HTTP 400): the executor sends exactly those cases down the on_failure
    path; the simulator, given the same failure rate, fails out the same share within four standard errors."""
    from petriflow.execute.servers import Endpoint
    from petriflow.spec import WorkflowBuilder

    wf = (WorkflowBuilder("ask_audited").model("m", name="fault-model", base_url="http://unused/v1")
          .step("ask", kind="chat", model="m", prompt="Say hi to {question}", on_failure="audit", failure_rate=0.3)
          .step("audit", kind="python", function="builtins:len").build())
    fault_server.add_rule("ask", ["400"] * 30)
    eps = {"m": Endpoint(base_url=fault_server.base_url, model="fault-model", api_key="x")}

    async def main() -> list[Any]:
        async with Executor(plan(wf), endpoints=eps) as ex:
            return await ex.run_many([f"case {i}" for i in range(100)], concurrency=1)

    results = asyncio.run(main())
    handled = [r for r in results if not r.ok]
    assert len(handled) == 30 and all("audit" in r.outputs for r in handled)
    sim = simulate(wf, cases=2000, seed=5, warmup=0.0)
    n = sim.cases + sim.failed  # `cases` counts the completed ones
    share, se = sim.failed / n, (0.3 * 0.7 / n) ** 0.5
    assert sim.unfinished == 0 and abs(share - 0.3) < 4 * se


def test_the_handler_is_told_which_step_failed_and_why() -> None:
    """An audit on the failure path records what failed: the handler's inputs carry ``failure``."""
    wf = loads(audited().replace("{id: audit_fail, kind: python, function: builtins:len",
                                 "{id: audit_fail, kind: python, function: json:dumps"))
    res = asyncio.run(Executor(plan(wf)).run("q"))
    told = json.loads(res.outputs["audit_fail"])
    assert set(told) == {"failure"} and told["failure"]["step"] == "ocr"
    assert told["failure"]["error"] in (res.error or "")  # the error the case reports, the handler was told
    assert "ocr" in told["failure"]["error"]
