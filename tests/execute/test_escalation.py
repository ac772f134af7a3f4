"""Escalating a waiting human step is its deadline brought forward; attempts waiting for a resource are recorded.

The oracle for an escalation is the same workflow left to its deadline: the
trace records (step, attempt, outcome, error kind), the transitions fired and
the output must be the same, for a step with a fallback and for one whose
``on_failure`` handler takes over. Both on the real SQLite store and in memory.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from petriflow.errors import InputError
from petriflow.execute import Executor, plan
from petriflow.execute.answers import record_escalation
from petriflow.execute.store import MemoryStore, Queued, SqliteStore
from petriflow.execute.trace import record_of
from petriflow.spec import WorkflowBuilder
from petriflow.ui.live import live_state
from tests.execute import gate_steps

ECHO = "petriflow.execute.builtins:echo"


def _wf(timeout: float, *, fallback: bool) -> Any:
    b = WorkflowBuilder("esc").step("draft", kind="python", function=ECHO, config={"kwargs": {"value": "d"}})
    if fallback:
        b = b.step("review", kind="human", after=["draft"], timeout=timeout, config={"poll": 0.01},
                   fallback="senior")
        b = b.step("senior", kind="python", function=ECHO, config={"kwargs": {"value": "escalated"}})
    else:
        b = b.step("review", kind="human", after=["draft"], timeout=timeout, config={"poll": 0.01},
                   on_failure="audit_failed")
        b = b.step("audit_failed", kind="python", function=ECHO, config={"kwargs": {"value": "audited"}})
    return b.build()


def _store(kind: str, tmp: Path) -> Any:
    return MemoryStore() if kind == "memory" else SqliteStore(tmp / "runs.sqlite")


async def _escalated_run(store: Any, wf: Any, run_id: str) -> Any:
    """Run one case; as soon as it waits for its reviewer, escalate it as the console does."""
    async with Executor(plan(wf), store=store) as ex:
        task = asyncio.ensure_future(ex.run_many(["post"], run_id=run_id))
        while not store.waiting(run_id):
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        said = record_escalation(store, run_id, "review", case=0)
        assert said == f"escalated step 'review' pass 1 of case 0 of run {run_id}"
        with pytest.raises(InputError, match="already escalated"):
            record_escalation(store, run_id, "review", case=0)
        [r] = await task
    return r


def _shape(store: Any, run_id: str, r: Any) -> Any:
    recs = [record_of(line) for line in store.trace_lines(run_id)] if store.durable else []
    return (r.ok, r.output, r.events, [(t.step, t.attempt, t.outcome, t.error) for t in recs])


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "on_failure"])
def test_an_escalation_takes_the_path_its_deadline_takes(kind: str, fallback: bool, tmp_path: Path) -> None:
    store = _store(kind, tmp_path)
    escalated = asyncio.run(_escalated_run(store, _wf(3600, fallback=fallback), "E"))

    async def late() -> Any:  # the same workflow, left to a deadline that passes
        async with Executor(plan(_wf(0.05, fallback=fallback)), store=store) as ex:
            return (await ex.run_many(["post"], run_id="D"))[0]

    deadline = asyncio.run(late())
    assert _shape(store, "E", escalated) == _shape(store, "D", deadline)
    assert escalated.output == ("escalated" if fallback else None) and escalated.ok == fallback
    if not fallback:
        assert store.load_steps("E", 0)["audit_failed#1"].output == "audited"  # the handler ran
        assert "escalated by a person before its deadline" in (store.cases("E")[0].error or "")
    if store.durable:
        [review] = [record_of(line) for line in store.trace_lines("E") if record_of(line).step == "review"]
        assert review.error == "timeout" and review.outcome == ("fallback" if fallback else "timeout")
    assert store.waiting("E") == []


def test_only_a_waiting_step_of_the_run_can_be_escalated(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "runs.sqlite")

    Executor(plan(_wf(3600, fallback=True)), store=store).open_run("R", ["post"])  # made, never driven
    with pytest.raises(InputError, match="is not waiting"):
        record_escalation(store, "R", "review", case=0)
    with pytest.raises(InputError, match="has no human step 'draft'"):
        record_escalation(store, "R", "draft", case=0)
    with pytest.raises(InputError, match="has no case 3"):
        record_escalation(store, "R", "review", case=3)
    with pytest.raises(InputError, match="no run 'nope'"):
        record_escalation(store, "nope", "review")


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_an_attempt_waiting_for_a_resource_is_recorded_while_it_waits(kind: str, tmp_path: Path) -> None:
    wf = (WorkflowBuilder("res").resource("gpu", capacity=1)
          .step("work", kind="python", function="tests.execute.gate_steps:hold", uses={"gpu": 1})
          .build())
    store = _store(kind, tmp_path)

    async def main() -> tuple[list[Any], list[Any], Any]:
        gate_steps.GATE["open"] = asyncio.Event()
        async with Executor(plan(wf), store=store) as ex:
            task = asyncio.ensure_future(ex.run_many(["a", "b", "c"], run_id="R"))
            while len(store.queued("R")) < 2:
                assert not task.done(), task.result()
                await asyncio.sleep(0.01)
            waits = store.queued("R")
            row = store.get_run("R")
            state = live_state(store, row, wf, None)
            gate_steps.GATE["open"].set()
            return waits, await task, state

    waits, results, state = asyncio.run(main())
    assert all(r.ok for r in results)
    assert [(q.step, q.resource, q.key) for q in waits] == [("work", "gpu", "work#1")] * 2
    assert len({q.case for q in waits}) == 2  # two of the three cases wait; one holds the unit
    assert state.counts["work"] == {"running": 1, "waiting for a resource": 2}
    assert store.queued("R") == []  # each wait is cleared once its unit is held


def test_petriflow_answer_escalate_is_the_same_escalation(tmp_path: Path) -> None:
    from tests.cli_in_process import petriflow

    db = tmp_path / "runs.sqlite"
    store = SqliteStore(db)
    both = petriflow("answer", "R", "review", "approve", "--escalate", "--db", db)
    assert "give an answer VALUE or --escalate, not both and not neither" in both.refusal

    async def main() -> Any:
        async with Executor(plan(_wf(3600, fallback=True)), store=store) as ex:
            task = asyncio.ensure_future(ex.run_many(["post"], run_id="R"))
            while not store.waiting("R"):
                await asyncio.sleep(0.01)
            said = petriflow("answer", "R", "review", "--escalate", "--db", db)
            assert said.code == 0 and "escalated step 'review' pass 1 of case 0 of run R" in said.out, said.err
            return (await task)[0]

    r = asyncio.run(main())
    assert r.ok and r.output == "escalated"
    again = petriflow("answer", "R", "review", "--escalate", "--db", db)
    assert "is not waiting" in again.refusal


def test_escalations_and_resource_waits_read_back_what_was_written_on_every_durable_store(store_url: str) -> None:
    """SQLite and PostgreSQL: an escalation is recorded once; a resource wait is there until it is cleared."""
    from petriflow.execute.store import open_store

    store = open_store(store_url)
    try:
        assert not store.escalated("R", 0, "review", 1)
        assert store.escalate("R", 0, "review", 1) and not store.escalate("R", 0, "review", 1)
        assert store.escalated("R", 0, "review", 1)
        assert not store.escalated("R", 0, "review", 2) and not store.escalated("R", 1, "review", 1)
        store.set_queued(Queued("R", 0, "work#1", "work", "gpu", time.time()))
        store.set_queued(Queued("R", 1, "work#1/2", "work", "api", time.time()))
        store.set_queued(Queued("S", 0, "work#1", "work", "gpu", time.time()))
        assert [(q.case, q.key, q.resource) for q in store.queued("R")] == [(0, "work#1", "gpu"),
                                                                                  (1, "work#1/2", "api")]
        store.clear_queued("R", 0, "work#1")
        assert [q.case for q in store.queued("R")] == [1] and len(store.queued("S")) == 1
    finally:
        store.close()
