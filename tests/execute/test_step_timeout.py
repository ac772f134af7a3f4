"""``config.step_timeout`` bounds a step over all its attempts, by one rule in the executor and the simulator.

The rule (:func:`petriflow.rules.attempt_timeout`, :func:`petriflow.rules.may_retry`):
the step's clock starts when its first attempt starts (its units and rate
permits held); each attempt gets the step's ``timeout`` capped by what is
left; an attempt with nothing left is a timeout without a call; no retry
once the time is spent. Here a step that always fails retryably, backing
off 0.5, 1, 2 s (no jitter) under a 3.2 s ``step_timeout``: attempts at 0,
0.5 and 1.5 s fail, the one due at 3.5 s has no time left, and the fallback
takes over at 3.5 s, on both sides (the executor on a virtual clock).
"""

from __future__ import annotations

import asyncio

import numpy as np

from petriflow.execute import Executor, TraceWriter, plan
from petriflow.profile import Profile
from petriflow.simulate import simulate
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow

from .test_token_limit import VirtualTime


def always_down(inputs: object) -> object:
    raise ConnectionError("the service is down")


def flaky(step_timeout: float | None) -> Workflow:
    config = {"step_timeout": step_timeout} if step_timeout is not None else {}
    return (WorkflowBuilder("deadline")
            .step("a", kind="python", function="tests.execute.test_step_timeout:always_down", config=config,
                  retry={"max_attempts": 10, "backoff": 0.5, "jitter": False}, fallback="b", failure_rate=1.0)
            .step("b", kind="python", function="petriflow.execute.builtins:echo")
            .build())


def test_the_simulator_stops_retrying_when_the_step_timeout_is_spent() -> None:
    wf = flaky(3.2)
    res = simulate(wf, Profile.from_workflow(wf), cases=20, warmup=0)
    assert res.failed == 0 and np.allclose(res.latencies, 3.5)
    unbounded = simulate(flaky(None), cases=20, warmup=0)  # 10 attempts: 9 back-offs, capped at backoff_max 30
    assert np.allclose(unbounded.latencies, sum(min(30.0, 0.5 * 2**k) for k in range(9)))


def test_the_executor_follows_the_same_deadline() -> None:
    time_ = VirtualTime()
    trace = TraceWriter(keep=True)
    ex = Executor(plan(flaky(3.2)), trace=trace, clock=time_.clock, sleep=time_.sleep)
    r = asyncio.run(ex.run("x"))
    assert r.ok and time_.now == 3.5 and time_.waits == [0.5, 1.0, 2.0]
    assert [(t.step, t.outcome, t.error) for t in trace.records] == [
        ("a", "error", "retryable"), ("a", "error", "retryable"), ("a", "error", "retryable"),
        ("a", "fallback", "timeout"), ("b", "ok", None)]
