"""A long chain of instant steps simulates without recursion: the simulator completes instant steps in a loop.

Before, each instant step's completion fired its successor's start inside
the same call, so a chain of about 200 python steps overflowed Python's
stack (``petriflow simulate`` exited 70 with a RecursionError). The chain
here is as long as the workflow format allows (:data:`petriflow.limits.MAX_STEPS`):
every transition of a chain fires exactly once per case, which the
firings count checks.
"""

from __future__ import annotations

import sys

import pytest

from petriflow.limits import MAX_STEPS
from petriflow.net.lower import lower
from petriflow.simulate import Load, simulate
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow

ECHO = "petriflow.execute.builtins:echo"


def chain(n: int, *, latency: float | None = None) -> Workflow:
    b = WorkflowBuilder(f"chain-{n}")
    extra = {} if latency is None else {"latency": latency}
    b.step("s0", kind="python", function=ECHO, **extra)
    for i in range(1, n):
        b.step(f"s{i}", kind="python", function=ECHO, after=[f"s{i - 1}"], **extra)
    return b.build()


@pytest.mark.slow
def test_a_chain_of_max_steps_instant_steps_simulates() -> None:
    n = MAX_STEPS
    assert n > 5 * sys.getrecursionlimit() // 10  # long enough that one frame per step would overflow the stack
    wf = chain(n)
    net = lower(wf)
    res = simulate(wf, net=net, cases=3, load=Load.closed(2), warmup=0)
    assert res.cases == 3 and res.failed == 0 and res.unfinished == 0
    assert res.firings == 3 * len(net.transitions)  # a chain: every transition once per case
    assert res.latency.mean == 0.0


def test_a_chain_of_instant_steps_between_timed_ones_keeps_its_times() -> None:
    """Instant steps completed in a loop still take no time: 300 of them after a 1 s step end at 1 s."""
    b = WorkflowBuilder("mixed").step("slow", kind="python", function=ECHO, latency=1.0)
    for i in range(300):
        b.step(f"s{i}", kind="python", function=ECHO, after=["slow" if i == 0 else f"s{i - 1}"])
    res = simulate(b.build(), cases=4, warmup=0)
    assert res.cases == 4 and set(res.latencies.tolist()) == {1.0}
