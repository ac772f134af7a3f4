"""The token limit of issue 8, simulated and executed on one rule.

100-token calls through a 600 tokens/min resource simulate at 0.10 calls/s,
and the executor, run against the fault server on a virtual clock (minutes
of rate limit in no time, and no timing in the test), waits call for call
what the simulator waits: both reserve from :class:`petriflow.rules.Bucket`.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from petriflow.execute import Executor, TraceWriter, plan
from petriflow.execute.servers import Endpoint
from petriflow.simulate import Load, simulate
from petriflow.spec import Workflow, WorkflowBuilder

from .fault_server import FaultServer

CALL_TOKENS, TPM = 100, 600  # 100-token calls at 600 tokens/min: 0.10 calls/s


def token_limited() -> Workflow:
    """One chat call of 4 + 96 tokens (the fault server counts words) through a 600 tokens/min resource."""
    return (WorkflowBuilder("tpm").model("m", name="fault-model", base_url="http://unused/v1")
            .resource("api", capacity=1, tokens_per_minute=TPM)
            .step("ask", kind="chat", model="m", prompt="Say hi to {question}", uses=["api"],
                  tokens={"input": 4, "output": CALL_TOKENS - 4}, latency=0.0)
            .build())


def test_100_token_calls_at_600_tokens_per_minute_simulate_at_a_tenth_of_a_call_per_second() -> None:
    res = simulate(token_limited(), cases=2000, load=Load.poisson(1.0), seed=3)  # arrivals far above the limit
    assert res.throughput == pytest.approx(TPM / 60 / CALL_TOKENS, rel=0.05)


class VirtualTime:
    """A clock that moves only when slept on: the executor waits out minutes of rate limit in no time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_the_executor_waits_for_tokens_exactly_as_the_simulator_does(fault_server: FaultServer) -> None:
    """Both on one rule: a minute's tokens go at once, then one call per 10 s, call for call."""
    n = 30
    wf = token_limited()
    sim = simulate(wf, cases=n, load=Load.closed(1), warmup=0.0, seed=0)  # one call at a time, as below
    simulated = sorted(sim.latencies.tolist())  # each case is its call's wait for tokens

    time_ = VirtualTime()
    trace = TraceWriter(keep=True)
    fault_server.add_rule("*", reply=" ".join(["word"] * (CALL_TOKENS - 4)))
    ep = {"m": Endpoint(base_url=fault_server.base_url, model="fault-model", api_key="x")}
    ex = Executor(plan(wf), endpoints=ep, trace=trace, clock=time_.clock, sleep=time_.sleep)
    results = asyncio.run(ex.run_many(["bob"] * n, concurrency=4))
    assert all(r.ok for r in results)
    assert {r.input_tokens + r.output_tokens for r in results} == {CALL_TOKENS}
    executed = [0.0] * (n - len(time_.waits)) + time_.waits  # calls that did not wait went first
    assert len(time_.waits) == n - TPM // CALL_TOKENS  # the first minute's tokens went at once
    assert executed == pytest.approx(simulated)
    assert (n - TPM // CALL_TOKENS) / time_.now == pytest.approx(0.10, rel=1e-9)
    assert math.isclose(simulated[-1], 10.0)


def test_the_simulator_reserves_the_executors_estimate_not_the_exact_draw() -> None:
    """Before any call has returned, a call reserves 0 tokens (the executor cannot know more): 20 calls of
    100 tokens all start at once under 600 tokens/min, and once they settle (2,000 tokens, 1,400 over the
    minute's burst) the next call waits the debt plus its own estimate out at 10 tokens/s: 150 s."""
    wf = (WorkflowBuilder("burst").model("m", name="fault-model", base_url="http://unused/v1")
          .resource("api", capacity=20, tokens_per_minute=TPM)
          .step("ask", kind="chat", model="m", uses=["api"], tokens={"input": 4, "output": CALL_TOKENS - 4},
                latency=1.0)
          .build())
    first = simulate(wf, cases=20, load=Load.closed(20), warmup=0.0)
    assert sorted(first.latencies.tolist()) == [1.0] * 20  # reserving the draw would let only 6 start at once
    more = simulate(wf, cases=21, load=Load.closed(20), warmup=0.0)
    assert max(more.latencies.tolist()) == pytest.approx(1.0 + (20 * CALL_TOKENS - TPM + CALL_TOKENS) / (TPM / 60))
