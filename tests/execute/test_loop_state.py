"""Loops with state: each pass reads the previous pass's outputs, its pass number and its own human answer;
a loop is left from a route branch, and a step that loops and routes names where it goes when its budget
is spent. Each construct is checked in the loader, the net, the executor and the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from petriflow.errors import SpecError
from petriflow.execute import Executor, TraceWriter, plan
from petriflow.execute.store import MemoryStore
from petriflow.net.lower import lower
from petriflow.spec import loads
from petriflow.trace import check_record

M = "tests.execute.loop_steps"

SUPPORT = f"""
name: support
steps:
  - id: triage
    kind: python
    function: {M}:triage
    route:
      - {{to: reply, p: 0.6, when: answer}}
      - {{to: ask, p: 0.4, when: clarify}}
  - id: ask
    kind: python
    function: {M}:ask
  - id: hear
    kind: human
    after: [ask]
    config: {{poll: 0.001}}
  - id: read
    kind: python
    function: {M}:read
    after: [hear]
    loop: {{to: triage, max: 2, p: 1.0, when: again}}
  - id: reply
    kind: python
    function: {M}:reply
"""


def test_a_route_branch_leaves_the_loop_and_the_net_is_sound() -> None:
    wf = loads(SUPPORT)
    assert wf.loop_region("read") == ("triage", "ask", "hear", "read")
    assert plan(wf).report.sound is True


def test_each_pass_reads_the_answer_given_to_it_and_the_pass_before() -> None:
    store, trace = MemoryStore(), TraceWriter(keep=True)
    ex = Executor(plan(loads(SUPPORT)), store=store, trace=trace)
    ex.answer("r", "hear", "I am not sure")
    ex.answer("r", "hear", "it is order 42", npass=2)
    res = asyncio.run(ex.run("my parcel", run_id="r"))
    assert res.ok, res.error
    # pass 1 has heard nothing, pass 2 reads pass 1's unclear answer, pass 3 reads "order 42" and answers
    assert res.output["reply"] == {"label": "answer", "pass": 3, "heard": "it is order 42"}
    triage = [r for r in trace.records if r.step == "triage"]
    assert [(r.loop_pass, r.branch) for r in triage] == [(1, "clarify"), (2, "clarify"), (3, "answer")]
    assert [r.loop_pass for r in trace.records if r.step == "hear"] == [1, 2]


def test_a_pass_waits_for_its_own_answer_not_the_first_one() -> None:
    store = MemoryStore()
    ex = Executor(plan(loads(SUPPORT)), store=store)
    ex.answer("r", "hear", "I am not sure")  # no answer for pass 2: the run must wait, not reuse this one

    async def main() -> Any:
        return await asyncio.wait_for(ex.run("q", run_id="r"), 0.5)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


EXHAUSTED = f"""
name: review
steps:
  - id: review
    kind: python
    function: {M}:always_more
    route:
      - {{to: publish, p: 0.5, when: ok}}
      - {{to: escalate, p: 0.5, when: reject}}
    loop: {{to: review, max: 2, p: 1.0, when: again, exhausted: reject}}
  - id: publish
    kind: python
    function: builtins:len
  - id: escalate
    kind: python
    function: builtins:len
"""


def test_a_spent_loop_takes_its_exhausted_branch_in_executor_and_simulator() -> None:
    from petriflow import simulate

    wf = loads(EXHAUSTED)
    res = asyncio.run(Executor(plan(wf)).run("q"))
    assert res.ok and res.events.count("review.loop") == 2
    assert "review.choose.reject" in res.events and "publish.start" not in res.events
    sim = simulate(wf, cases=200, seed=1)
    assert sim.unfinished == 0 and sim.failed == 0
    assert sim.critical_path["escalate"] == 1.0 and sim.critical_path.get("publish", 0.0) == 0.0


@pytest.mark.parametrize(("loop", "message"), [
    ("{to: review, max: 2, when: again}", "does not say where it goes"),
    ("{to: review, max: 2, when: again, exhausted: nowhere}", "no branch of the route"),
    ("{to: review, max: 2, when: ok, exhausted: reject}", "also a route branch"),
])
def test_a_loop_that_routes_must_name_a_real_exhausted_branch(loop: str, message: str) -> None:
    text = EXHAUSTED.replace("{to: review, max: 2, p: 1.0, when: again, exhausted: reject}", loop)
    with pytest.raises(SpecError, match=message) as err:
        loads(text, file="w.yaml")
    assert err.value.step == "review" and err.value.line == 10 and err.value.hint


def test_the_nets_runs_are_the_workflows_runs() -> None:
    """Every complete firing sequence of the support net, told as step finishes, is a run the workflow means:
    k = 0..2 passes (triage clarifies, ask, hear, read goes back), then triage answers and reply ends the
    case, or one more clarifying pass ends in read (its output asks for no more, or the budget is spent)."""
    net = lower(loads(SUPPORT))
    w = net.require_wiring()
    finishes = {f.transition: (sid, f.label or f.role.value) for sid, sw in w.steps.items() for f in sw.finishes}
    runs: set[tuple[tuple[str, str], ...]] = set()

    def walk(m: Any, told: tuple[tuple[str, str], ...], depth: int) -> None:
        assert depth < 40
        if m[net.place_index(net.sink)]:
            runs.add(told)
            return
        for t in net.enabled_ids(m):
            walk(net.fire(m, t), told + ((finishes[t],) if t in finishes else ()), depth + 1)

    walk(net.initial, (), 0)
    pass_ = (("triage", "clarify"), ("ask", "finish"), ("hear", "finish"), ("read", "loop_back"))
    ends = ((("triage", "answer"), ("reply", "finish")), pass_[:3] + (("read", "finish"),))
    meant = {pass_ * k + end for k in range(3) for end in ends}
    assert runs == meant


def test_old_trace_records_read_with_the_new_fields_defaulted() -> None:
    old = {"run_id": "r", "case": 0, "step": "a", "start": 1.0, "end": 2.0, "attempt": 1, "outcome": "ok"}
    rec = check_record(old, where="t.jsonl:1")
    assert rec.item is None and rec.loop_pass == 1


def test_map_item_records_carry_their_item_position() -> None:
    wf = loads("""
name: m
steps:
  - id: split
    kind: python
    function: petriflow.execute.builtins:scripted
    config: {kwargs: {key: map-items, script: [[x, y, z]]}}
  - {id: each, kind: python, function: builtins:len, after: [split], map: {over: split, max: 5}}
""")
    trace = TraceWriter(keep=True)
    res = asyncio.run(Executor(plan(wf), trace=trace).run({"question": "abc"}))
    assert res.ok, res.error
    assert sorted(r.item for r in trace.records if r.step == "each") == [0, 1, 2]  # type: ignore[type-var]
    assert [r.item for r in trace.records if r.step == "split"] == [None]


@pytest.mark.parametrize("name", ["previous", "loop_pass"])
def test_the_names_a_pass_reads_cannot_be_step_ids(name: str) -> None:
    with pytest.raises(SpecError, match="reserved") as err:
        loads(f"name: w\nsteps:\n  - {{id: {name}, kind: python, function: builtins:len}}\n", file="w.yaml")
    assert err.value.line == 3 and err.value.step == name
