"""A step's ``cost:`` is billed per successful attempt by the executor as the simulator and the bound count it.

One rule (:func:`petriflow.rules.billed`): a python or tool step that calls
something paid carries its price as ``cost:``; the executor adds it to the
case (and the trace record), the simulator to each drawn call, and
:func:`petriflow.cost_bound` counts it. Here the steps run for real (no
model): one inline in the case loop, one on a thread (the task path).
"""

from __future__ import annotations

import numpy as np
import pytest

from petriflow.execute import TraceWriter, plan, run_sync
from petriflow.profile.bound import cost_bound
from petriflow.simulate import simulate
from petriflow.spec import WorkflowBuilder
from petriflow.spec.model import Workflow

ECHO = "petriflow.execute.builtins:echo"


def priced() -> Workflow:
    return (WorkflowBuilder("priced")
            .step("inline", kind="python", function=ECHO, cost=0.25)
            .step("threaded", kind="python", function=ECHO, after=["inline"], cost=0.5, config={"thread": True})
            .step("free", kind="python", function=ECHO, after=["threaded"])
            .build())


def test_executor_simulator_and_bound_bill_the_declared_cost_alike() -> None:
    wf = priced()
    trace = TraceWriter(keep=True)
    r = run_sync(plan(wf), "x", trace=trace)
    assert r.ok and r.cost == pytest.approx(0.75)
    assert {t.step: t.cost for t in trace.records} == {"inline": 0.25, "threaded": 0.5, "free": 0.0}
    sim = simulate(wf, cases=50, warmup=0)
    assert np.allclose(sim.costs, 0.75)
    assert cost_bound(wf).usd == pytest.approx(0.75)
