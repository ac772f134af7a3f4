"""The executor writes each failed attempt's error kind into its trace, and ``fit`` reads the kinds back.

The failures are real: the fault server answers 500 (retryable), hangs
past the step's timeout (timeout) and refuses with 401 (fatal), through the
real ``openai`` client; back-off sleeps are recorded, not slept.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from petriflow.execute import Executor, TraceWriter, plan
from petriflow.execute.servers import Endpoint
from petriflow.profile.fit import fit
from petriflow.spec import Workflow, WorkflowBuilder
from petriflow.trace import read_traces


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def refused_then_flaky() -> Workflow:
    """``strict`` goes first and has no timeout: the cold first call (imports, connections) is not timed."""
    return (WorkflowBuilder("kinds").model("m", name="fault-model", base_url="http://unused/v1")
            .step("strict", kind="chat", model="m", prompt="Refuse {question}",
                  retry={"max_attempts": 3, "backoff": 0.01}, fallback="backup")
            .step("backup", kind="python", function="petriflow.execute.builtins:echo",
                  config={"kwargs": {"value": "backup answer"}})
            .step("ask", kind="chat", model="m", prompt="Say hi to {question}", timeout=0.5, after=["strict"],
                  retry={"max_attempts": 3, "backoff": 0.01})
            .build())


def test_failed_attempts_carry_their_kind_and_fit_reads_them(fault_server: Any, tmp_path: Path) -> None:
    fault_server.add_rule("ask", ["500", "hang"])
    fault_server.add_rule("strict", ["401"])
    path = tmp_path / "trace.jsonl"
    sleeps = Sleeps()
    ep = {"m": Endpoint(base_url=fault_server.base_url, model="fault-model", api_key="x")}
    ex = Executor(plan(refused_then_flaky()), endpoints=ep, sleep=sleeps, trace=TraceWriter(path))
    r = asyncio.run(ex.run("bob"))
    assert r.ok and r.outputs["strict"] == "backup answer"
    got = [(t.step, t.attempt, t.outcome, t.error) for t in read_traces(path)]
    assert got == [("strict", 1, "fallback", "fatal"),  # a refusal is not retried: the fallback takes over
                   ("backup", 1, "ok", None),
                   ("ask", 1, "error", "retryable"), ("ask", 2, "timeout", "timeout"), ("ask", 3, "ok", None)]
    assert len(sleeps.delays) == 2 and fault_server.counts()["steps"]["strict"] == 1

    profile = fit(path, workflow=refused_then_flaky())
    ask, strict = profile.steps["ask"], profile.steps["strict"]
    assert (ask.retryable_rate, ask.timeout_rate, ask.fatal_rate) == pytest.approx((1 / 3, 1 / 3, 0.0))
    assert (strict.retryable_rate, strict.timeout_rate, strict.fatal_rate) == (0.0, 0.0, 1.0)
